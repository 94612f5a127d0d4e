using System.Globalization;
using VidKV.AI.Backend;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Connector;

/// <summary>
/// Settings of a <see cref="VidKVChatClient"/>: which checkpoint to load, the default KV cache preset, the default frame
/// sampling, and the request queue. The defaults are the paper's settings (vidkv-1.5/1.58) on the built-in model.
/// </summary>
/// <remarks>
/// <para>Bind it from configuration (section <c>VidKV</c> by convention) and call <see cref="Validate"/> at start-up;
/// <c>services.AddVidKVChatClient(...)</c> does both.</para>
/// <example>
/// <code>
/// "VidKV": { "ModelPath": "/models/llava-onevision-qwen2-0.5b-ov-hf", "CachePreset": "vidkv-1.5/1.58", "FrameCount": 16, "MaxQueueLength": 8 }
/// </code>
/// </example>
/// </remarks>
public sealed class VidKVChatClientOptions
{
    /// <summary>The checkpoint folder; <see langword="null"/> or empty for the built-in model (<see cref="BuiltInModel"/>).</summary>
    public string? ModelPath { get; set; }

    /// <summary>The model id reported to callers; <see langword="null"/> for the folder's name (or <c>vidkv-tiny</c>).</summary>
    public string? ModelId { get; set; }

    /// <summary>The device the model runs on: <c>cpu</c> (default) or <c>cuda</c>, <c>cuda:1</c>, ...</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>Weights' type: <c>float32</c> (default), <c>bfloat16</c> or <c>float16</c>.</summary>
    public string DType { get; set; } = "float32";

    /// <summary>The KV cache preset of requests that name none (<see cref="KVCacheOptions.PresetNames"/>). Default <c>vidkv-1.5/1.58</c>.</summary>
    public string CachePreset { get; set; } = "vidkv-1.5/1.58";

    /// <summary>The cache profile: <see cref="CacheProfile.Compact"/> (default) stores less than the released code's layout.</summary>
    public CacheProfile CacheProfile { get; set; } = CacheProfile.Compact;

    /// <summary>Frames sampled uniformly from a video when the request names no count or rate (1 to 1024). Default 16.</summary>
    public int FrameCount { get; set; } = 16;

    /// <summary>Most frames a request may ask for, by count or by rate (1 to 1024). Default 256.</summary>
    public int MaxFrames { get; set; } = 256;

    /// <summary>Most tokens generated when <c>ChatOptions.MaxOutputTokens</c> is not set (1 to 1,000,000). Default 256.</summary>
    public int MaxOutputTokens { get; set; } = 256;

    /// <summary>
    /// Requests the model serves at once (1 to 4,096; default 8): they advance together, one token each per step, each over
    /// its own compressed cache; more wait in the queue. 1 serves one request at a time.
    /// </summary>
    public int MaxConcurrentSequences { get; set; } = 8;

    /// <summary>
    /// Cache bytes the requests served at once may need together (at least 1 MiB; default 4 GiB): a request is admitted
    /// while the bytes its cache will reach (prompt with every frame's tokens, plus its output tokens, at its preset, as
    /// measured on a probe cache) fit beside those of the running ones; otherwise it waits in the queue. A request whose
    /// cache alone needs more fails with an <see cref="ArgumentException"/>.
    /// </summary>
    public long MaxCacheBytes { get; set; } = 4L << 30;

    /// <summary>
    /// Largest part of a joining request's prompt prefilled between two steps of the running streams (0 to 1,000,000;
    /// default 0: the whole prompt at once). Parts apply to prompts not read from the video memory, on LLaVA-OneVision,
    /// with presets that protect no tokens; a later part attends over the compressed cache of the earlier ones, so a
    /// prompt longer than one part can get another reply than with 0 (never one that depends on other requests).
    /// </summary>
    public int PrefillChunkTokens { get; set; }

    /// <summary>Requests that may wait for the model while others run (0 to 10,000); one more fails with <see cref="ModelBusyException"/>. Default 32.</summary>
    public int MaxQueueLength { get; set; } = 32;

    /// <summary>How long a request may wait for the model before it fails with <see cref="ModelBusyException"/>. Default 2 minutes.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Largest media item a request may carry, in bytes (default 512 MiB).</summary>
    public long MaxMediaBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>
    /// Whether the model remembers the videos it reads (default true): the compressed cache of a conversation up to its last
    /// video (and of each earlier turn) is kept, and a later request starting the same way prefills only the rest.
    /// </summary>
    public bool VideoMemory { get; set; } = true;

    /// <summary>Bytes the in-process video memory may hold (default 1 GiB; least recently used videos are dropped first).</summary>
    public long VideoMemoryBytes { get; set; } = 1L << 30;

    /// <summary>
    /// A folder where remembered videos are also written (one checksummed file each, written atomically, readable by other
    /// processes); <see langword="null"/> (default) for none.
    /// </summary>
    public string? VideoMemoryFolder { get; set; }

    /// <summary>
    /// A cache shared between processes and machines (HybridCache over Redis or any <c>IDistributedCache</c>) where remembered
    /// videos are also stored, used when <see cref="VideoMemoryFolder"/> is not set; <see langword="null"/> (default) for
    /// none. Not read from configuration.
    /// </summary>
    public Microsoft.Extensions.Caching.Hybrid.HybridCache? SharedVideoMemory { get; set; }

    /// <summary>
    /// Whether a client registered with <c>AddVidKVChatClient</c> shares its video memory through the application's
    /// <see cref="Microsoft.Extensions.Caching.Hybrid.HybridCache"/> (default true): when the container has one
    /// (<c>AddHybridCache</c>) over a distributed cache (for example <c>AddStackExchangeRedisCache</c>), and neither
    /// <see cref="SharedVideoMemory"/> nor <see cref="VideoMemoryFolder"/> is set, remembered videos are stored there, so
    /// every process using the same Redis answers from a video any of them encoded. False keeps the video memory in this
    /// process. Ignored when the client is created without dependency injection, and when <see cref="VideoMemory"/> is false.
    /// </summary>
    public bool UseHybridCacheFromServices { get; set; } = true;

    /// <summary>Timeouts and retries before the first token (the Polly pipeline registered by <c>AddVidKVChatClient</c>).</summary>
    public VidKVResilienceOptions Resilience { get; set; } = new();

    /// <summary>The model id in use: <see cref="ModelId"/>, else the checkpoint folder's name, else <see cref="BuiltInModel.Name"/>.</summary>
    public string EffectiveModelId =>
        ModelId is { Length: > 0 } id ? id
        : string.IsNullOrEmpty(ModelPath) ? BuiltInModel.Name
        : Path.GetFileName(Path.TrimEndingDirectorySeparator(ModelPath)) is { Length: > 0 } name ? name : ModelPath;

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Device) || !(Device.Equals("cpu", StringComparison.OrdinalIgnoreCase) || Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase)))
        {
            throw new ArgumentException($"VidKV:Device is '{Device}'; allowed: cpu, cuda or cuda:N.");
        }

        _ = ToLoadOptions();
        if (VideoMemoryBytes < 0)
        {
            throw new ArgumentException($"VidKV:VideoMemoryBytes is {VideoMemoryBytes}; allowed: 0 or more bytes.");
        }

        if (string.IsNullOrWhiteSpace(CachePreset) || !KVCacheOptions.PresetNames.Contains(CachePreset.Trim().ToLowerInvariant()))
        {
            throw new ArgumentException($"VidKV:CachePreset is '{CachePreset}'; allowed: {string.Join(", ", KVCacheOptions.PresetNames)}.");
        }

        if (!Enum.IsDefined(CacheProfile))
        {
            throw new ArgumentException($"VidKV:CacheProfile is '{CacheProfile}'; allowed: Reference, Compact.");
        }

        if (FrameCount is < 1 or > 1024)
        {
            throw new ArgumentException($"VidKV:FrameCount is {FrameCount}; allowed: 1 to 1024.");
        }

        if (MaxFrames is < 1 or > 1024)
        {
            throw new ArgumentException($"VidKV:MaxFrames is {MaxFrames}; allowed: 1 to 1024.");
        }

        if (FrameCount > MaxFrames)
        {
            throw new ArgumentException($"VidKV:FrameCount ({FrameCount}) is more than VidKV:MaxFrames ({MaxFrames}).");
        }

        if (MaxOutputTokens is < 1 or > 1_000_000)
        {
            throw new ArgumentException($"VidKV:MaxOutputTokens is {MaxOutputTokens}; allowed: 1 to 1,000,000.");
        }

        if (MaxQueueLength is < 0 or > 10_000)
        {
            throw new ArgumentException($"VidKV:MaxQueueLength is {MaxQueueLength}; allowed: 0 to 10,000.");
        }

        if (MaxConcurrentSequences is < 1 or > 4096)
        {
            throw new ArgumentException($"VidKV:MaxConcurrentSequences is {MaxConcurrentSequences}; allowed: 1 to 4,096.");
        }

        if (PrefillChunkTokens is < 0 or > 1_000_000)
        {
            throw new ArgumentException($"VidKV:PrefillChunkTokens is {PrefillChunkTokens}; allowed: 0 (the whole prompt at once) to 1,000,000.");
        }

        if (MaxCacheBytes < 1L << 20)
        {
            throw new ArgumentException($"VidKV:MaxCacheBytes is {MaxCacheBytes}; allowed: at least 1 MiB (1048576 bytes).");
        }

        if (QueueTimeout <= TimeSpan.Zero && QueueTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException($"VidKV:QueueTimeout is {QueueTimeout.ToString("c", CultureInfo.InvariantCulture)}; allowed: a positive time span, or infinite (-00:00:00.001).");
        }

        if (MaxMediaBytes < 1)
        {
            throw new ArgumentException($"VidKV:MaxMediaBytes is {MaxMediaBytes}; allowed: a positive byte count.");
        }

        (Resilience ?? throw new ArgumentException("VidKV:Resilience is null; leave it out for the defaults.")).Validate();
        if (!string.IsNullOrEmpty(ModelPath) && !Directory.Exists(ModelPath))
        {
            throw new ArgumentException($"VidKV:ModelPath '{ModelPath}' is not a folder; give a checkpoint folder (config.json, model.safetensors, tokenizer.json) or leave it empty for the built-in model.");
        }
    }

    /// <summary>A copy, so that later changes to this instance do not reach a running client.</summary>
    internal VidKVChatClientOptions Clone()
    {
        var copy = (VidKVChatClientOptions)MemberwiseClone();
        copy.Resilience = new VidKVResilienceOptions
        {
            Enabled = Resilience.Enabled,
            FirstTokenTimeout = Resilience.FirstTokenTimeout,
            MaxRetryAttempts = Resilience.MaxRetryAttempts,
            RetryDelay = Resilience.RetryDelay,
        };
        return copy;
    }

    /// <summary>The worker's scheduler settings.</summary>
    internal Backend.Batching.GenerationSchedulerOptions ToSchedulerOptions() => new()
    {
        MaxConcurrentSequences = MaxConcurrentSequences,
        MaxCacheBytes = MaxCacheBytes,
        PrefillChunkTokens = PrefillChunkTokens,
    };

    /// <summary>Device and type as the backend takes them.</summary>
    /// <exception cref="ArgumentException">Device or DType is not allowed; the message names the setting.</exception>
    internal ModelLoadOptions ToLoadOptions()
    {
        try
        {
            return ModelLoadOptions.Parse(Device, DType);
        }
        catch (ArgumentException e)
        {
            string setting = e.ParamName == "device" ? $"VidKV:Device is '{Device}'" : $"VidKV:DType is '{DType}'";
            throw new ArgumentException($"{setting}; allowed: {(e.ParamName == "device" ? "cpu, cuda or cuda:N" : "float32, bfloat16, float16")}.", e);
        }
    }
}
