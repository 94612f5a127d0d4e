using System.Collections.Concurrent;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Batching;

namespace VidKV.AI.Connector.Inference;

/// <summary>
/// The one thread that owns a <see cref="IVideoLanguageModel"/>, so that every tensor of a request is created, used and
/// disposed on this thread (TorchSharp's dispose scopes belong to a thread). For a model of this library's families it
/// drives a <see cref="GenerationScheduler"/>: streamed requests join while their caches fit
/// (<see cref="VidKVChatClientOptions.MaxConcurrentSequences"/>, <see cref="VidKVChatClientOptions.MaxCacheBytes"/>) and
/// advance together a token per step; other jobs (remembering a video) run between steps.
/// </summary>
/// <remarks>
/// Thread-safe. Jobs wait in a bounded queue, in order: a request that does not fit yet waits at its head until running
/// ones end. For another model each job holds the worker from its first to its last step. <see cref="Dispose"/> fails
/// waiting jobs, cancels the running ones and waits for the thread to end.
/// </remarks>
internal sealed class InferenceWorker : IDisposable
{
    private readonly BlockingCollection<InferenceJob> _queue = new();
    private readonly Thread _thread;
    private readonly int _maxQueueLength;
    private readonly GenerationSchedulerOptions _scheduling;
    private readonly CancellationTokenSource _stopping = new();
    private IVideoLanguageModel? _model;
    private bool _ownsModel;
    private int _waiting;
    private bool _running;
    private int _freeSlots;
    private int _active;
    private GenerationScheduler? _scheduler;
    private InferenceJob? _held;
    private int _disposed;

    /// <summary>Starts the thread; <paramref name="load"/> runs first on it and gives the model.</summary>
    public InferenceWorker(Func<IVideoLanguageModel> load, bool ownsModel, int maxQueueLength, string name, GenerationSchedulerOptions? scheduling = null)
    {
        _maxQueueLength = maxQueueLength;
        _scheduling = scheduling ?? GenerationSchedulerOptions.OneAtATime;
        var loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() => Run(load, ownsModel, loaded)) { IsBackground = true, Name = name };
        _thread.Start();
        loaded.Task.GetAwaiter().GetResult();
    }

    /// <summary>The model (read its configuration only; run work through <see cref="Enqueue"/>).</summary>
    public IVideoLanguageModel Model => _model ?? throw new ObjectDisposedException(nameof(InferenceWorker));

    /// <summary>Requests waiting for the model (not counting running ones).</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Sequences the scheduler runs now (prefilling or decoding); 0 for a model without one.</summary>
    public int ActiveSequences => Volatile.Read(ref _active);

    /// <summary>Requests that could start now beside the running ones: free scheduler slots, else 1 when the worker is idle.</summary>
    private int FreeSlots => Volatile.Read(ref _freeSlots);

    /// <summary>The worker thread's managed id.</summary>
    public int ThreadId => _thread.ManagedThreadId;

    /// <summary>Queues a job.</summary>
    /// <exception cref="ModelBusyException">The queue is full.</exception>
    /// <exception cref="ObjectDisposedException">The worker is disposed.</exception>
    public void Enqueue(InferenceJob job)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Increment(ref _waiting) > _maxQueueLength + FreeSlots)
        {
            Interlocked.Decrement(ref _waiting);
            throw new ModelBusyException(ModelBusyReason.QueueFull,
                $"The model is busy: {_maxQueueLength} requests are already waiting (VidKVChatClientOptions.MaxQueueLength) behind the running ones (VidKVChatClientOptions.MaxConcurrentSequences, MaxCacheBytes). Retry later, or raise MaxQueueLength.");
        }

        job.OnLeftQueue = () => Interlocked.Decrement(ref _waiting);
        try
        {
            _queue.Add(job);
        }
        catch (InvalidOperationException)
        {
            job.TryAbandon();
            throw new ObjectDisposedException(nameof(VidKVChatClient));
        }
    }

    /// <summary>Runs a function on the worker thread, queued like any request, and returns its result.</summary>
    public Task<T> RunAsync<T>(Func<IVideoLanguageModel, T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = new InferenceJob((model, _) => result.TrySetResult(work(model)), CancellationToken.None);
        job.Completion.ContinueWith(t =>
        {
            if (t.IsFaulted)
            {
                result.TrySetException(t.Exception!.InnerExceptions);
            }
            else if (t.IsCanceled)
            {
                result.TrySetCanceled();
            }
        }, TaskScheduler.Default);
        Enqueue(job);
        return result.Task;
    }

    /// <summary>Runs a function on the worker thread, queued like any request, with a token cancelled when the caller's is.</summary>
    public Task<T> RunAsync<T>(Func<IVideoLanguageModel, CancellationToken, T> work, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = new InferenceJob((model, token) => result.TrySetResult(work(model, token)), cancellationToken);
        job.Completion.ContinueWith(t =>
        {
            if (t.IsFaulted)
            {
                result.TrySetException(t.Exception!.InnerExceptions);
            }
            else if (t.IsCanceled)
            {
                result.TrySetCanceled(cancellationToken);
            }
        }, TaskScheduler.Default);
        Enqueue(job);
        return result.Task;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue.CompleteAdding();
        _stopping.Cancel();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }

        _stopping.Dispose();
        _queue.Dispose();
    }

    private void Run(Func<IVideoLanguageModel> load, bool ownsModel, TaskCompletionSource loaded)
    {
        try
        {
            _model = load();
            _ownsModel = ownsModel;
            _scheduler = _model is VideoLanguageModelBase family ? new GenerationScheduler(family, _scheduling) : null;
            Volatile.Write(ref _freeSlots, Capacity());
            loaded.SetResult();
        }
        catch (Exception e)
        {
            loaded.SetException(e);
            return;
        }

        try
        {
            while (true)
            {
                var job = _held;
                _held = null;
                if (job is null && !(_scheduler is { IsIdle: false } ? _queue.TryTake(out job) : _queue.TryTake(out job, Timeout.Infinite)))
                {
                    if (_scheduler is { IsIdle: false })
                    {
                        Step();
                        continue;
                    }

                    break; // no more jobs will come, and none runs
                }

                if (Dispatch(job!))
                {
                    Volatile.Write(ref _freeSlots, Capacity());
                    continue; // look for more before the next step
                }

                _held = job; // it waits, first in line, until running sequences end
                Step();
            }
        }
        finally
        {
            _scheduler?.Dispose();
            _scheduler = null;
            _held?.Fail(new ObjectDisposedException(nameof(VidKVChatClient), "The chat client was disposed before this request reached the model."));
            if (_ownsModel)
            {
                _model.Dispose();
            }

            _model = null;
        }
    }

    /// <summary>Starts or runs a job, or drops it when abandoned; false when it must wait for room in the scheduler.</summary>
    private bool Dispatch(InferenceJob job)
    {
        if (_stopping.IsCancellationRequested)
        {
            job.Fail(new ObjectDisposedException(nameof(VidKVChatClient), "The chat client was disposed before this request reached the model."));
            return true;
        }

        if (job.IsAbandoned)
        {
            return true; // cancelled or timed out while it waited
        }

        if (job.Generation is not { } work || _scheduler is null)
        {
            Volatile.Write(ref _freeSlots, 0); // before it starts: whoever sees it started sees the worker busy
            if (job.TryStart())
            {
                Volatile.Write(ref _running, true);
                try
                {
                    job.Execute(_model!, _stopping.Token);
                }
                finally
                {
                    Volatile.Write(ref _running, false);
                }
            }

            return true;
        }

        var request = work.Request;
        long bytes;
        try
        {
            bytes = _scheduler.CacheBytesNeeded(work.ChatRequest, request.Generation, request.Cache);
        }
        catch (Exception e)
        {
            if (job.TryStart())
            {
                work.OnEnded(e);
                job.EndScheduled();
            }

            return true;
        }

        if (!_scheduler.IsIdle && !_scheduler.CanAdmit(bytes))
        {
            return false;
        }

        if (!job.TryStart())
        {
            return true;
        }

        var token = job.BeginScheduled(_stopping.Token);
        try
        {
            _scheduler.Add(work.ChatRequest, request.Generation, request.Cache, work.OnUpdate, e =>
            {
                work.OnEnded(e);
                job.EndScheduled();
            }, token);
        }
        catch (Exception e)
        {
            work.OnEnded(e); // a cache larger than MaxCacheBytes on its own, or an invalid request
            job.EndScheduled();
        }

        Volatile.Write(ref _active, _scheduler.ActiveSequences);
        return true;
    }

    private void Step()
    {
        _scheduler!.Step();
        Volatile.Write(ref _active, _scheduler.ActiveSequences);
        Volatile.Write(ref _freeSlots, Capacity());
    }

    /// <summary>Requests that could start now: the scheduler's free slots (none while one waits for room), else 1 when idle.</summary>
    private int Capacity() => _scheduler is null
        ? (Volatile.Read(ref _running) ? 0 : 1)
        : _held is not null ? 0 : _scheduler.Options.MaxConcurrentSequences - _scheduler.ActiveSequences;
}
