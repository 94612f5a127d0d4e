// Trains (and evaluates) the built-in VidKV-Tiny model on the synthetic video QA task.
//   dotnet run -c Release --project tools/Train -- train --out models/vidkv-tiny [--steps N] [--batch B] [--lr X] [--seed S] [--device cpu|cuda]
using System.Globalization;
using TorchSharp;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Native;

try
{
    if (args.Length > 0 && args[0] == "eval")
    {
        return Evaluation.Run(args);
    }

    if (args.Length == 0 || args[0] != "train")
    {
        Console.Error.WriteLine("Usage: vidkv-train train --out DIR [--steps N] [--batch B] [--lr X] [--seed S] [--max-video-frames N] [--eval-every N] [--validation N] [--visual-weight W] [--position cell|frame] [--motion-weight W] [--motion-layer L] [--cache-share F] [--cache-preset P] [--cache-scaled-ternary] [--cache-queries all|answers|after-video|answers-or-after-video] [--init DIR] [--questions N] [--question-first F] [--families Attribute,MotionDirection:2,...] [--warmup N] [--minutes M] [--profile] [--device cpu|cuda]");
        Console.Error.WriteLine("       vidkv-train eval --model DIR [--samples N] [--seed S] [--max-frames N] [--needle-samples N] [--needle-frames 32,64,128,256] [--presets a,b] [--scaled-ternary | --scaled-only] [--reuse] [--profiles Reference,Compact] [--axes PerChannel,PerToken] [--gamma G] [--show N] [--device cpu|cuda]");
        return 2;
    }

    var options = new TrainingOptions();
    string? output = null;
    for (int i = 1; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
        int Int() => int.Parse(Value(), CultureInfo.InvariantCulture);
        if (args[i] == "--out")
        {
            output = Value();
            continue;
        }

        options = args[i] switch
        {
            "--steps" => options with { Steps = Int() },
            "--batch" => options with { BatchSize = Int() },
            "--lr" => options with { LearningRate = double.Parse(Value(), CultureInfo.InvariantCulture) },
            "--seed" => options with { Seed = Int() },
            "--max-video-frames" => options with { MaxVideoFrames = Int() },
            "--eval-every" => options with { EvaluateEvery = Int() },
            "--validation" => options with { ValidationSamples = Int() },
            "--device" => options with { Device = torch.device(Value()) },
            "--visual-weight" => options with { VisualLossWeight = double.Parse(Value(), CultureInfo.InvariantCulture) },
            "--motion-weight" => options with { MotionLossWeight = double.Parse(Value(), CultureInfo.InvariantCulture) },
            "--cache-share" => options with { QuantizedCacheShare = double.Parse(Value(), CultureInfo.InvariantCulture) },
            "--cache-preset" => options with { QuantizedCachePreset = Value() },
            "--cache-scaled-ternary" => options with { QuantizedCacheScaledTernary = true },
            "--cache-queries" => options with { QuantizedCacheQueries = Value() switch { "all" => CacheQueries.All, "answers" => CacheQueries.Answers, "after-video" => CacheQueries.AfterVideo, "answers-or-after-video" => CacheQueries.AnswersOrAfterVideo, var other => throw new ArgumentException($"--cache-queries '{other}': allowed all, answers, after-video, answers-or-after-video.") } },
            "--motion-layer" => options with { MotionLayer = int.Parse(Value(), CultureInfo.InvariantCulture) },
            "--position" => options with { Position = Value() switch
            {
                "cell" => VidKV.AI.Training.PositionTarget.InCell,
                "frame" => VidKV.AI.Training.PositionTarget.InFrame,
                var other => throw new ArgumentException($"--position is '{other}'; allowed: cell, frame."),
            } },
            "--families" => options with { Families = VidKV.AI.Training.Synthetic.FamilyMix.Parse(Value()) },
            "--question-first" => options with { QuestionFirst = double.Parse(Value(), CultureInfo.InvariantCulture) },
            "--questions" => options with { QuestionsPerVideo = Int() },
            "--init" => options with { InitialModel = Value() },
            "--warmup" => options with { WarmupSteps = Int() },
            "--profile" => options with { Profile = true },
            "--minutes" => options with { MaxDuration = TimeSpan.FromMinutes(double.Parse(Value(), CultureInfo.InvariantCulture)) },
            var other => throw new ArgumentException($"Unknown argument '{other}'."),
        };
    }

    if (output is null)
    {
        throw new ArgumentException("--out DIR is required.");
    }

    TorchRuntime.EnsureLoaded();
    if (options.Device?.type == DeviceType.CUDA && !TorchRuntime.TryInitializeCuda())
    {
        throw new ArgumentException($"--device cuda: no CUDA device through {TorchRuntime.Description}; set {TorchRuntime.LibTorchVariable}.");
    }

    torch.random.manual_seed(options.Seed);
    new SyntheticTrainer(options, Console.WriteLine).Train(output);
    return 0;
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}
