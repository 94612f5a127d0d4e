using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary><see cref="SyntheticDataset"/> and <see cref="FamilyMix"/>: disjoint seeds, exact family proportions, determinism.</summary>
public sealed class SyntheticDatasetTests
{
    [Fact]
    public void Split_Count_EightyTenTenWithDisjointSeeds()
    {
        var split = SyntheticDataset.Split(seedBase: 100, count: 500);

        Assert.Equal((400, 50, 50), (split.Train.Count, split.Validation.Count, split.Test.Count));
        var seeds = split.Train.Concat(split.Validation).Concat(split.Test).Select(s => s.Seed).ToArray();
        Assert.Equal(seeds.Length, seeds.Distinct().Count());
        Assert.All(split.Test, s => Assert.DoesNotContain(s.Scene, split.Train.Select(t => t.Scene)));
        Assert.Equal(SyntheticDataset.SeedOf(100, DatasetSplit.Test, 7), split[DatasetSplit.Test][7].Seed);
    }

    [Fact]
    public void Split_BalancedMix_EveryPartHasTheApportionedFamilyCounts()
    {
        var split = SyntheticDataset.Split(0, 230);

        foreach (var part in new[] { split.Train, split.Validation, split.Test })
        {
            var expected = FamilyMix.Balanced.Apportion(part.Count);
            foreach (var family in Enum.GetValues<QuestionFamily>())
            {
                Assert.Equal(expected[family], part.Count(s => s.Family == family));
            }
        }

        Assert.Equal([37, 37, 37, 37, 36], Enum.GetValues<QuestionFamily>().Select(f => split.Train.Count(s => s.Family == f)));
        Assert.All(split.Train.Concat(split.Validation).Concat(split.Test), s => Assert.InRange(s.FrameCount, 8, 256));
    }

    [Fact]
    public void Split_CustomMixAndFrameRange_Respected()
    {
        var mix = new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Counting] = 2, [QuestionFamily.MotionDirection] = 1, [QuestionFamily.Needle] = 1 });

        var split = SyntheticDataset.Split(7, 60, 20, 20, mix, minFrames: 32, maxFrames: 96);

        Assert.Equal(30, split.Train.Count(s => s.Family == QuestionFamily.Counting));
        Assert.Equal(15, split.Train.Count(s => s.Family == QuestionFamily.MotionDirection));
        Assert.Equal(15, split.Train.Count(s => s.Family == QuestionFamily.Needle));
        Assert.Equal(10, split.Test.Count(s => s.Family == QuestionFamily.Counting));
        Assert.All(split.Train.Concat(split.Test), s => Assert.InRange(s.FrameCount, s.Family == QuestionFamily.Needle ? 64 : 32, 96));

        // Evenly interleaved: the first quarter already holds every family.
        Assert.Equal(3, split.Train.Take(15).Select(s => s.Family).Distinct().Count());
    }

    [Fact]
    public void Split_SameArguments_EqualSamples_AndTestSetStableWhenTrainGrows()
    {
        var a = SyntheticDataset.Split(5, 100);
        var b = SyntheticDataset.Split(5, 100);
        var bigger = SyntheticDataset.Split(5, 300, 10, 10, null, 8, 256);

        Assert.Equal(a.Train, b.Train);
        Assert.Equal(a.Validation, b.Validation);
        Assert.Equal(a.Test, b.Test);
        Assert.Equal(a.Test, bigger.Test);
    }

    [Fact]
    public void FamilyMix_Apportion_SumsToCountAndWithinOneOfShare()
    {
        var mix = new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Attribute] = 0.5, [QuestionFamily.Counting] = 0.3, [QuestionFamily.TemporalOrder] = 0.2 });

        foreach (int count in new[] { 0, 1, 7, 10, 99, 1000 })
        {
            var counts = mix.Apportion(count);
            Assert.Equal(count, counts.Values.Sum());
            Assert.All(counts, kv => Assert.InRange(kv.Value, Math.Floor(mix.Fraction(kv.Key) * count), Math.Ceiling(mix.Fraction(kv.Key) * count)));
            Assert.Equal(count, mix.Sequence(count).Count);
        }

        Assert.Equal(0, mix.Apportion(50)[QuestionFamily.Needle]);
        Assert.Equal([QuestionFamily.Attribute, QuestionFamily.Counting, QuestionFamily.TemporalOrder], mix.Families);
    }

    [Fact]
    public void FamilyMix_NegativeOrAllZero_Throws()
    {
        var negative = Assert.Throws<ArgumentException>(() => new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Needle] = -1 }));
        var zero = Assert.Throws<ArgumentException>(() => new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Needle] = 0 }));

        Assert.Contains("Needle is -1", negative.Message);
        Assert.Contains("positive weight", zero.Message);
    }

    [Fact]
    public void SeedOf_Overflow_Throws()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticDataset.Split(int.MaxValue - 10, 100));

        Assert.Contains("overflows", e.Message);
    }
}
