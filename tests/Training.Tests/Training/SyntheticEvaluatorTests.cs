using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Training.Tests;

public sealed class SyntheticEvaluatorTests
{
    [Theory]
    [InlineData("red", "red", true)]
    [InlineData(" Red.\n", "red", true)]
    [InlineData("yellow star", "yellow star", true)]
    [InlineData("yellow", "yellow star", false)]
    [InlineData("red circle", "red", false)]
    [InlineData("", "red", false)]
    public void IsCorrect_ComparesTrimmedLowerCaseText(string reply, string answer, bool expected)
        => Assert.Equal(expected, SyntheticEvaluator.IsCorrect(reply, answer));

    [Fact]
    public void Evaluate_CountsEveryQuestionOncePerFamily_AndReportsTheCache()
    {
        using var vlm = LlavaOnevisionVideoModel.Load(Fixtures.Model);
        var samples = SyntheticDataset.Generate(3, DatasetSplit.Test, 5, new SceneOptions { MinFrames = 8, MaxFrames = 48, NeedleMinFrames = 48 });
        var replies = new List<string>();

        var result = SyntheticEvaluator.Evaluate(vlm, samples, KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact), "test", maxFrames: 4, onReply: (_, r) => replies.Add(r));

        Assert.Equal(5, result.PerFamily.Values.Sum(v => v.Total));
        Assert.Equal(5, replies.Count);
        Assert.All(samples.GroupBy(s => s.Family), g => Assert.Equal(g.Count(), result.PerFamily[g.Key].Total));
        Assert.InRange(result.Accuracy, 0, 1);
        Assert.True(result.Cache.Elements > 0);
        Assert.True(result.Cache.TotalBytes < result.Cache.Fp16Bytes * 2, "the fixture computes in float32; the compressed cache holds far less than that");
    }
}
