using System.Diagnostics;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// For benchmarks, on the calling thread: where a decode step's time goes. While <see cref="Current"/> is set,
/// <see cref="DecoderLayer"/> and <see cref="Attention"/> (one sequence's step and the batched step) mark the end of each part
/// and the time since the previous mark is added to that part. Without <see cref="Synchronize"/> the times are the host's
/// (what it takes to issue the work); with it the device is synchronized before each clock read, so each part also holds
/// the device work it issued.
/// </summary>
internal sealed class StepProfile
{
    private readonly Dictionary<string, double> _ms = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();
    private long _last;

    public StepProfile(bool synchronize) => Synchronize = synchronize;

    [field: ThreadStatic]
    public static StepProfile? Current { get; set; }

    public bool Synchronize { get; }

    /// <summary>Milliseconds per part, summed over every marked step, in the order parts were first marked.</summary>
    public IEnumerable<(string Part, double Ms)> Parts => _order.Select(p => (p, _ms[p]));

    /// <summary>Starts the clock (after synchronizing when <see cref="Synchronize"/>).</summary>
    public void Start()
    {
        Wait();
        _last = Stopwatch.GetTimestamp();
    }

    /// <summary>Adds the time since the previous mark to <paramref name="part"/>.</summary>
    public void Mark(string part)
    {
        Wait();
        long now = Stopwatch.GetTimestamp();
        if (!_ms.ContainsKey(part))
        {
            _ms[part] = 0;
            _order.Add(part);
        }

        _ms[part] += Stopwatch.GetElapsedTime(_last, now).TotalMilliseconds;
        _last = now;
    }

    private void Wait()
    {
        if (Synchronize && cuda.is_available())
        {
            cuda.synchronize();
        }
    }
}
