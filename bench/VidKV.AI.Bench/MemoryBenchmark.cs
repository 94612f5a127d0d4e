using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Tests.Memory;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// The video memory: time to first token of a first question about a clip and of a follow-up question about the same clip
/// (its video cache reused), at several frame counts, for the built-in model and a random-weight checkpoint of
/// LLaVA-OneVision-0.5B's geometry (bf16) side by side; the remembered video's bytes for every preset against a 16-bit
/// cache of the same tokens, and per minute of video; disk store write and read time, and the same through
/// <see cref="HybridCache"/> over a real Redis (the reader a second cache with an empty L1, as another process has).
/// </summary>
internal static class MemoryBenchmark
{
    private const double ClipSeconds = 20;

    public static int Run(string commandLine, int[] frames, string[] models, string redis, string? outPath)
    {
        TorchRuntime.EnsureLoaded();
        using var server = redis == "start" ? new RedisServer() : null;
        string? redisConfiguration = redis switch
        {
            "start" => server!.Configuration,
            "none" => null,
            _ when redis.Contains(':', StringComparison.Ordinal) => redis + ",abortConnect=false",
            _ => throw new ArgumentException($"--redis '{redis}': allowed start (a redis-server of its own), HOST:PORT or none."),
        };
        using var redisWriter = redisConfiguration is null ? null : SharedCache(redisConfiguration);
        using var redisReader = redisConfiguration is null ? null : SharedCache(redisConfiguration);
        (ServiceProvider, ServiceProvider)? caches = redisConfiguration is null ? null : (redisWriter!, redisReader!);
        string work = Directory.CreateTempSubdirectory("vidkv-memory-bench-").FullName;
        var report = new StringBuilder();
        void Line(string text)
        {
            Console.WriteLine(text);
            report.AppendLine(text);
        }

        try
        {
            string clip = Path.Combine(work, "clip.mp4");
            MakeClip(clip);
            Line($"Command: `{commandLine}`");
            Line($"Machine: {Machine.Description}; {TorchRuntime.Description}");
            Line($"Clip: testsrc2 640x360, {ClipSeconds} s at 25 fps (H.264, decoded by ffmpeg). Cache: vidkv-1.5/1.58 Compact. Greedy, one new token; time to first token includes decoding, vision tower and prefill (first question) or the lookup, fork and the question's prefill (follow-up).");
            Line(string.Empty);
            Line("| model | frames | prompt tokens | first question TTFT (s) | follow-up TTFT (s) | speed-up | cached tokens |");
            Line("|---|---:|---:|---:|---:|---:|---:|");
            var cache = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
            var loaded = new List<(string Name, LlavaOnevisionVideoModel Model)>();
            try
            {
                foreach (string name in models)
                {
                    loaded.Add((name, LoadModel(name)));
                }

                foreach (int f in frames)
                {
                    foreach (var (name, model) in loaded)
                    {
                        var sampling = new FrameSamplingOptions { FrameCount = f };
                        model.ConfigureVideoMemory(new VideoMemoryOptions());
                        var (first, usage1) = Ttft(model, Ask(clip, sampling, "What happens in this video?"), cache);
                        var (follow, usage2) = Ttft(model, Ask(clip, sampling, "How many objects move?"), cache);
                        Line(string.Create(CultureInfo.InvariantCulture,
                            $"| {name} | {f} | {usage1.PromptTokens} | {first:F2} | {follow:F3} | {first / follow:F0}x | {usage2.CachedPromptTokens} |"));
                    }
                }

                Line(string.Empty);
                Line("Remembered video (snapshot of the prompt up to the video's end) per preset, against a 16-bit cache of the same tokens:");
                Line(string.Empty);
                Line(redisConfiguration is null ? "Redis: not measured (--redis none)." : $"Redis: {(server is null ? redis : $"redis-server on 127.0.0.1:{server.Port}, started by the benchmark")}, through HybridCache (1 MB chunks); the read is by a second HybridCache whose in-process L1 is empty, as in another process.");
                Line(string.Empty);
                Line("| model | frames | preset | profile | tokens | snapshot bytes | 16-bit bytes | ratio | MiB per minute of video | disk write (ms) | disk read + fork (ms) | file bytes | Redis write (ms) | Redis read + fork (ms) |");
                Line("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                int bytesFrames = frames.Contains(32) ? 32 : frames[0];
                foreach (var (name, model) in loaded)
                {
                    foreach (string preset in KVCacheOptions.PresetNames.Where(p => !p.EndsWith("/1.66", StringComparison.Ordinal)))
                    {
                        foreach (var profile in preset == "fp16" ? new[] { CacheProfile.Compact } : new[] { CacheProfile.Reference, CacheProfile.Compact })
                        {
                            var options = KVCacheOptions.FromPreset(preset, profile);
                            Line(Bytes(model, name, clip, bytesFrames, options, Path.Combine(work, "store"), caches));
                        }
                    }
                }
            }
            finally
            {
                loaded.ForEach(m => m.Model.Dispose());
            }

            if (outPath is not null)
            {
                File.WriteAllText(outPath, report.ToString());
            }

            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The test clip: ffmpeg's testsrc2, 640x360, 20 s at 25 fps, H.264.</summary>
    internal static void MakeClip(string path)
        => FfmpegRun($"-f lavfi -i testsrc2=size=640x360:rate=25 -t {ClipSeconds.ToString(CultureInfo.InvariantCulture)} -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{path}\"");

    /// <summary>"builtin" or "0.5b" (the checkpoint of 'load', bf16).</summary>
    internal static LlavaOnevisionVideoModel LoadModel(string name) => name switch
    {
        "builtin" => BuiltInModel.Load(),
        "0.5b" => LlavaOnevisionVideoModel.Load(HalfBillionFolder(), new ModelLoadOptions { DType = ScalarType.BFloat16 }),
        _ => throw new ArgumentException($"--models takes builtin and 0.5b; got '{name}'."),
    };

    /// <summary>
    /// The 0.5B-geometry checkpoint of <c>vidkv-bench load</c>, with the built-in model's tokenizer (its special tokens moved
    /// to Qwen2's ids, which the config names) and a 384-pixel preprocessor: random weights, real shapes and token counts.
    /// </summary>
    private static string HalfBillionFolder()
    {
        string dir = LoadBenchmark.EnsureCheckpoint();
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(BuiltInModel.Directory, "tokenizer.json")))!;
        var ids = new Dictionary<string, int> { ["<|endoftext|>"] = 151643, ["<|im_start|>"] = 151644, ["<|im_end|>"] = 151645, ["<image>"] = 151646, ["<video>"] = 151647 };
        foreach (var token in tokenizer["added_tokens"]!.AsArray())
        {
            token!["id"] = ids[token["content"]!.GetValue<string>()];
        }

        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        File.Copy(Path.Combine(BuiltInModel.Directory, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"), overwrite: true);
        var preprocessor = JsonNode.Parse(File.ReadAllText(Path.Combine(BuiltInModel.Directory, "preprocessor_config.json")))!;
        preprocessor["size"] = new JsonObject { ["height"] = 384, ["width"] = 384 };
        preprocessor["image_grid_pinpoints"] = new JsonArray(new JsonArray(384, 384));
        File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), preprocessor.ToJsonString());
        return dir;
    }

    internal static ChatRequest Ask(string clip, FrameSamplingOptions sampling, string question)
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(question) }) })
        {
            Videos = new[] { MediaSource.FromFile(clip) },
            Sampling = sampling,
        };

    internal static (double Seconds, GenerationUsage Usage) Ttft(IVideoLanguageModel model, ChatRequest request, KVCacheOptions cache)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var update = model.Generate(request, new GenerationOptions { MaxNewTokens = 1, StopAtEndOfTurn = false }, cache).Single();
        return (clock.Elapsed.TotalSeconds, update.Usage!);
    }

    private static string Bytes(LlavaOnevisionVideoModel model, string name, string clip, int frames, KVCacheOptions options, string folder, (ServiceProvider Writer, ServiceProvider Reader)? redis)
    {
        options = model.CacheOptionsFor(options); // what the model's requests run with (scaled ternary values where its config says so)
        var store = new SerializedVideoMemoryStore(new DiskVideoMemoryStore(folder));
        var shared = redis is null ? null : new SerializedVideoMemoryStore(new HybridCacheVideoMemoryBlobStore(redis.Value.Writer.GetRequiredService<HybridCache>()));
        var sharedReader = redis is null ? null : new SerializedVideoMemoryStore(new HybridCacheVideoMemoryBlobStore(redis.Value.Reader.GetRequiredService<HybridCache>()));
        model.ConfigureVideoMemory(new VideoMemoryOptions());
        var remembered = model.RememberVideo(MediaSource.FromFile(clip), new FrameSamplingOptions { FrameCount = frames }, options);
        var key = remembered.Key;

        // Disk: write the stored snapshot (serialize + atomic file write), then read it back and fork it.
        double writeMs, readMs, redisWriteMs = double.NaN, redisReadMs = double.NaN;
        using (var hit = model.VideoMemory.InMemoryStore!.TryRestoreAsync(key, options).AsTask().GetAwaiter().GetResult()!)
        {
            var caches = hit.TakeCaches();
            try
            {
                var clock = Stopwatch.StartNew();
                store.SaveAsync(key, hit.Prefix, KVCacheSnapshot.Create(caches)).AsTask().GetAwaiter().GetResult();
                writeMs = clock.Elapsed.TotalMilliseconds;
                if (shared is not null)
                {
                    clock.Restart();
                    shared.SaveAsync(key, hit.Prefix, KVCacheSnapshot.Create(caches)).AsTask().GetAwaiter().GetResult();
                    redisWriteMs = clock.Elapsed.TotalMilliseconds;
                }
            }
            finally
            {
                Array.ForEach(caches, c => c.Dispose());
            }
        }

        {
            var clock = Stopwatch.StartNew();
            using var read = store.TryRestoreAsync(key, options).AsTask().GetAwaiter().GetResult() ?? throw new InvalidOperationException("The disk store lost the entry it just wrote.");
            readMs = clock.Elapsed.TotalMilliseconds;
        }

        if (sharedReader is not null)
        {
            var clock = Stopwatch.StartNew();
            using var read = sharedReader.TryRestoreAsync(key, options).AsTask().GetAwaiter().GetResult() ?? throw new InvalidOperationException("Redis lost the entry just written (is its maxmemory too small?).");
            redisReadMs = clock.Elapsed.TotalMilliseconds;
        }

        long fileBytes = new FileInfo(((DiskVideoMemoryStore)store.Blobs).PathOf(key.Value)).Length;
        var m = remembered.Cache;
        double perMinute = m.TotalBytes / (ClipSeconds / 60.0) / (1 << 20);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {frames} | {options.Preset} | {options.Profile} | {remembered.PromptTokens} | {m.TotalBytes:N0} | {m.Fp16Bytes:N0} | {100.0 * m.TotalBytes / m.Fp16Bytes:F1} % | {perMinute:F2} | {writeMs:F1} | {readMs:F1} | {fileBytes:N0} | {(double.IsNaN(redisWriteMs) ? "-" : redisWriteMs.ToString("F1", CultureInfo.InvariantCulture))} | {(double.IsNaN(redisReadMs) ? "-" : redisReadMs.ToString("F1", CultureInfo.InvariantCulture))} |");
    }

    /// <summary>A HybridCache over the Redis at <paramref name="configuration"/>, with an in-process L1 of its own.</summary>
    private static ServiceProvider SharedCache(string configuration)
    {
        var services = new ServiceCollection();
        services.AddStackExchangeRedisCache(o => { o.Configuration = configuration; o.InstanceName = "vidkv-bench:"; });
        services.AddHybridCache(o => o.MaximumPayloadBytes = 1 << 20);
        return services.BuildServiceProvider();
    }

    private static void FfmpegRun(string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo("ffmpeg", "-y -loglevel error " + arguments) { RedirectStandardError = true })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg failed ({process.ExitCode}): {error}");
        }
    }
}
