using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using Xunit.Abstractions;

namespace VidKV.AI.Training.Tests;

/// <summary>The model shipped in models/vidkv-tiny (copied next to the tests by the backend's build).</summary>
public sealed class BuiltInModelTests(ITestOutputHelper output)
{
    // 100 held-out questions of the test split (seeds disjoint from training), videos of 8 to 256 frames, as
    // `vidkv-train eval` draws them.
    private static readonly IReadOnlyList<VideoQaSample> HeldOut =
        SyntheticDataset.Generate(0, DatasetSplit.Test, 100, new SceneOptions { MinFrames = 8, MaxFrames = 256 });

    [Fact]
    public void ShippedModel_IsAHuggingFaceFolder_OfTheRecipe_UnderTheSizeLimit()
    {
        Assert.True(BuiltInModel.IsAvailable, $"no model in {BuiltInModel.Directory}");
        long bytes = 0;
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json" })
        {
            var info = new FileInfo(Path.Combine(BuiltInModel.Directory, file));
            Assert.True(info.Exists, file);
            bytes += info.Length;
        }

        Assert.True(bytes <= 25L * 1024 * 1024, $"{bytes} bytes");
        using var vlm = BuiltInModel.Load();
        var recipe = VidKvTinyRecipe.ModelConfig(vlm.Tokenizer);
        Assert.Equal(recipe.Text, vlm.Model.Config.Text with { EosTokenIds = recipe.Text.EosTokenIds });
        Assert.Equal(recipe.Vision, vlm.Model.Config.Vision);
        Assert.Equal(3_721_856, vlm.Model.parameters().Sum(p => p.NumberOfElements));
    }

    [Fact]
    public void ShippedModel_ReadsTheVideo_AnswersAFixedSetCorrectly_WithFp16AndVidkv158_AndTheCacheAgreesWithFp16_WithinThreePoints()
    {
        using var vlm = BuiltInModel.Load();
        var fp16Replies = new List<string>();
        var compressedReplies = new List<string>();
        var fp16 = SyntheticEvaluator.Evaluate(vlm, HeldOut, KVCacheOptions.FromPreset("fp16"), "fp16", onReply: (_, r) => fp16Replies.Add(r));
        var compressed = SyntheticEvaluator.Evaluate(
            vlm, HeldOut, KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { ValueAxis = QuantizationAxis.PerChannel }, "vidkv", onReply: (_, r) => compressedReplies.Add(r));
        var blank = SyntheticEvaluator.Evaluate(
            vlm, [.. HeldOut.Select(s => s with { Scene = s.Scene.WithoutObjects() })], KVCacheOptions.FromPreset("fp16"), "blank");
        int agree = fp16Replies.Zip(compressedReplies).Count(p => SyntheticEvaluator.IsCorrect(p.First, p.Second));
        output.WriteLine($"fp16 {fp16.Accuracy:P1}, vidkv-1.5/1.58 {compressed.Accuracy:P1}, objects removed {blank.Accuracy:P1}, same reply {agree}/{HeldOut.Count}");

        // Replies are answers of the task (a colour, shape, size, count, direction, time or object); measured 198 of 200.
        var strays = fp16Replies.Concat(compressedReplies).Where(r => !SceneVocabulary.AllAnswers.Any(a => SyntheticEvaluator.IsCorrect(r, a))).ToList();
        output.WriteLine($"replies outside the task's answers: {string.Join(", ", strays.Select(r => $"'{r}'"))}");
        Assert.True(strays.Count <= 0.05 * 2 * HeldOut.Count, $"{strays.Count} replies are not answers of the task");

        // The model reads the video: it answers far more questions with the objects in view than with them removed
        // (measured 90 % against 19 % with the model shipped on 2026-12-06, run 17; 89 against 10 % with run 15).
        Assert.True(fp16.Accuracy >= blank.Accuracy + 0.55, $"fp16 {fp16.Accuracy:P1} with the video, {blank.Accuracy:P1} with the objects removed");

        // The compressed cache gives the FP16 reply to nearly every question (measured 100 of 100) and its accuracy is
        // within 3 points of FP16 (measured 90 % against 90 % with run 17, whose config has its ternary values scaled;
        // 94.0 against 94.0 % on the 200 questions of docs/BENCHMARKS.md).
        Assert.True(agree >= 0.95 * HeldOut.Count, $"vidkv-1.5/1.58 gave the FP16 reply on {agree} of {HeldOut.Count} questions");
        Assert.True(compressed.Accuracy >= fp16.Accuracy - 0.03, $"vidkv-1.5/1.58 {compressed.Accuracy:P1} against fp16 {fp16.Accuracy:P1}");

        // A fixed set of held-out questions, every family, that the shipped model answers correctly with both caches:
        // each reply must be the generator's answer. Up to 2 of the 50 may flip, since another processor sums in another
        // order and a close greedy choice can go the other way.
        var missed = FixedSet.SelectMany(i => new[] { ("fp16", i, fp16Replies[i]), ("vidkv-1.5/1.58", i, compressedReplies[i]) })
            .Where(x => !SyntheticEvaluator.IsCorrect(x.Item3, HeldOut[x.i].Answer))
            .Select(x => $"{x.Item1} #{x.i} ({HeldOut[x.i].Family}): '{x.Item3}', expected '{HeldOut[x.i].Answer}'")
            .ToList();
        output.WriteLine($"fixed set: {missed.Count} misses {string.Join("; ", missed)}");

        // For choosing the set again when the shipped model changes: the questions both caches answer correctly.
        var bothCorrect = Enumerable.Range(0, HeldOut.Count)
            .Where(i => SyntheticEvaluator.IsCorrect(fp16Replies[i], HeldOut[i].Answer) && SyntheticEvaluator.IsCorrect(compressedReplies[i], HeldOut[i].Answer));
        output.WriteLine($"correct with both caches: {string.Join(", ", bothCorrect.Select(i => $"{i} {HeldOut[i].Family}"))}");
        Assert.True(missed.Count(m => m.StartsWith("fp16", StringComparison.Ordinal)) <= 2, string.Join("; ", missed));
        Assert.True(missed.Count(m => m.StartsWith("vidkv", StringComparison.Ordinal)) <= 2, string.Join("; ", missed));
    }

    // Indices into HeldOut: the first 10 questions of each family that the model shipped on 2026-12-06 (run 17) answers
    // correctly with both caches (it does 90 of the 100; the test prints them).
    private static readonly int[] FixedSet =
        [0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 52, 53, 54, 55, 60];
}
