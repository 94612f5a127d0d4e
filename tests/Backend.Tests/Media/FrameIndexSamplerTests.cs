using VidKV.AI.Backend.Media;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class FrameIndexSamplerTests
{
    // Expected values from Python's float64 arithmetic, which is numpy's: int(i * ((stop - start) / (n - 1)) + start).
    [Theory]
    [InlineData(0, 99, 32, new long[] { 0, 3, 6, 9, 12, 15, 19, 22, 25, 28, 31, 35, 38, 41, 44, 47, 51, 54, 57, 60, 63, 67, 70, 73, 76, 79, 83, 86, 89, 92, 95, 99 })]
    [InlineData(0, 299, 7, new long[] { 0, 49, 99, 149, 199, 249, 299 })]
    [InlineData(25, 74, 8, new long[] { 25, 32, 39, 46, 53, 60, 67, 74 })]
    [InlineData(0, 107999, 32, new long[] { 0, 3483, 6967, 10451, 13935, 17419, 20903, 24386, 27870, 31354, 34838, 38322, 41806, 45289, 48773, 52257, 55741, 59225, 62709, 66192, 69676, 73160, 76644, 80128, 83612, 87095, 90579, 94063, 97547, 101031, 104515, 107999 })]
    [InlineData(7, 7, 1, new long[] { 7 })]
    public void Linspace_EqualsNumpyAstypeInt(long first, long last, int count, long[] expected)
        => Assert.Equal(expected, FrameIndexSampler.Linspace(first, last, count));

    [Fact]
    public void Linspace_MoreFramesThanTheRangeHolds_ReturnsEachFrameOnce()
    {
        // numpy gives [0 0 1 1 2 3 3 4 4 5 6 6 7 7 8 9]; each distinct frame comes back once.
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), FrameIndexSampler.Linspace(0, 9, 16));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), FrameIndexSampler.Linspace(0, 9, 1024));
    }

    [Fact]
    public void Select_StartAndEnd_RestrictsToFramesInTheHalfOpenRange()
    {
        // 100 frames at 25 fps: [1 s, 3 s) holds frames 25..74.
        var options = new FrameSamplingOptions { FrameCount = 8, Start = TimeSpan.FromSeconds(1), End = TimeSpan.FromSeconds(3) };

        var indices = FrameIndexSampler.Select(100, i => i / 25.0, 4, options, "clip");

        Assert.Equal(new long[] { 25, 32, 39, 46, 53, 60, 67, 74 }, indices);
    }

    [Fact]
    public void Select_FramesPerSecond_TakesTheFrameOnScreenAtEachTick()
    {
        var indices = FrameIndexSampler.Select(100, i => i / 25.0, 4, new FrameSamplingOptions { FramesPerSecond = 2 }, "clip");

        Assert.Equal(new long[] { 0, 12, 25, 37, 50, 62, 75, 87 }, indices);
    }

    [Fact]
    public void Select_FramesPerSecondOverMaximum_SpreadsMaxFramesUniformly()
    {
        var options = new FrameSamplingOptions { FramesPerSecond = 10, MaxFrames = 8 };

        var indices = FrameIndexSampler.Select(100, i => i / 25.0, 4, options, "clip");

        Assert.Equal(FrameIndexSampler.Linspace(0, 99, 8), indices);
    }

    [Fact]
    public void Select_FramesPerSecondAboveTheVideoRate_ReturnsEachFrameOnce()
    {
        var indices = FrameIndexSampler.Select(10, i => i / 5.0, 2, new FrameSamplingOptions { FramesPerSecond = 30, MaxFrames = 64 }, "clip");

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), indices);
    }

    [Fact]
    public void Select_RangePastTheEnd_SaysWhereTheMediaEnds()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            FrameIndexSampler.Select(100, i => i / 25.0, 4, new FrameSamplingOptions { Start = TimeSpan.FromSeconds(10) }, "clip.mp4"));

        Assert.Contains("clip.mp4", ex.Message, StringComparison.Ordinal);
        Assert.Contains("00:00:03.960", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Select_RangeBetweenTwoFrames_IsRejected()
    {
        // One frame per second: nothing lies in [1.2 s, 1.8 s).
        var options = new FrameSamplingOptions { Start = TimeSpan.FromSeconds(1.2), End = TimeSpan.FromSeconds(1.8) };

        var ex = Assert.Throws<ArgumentException>(() => FrameIndexSampler.Select(5, i => i, 5, options, "frames"));

        Assert.Contains("Widen the range", ex.Message, StringComparison.Ordinal);
    }
}
