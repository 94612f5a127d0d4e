using VidKV.AI.Backend.Vision;

namespace VidKV.AI.Backend.Tests.Vision;

/// <summary><see cref="AnyResGeometry"/>: transformers' anyres arithmetic.</summary>
public sealed class AnyResGeometryTests
{
    /// <summary>The fixture's image_grid_pinpoints (70-pixel tiles).</summary>
    private static readonly (int Height, int Width)[] TinyPinpoints = [(70, 70), (70, 140), (140, 70), (140, 140), (140, 210), (210, 140)];

    /// <summary>llava-onevision-qwen2-*-ov-hf's image_grid_pinpoints: 384 x (1..6) by 384 x (1..6).</summary>
    private static readonly (int Height, int Width)[] HubPinpoints =
        [.. from h in Enumerable.Range(1, 6) from w in Enumerable.Range(1, 6) select (384 * h, 384 * w)];

    [Fact]
    public void SelectBestResolution_FixtureImage_Is140x210()
    {
        Assert.Equal((140, 210), AnyResGeometry.SelectBestResolution(100, 150, TinyPinpoints));
    }

    [Fact]
    public void SelectBestResolution_EqualEffectiveArea_PrefersLeastWaste()
    {
        // 50x149 fits 70x140 and 140x140 equally (46x140 pixels kept); 70x140 wastes less. 140x210 keeps all.
        Assert.Equal((70, 140), AnyResGeometry.SelectBestResolution(50, 149, TinyPinpoints[..4]));
        Assert.Equal((140, 210), AnyResGeometry.SelectBestResolution(50, 149, TinyPinpoints));
    }

    [Theory]
    [InlineData(100, 150, 140, 210, 140, 210)]
    [InlineData(50, 149, 140, 210, 71, 210)]
    [InlineData(300, 100, 210, 140, 210, 70)]
    [InlineData(480, 640, 768, 1152, 768, 1024)]
    public void GetPatchOutputSize_KeepsAspectRatioWithinTarget(int h, int w, int th, int tw, int eh, int ew)
    {
        Assert.Equal((eh, ew), AnyResGeometry.GetPatchOutputSize(h, w, th, tw));
    }

    [Fact]
    public void GetPadding_OddRemainder_GoesToBottomAndRight()
    {
        Assert.Equal((34, 35, 0, 0), AnyResGeometry.GetPadding(71, 210, 140, 210));
        Assert.Equal((0, 0, 64, 64), AnyResGeometry.GetPadding(768, 1024, 768, 1152));
        Assert.Equal((0, 0, 2, 3), AnyResGeometry.GetPadding(10, 5, 10, 10));
    }

    [Fact]
    public void GetGridShapeAndNumPatches_FixtureImage_Are2x3And7()
    {
        Assert.Equal((2, 3), AnyResGeometry.GetGridShape(100, 150, TinyPinpoints, 70));
        Assert.Equal(7, AnyResGeometry.GetNumPatches(100, 150, TinyPinpoints, 70));
    }

    [Theory]
    [InlineData(10, 15, 100, 150, 0, 0, 10, 15)] // same aspect ratio: nothing to cut
    [InlineData(10, 15, 50, 150, 2, 0, 6, 15)] // wider: new height round(50 * 0.1) = 5, padding (10 - 5) // 2 = 2 per side
    [InlineData(54, 54, 480, 640, 7, 0, 40, 54)] // 480 * 54 / 640 = 40.5 -> 40, padding 7
    [InlineData(54, 81, 1000, 500, 0, 27, 54, 27)] // taller: new width 500 * 54 / 1000 = 27, padding (81 - 27) // 2 = 27
    [InlineData(10, 15, 9, 400, 5, 0, 0, 15)] // new height int(0.3375) = 0: nothing is left
    public void GetUnpadRegion_CutsSymmetricPadding(int ch, int cw, int oh, int ow, int top, int left, int height, int width)
    {
        Assert.Equal((top, left, height, width), AnyResGeometry.GetUnpadRegion(ch, cw, oh, ow));
    }

    [Theory]
    [InlineData(10, 15, 5, 9, 10, 15)] // ratio sqrt(150 / 225) < 1.1: unchanged
    [InlineData(162, 162, 27, 9, 81, 81)] // ratio 2
    [InlineData(162, 108, 27, 9, 99, 66)] // ratio sqrt(17496 / 6561) = 1.633: 162 // 1.633 = 99, 108 // 1.633 = 66
    [InlineData(84, 84, 27, 9, 84, 84)] // ratio 1.037 <= 1.1: unchanged
    public void GetAnyResMaxSize_LimitsToAboutNTiles(int h, int w, int p, int max, int eh, int ew)
    {
        Assert.Equal((eh, ew), AnyResGeometry.GetAnyResMaxSize(h, w, p, max));
    }

    [Theory]
    [InlineData("anyres_max_9", 9)]
    [InlineData("anyres_max_4", 4)]
    [InlineData("anyres_max_16", 16)]
    public void ParseMaxNumPatches_AnyResMaxN_ReturnsN(string value, int expected)
    {
        Assert.Equal(expected, AnyResGeometry.ParseMaxNumPatches(value));
    }

    [Fact]
    public void CountImageFeatures_FixtureImage_Is185()
    {
        // Grid 2x3 tiles of 5x5 = 10x15, unpadded as is, ratio sqrt(150 / 225) < 1.1: 150 + 10 newlines + 25 base.
        Assert.Equal((10, 15), AnyResGeometry.GetPackedGridSize(100, 150, TinyPinpoints, 70, 5, 9));
        Assert.Equal(185, AnyResGeometry.CountImageFeatures(100, 150, TinyPinpoints, 70, 5, 9));
    }

    public static TheoryData<int, int, int> TinyCounts() => VisionReference.Counts("tiny_counts");

    public static TheoryData<int, int, int> HubCounts() => VisionReference.Counts("hub_counts");

    public static TheoryData<int, int, int> HubCountsMax4() => VisionReference.Counts("hub_counts_max4");

    [Theory]
    [MemberData(nameof(TinyCounts))]
    public void CountImageFeatures_FixturePinpoints_MatchTransformersProcessor(int height, int width, int expected)
    {
        Assert.Equal(expected, AnyResGeometry.CountImageFeatures(height, width, TinyPinpoints, 70, 5, 9));
    }

    [Theory]
    [MemberData(nameof(HubCounts))]
    public void CountImageFeatures_HubCheckpointPinpoints_MatchTransformersProcessor(int height, int width, int expected)
    {
        Assert.Equal(expected, AnyResGeometry.CountImageFeatures(height, width, HubPinpoints, 384, 27, 9));
    }

    [Theory]
    [MemberData(nameof(HubCountsMax4))]
    public void CountImageFeatures_AnyResMax4_MatchTransformersProcessor(int height, int width, int expected)
    {
        Assert.Equal(expected, AnyResGeometry.CountImageFeatures(height, width, HubPinpoints, 384, 27, 4));
    }

    [Fact]
    public void CountImageFeatures_Hub1080p_FollowsTheProcessorSteps()
    {
        // Best 1152x1920 (all pixels kept, least waste), grid 3x5 = 81x135; wider than the grid, so new height
        // int(round(1080 * 135 / 1920)) = 75 and 3 rows of padding per side: 75x135; ratio sqrt(10125 / 6561) = 1.242
        // brings it to 60x108; 6480 + 60 newlines + 729 base features.
        Assert.Equal((1152, 1920), AnyResGeometry.SelectBestResolution(1080, 1920, HubPinpoints));
        Assert.Equal((60, 108), AnyResGeometry.GetPackedGridSize(1080, 1920, HubPinpoints, 384, 27, 9));
        Assert.Equal(7269, AnyResGeometry.CountImageFeatures(1080, 1920, HubPinpoints, 384, 27, 9));
    }

    [Fact]
    public void SelectBestResolution_EmptyPinpoints_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => AnyResGeometry.SelectBestResolution(10, 10, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => AnyResGeometry.SelectBestResolution(0, 10, TinyPinpoints));
    }
}
