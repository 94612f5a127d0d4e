using Microsoft.Extensions.Logging;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// How a model keeps the caches of videos it has seen (see <see cref="VideoMemory"/>): on by default, in process memory
/// under <see cref="MemoryBudgetBytes"/>, optionally backed by a store shared between processes.
/// </summary>
public sealed record VideoMemoryOptions
{
    /// <summary>The default in-memory budget: 1 GiB (about a hundred 32-frame videos of LLaVA-OneVision-0.5B with vidkv-1.5/1.58).</summary>
    public const long DefaultMemoryBudgetBytes = 1L << 30;

    /// <summary>Whether requests reuse and store prefixes (default true). Off, every request prefills its whole prompt in one pass.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Bytes the in-memory store may hold (counted from the snapshots' tensors); 0 keeps nothing in memory
    /// (only <see cref="SharedStore"/>). Default <see cref="DefaultMemoryBudgetBytes"/>.</summary>
    public long MemoryBudgetBytes { get; init; } = DefaultMemoryBudgetBytes;

    /// <summary>
    /// A second store behind the in-memory one, for example <c>new SerializedVideoMemoryStore(new DiskVideoMemoryStore(folder))</c>
    /// or one over a distributed cache: looked up on an in-memory miss (a hit is then kept in memory too), and given every
    /// new entry. <see langword="null"/> (default) for none. The model does not dispose it.
    /// </summary>
    public IVideoMemoryStore? SharedStore { get; init; }

    /// <summary>Receives the memory's warnings (a shared entry that could not be saved) and debug messages; <see langword="null"/> for none.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        if (MemoryBudgetBytes < 0)
        {
            throw new ArgumentException($"MemoryBudgetBytes is {MemoryBudgetBytes}; allowed: 0 (nothing in memory) or more bytes.");
        }

        if (Enabled && MemoryBudgetBytes == 0 && SharedStore is null)
        {
            throw new ArgumentException("MemoryBudgetBytes is 0 and there is no SharedStore: an enabled video memory needs somewhere to keep entries; set Enabled to false instead.");
        }
    }
}
