using System.Collections.Concurrent;
using VidKV.AI.Backend;

namespace VidKV.AI.Connector.Inference;

/// <summary>
/// The one thread that owns a <see cref="IVideoLanguageModel"/>: it runs queued jobs one at a time, so that every tensor
/// of a request is created, used and disposed on this thread (TorchSharp's dispose scopes belong to a thread).
/// </summary>
/// <remarks>
/// Thread-safe. Jobs wait in a bounded queue; a job is held by the worker from its first to its last step, so a streamed
/// reply keeps the model for the whole stream. <see cref="Dispose"/> fails waiting jobs, cancels the running one and
/// waits for the thread to end.
/// </remarks>
internal sealed class InferenceWorker : IDisposable
{
    private readonly BlockingCollection<InferenceJob> _queue = new();
    private readonly Thread _thread;
    private readonly int _maxQueueLength;
    private readonly CancellationTokenSource _stopping = new();
    private IVideoLanguageModel? _model;
    private bool _ownsModel;
    private int _waiting;
    private bool _running;
    private int _disposed;

    /// <summary>Starts the thread; <paramref name="load"/> runs first on it and gives the model.</summary>
    public InferenceWorker(Func<IVideoLanguageModel> load, bool ownsModel, int maxQueueLength, string name)
    {
        _maxQueueLength = maxQueueLength;
        var loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() => Run(load, ownsModel, loaded)) { IsBackground = true, Name = name };
        _thread.Start();
        loaded.Task.GetAwaiter().GetResult();
    }

    /// <summary>The model (read its configuration only; run work through <see cref="Enqueue"/>).</summary>
    public IVideoLanguageModel Model => _model ?? throw new ObjectDisposedException(nameof(InferenceWorker));

    /// <summary>Requests waiting for the model (not counting the running one).</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    private bool IsIdle => !Volatile.Read(ref _running) && _queue.Count == 0;

    /// <summary>The worker thread's managed id.</summary>
    public int ThreadId => _thread.ManagedThreadId;

    /// <summary>Queues a job.</summary>
    /// <exception cref="ModelBusyException">The queue is full.</exception>
    /// <exception cref="ObjectDisposedException">The worker is disposed.</exception>
    public void Enqueue(InferenceJob job)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Increment(ref _waiting) > _maxQueueLength + (IsIdle ? 1 : 0))
        {
            Interlocked.Decrement(ref _waiting);
            throw new ModelBusyException(ModelBusyReason.QueueFull,
                $"The model is busy: {_maxQueueLength} requests are already waiting (VidKVChatClientOptions.MaxQueueLength). Retry later, or raise MaxQueueLength.");
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
            loaded.SetResult();
        }
        catch (Exception e)
        {
            loaded.SetException(e);
            return;
        }

        try
        {
            foreach (var job in _queue.GetConsumingEnumerable())
            {
                if (_stopping.IsCancellationRequested)
                {
                    job.Fail(new ObjectDisposedException(nameof(VidKVChatClient), "The chat client was disposed before this request reached the model."));
                    continue;
                }

                if (!job.TryStart())
                {
                    continue; // abandoned while it waited (cancelled or timed out)
                }

                Volatile.Write(ref _running, true);
                try
                {
                    job.Execute(_model, _stopping.Token);
                }
                finally
                {
                    Volatile.Write(ref _running, false);
                }
            }
        }
        finally
        {
            if (_ownsModel)
            {
                _model.Dispose();
            }

            _model = null;
        }
    }
}
