using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VidKV.AI.Backend;
using VidKV.AI.Connector.Inference;
using BackendFinish = VidKV.AI.Backend.Generation.FinishReason;

namespace VidKV.AI.Connector;

/// <summary>
/// An <see cref="IChatClient"/> that answers questions about videos and images with a local LLaVA-OneVision model whose
/// key-value cache is compressed with VidKV.
/// </summary>
/// <remarks>
/// <para>
/// User messages may hold text, videos and images: <see cref="DataContent"/> (bytes or a data URI) or
/// <see cref="UriContent"/> (a <c>file:</c> URI) with a <c>video/*</c> or <c>image/*</c> media type. Other contents and
/// media types are refused with <see cref="NotSupportedException"/>, never dropped. <see cref="ChatOptions.Instructions"/>
/// becomes the first system turn. <see cref="ChatOptions.MaxOutputTokens"/>, <see cref="ChatOptions.Temperature"/>,
/// <see cref="ChatOptions.TopP"/>, <see cref="ChatOptions.TopK"/>, <see cref="ChatOptions.Seed"/> and
/// <see cref="ChatOptions.StopSequences"/> are honoured; the cache preset, frame count or rate and time range go in
/// <see cref="ChatOptions.AdditionalProperties"/> (see <see cref="VidKVChatOptions"/>). The caller's options are never changed.
/// </para>
/// <para>
/// Thread-safe: one inference thread owns the model and runs many requests at once, advancing them together a token per
/// step, while their caches fit (<see cref="VidKVChatClientOptions.MaxConcurrentSequences"/>,
/// <see cref="VidKVChatClientOptions.MaxCacheBytes"/>); a joining request's prefill runs between steps. Other requests
/// wait in a bounded queue (<see cref="VidKVChatClientOptions.MaxQueueLength"/>, <see cref="VidKVChatClientOptions.QueueTimeout"/>)
/// and fail with <see cref="ModelBusyException"/> when it is full or the wait runs too long. A request's tokens do not
/// depend on what else runs. Cancelling a request, or abandoning its stream, stops generation within one step and frees
/// that request's cache and frames before the call returns.
/// </para>
/// <para>
/// The final streamed update carries the <see cref="ChatFinishReason"/> and a <see cref="UsageContent"/>: input and
/// output tokens, and in <see cref="UsageDetails.AdditionalCounts"/> the video and image tokens and the bytes the
/// compressed cache held against an FP16 cache (<see cref="VidKVUsage"/>).
/// </para>
/// <example>
/// <code>
/// using IChatClient client = new VidKVChatClient();                 // the built-in model
/// var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User,
///     [new DataContent(File.ReadAllBytes("clip.mp4"), "video/mp4"), new TextContent("What moves?")])]);
/// </code>
/// </example>
/// </remarks>
public sealed partial class VidKVChatClient : IChatClient
{
    /// <summary>The provider name reported in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "vidkv";

    private readonly VidKVChatClientOptions _options;
    private readonly InferenceWorker _worker;
    private readonly ILogger _logger;
    private int _disposed;

    /// <summary>Loads the model the options name (the built-in model by default) on the client's inference thread.</summary>
    /// <param name="options">Model, cache and queue settings; <see langword="null"/> for the defaults. Copied: later changes do not apply.</param>
    /// <param name="loggerFactory">Where to log; <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    /// <exception cref="DirectoryNotFoundException">The built-in model is not installed where <see cref="BuiltInModel.Directory"/> says.</exception>
    /// <exception cref="FileNotFoundException">A file of the checkpoint is missing.</exception>
    /// <exception cref="InvalidDataException">A file of the checkpoint is malformed.</exception>
    public VidKVChatClient(VidKVChatClientOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        _options = (options ?? new VidKVChatClientOptions()).Clone();
        _options.Validate();
        _logger = (ILogger?)loggerFactory?.CreateLogger<VidKVChatClient>() ?? NullLogger.Instance;
        var settings = _options;
        _worker = new InferenceWorker(() => ConfigureMemory(LoadModel(settings), settings, _logger), ownsModel: true, _options.MaxQueueLength, $"VidKV inference ({_options.EffectiveModelId})", _options.ToSchedulerOptions());
        ModelId = _options.EffectiveModelId;
        Metadata = new ChatClientMetadata(ProviderName, null, ModelId);
    }

    /// <summary>Serves a model already loaded.</summary>
    /// <param name="model">The model; from now on only this client's inference thread may run it.</param>
    /// <param name="options">Cache, sampling and queue settings (<see cref="VidKVChatClientOptions.ModelPath"/> is ignored).</param>
    /// <param name="ownsModel">Whether <see cref="Dispose"/> disposes the model.</param>
    /// <param name="loggerFactory">Where to log; <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public VidKVChatClient(IVideoLanguageModel model, VidKVChatClientOptions? options = null, bool ownsModel = false, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _options = (options ?? new VidKVChatClientOptions()).Clone();
        _options.ModelPath = null;
        _options.Validate();
        _options.ModelId ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory));
        _logger = (ILogger?)loggerFactory?.CreateLogger<VidKVChatClient>() ?? NullLogger.Instance;
        var memorySettings = _options;
        var memoryLogger = _logger;
        _worker = new InferenceWorker(() => ConfigureMemory(model, memorySettings, memoryLogger), ownsModel, _options.MaxQueueLength, $"VidKV inference ({_options.EffectiveModelId})", _options.ToSchedulerOptions());
        ModelId = _options.EffectiveModelId;
        Metadata = new ChatClientMetadata(ProviderName, null, ModelId);
    }

    /// <summary>The model id reported in every response.</summary>
    public string ModelId { get; }

    /// <summary>Provider and model, as <see cref="GetService"/> returns them.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>Requests waiting for the model now (not counting the one running).</summary>
    public int QueuedRequests => _worker.Waiting;

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The worker, for tests.</summary>
    internal InferenceWorker Worker => _worker;

    /// <summary>Test hook, called on the worker thread with each update a scheduled request sends, and the request's seed.</summary>
    internal Action<long?, GenerationUpdate>? UpdateSent { get; set; }

    /// <summary>Test hook, called on the worker thread when a request's generation ends: tokens generated, and whether it was cancelled.</summary>
    internal Action<int, bool>? GenerationEnded { get; set; }

    /// <inheritdoc />
    /// <remarks>Built on <see cref="GetStreamingResponseAsync"/>: the same validation, queueing and cancellation.</remarks>
    /// <exception cref="ArgumentException">A message or option is invalid, or the prompt is longer than the model's context.</exception>
    /// <exception cref="NotSupportedException">A content, media type or role the model cannot read.</exception>
    /// <exception cref="InvalidDataException">A video or image is corrupt.</exception>
    /// <exception cref="ModelBusyException">The queue is full or the wait for the model ran past its limit.</exception>
    /// <exception cref="OperationCanceledException">The request was cancelled.</exception>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A message or option is invalid, or the prompt is longer than the model's context.</exception>
    /// <exception cref="NotSupportedException">A content, media type or role the model cannot read.</exception>
    /// <exception cref="InvalidDataException">A video or image is corrupt.</exception>
    /// <exception cref="ModelBusyException">The queue is full or the wait for the model ran past its limit.</exception>
    /// <exception cref="OperationCanceledException">The request was cancelled.</exception>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();

        var prepared = PreparedRequest.Create(messages, options, _options, ModelId);
        string responseId = "vidkv-" + Guid.NewGuid().ToString("N");
        string messageId = "msg-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        var channel = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var requestCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var job = new InferenceJob(Scheduled(prepared, channel.Writer), (model, token) => Generate(model, prepared, channel.Writer, token), requestCts.Token);
        _worker.Enqueue(job);
        Log.Queued(_logger, responseId, prepared.Media.Count, _worker.Waiting);
        try
        {
            await WaitForModelAsync(job, cancellationToken).ConfigureAwait(false);
            Log.Started(_logger, responseId);
            await foreach (var update in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (update.FinishReason is { } reason)
                {
                    Log.Finished(_logger, responseId, reason, update.Usage!.PromptTokens, update.Usage.OutputTokens, update.Usage.Cache.TotalBytes);
                    yield return Final(update, reason, responseId, messageId, created);
                }
                else if (update.Text.Length > 0)
                {
                    Log.Token(_logger, responseId, update.Text);
                    yield return Update([new TextContent(update.Text)], responseId, messageId, created);
                }
            }
        }
        finally
        {
            // Stop generation if the caller left early, and wait for the worker to free this request's cache and frames.
            requestCts.Cancel();
            job.TryAbandon();
            try
            {
                await job.Completion.ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                // abandoned before it ran, or the client was disposed
            }
        }
    }

    /// <summary>
    /// Encodes a video ahead of time for questions an agent knows will come: the model decodes it, runs the vision tower
    /// and prefills the conversation up to the end of the video, and keeps the compressed cache in its video memory. A later
    /// request whose messages start the same way (the same instructions, the video first in the first user message, the
    /// same frame sampling and cache preset from <paramref name="options"/>) then prefills only its own tokens.
    /// </summary>
    /// <param name="video">The video: a <see cref="DataContent"/> or <see cref="UriContent"/> (file:) with a video/* type.</param>
    /// <param name="options">Instructions, cache preset and frame sampling, as the later requests will send them.</param>
    /// <param name="progress">Receives the fraction done (0 to 1) as each stage starts; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the wait or the encoding (nothing is remembered then).</param>
    /// <exception cref="ArgumentException">The content or an option is invalid.</exception>
    /// <exception cref="NotSupportedException">The model has no video memory, it is off, or the cache preset protects tokens
    /// by the question (vidkv-*/1.66: such caches are never reused).</exception>
    /// <exception cref="ModelBusyException">The queue is full.</exception>
    public Task<VidKVRememberedVideo> RememberVideoAsync(AIContent video, ChatOptions? options = null, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(video);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var prepared = PreparedRequest.Create([new ChatMessage(ChatRole.User, [video])], options, _options, ModelId);
        var report = progress is null ? null : new Progress<Backend.Memory.VideoMemoryProgress>(p => progress.Report(p.Fraction));
        return _worker.RunAsync((model, token) =>
        {
            var memory = model as Backend.Memory.IVideoMemoryModel
                ?? throw new NotSupportedException($"The model '{ModelId}' ({model.Info.Family}) has no video memory.");
            var remembered = memory.RememberVideo(prepared.ToChatRequest(), prepared.Cache, report, token);
            return new VidKVRememberedVideo(remembered.PromptTokens, remembered.VideoTokens, remembered.Cache.TotalBytes, remembered.Cache.Fp16Bytes, remembered.AlreadyRemembered);
        }, cancellationToken);
    }

    /// <summary>Forgets a video: every remembered prefix holding it (any sampling, preset or conversation) is dropped.</summary>
    /// <param name="video">The video, as given to <see cref="RememberVideoAsync"/> or a request.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>How many remembered prefixes were dropped.</returns>
    public Task<int> ForgetVideoAsync(AIContent video, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(video);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var prepared = PreparedRequest.Create([new ChatMessage(ChatRole.User, [video])], null, _options, ModelId);
        var source = prepared.Media.Single().Source;
        return _worker.RunAsync((model, token) => model is Backend.Memory.IVideoMemoryModel memory ? memory.ForgetVideo(source, token) : 0, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Returns the <see cref="ChatClientMetadata"/>, the model's <see cref="ModelInfo"/>, the model itself as
    /// <see cref="IVideoLanguageModel"/> or its family type (read it only: run work through this client), a copy of the
    /// <see cref="VidKVChatClientOptions"/>, or this client; <see langword="null"/> for anything else or a key.
    /// </remarks>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        if (serviceType == typeof(ChatClientMetadata))
        {
            return Metadata;
        }

        if (serviceType == typeof(ModelInfo) || typeof(IVideoLanguageModel).IsAssignableFrom(serviceType))
        {
            var model = Volatile.Read(ref _disposed) == 0 ? _worker.Model : null;
            return serviceType == typeof(ModelInfo) ? model?.Info : serviceType.IsInstanceOfType(model) ? model : null;
        }

        if (serviceType == typeof(VidKVChatClientOptions))
        {
            return _options.Clone();
        }

        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>
    /// Fails waiting requests, stops the running one, and (when the client owns it) frees the model's native memory.
    /// Safe to call more than once.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _worker.Dispose();
        }
    }

    /// <summary>Applies the options' video memory settings to a model that has one (on the worker thread).</summary>
    private static IVideoLanguageModel ConfigureMemory(IVideoLanguageModel model, VidKVChatClientOptions options, ILogger logger)
    {
        if (model is Backend.Memory.IVideoMemoryModel memory)
        {
            Backend.Memory.IVideoMemoryBlobStore? shared = options.VideoMemoryFolder is { Length: > 0 } folder
                ? new Backend.Memory.DiskVideoMemoryStore(folder)
                : options.SharedVideoMemory is { } hybrid ? new Backend.Memory.HybridCacheVideoMemoryBlobStore(hybrid) : null;
            memory.ConfigureVideoMemory(new Backend.Memory.VideoMemoryOptions
            {
                Enabled = options.VideoMemory,
                MemoryBudgetBytes = options.VideoMemoryBytes,
                SharedStore = shared is null ? null : new Backend.Memory.SerializedVideoMemoryStore(shared, logger),
                Logger = logger,
            });
        }

        return model;
    }

    private static IVideoLanguageModel LoadModel(VidKVChatClientOptions options)
    {
        var load = options.ToLoadOptions();
        return string.IsNullOrEmpty(options.ModelPath) ? BuiltInModel.Load(load) : VideoLanguageModel.Load(options.ModelPath, load);
    }

    /// <summary>The request for the worker's scheduler: updates go to the stream; its end completes it (on the worker thread).</summary>
    private GenerationWork Scheduled(PreparedRequest prepared, ChannelWriter<GenerationUpdate> writer)
    {
        int tokens = 0;
        return new GenerationWork(prepared, update =>
        {
            tokens += update.TokenId is null ? 0 : 1;
            UpdateSent?.Invoke(prepared.Generation.Seed, update);
            writer.TryWrite(update);
        }, error =>
        {
            if (error is OperationCanceledException && IsDisposed)
            {
                error = new ObjectDisposedException(nameof(VidKVChatClient), "The chat client was disposed while this request ran; its generation was stopped.");
                writer.TryComplete(error);
                GenerationEnded?.Invoke(tokens, true);
                return;
            }

            writer.TryComplete(error);
            GenerationEnded?.Invoke(tokens, error is OperationCanceledException);
        });
    }

    /// <summary>The whole request at once, for a model without a scheduler (a family outside this library).</summary>
    private void Generate(IVideoLanguageModel model, PreparedRequest prepared, ChannelWriter<GenerationUpdate> writer, CancellationToken cancellationToken)
    {
        // The worker thread: the model decodes the media and frees every tensor of the request before Generate's enumeration ends.
        int tokens = 0;
        try
        {
            foreach (var update in model.Generate(prepared.ToChatRequest(), prepared.Generation, prepared.Cache, cancellationToken))
            {
                tokens += update.TokenId is null ? 0 : 1;
                writer.TryWrite(update);
            }

            writer.TryComplete();
            GenerationEnded?.Invoke(tokens, false);
        }
        catch (OperationCanceledException) when (IsDisposed)
        {
            writer.TryComplete(new ObjectDisposedException(nameof(VidKVChatClient), "The chat client was disposed while this request ran; its generation was stopped."));
            GenerationEnded?.Invoke(tokens, true);
        }
        catch (Exception e)
        {
            writer.TryComplete(e);
            GenerationEnded?.Invoke(tokens, e is OperationCanceledException);
        }
    }

    private async Task WaitForModelAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        try
        {
            await job.Started.WaitAsync(_options.QueueTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (job.TryAbandon())
        {
            throw new ModelBusyException(ModelBusyReason.QueueTimeout,
                $"The request waited {_options.QueueTimeout.TotalSeconds:0.###} s for the model (VidKVChatClientOptions.QueueTimeout) behind other requests. Retry later, or raise QueueTimeout.");
        }
        catch (TimeoutException)
        {
            await job.Started.ConfigureAwait(false); // the worker took it just as the wait ended
        }
    }

    private ChatResponseUpdate Update(IList<AIContent> contents, string responseId, string messageId, DateTimeOffset created) => new(ChatRole.Assistant, contents)
    {
        ResponseId = responseId,
        MessageId = messageId,
        CreatedAt = created,
        ModelId = ModelId,
    };

    private ChatResponseUpdate Final(GenerationUpdate update, BackendFinish reason, string responseId, string messageId, DateTimeOffset created)
    {
        var usage = update.Usage!;
        var contents = new List<AIContent>();
        if (update.Text.Length > 0)
        {
            contents.Add(new TextContent(update.Text));
        }

        contents.Add(new UsageContent(new UsageDetails
        {
            InputTokenCount = usage.PromptTokens,
            CachedInputTokenCount = usage.CachedPromptTokens,
            OutputTokenCount = usage.OutputTokens,
            TotalTokenCount = usage.PromptTokens + usage.OutputTokens,
            AdditionalCounts = new AdditionalPropertiesDictionary<long>
            {
                [VidKVUsage.VideoTokensKey] = usage.VideoTokens,
                [VidKVUsage.ImageTokensKey] = usage.ImageTokens,
                [VidKVUsage.KVBytesKey] = usage.Cache.TotalBytes,
                [VidKVUsage.KVFp16BytesKey] = usage.Cache.Fp16Bytes,
                [VidKVUsage.CachedPromptTokensKey] = usage.CachedPromptTokens,
            },
        }));
        var final = Update(contents, responseId, messageId, created);
        final.FinishReason = reason == BackendFinish.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
        return final;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Request {ResponseId} queued with {MediaCount} media item(s); {Waiting} waiting.")]
        public static partial void Queued(ILogger logger, string responseId, int mediaCount, int waiting);

        [LoggerMessage(2, LogLevel.Debug, "Request {ResponseId} has the model.")]
        public static partial void Started(ILogger logger, string responseId);

        [LoggerMessage(3, LogLevel.Debug, "Request {ResponseId} finished ({Reason}): {PromptTokens} prompt tokens, {OutputTokens} output tokens, {KVBytes} KV cache bytes.")]
        public static partial void Finished(ILogger logger, string responseId, BackendFinish reason, int promptTokens, int outputTokens, long kvBytes);

        [LoggerMessage(4, LogLevel.Trace, "Request {ResponseId} text: {Text}")]
        public static partial void Token(ILogger logger, string responseId, string text);
    }
}
