// Ask a local LLaVA-OneVision checkpoint a question about a video, frames or an image, with a compressed KV cache.
//   dotnet run -c Release --project samples/Ask -- --model DIR --video clip.mp4 --question "What happens?"
//   dotnet run -c Release --project samples/Ask -- --model DIR --frames f1.png f2.png ... --question "What happens?"
using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

const string Usage = """
    Usage: vidkv-ask --model DIR (--video FILE | --frames FILE... | --image FILE) --question TEXT [options]

      --model DIR            a Hugging Face LLaVA-OneVision checkpoint folder (config.json, *.safetensors, tokenizer.json, preprocessor config)
      --video FILE           a video (MP4, WebM, MKV, MOV, AVI, ... through ffmpeg), an animated GIF/WebP, or a folder of frame images
      --frames FILE...       frame images (PNG, JPEG, WebP) of one video, in order
      --image FILE           one image instead of a video
    Sampling a --video (uniform, as LLaVA-OneVision is evaluated, unless --fps is given):
      --frames-count N       frames spread uniformly over the video [32]
      --fps F                frames per second instead, at most --max-frames (spread uniformly when there would be more)
      --max-frames N         most frames with --fps [64]
      --start T, --end T     only this part of the video; seconds (90.5) or [hh:]mm:ss(.fff)
      --question TEXT        the question
      --preset NAME          KV cache preset [vidkv-1.5/1.58]; one of: fp16, kivi-2, vidkv-2, vidkv-1.5/2, vidkv-1.5/1.58, vidkv-1.25/1.58, vidkv-1.5/1.66, vidkv-1.75/1.66
      --profile P            reference or compact [compact]
      --max-new-tokens N     [128]
      --temperature T        0 is greedy [0]
      --top-p P, --top-k K, --seed N
      --dtype D              float32 or bfloat16 [float32]
      --device D             cpu or cuda [cpu]; cuda needs VIDKV_LIBTORCH (PyTorch's torch/lib, or 'python')
    """;

try
{
    var a = Args.Parse(args);
    if (a.Help)
    {
        Console.WriteLine(Usage);
        return 0;
    }

    TorchRuntime.EnsureLoaded();
    if (a.Device == "cuda" && !TorchRuntime.TryInitializeCuda())
    {
        throw new ArgumentException($"--device cuda: no CUDA device through {TorchRuntime.Description}; set {TorchRuntime.LibTorchVariable}.");
    }

    var load = Stopwatch.StartNew();
    using var vlm = VideoLanguageModel.Load(a.Model, new ModelLoadOptions { DType = a.DType, Device = torch.device(a.Device) });
    Console.Error.WriteLine($"family {vlm.Info.Family}, context {vlm.Info.ContextLength} tokens");
    Console.Error.WriteLine($"loaded {a.Model} in {load.Elapsed.TotalSeconds:F1} s ({a.DType} on {a.Device})");

    using var scope = NewDisposeScope();
    ChatPart media = a.Image is null ? new VideoPart() : new ImagePart();
    var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new[] { media, new TextPart(a.Question) }) });
    if (a.Video is not null)
    {
        using (var source = FrameSources.Open(a.Video))
        {
            var info = source.Info;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{a.Video}: {info.Format}/{info.Codec} {info.Width}x{info.Height}, {info.Duration.TotalSeconds:F2} s, {info.FrameCount} frames at {info.FrameRate:F3} fps"));
        }

        // The model decodes the video itself, preprocessing each frame as it is decoded (the full-size frames are never
        // held together), and frees the frames after the prefill.
        request = request with { Videos = new[] { MediaSource.FromFile(a.Video) }, Sampling = a.Sampling };
    }
    else
    {
        request = a.Image is null
            ? request with { Videos = new[] { MediaSource.FromPixels(ImageFiles.LoadFrames(a.Frames)) } }
            : request with { Images = new[] { MediaSource.FromFile(a.Image) } };
    }

    var cacheOptions = KVCacheOptions.FromPreset(a.Preset, a.Profile);
    var options = new GenerationOptions { MaxNewTokens = a.MaxNewTokens, Temperature = a.Temperature, TopP = a.TopP, TopK = a.TopK, Seed = a.Seed };
    using var cts = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };

    var clock = Stopwatch.StartNew();
    double firstToken = 0;
    GenerationUpdate? last = null;
    foreach (var update in vlm.Generate(request, options, cacheOptions, cts.Token))
    {
        firstToken = firstToken == 0 ? clock.Elapsed.TotalSeconds : firstToken;
        Console.Write(update.Text);
        last = update;
    }

    Console.WriteLine();
    var u = last!.Usage!;
    var m = u.Cache;
    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{u.OutputTokens} tokens in {clock.Elapsed.TotalSeconds:F2} s (first after {firstToken:F2} s), finish: {last.FinishReason}; prompt {u.PromptTokens} tokens ({u.VideoTokens} video, {u.ImageTokens} image)"));
    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"KV cache ({a.Preset}, {a.Profile}): {m.TotalBytes / 1024.0:F1} KiB held, {m.BitsPerElement:F2} bits/element; an FP16 cache: {m.Fp16Bytes / 1024.0:F1} KiB ({(double)m.TotalBytes / m.Fp16Bytes:P1})"));
    return 0;
}
catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException or TorchRuntimeException or FfmpegNotFoundException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("cancelled");
    return 130;
}

/// <summary>Command-line arguments.</summary>
internal sealed record Args
{
    public bool Help { get; init; }

    public string Model { get; init; } = string.Empty;

    public List<string> Frames { get; init; } = new();

    public string? Video { get; init; }

    public FrameSamplingOptions Sampling { get; init; } = new();

    public string? Image { get; init; }

    public string Question { get; init; } = string.Empty;

    public string Preset { get; init; } = "vidkv-1.5/1.58";

    public CacheProfile Profile { get; init; } = CacheProfile.Compact;

    public int MaxNewTokens { get; init; } = 128;

    public double Temperature { get; init; }

    public double TopP { get; init; } = 1.0;

    public int TopK { get; init; }

    public long? Seed { get; init; }

    public ScalarType DType { get; init; } = ScalarType.Float32;

    public string Device { get; init; } = "cpu";

    public static Args Parse(string[] args)
    {
        var a = new Args();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            double Number() => double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : throw new ArgumentException($"{args[i - 1]} needs a number; got '{args[i]}'.");
            a = args[i] switch
            {
                "-h" or "--help" => a with { Help = true },
                "--model" => a with { Model = Value() },
                "--frames" => a with { Frames = TakeFiles(args, ref i) },
                "--image" => a with { Image = Value() },
                "--video" => a with { Video = Value() },
                "--frames-count" => a with { Sampling = a.Sampling with { FrameCount = (int)Number() } },
                "--fps" => a with { Sampling = a.Sampling with { FramesPerSecond = Number() } },
                "--max-frames" => a with { Sampling = a.Sampling with { MaxFrames = (int)Number() } },
                "--start" => a with { Sampling = a.Sampling with { Start = Time(Value(), "--start") } },
                "--end" => a with { Sampling = a.Sampling with { End = Time(Value(), "--end") } },
                "--question" => a with { Question = Value() },
                "--preset" => a with { Preset = Value() },
                "--profile" => a with { Profile = Value().ToLowerInvariant() switch { "reference" => CacheProfile.Reference, "compact" => CacheProfile.Compact, var p => throw new ArgumentException($"--profile is '{p}'; allowed: reference, compact.") } },
                "--max-new-tokens" => a with { MaxNewTokens = (int)Number() },
                "--temperature" => a with { Temperature = Number() },
                "--top-p" => a with { TopP = Number() },
                "--top-k" => a with { TopK = (int)Number() },
                "--seed" => a with { Seed = (long)Number() },
                "--dtype" => a with { DType = Value() switch { "float32" => ScalarType.Float32, "bfloat16" => ScalarType.BFloat16, "float16" => ScalarType.Float16, var d => throw new ArgumentException($"--dtype is '{d}'; allowed: float32, bfloat16, float16.") } },
                "--device" => a with { Device = Value() is "cpu" or "cuda" ? args[i] : throw new ArgumentException($"--device is '{args[i]}'; allowed: cpu, cuda.") },
                var other => throw new ArgumentException($"Unknown argument '{other}'. Run with --help."),
            };
        }

        if (a.Help)
        {
            return a;
        }

        int inputs = (a.Frames.Count > 0 ? 1 : 0) + (a.Image is null ? 0 : 1) + (a.Video is null ? 0 : 1);
        if (a.Model.Length == 0 || a.Question.Length == 0 || inputs != 1)
        {
            throw new ArgumentException("--model, --question and one of --video, --frames or --image are required. Run with --help.");
        }

        a.Sampling.Validate();
        return a;
    }

    /// <summary>Seconds ("90.5") or [hh:]mm:ss(.fff) ("1:30", "01:02:03.5").</summary>
    private static TimeSpan Time(string text, string option)
    {
        double seconds = 0;
        foreach (string part in text.Split(':'))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || value < 0)
            {
                throw new ArgumentException($"{option} is '{text}'; allowed: seconds (90.5) or [hh:]mm:ss(.fff) (1:30, 01:02:03.5).");
            }

            seconds = (seconds * 60) + value;
        }

        return TimeSpan.FromSeconds(seconds);
    }

    private static List<string> TakeFiles(string[] args, ref int i)
    {
        var files = new List<string>();
        while (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
        {
            files.Add(args[++i]);
        }

        return files.Count > 0 ? files : throw new ArgumentException("--frames needs at least one image file.");
    }
}
