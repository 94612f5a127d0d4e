using System.Globalization;
using System.Text;
using TorchSharp;
using VidKV.AI.Backend;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using VidKV.AI.Quantization.Quantizers;

/// <summary>`vidkv-train eval`: the accuracy table of every cache preset on held-out synthetic questions.</summary>
internal static class Evaluation
{
    private static readonly string[] AllPresets = { "fp16", "kivi-2", "vidkv-2", "vidkv-1.5/2", "vidkv-1.5/1.58", "vidkv-1.25/1.58", "vidkv-1.5/1.66" };

    public static int Run(string[] args)
    {
        string? modelDir = null;
        int samples = 200, seed = 0, maxFrames = 32, needleSamples = 40, show = 0;
        bool scaledTernary = false, scaledOnly = false, reuse = false;
        CacheProfile[] profiles = [CacheProfile.Reference, CacheProfile.Compact];
        QuantizationAxis[] axes = [QuantizationAxis.PerChannel, QuantizationAxis.PerToken];
        double? gamma = null;
        string device = "cpu";
        string[] presets = AllPresets;
        int[] needleFrames = [32, 64, 128, 256];
        for (int i = 1; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            int Int() => int.Parse(Value(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--model": modelDir = Value(); break;
                case "--samples": samples = Int(); break;
                case "--seed": seed = Int(); break;
                case "--max-frames": maxFrames = Int(); break;
                case "--needle-samples": needleSamples = Int(); break;
                case "--device": device = Value(); break;
                case "--show": show = Int(); break;
                case "--presets": presets = Value().Split(','); break;
                case "--scaled-ternary": scaledTernary = true; break;
                case "--scaled-only": scaledTernary = scaledOnly = true; break;
                case "--reuse": reuse = true; break;
                case "--profiles": profiles = [.. Value().Split(',').Select(p => Enum.Parse<CacheProfile>(p, ignoreCase: true))]; break;
                case "--axes": axes = [.. Value().Split(',').Select(a => Enum.Parse<QuantizationAxis>(a, ignoreCase: true))]; break;
                case "--gamma": gamma = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--needle-frames": needleFrames = [.. Value().Split(',').Select(f => int.Parse(f, CultureInfo.InvariantCulture))]; break;
                default: throw new ArgumentException($"Unknown argument '{args[i]}'.");
            }
        }

        if (modelDir is null)
        {
            throw new ArgumentException("--model DIR is required.");
        }

        foreach (int frames in needleFrames)
        {
            try
            {
                NeedleOptions(frames).Validate(); // a bad length fails here, not after the main table's minutes
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"--needle-frames {frames}: {e.Message} (16 to 1024 frames are allowed)", e);
            }
        }

        TorchRuntime.EnsureLoaded();
        // Any family VideoLanguageModel loads (LLaVA-OneVision, Qwen2.5-VL, Qwen2-VL, ...): config.json's model_type picks it.
        using var model = VideoLanguageModel.Load(modelDir, new ModelLoadOptions { Device = torch.device(device) });
        var sceneOptions = new SceneOptions { MinFrames = 8, MaxFrames = 256 };
        var test = SyntheticDataset.Generate(seed, DatasetSplit.Test, samples, sceneOptions);
        var families = Enum.GetValues<QuestionFamily>();
        var table = new StringBuilder();
        table.AppendLine($"Command: `dotnet run -c Release --project tools/Train -- {string.Join(' ', args)}`");
        table.AppendLine($"Model: {modelDir} ({model.Info.Family}); {samples} held-out questions (test split, seed base {seed}), videos sampled to at most {maxFrames} frames except needle videos (every frame); greedy, exact match.");
        if (model.Info.ScaledTernaryValues)
        {
            table.AppendLine();
            table.AppendLine("This model's config says it was trained reading scaled ternary values (vidkv_scaled_ternary_values), so its Compact");
            table.AppendLine("rows of ternary presets (1.58, 1.66) run with them, as every request to it does; the Reference rows keep bare trits.");
        }

        table.AppendLine();
        if (reuse)
        {
            table.AppendLine("With --reuse, each preset also answers every question from a reused video cache: the video is remembered first");
            table.AppendLine("(prefilled to its end and stored), then the question is prefilled over the stored compressed cache (\"reused\" columns).");
            table.AppendLine("Presets with semantic token protection are never reused (their scores depend on the question).");
            table.AppendLine();
        }

        string reuseHeader = reuse ? " reused overall | reused - fresh |" : string.Empty;
        table.AppendLine($"| profile | preset | values | {string.Join(" | ", families)} | overall | KV bits/elem |{reuseHeader}");
        table.AppendLine($"|---|---|---|{string.Concat(families.Select(_ => "---:|"))}---:|---:|{(reuse ? "---:|---:|" : string.Empty)}");
        // One table row: the settings, accuracy per family and overall, and the KV bits per element (and, with --reuse, the
        // accuracy from a reused video cache).
        void Row(string profile, string preset, string values, EvaluationResult result, string bits, EvaluationResult? reused = null) => table.AppendLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {profile} | {preset} | {values} | {string.Join(" | ", families.Select(f => $"{result.FamilyAccuracy(f):P1}"))} | {result.Accuracy:P1} | {bits} |{(!reuse ? string.Empty : reused is null ? " not reused | - |" : $" {reused.Accuracy:P1} | {100 * (reused.Accuracy - result.Accuracy):+0.0;-0.0;0.0} pt |")}"));

        // One row measured: the held-out questions answered fresh and, with --reuse, from a reused video cache (presets with
        // semantic token protection are never reused); then a progress line.
        void EvaluateRow(string rowProfile, string preset, string values, KVCacheOptions options, string label, Action<VideoQaSample, string>? onReply = null)
        {
            var result = SyntheticEvaluator.Evaluate(model, test, options, label, maxFrames, default, onReply);
            var reused = reuse && options.Values != ValueQuantization.Protected
                ? SyntheticEvaluator.Evaluate(model, test, options, $"{label} reused", maxFrames, reuseVideo: true)
                : null;
            Row(rowProfile, preset, values, result, string.Create(CultureInfo.InvariantCulture, $"{result.Cache.BitsPerElement:F2}"), reused);
            Console.Error.WriteLine(result.Label + (reused is null ? string.Empty : $" {result.Accuracy:P1}, reused {reused.Accuracy:P1}") + " done");
        }

        foreach (var profile in profiles)
        {
            foreach (var preset in scaledOnly ? [] : presets)
            {
                foreach (var axis in axes)
                {
                    var options = KVCacheOptions.FromPreset(preset, profile);
                    options = gamma is { } g ? options with { TernaryGamma = g } : options;
                    if (preset is "fp16" or "kivi-2" && axis == QuantizationAxis.PerToken)
                    {
                        continue; // fp16 has no value axis; kivi-2 is per-token by definition
                    }

                    options = preset == "kivi-2" ? options : options with { ValueAxis = axis };
                    int shown = 0;
                    EvaluateRow(profile.ToString(), preset, preset == "fp16" ? "-" : options.ValueAxis.ToString(), options, $"{profile} {preset} {axis}", (s, reply) =>
                    {
                        if (!SyntheticEvaluator.IsCorrect(reply, s.Answer) && shown++ < show)
                        {
                            Console.Error.WriteLine($"  [{profile} {preset} {axis}] {s.Family}: {s.Question} expected '{s.Answer}', got '{reply}'");
                        }
                    });
                }
            }
        }

        // The Compact profile's optional scaled ternary values (a scale per group, as the other quantizers keep), for every
        // preset with ternary values.
        foreach (var preset in scaledTernary ? presets.Where(p => p.EndsWith("/1.58", StringComparison.Ordinal) || p.EndsWith("/1.66", StringComparison.Ordinal)) : [])
        {
            foreach (var axis in axes)
            {
                var compact = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
                var options = compact with { ValueAxis = axis, ScaledTernary = true, TernaryGamma = gamma ?? compact.TernaryGamma };
                EvaluateRow("Compact, scaled ternary", preset, axis.ToString(), options, $"Compact {preset} {axis} scaled");
            }
        }

        // What the question alone gives: the same questions with every object removed from the videos.
        var blank = test.Select(s => s with { Scene = s.Scene.WithoutObjects() }).ToList();
        var ablation = SyntheticEvaluator.Evaluate(model, blank, KVCacheOptions.FromPreset("fp16"), "fp16, objects removed", maxFrames);
        Row("ablation: objects removed from every video", "fp16", "-", ablation, "-");

        Console.WriteLine(table); // before the needle sweep, so a failure there loses nothing measured
        table.Clear();
        table.AppendLine("Needle accuracy as the video grows (every frame given to the model; videos shorter than the generator's shortest");
        table.AppendLine("needle video show the needle on at most an eighth of their frames, the generator's own rule):");
        table.AppendLine();
        table.AppendLine("| frames | fp16 | vidkv-1.5/1.58 (Compact) |");
        table.AppendLine("|---:|---:|---:|");
        foreach (int frames in needleSamples > 0 ? needleFrames : [])
        {
            var needles = SyntheticDataset.Generate(seed, DatasetSplit.Test, needleSamples, NeedleOptions(frames));
            var fp16 = SyntheticEvaluator.Evaluate(model, needles, KVCacheOptions.FromPreset("fp16"), "fp16", frames);
            var compact = SyntheticEvaluator.Evaluate(model, needles, KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact), "compact", frames);
            table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {frames} | {fp16.Accuracy:P1} | {compact.Accuracy:P1} |"));
        }

        Console.WriteLine(table);
        return 0;
    }

    /// <summary>
    /// Needle videos of exactly <paramref name="frames"/> frames. Below the generator's shortest needle video the needle
    /// shows on at most an eighth of the frames (the rule <see cref="SceneOptions.NeedleMinFrames"/> keeps).
    /// </summary>
    private static SceneOptions NeedleOptions(int frames)
    {
        var options = new SceneOptions { MinFrames = frames, MaxFrames = frames, Family = QuestionFamily.Needle };
        return frames >= options.NeedleMinFrames
            ? options
            : options with { NeedleMinFrames = frames, NeedleMaxVisibleFrames = Math.Max(options.NeedleMinVisibleFrames, frames / 8) };
    }
}
