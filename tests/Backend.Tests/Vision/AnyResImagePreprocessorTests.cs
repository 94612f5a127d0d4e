using VidKV.AI.Backend.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Vision;

/// <summary><see cref="AnyResImagePreprocessor"/> against transformers 5.17's LlavaOnevisionImageProcessor.</summary>
public sealed class AnyResImagePreprocessorTests
{
    /// <summary>
    /// The 100x150 image is upscaled to 140x210 and downscaled to 70x70 with PyTorch's uint8 antialiased bicubic
    /// kernel on both sides, so the values agree bit for bit (measured max |diff| 0); one uint8 step would be about 0.015.
    /// </summary>
    private const double Tolerance = 1e-5;

    private readonly ITestOutputHelper _output;

    public AnyResImagePreprocessorTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Preprocess_FixtureImage_MatchesTransformers()
    {
        using var scope = NewDisposeScope();
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);

        using var image = preprocessor.Preprocess(VisionReference.Read("image.raw"));

        var expected = VisionReference.Read("image.pixel_values")[0]; // [7, 3, 70, 70]
        Assert.Equal(expected.shape, image.PixelValues.shape);
        Assert.Equal(ScalarType.Float32, image.PixelValues.dtype);
        double diff = VisionReference.MaxAbsDiff(expected, image.PixelValues);
        for (int p = 0; p < image.PatchCount; p++)
        {
            _output.WriteLine($"patch {p}: max |diff| = {VisionReference.MaxAbsDiff(expected[p], image.PixelValues[p]):G6}");
        }

        _output.WriteLine($"100x150 image, base + 2x3 tiles: max |diff| = {diff:G6}");
        Assert.True(diff < Tolerance, $"max |diff| {diff} >= {Tolerance}");
    }

    [Theory]
    [InlineData("pad_odd")] // 50x149 -> 71x210 in 140x210: 34 rows of padding above, 35 below
    [InlineData("tall")] // 157x61 -> padding left and right
    [InlineData("square")] // 64x64 -> one 70x70 tile, upscaled
    [InlineData("wide_small")] // 23x200 -> strong upscale and padding
    [InlineData("very_wide")] // 9x400 -> 4 rows of content in 140 rows
    public void Preprocess_PaddedAndOddImages_PixelsMatchTransformers(string name)
    {
        using var scope = NewDisposeScope();
        var config = PreprocessorConfig.LoadImage(Fixtures.Model) with { DoRescale = false, DoNormalize = false };
        var preprocessor = new AnyResImagePreprocessor(config);

        using var image = preprocessor.Preprocess(VisionReference.ReadExtra($"image.{name}.raw"));

        // transformers' uint8 output of resize, pad and tiling (rescale and normalize off).
        var expected = VisionReference.ReadExtra($"image.{name}.pixels");
        var sizes = VisionReference.ReadExtra($"image.{name}.image_sizes");
        Assert.Equal(expected.shape, image.PixelValues.shape);
        double diff = VisionReference.MaxAbsDiff(expected, image.PixelValues);
        _output.WriteLine($"{name} ({image.OriginalHeight}x{image.OriginalWidth}, {image.Rows}x{image.Columns} tiles): max |diff| = {diff} (uint8 levels)");
        Assert.Equal(0.0, diff);
        Assert.Equal((sizes[0, 0].item<long>(), sizes[0, 1].item<long>()), (image.OriginalHeight, image.OriginalWidth));
    }

    [Fact]
    public void Preprocess_FixtureImage_ReportsOriginalSizeAndGrid()
    {
        using var scope = NewDisposeScope();
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);

        using var image = preprocessor.Preprocess(VisionReference.Read("image.raw"));

        var sizes = VisionReference.Read("image.image_sizes"); // int64 [1, 2]
        Assert.Equal(sizes[0, 0].item<long>(), image.OriginalHeight);
        Assert.Equal(sizes[0, 1].item<long>(), image.OriginalWidth);
        Assert.Equal((2, 3), (image.Rows, image.Columns));
        Assert.Equal(7, image.PatchCount);
        Assert.Equal((2, 3), AnyResGeometry.GetGridShape(100, 150, preprocessor.Config.ImageGridPinpoints, preprocessor.TileSize));
    }

    [Fact]
    public void CountImageTokens_FixtureImage_MatchesReferenceJson()
    {
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);

        int tokens = preprocessor.CountImageTokens(100, 150, tokensPerSide: 5, "anyres_max_9");

        // reference.json: the <image> tokens transformers' processor put in the prompt for this image (185 =
        // 10x15 unpadded grid + 10 newlines + 25 base features).
        Assert.Equal(VisionReference.Int("image_tokens"), tokens);
        Assert.Equal(185, tokens);
    }

    [Fact]
    public void Preprocess_WideImage_PadsTopAndBottomWithZeroPixels()
    {
        using var scope = NewDisposeScope();
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);
        var config = preprocessor.Config;

        // 50x149 goes into 140x210 as 71x210: 34 rows of padding above, 35 below.
        using var image = preprocessor.Preprocess(full(new long[] { 50, 149, 3 }, 200, ScalarType.Byte));

        Assert.Equal((34, 35, 0, 0), AnyResGeometry.GetPadding(71, 210, 140, 210));
        Assert.Equal((2, 3), (image.Rows, image.Columns));
        var tiles = image.PixelValues[TensorIndex.Slice(1)].reshape(2, 3, 3, 70, 70).permute(2, 0, 3, 1, 4).reshape(3, 140, 210);
        for (int c = 0; c < 3; c++)
        {
            float padding = (float)(-config.ImageMean[c] / config.ImageStd[c]);
            float content = (float)(((200 / 255.0) - config.ImageMean[c]) / config.ImageStd[c]);
            var channel = tiles[c];
            Assert.Equal(padding, channel[TensorIndex.Slice(0, 34)].max().item<float>(), 4);
            Assert.Equal(padding, channel[TensorIndex.Slice(105, 140)].min().item<float>(), 4);
            Assert.Equal(content, channel[TensorIndex.Slice(36, 103)].min().item<float>(), 4);
            Assert.Equal(content, channel[TensorIndex.Slice(36, 103)].max().item<float>(), 4);
        }
    }

    [Fact]
    public void Preprocess_MeanChangedInConfig_ShiftsOutput()
    {
        using var scope = NewDisposeScope();
        var original = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);
        var shifted = new AnyResImagePreprocessor(original.Config with { ImageMean = [0.5, 0.5, 0.5] });
        var raw = VisionReference.Read("image.raw");

        using var a = original.Preprocess(raw);
        using var b = shifted.Preprocess(raw);

        var difference = a.PixelValues - b.PixelValues;
        for (int c = 0; c < 3; c++)
        {
            double expected = (0.5 - original.Config.ImageMean[c]) / original.Config.ImageStd[c];
            Assert.Equal(expected, difference.select(1, c).mean().item<float>(), 4);
        }
    }

    public static TheoryData<long[], ScalarType> BadShapes() => new()
    {
        { new long[] { 1, 100, 150, 3 }, ScalarType.Byte },
        { new long[] { 3, 100, 150 }, ScalarType.Byte },
        { new long[] { 100, 150 }, ScalarType.Byte },
        { new long[] { 100, 150, 1 }, ScalarType.Byte },
        { new long[] { 0, 150, 3 }, ScalarType.Byte },
        { new long[] { 100, 150, 3 }, ScalarType.Float32 },
    };

    [Theory]
    [MemberData(nameof(BadShapes))]
    public void Preprocess_NotUint8Hwc3_ThrowsArgumentException(long[] shape, ScalarType type)
    {
        using var scope = NewDisposeScope();
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);

        var ex = Assert.Throws<ArgumentException>(() => preprocessor.Preprocess(zeros(shape, type)));

        Assert.Equal("image", ex.ParamName);
        Assert.Contains("uint8 [height, width, 3]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_VideoSettingsWithoutPinpoints_ThrowsArgumentException()
    {
        var video = PreprocessorConfig.LoadVideo(Fixtures.Model);

        var ex = Assert.Throws<ArgumentException>(() => new AnyResImagePreprocessor(video));

        Assert.Contains("image_grid_pinpoints", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_NonSquareSize_ThrowsArgumentException()
    {
        var config = PreprocessorConfig.LoadImage(Fixtures.Model) with { Height = 70, Width = 84 };

        var ex = Assert.Throws<ArgumentException>(() => new AnyResImagePreprocessor(config));

        Assert.Contains("square", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("anyres")]
    [InlineData("anyres_max_")]
    [InlineData("anyres_max_0")]
    [InlineData("pad")]
    public void CountImageTokens_UnknownAspectRatio_ThrowsArgumentException(string visionAspectRatio)
    {
        var preprocessor = AnyResImagePreprocessor.FromCheckpoint(Fixtures.Model);

        Assert.Throws<ArgumentException>(() => preprocessor.CountImageTokens(100, 150, 5, visionAspectRatio));
    }
}
