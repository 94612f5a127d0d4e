using System.Globalization;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// A piece of probing or decoding under a deadline: <see cref="Token"/> is cancelled by the caller's token or when the
/// time is up, and <see cref="Stop"/> turns the cancellation into the right exception.
/// </summary>
internal sealed class MediaOperation : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationToken _caller;
    private readonly TimeSpan _limit;

    /// <summary>Starts the clock.</summary>
    /// <param name="caller">The caller's token.</param>
    /// <param name="left">Time left; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</param>
    /// <param name="limit">The configured limit, for messages.</param>
    public MediaOperation(CancellationToken caller, TimeSpan left, TimeSpan limit)
    {
        _caller = caller;
        _limit = limit;
        _source = CancellationTokenSource.CreateLinkedTokenSource(caller);
        if (left != Timeout.InfiniteTimeSpan)
        {
            if (left <= TimeSpan.Zero)
            {
                _source.Cancel();
            }
            else
            {
                _source.CancelAfter(left);
            }
        }
    }

    /// <summary>Cancelled by the caller or at the deadline.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>Whether the deadline passed (and the caller did not cancel).</summary>
    public bool TimedOut => _source.IsCancellationRequested && !_caller.IsCancellationRequested;

    /// <summary>Throws when stopped: the caller's <see cref="OperationCanceledException"/>, or the time limit's exception.</summary>
    /// <exception cref="OperationCanceledException">The caller cancelled.</exception>
    /// <exception cref="MediaLimitExceededException">The time is up.</exception>
    public void ThrowIfStopped(string name)
    {
        _caller.ThrowIfCancellationRequested();
        if (_source.IsCancellationRequested)
        {
            throw TimeLimitExceeded(name);
        }
    }

    /// <summary>The exception for a cancellation seen while working: the time limit's when the deadline passed, else the caller's.</summary>
    public Exception Stop(string name, OperationCanceledException cancelled)
        => TimedOut ? TimeLimitExceeded(name) : _caller.IsCancellationRequested ? new OperationCanceledException(cancelled.Message, cancelled, _caller) : cancelled;

    /// <summary>The time limit's exception.</summary>
    public MediaLimitExceededException TimeLimitExceeded(string name)
        => new(
            $"'{name}' could not be probed and decoded within {_limit.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s; allowed: at most that (MediaLimits.DecodeTimeout). Use shorter or smaller media, or fewer frames.",
            nameof(MediaLimits.DecodeTimeout));

    /// <summary>
    /// Enumerates <paramref name="frames"/> (which use <see cref="Token"/>), turning a cancellation at the deadline into the
    /// time limit's exception, and ends the operation when the enumeration ends.
    /// </summary>
    public IEnumerable<SampledFrame> Guard(IEnumerable<SampledFrame> frames, string name)
    {
        using (this)
        {
            using var e = frames.GetEnumerator();
            while (true)
            {
                bool more;
                try
                {
                    more = e.MoveNext();
                }
                catch (OperationCanceledException ex)
                {
                    throw Stop(name, ex);
                }

                if (!more)
                {
                    break;
                }

                yield return e.Current;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
