using VidKV.AI.Backend;

namespace VidKV.AI.Connector.Inference;

/// <summary>
/// One request's work for the <see cref="InferenceWorker"/>: it waits in the queue (Queued), then either runs
/// (Started) or is abandoned by its caller (cancelled, or waited too long); exactly one of the two happens.
/// </summary>
internal sealed class InferenceJob
{
    private const int Queued = 0, Running = 1, Abandoned = 2;
    private readonly Action<IVideoLanguageModel, CancellationToken> _work;
    private readonly CancellationToken _cancellationToken;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state;
    private CancellationTokenSource? _linked;

    /// <summary>Creates a job; <paramref name="work"/> runs on the worker thread with a token that is cancelled
    /// when <paramref name="cancellationToken"/> is or the worker stops.</summary>
    public InferenceJob(Action<IVideoLanguageModel, CancellationToken> work, CancellationToken cancellationToken)
    {
        _work = work;
        _cancellationToken = cancellationToken;
    }

    /// <summary>Creates a streamed request's job: the worker runs <paramref name="generation"/> through its scheduler beside
    /// other requests, or, for a model without one, <paramref name="work"/> alone.</summary>
    public InferenceJob(GenerationWork generation, Action<IVideoLanguageModel, CancellationToken> work, CancellationToken cancellationToken)
        : this(work, cancellationToken)
    {
        Generation = generation;
    }

    /// <summary>The streamed request, when the job is one.</summary>
    public GenerationWork? Generation { get; }

    /// <summary>Whether its caller abandoned it while it waited.</summary>
    public bool IsAbandoned => Volatile.Read(ref _state) == Abandoned;

    /// <summary>Completes when the worker takes the job.</summary>
    public Task Started => _started.Task;

    /// <summary>Completes when the job has run (with its exception, if it threw) or was abandoned.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Called once when the job leaves the queue (started or abandoned).</summary>
    public Action? OnLeftQueue { get; set; }

    /// <summary>Marks the job abandoned if it has not started; then the worker skips it.</summary>
    public bool TryAbandon()
    {
        if (Interlocked.CompareExchange(ref _state, Abandoned, Queued) != Queued)
        {
            return false;
        }

        OnLeftQueue?.Invoke();
        _completion.TrySetCanceled();
        return true;
    }

    /// <summary>Marks the job started unless it was abandoned.</summary>
    public bool TryStart()
    {
        if (Interlocked.CompareExchange(ref _state, Running, Queued) != Queued)
        {
            return false;
        }

        OnLeftQueue?.Invoke();
        _started.TrySetResult();
        return true;
    }

    /// <summary>Fails a job that will never run.</summary>
    public void Fail(Exception exception)
    {
        if (Interlocked.CompareExchange(ref _state, Running, Queued) == Queued)
        {
            OnLeftQueue?.Invoke();
            _started.TrySetException(exception);
            _completion.TrySetException(exception);
        }
    }

    /// <summary>Runs the work on the calling (worker) thread.</summary>
    public void Execute(IVideoLanguageModel model, CancellationToken stopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_cancellationToken, stopping);
        try
        {
            _work(model, linked.Token);
            _completion.TrySetResult();
        }
        catch (Exception e)
        {
            _completion.TrySetException(e);
        }
    }

    /// <summary>Starts a scheduled run: the token that stops it (the caller's, or the worker stopping) until <see cref="EndScheduled"/>.</summary>
    public CancellationToken BeginScheduled(CancellationToken stopping)
    {
        _linked = CancellationTokenSource.CreateLinkedTokenSource(_cancellationToken, stopping);
        return _linked.Token;
    }

    /// <summary>Ends a scheduled run (its errors went to the request's stream).</summary>
    public void EndScheduled()
    {
        _linked?.Dispose();
        _linked = null;
        _completion.TrySetResult();
    }
}
