using VidKV.AI.Backend.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Vision;

/// <summary><see cref="VideoFramePreprocessor"/> against transformers 5.17's LlavaOnevisionVideoProcessor.</summary>
public sealed class VideoFramePreprocessorTests : IDisposable
{
    /// <summary>No resize: uint8 -> float32 and the fused normalize are the same IEEE operations as transformers'.</summary>
    private const double ExactTolerance = 1e-5;

    /// <summary>
    /// With a resize: the uint8 antialiased bicubic resize runs PyTorch's own fixed-point kernel on both sides
    /// (TorchSharp's libtorch here, torch 2.11 under torchvision there), so the values agree bit for bit (measured
    /// max |diff| 0). One uint8 step would show as 1/255/std, about 0.015.
    /// </summary>
    private const double ResizedTolerance = 1e-5;

    private readonly ITestOutputHelper _output;
    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), "vidkv-video-preprocessor-" + Guid.NewGuid().ToString("N"));

    public VideoFramePreprocessorTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_tempDir);
    }

    public void Dispose() => Directory.Delete(_tempDir, recursive: true);

    [Fact]
    public void Preprocess_FramesAlreadyAtSize_MatchesTransformers()
    {
        using var scope = NewDisposeScope();
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(Fixtures.Model);

        var pixels = preprocessor.Preprocess(VisionReference.Read("video.frames_exact"));

        var expected = VisionReference.Read("video.pixel_values_exact")[0];
        double diff = VisionReference.MaxAbsDiff(expected, pixels);
        _output.WriteLine($"exact-size frames: max |diff| = {diff:G6}");
        Assert.Equal(ScalarType.Float32, pixels.dtype);
        Assert.True(diff < ExactTolerance, $"max |diff| {diff} >= {ExactTolerance}");
    }

    [Fact]
    public void Preprocess_FramesNeedingResize_MatchesTransformers()
    {
        using var scope = NewDisposeScope();
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(Fixtures.Model);

        var pixels = preprocessor.Preprocess(VisionReference.Read("video.frames"));

        var expected = VisionReference.Read("video.pixel_values")[0];
        double diff = VisionReference.MaxAbsDiff(expected, pixels);
        long differing = (expected - pixels).abs().gt(1e-5).sum().item<long>();
        _output.WriteLine($"90x120 -> 70x70 bicubic frames: max |diff| = {diff:G6}, {differing} of {pixels.numel()} values differ by more than 1e-5");
        Assert.Equal(new long[] { 4, 3, 70, 70 }, pixels.shape);
        Assert.True(diff < ResizedTolerance, $"max |diff| {diff} >= {ResizedTolerance}");
    }

    [Fact]
    public void Preprocess_MeanChangedInConfigFile_ShiftsEveryChannelByMeanOverStd()
    {
        using var scope = NewDisposeScope();
        var original = VideoFramePreprocessor.FromCheckpoint(Fixtures.Model);
        double[] mean = [0.1, 0.6, 0.9];
        WriteHubConfig(_tempDir, mean, original.Config.ImageStd);
        var shifted = VideoFramePreprocessor.FromCheckpoint(_tempDir);
        var frames = VisionReference.Read("video.frames_exact");

        var difference = original.Preprocess(frames) - shifted.Preprocess(frames); // [F, 3, S, S]

        Assert.Equal(mean, shifted.Config.ImageMean);
        for (int c = 0; c < 3; c++)
        {
            double expected = (mean[c] - original.Config.ImageMean[c]) / original.Config.ImageStd[c];
            var channel = difference.select(1, c);
            Assert.Equal(expected, channel.min().item<float>(), 4);
            Assert.Equal(expected, channel.max().item<float>(), 4);
        }
    }

    [Fact]
    public void Preprocess_ShortestEdgeSize_KeepsAspectRatio()
    {
        using var scope = NewDisposeScope();
        var config = PreprocessorConfig.LoadVideo(Fixtures.Model) with { Height = null, Width = null, ShortestEdge = 60 };
        var frames = VisionReference.Read("video.frames"); // [4, 90, 120, 3]

        var pixels = new VideoFramePreprocessor(config).Preprocess(frames);

        Assert.Equal(new long[] { 4, 3, 60, 80 }, pixels.shape);
    }

    [Fact]
    public void Preprocess_BilinearShortestEdge_PixelsMatchTransformers()
    {
        using var scope = NewDisposeScope();
        var config = PreprocessorConfig.LoadVideo(Fixtures.Model) with
        {
            Height = null, Width = null, ShortestEdge = 60, Resample = ResampleFilter.Bilinear, DoRescale = false, DoNormalize = false,
        };

        var pixels = new VideoFramePreprocessor(config).Preprocess(VisionReference.ReadExtra("video.bilinear.frames"));

        // transformers' uint8 output for {"shortest_edge": 60}, resample 2, rescale and normalize off: 90x120 -> 60x80.
        var expected = VisionReference.ReadExtra("video.bilinear.pixels");
        double diff = VisionReference.MaxAbsDiff(expected, pixels);
        _output.WriteLine($"90x120 -> 60x80 bilinear frames: max |diff| = {diff} (uint8 levels)");
        Assert.Equal(0.0, diff);
    }

    [Fact]
    public void Preprocess_NoRescaleNoNormalize_ReturnsResizedPixelValuesAsFloat()
    {
        using var scope = NewDisposeScope();
        var config = PreprocessorConfig.LoadVideo(Fixtures.Model) with { DoRescale = false, DoNormalize = false };
        var frames = VisionReference.Read("video.frames_exact");

        var pixels = new VideoFramePreprocessor(config).Preprocess(frames);

        Assert.Equal(ScalarType.Float32, pixels.dtype);
        Assert.Equal(0.0, VisionReference.MaxAbsDiff(frames.permute(0, 3, 1, 2).to_type(ScalarType.Float32), pixels));
    }

    [Fact]
    public void CountVideoTokens_FixtureVideo_MatchesReferenceJson()
    {
        // 4 frames of 5x5 features pooled to 3x3, plus one newline: the processor's formula.
        Assert.Equal(VisionReference.Int("video_tokens"), VideoFramePreprocessor.CountVideoTokens(4, 5));
        Assert.Equal((8 * 14 * 14) + 1, VideoFramePreprocessor.CountVideoTokens(8, 27));
    }

    public static TheoryData<long[], ScalarType> BadShapes() => new()
    {
        { new long[] { 90, 120, 3 }, ScalarType.Byte },
        { new long[] { 1, 4, 90, 120, 3 }, ScalarType.Byte },
        { new long[] { 4, 3, 90, 120 }, ScalarType.Byte },
        { new long[] { 4, 90, 120, 4 }, ScalarType.Byte },
        { new long[] { 0, 90, 120, 3 }, ScalarType.Byte },
        { new long[] { 4, 90, 120, 3 }, ScalarType.Float32 },
        { new long[] { 4, 90, 120, 3 }, ScalarType.Int32 },
    };

    [Theory]
    [MemberData(nameof(BadShapes))]
    public void Preprocess_NotUint8FramesHwc3_ThrowsArgumentException(long[] shape, ScalarType type)
    {
        using var scope = NewDisposeScope();
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(Fixtures.Model);

        var ex = Assert.Throws<ArgumentException>(() => preprocessor.Preprocess(zeros(shape, type)));

        Assert.Equal("frames", ex.ParamName);
        Assert.Contains("uint8 [frames, height, width, 3]", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"[{string.Join(", ", shape)}]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Preprocess_Null_ThrowsArgumentNullException()
    {
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(Fixtures.Model);

        Assert.Throws<ArgumentNullException>(() => preprocessor.Preprocess(null!));
    }

    [Fact]
    public void Constructor_InvalidSettings_ThrowsArgumentExceptionNamingTheValue()
    {
        var config = PreprocessorConfig.LoadVideo(Fixtures.Model);

        var ex = Assert.Throws<ArgumentException>(() => new VideoFramePreprocessor(config with { ImageStd = [0.5, 0.0, 0.5] }));

        Assert.Contains("image_std", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Writes a Hub-style preprocessor_config.json (fields at the top level) with the fixture's sizes.</summary>
    private static void WriteHubConfig(string dir, IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        string json = $$"""
            {
              "do_convert_rgb": true, "do_normalize": true, "do_pad": true, "do_rescale": true, "do_resize": true,
              "image_grid_pinpoints": [[70, 70], [70, 140], [140, 70], [140, 140], [140, 210], [210, 140]],
              "image_mean": [{{string.Join(", ", mean.Select(m => m.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}}],
              "image_processor_type": "LlavaOnevisionImageProcessor",
              "image_std": [{{string.Join(", ", std.Select(s => s.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}}],
              "processor_class": "LlavaOnevisionProcessor",
              "resample": 3,
              "rescale_factor": 0.00392156862745098,
              "size": {"height": 70, "width": 70}
            }
            """;
        File.WriteAllText(Path.Combine(dir, PreprocessorConfig.PreprocessorFileName), json);
    }
}
