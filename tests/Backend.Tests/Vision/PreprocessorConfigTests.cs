using System.Text.Json;
using VidKV.AI.Backend.Vision;

namespace VidKV.AI.Backend.Tests.Vision;

/// <summary><see cref="PreprocessorConfig"/>: the three file layouts, precedence, fallback and errors.</summary>
public sealed class PreprocessorConfigTests : IDisposable
{
    private static readonly double[] FixtureMean = [0.48145466, 0.4578275, 0.40821073];
    private static readonly double[] FixtureStd = [0.26862954, 0.26130258, 0.27577711];

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "vidkv-preprocessor-config-" + Guid.NewGuid().ToString("N"));

    public PreprocessorConfigTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void LoadImage_Transformers5ProcessorConfig_ReadsImageProcessorObject()
    {
        var config = PreprocessorConfig.LoadImage(Fixtures.Model);

        Assert.EndsWith("processor_config.json: image_processor", config.Source, StringComparison.Ordinal);
        Assert.Equal((70, 70), (config.Height, config.Width));
        Assert.Null(config.ShortestEdge);
        Assert.Equal(70, config.TileSize);
        Assert.Equal(ResampleFilter.Bicubic, config.Resample);
        Assert.Equal(FixtureMean, config.ImageMean);
        Assert.Equal(FixtureStd, config.ImageStd);
        Assert.Equal(1 / 255.0, config.RescaleFactor, 15);
        Assert.True(config.DoResize && config.DoRescale && config.DoNormalize && config.DoConvertRgb && config.DoPad);
        Assert.False(config.DoCenterCrop);
        Assert.Equal([(70, 70), (70, 140), (140, 70), (140, 140), (140, 210), (210, 140)], config.ImageGridPinpoints);
    }

    [Fact]
    public void LoadVideo_Transformers5ProcessorConfig_ReadsVideoProcessorObject()
    {
        var config = PreprocessorConfig.LoadVideo(Fixtures.Model);

        Assert.EndsWith("processor_config.json: video_processor", config.Source, StringComparison.Ordinal);
        Assert.Equal((70, 70), (config.Height, config.Width));
        Assert.Equal(FixtureMean, config.ImageMean);
        Assert.Equal(FixtureStd, config.ImageStd);
        Assert.Empty(config.ImageGridPinpoints);
    }

    [Fact]
    public void LoadImage_HubCheckpointLayout_ReadsModelAltAndHubStyleFile()
    {
        Assert.Equal(PreprocessorConfig.LoadImage(Fixtures.Model).ImageMean, PreprocessorConfig.LoadImage(Fixtures.ModelAlt).ImageMean);

        WriteJson(PreprocessorConfig.PreprocessorFileName, HubPreprocessor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]));
        var config = PreprocessorConfig.LoadImage(_dir);

        Assert.Equal(Path.Combine(_dir, PreprocessorConfig.PreprocessorFileName), config.Source);
        Assert.Equal((384, 384), (config.Height, config.Width));
        Assert.Equal([0.5, 0.5, 0.5], config.ImageMean);
        Assert.Equal([0.5, 0.5, 0.5], config.ImageStd);
        Assert.Equal(36, config.ImageGridPinpoints.Count);
        Assert.Equal((2304, 2304), config.ImageGridPinpoints[^1]);
    }

    [Fact]
    public void LoadVideo_OnlyHubPreprocessorConfig_FallsBackToImageProcessorSettings()
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, HubPreprocessor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]));

        var config = PreprocessorConfig.LoadVideo(_dir);

        Assert.Equal(Path.Combine(_dir, PreprocessorConfig.PreprocessorFileName), config.Source);
        Assert.Equal([0.5, 0.5, 0.5], config.ImageMean);
    }

    [Fact]
    public void LoadVideo_VideoPreprocessorConfigPresent_WinsOverOtherFiles()
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, HubPreprocessor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]));
        WriteJson(PreprocessorConfig.ProcessorFileName, File.ReadAllText(Path.Combine(Fixtures.Model, PreprocessorConfig.ProcessorFileName)));
        WriteJson(PreprocessorConfig.VideoPreprocessorFileName, """
            {"size": {"height": 384, "width": 384}, "resample": 2, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6],
             "do_sample_frames": false, "video_processor_type": "LlavaOnevisionVideoProcessor"}
            """);

        var video = PreprocessorConfig.LoadVideo(_dir);
        var image = PreprocessorConfig.LoadImage(_dir);

        Assert.Equal(Path.Combine(_dir, PreprocessorConfig.VideoPreprocessorFileName), video.Source);
        Assert.Equal([0.1, 0.2, 0.3], video.ImageMean);
        Assert.Equal(ResampleFilter.Bilinear, video.Resample);
        Assert.Equal(Path.Combine(_dir, PreprocessorConfig.PreprocessorFileName), image.Source);
        Assert.Equal([0.5, 0.5, 0.5], image.ImageMean);
    }

    [Fact]
    public void LoadVideo_ProcessorConfigVideoObject_WinsOverPreprocessorConfig()
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, HubPreprocessor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]));
        WriteJson(PreprocessorConfig.ProcessorFileName, File.ReadAllText(Path.Combine(Fixtures.Model, PreprocessorConfig.ProcessorFileName)));

        var video = PreprocessorConfig.LoadVideo(_dir);

        Assert.EndsWith("video_processor", video.Source, StringComparison.Ordinal);
        Assert.Equal(FixtureMean, video.ImageMean);
    }

    [Fact]
    public void LoadImage_ProcessorConfigWithoutImageObject_FallsBackNowhereAndNamesTheKey()
    {
        WriteJson(PreprocessorConfig.ProcessorFileName, """{"processor_class": "LlavaOnevisionProcessor", "video_processor": {}}""");

        var ex = Assert.Throws<InvalidDataException>(() => PreprocessorConfig.LoadImage(_dir));

        Assert.Contains(PreprocessorConfig.ProcessorFileName, ex.Message, StringComparison.Ordinal);
        Assert.Contains("\"image_processor\"", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NoConfigurationFile_ThrowsFileNotFoundListingTheNamesTried()
    {
        var image = Assert.Throws<FileNotFoundException>(() => PreprocessorConfig.LoadImage(_dir));
        var video = Assert.Throws<FileNotFoundException>(() => PreprocessorConfig.LoadVideo(_dir));

        Assert.Contains(PreprocessorConfig.PreprocessorFileName, image.Message, StringComparison.Ordinal);
        Assert.Contains(PreprocessorConfig.ProcessorFileName, image.Message, StringComparison.Ordinal);
        foreach (string name in new[] { PreprocessorConfig.VideoPreprocessorFileName, PreprocessorConfig.ProcessorFileName, PreprocessorConfig.PreprocessorFileName })
        {
            Assert.Contains(name, video.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Load_MissingFolder_ThrowsDirectoryNotFound()
    {
        Assert.Throws<DirectoryNotFoundException>(() => PreprocessorConfig.LoadImage(Path.Combine(_dir, "missing")));
        Assert.Throws<ArgumentException>(() => PreprocessorConfig.LoadVideo(string.Empty));
    }

    [Theory]
    [InlineData("\"image_mean\": [0.5, 0.5]", "image_mean")]
    [InlineData("\"image_mean\": \"clip\"", "image_mean")]
    [InlineData("\"image_std\": [0.5, 0.0, 0.5]", "image_std")]
    [InlineData("\"size\": {\"height\": 384}", "size")]
    [InlineData("\"size\": {\"height\": 384, \"width\": \"384\"}", "size.width")]
    [InlineData("\"size\": {\"longest_edge\": 384}", "size.longest_edge")]
    [InlineData("\"size\": {\"height\": -1, \"width\": 384}", "size")]
    [InlineData("\"resample\": 4", "resample")]
    [InlineData("\"resample\": 9", "resample")]
    [InlineData("\"do_resize\": \"yes\"", "do_resize")]
    [InlineData("\"rescale_factor\": 0", "rescale_factor")]
    [InlineData("\"image_grid_pinpoints\": [[384]]", "image_grid_pinpoints")]
    [InlineData("\"do_center_crop\": true", "crop_size")]
    public void LoadImage_BadValue_ThrowsInvalidDataNamingFileAndKey(string field, string key)
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, HubPreprocessor([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], field));

        var ex = Assert.Throws<InvalidDataException>(() => PreprocessorConfig.LoadImage(_dir));

        Assert.Contains(Path.Combine(_dir, PreprocessorConfig.PreprocessorFileName), ex.Message, StringComparison.Ordinal);
        Assert.Contains(key, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadImage_MalformedJson_ThrowsInvalidDataNamingFile()
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, "{\"size\": ");

        var ex = Assert.Throws<InvalidDataException>(() => PreprocessorConfig.LoadImage(_dir));

        Assert.Contains(PreprocessorConfig.PreprocessorFileName, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadImage_MissingMeanAndSize_NeededOnlyWhenUsed()
    {
        WriteJson(PreprocessorConfig.PreprocessorFileName, """{"do_normalize": true, "size": {"height": 384, "width": 384}}""");
        var missingMean = Assert.Throws<InvalidDataException>(() => PreprocessorConfig.LoadImage(_dir));
        Assert.Contains("image_mean", missingMean.Message, StringComparison.Ordinal);

        WriteJson(PreprocessorConfig.PreprocessorFileName, """{"image_mean": [0, 0, 0], "image_std": [1, 1, 1]}""");
        var missingSize = Assert.Throws<InvalidDataException>(() => PreprocessorConfig.LoadImage(_dir));
        Assert.Contains("size", missingSize.Message, StringComparison.Ordinal);

        WriteJson(PreprocessorConfig.PreprocessorFileName, """{"do_normalize": false, "do_resize": false}""");
        var bare = PreprocessorConfig.LoadImage(_dir);
        Assert.Empty(bare.ImageMean);
        Assert.Null(bare.TileSize);
    }

    [Fact]
    public void Parse_SizeForms_ShortestEdgeNumberAndCropSize()
    {
        using var shortest = JsonDocument.Parse("""{"size": {"shortest_edge": 336}, "crop_size": 224, "do_center_crop": true, "image_mean": 0.5, "image_std": [0.5, 0.5, 0.5]}""");
        using var bare = JsonDocument.Parse("""{"size": 448, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 1}""");

        var a = PreprocessorConfig.Parse(shortest.RootElement, "test a");
        var b = PreprocessorConfig.Parse(bare.RootElement, "test b");

        Assert.Equal((null, null, 336), (a.Height, a.Width, a.ShortestEdge));
        Assert.Equal((224, 224), (a.CropHeight, a.CropWidth));
        Assert.Equal(224, a.TileSize);
        Assert.Equal([0.5, 0.5, 0.5], a.ImageMean);
        Assert.Equal(448, b.ShortestEdge);
        Assert.Equal(ResampleFilter.Lanczos, b.Resample);
    }

    private void WriteJson(string name, string json) => File.WriteAllText(Path.Combine(_dir, name), json);

    /// <summary>A preprocessor_config.json as llava-hf/llava-onevision-qwen2-*-ov-hf has it, with an optional extra field last.</summary>
    private static string HubPreprocessor(double[] mean, double[] std, string? extra = null)
    {
        string pinpoints = string.Join(", ", from h in Enumerable.Range(1, 6) from w in Enumerable.Range(1, 6) select $"[{384 * h}, {384 * w}]");
        string Numbers(double[] values) => string.Join(", ", values.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        return $$"""
            {
              "do_convert_rgb": true,
              "do_normalize": true,
              "do_pad": true,
              "do_rescale": true,
              "do_resize": true,
              "image_grid_pinpoints": [{{pinpoints}}],
              "image_mean": [{{Numbers(mean)}}],
              "image_processor_type": "LlavaOnevisionImageProcessor",
              "image_std": [{{Numbers(std)}}],
              "processor_class": "LlavaOnevisionProcessor",
              "resample": 3,
              "rescale_factor": 0.00392156862745098,
              "size": {"height": 384, "width": 384}{{(extra is null ? string.Empty : ",\n  " + extra)}}
            }
            """;
    }
}
