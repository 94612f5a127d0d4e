using System.Text.Json;
using VidKV.AI.Backend.Vision;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The settings of a Qwen2-VL / Qwen2.5-VL image or video processor (transformers' <c>Qwen2VLImageProcessor</c> and
/// <c>Qwen2VLVideoProcessor</c>): the pixel budget of the dynamic resolution (<c>min_pixels</c>, <c>max_pixels</c>, or
/// <c>size.shortest_edge</c> / <c>size.longest_edge</c>), patch sizes, mean and standard deviation, and for videos the
/// frame sampling (<c>fps</c>, <c>min_frames</c>, <c>max_frames</c>).
/// </summary>
/// <remarks>
/// Read from <c>preprocessor_config.json</c> / <c>video_preprocessor_config.json</c> (the Hub's files, fields at the top
/// level) or the nested objects of <c>processor_config.json</c> (transformers 5's save_pretrained); the video processor
/// falls back to the image processor's settings, as transformers does. Immutable and thread-safe.
/// </remarks>
public sealed record QwenProcessorConfig
{
    /// <summary>Where the settings were read from.</summary>
    public string Source { get; init; } = "(in code)";

    /// <summary>Fewest pixels of a resized image or frame.</summary>
    public long MinPixels { get; init; } = 56 * 56;

    /// <summary>Most pixels of a resized image or frame.</summary>
    public long MaxPixels { get; init; } = 28 * 28 * 1280;

    /// <summary>Patch side in pixels.</summary>
    public int PatchSize { get; init; } = 14;

    /// <summary>Frames per patch.</summary>
    public int TemporalPatchSize { get; init; } = 2;

    /// <summary>Patches merged per side.</summary>
    public int MergeSize { get; init; } = 2;

    /// <summary>Whether images are resized (to multiples of patch x merge within the pixel budget).</summary>
    public bool DoResize { get; init; } = true;

    /// <summary>Resampling filter.</summary>
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;

    /// <summary>Whether pixels are multiplied by <see cref="RescaleFactor"/>.</summary>
    public bool DoRescale { get; init; } = true;

    /// <summary>Rescale factor (1/255).</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255.0;

    /// <summary>Whether pixels are normalized by mean and standard deviation.</summary>
    public bool DoNormalize { get; init; } = true;

    /// <summary>Per-channel mean.</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = [0.48145466, 0.4578275, 0.40821073];

    /// <summary>Per-channel standard deviation.</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>Frames sampled per second of video.</summary>
    public double Fps { get; init; } = 2.0;

    /// <summary>Fewest frames sampled from a video.</summary>
    public int MinFrames { get; init; } = 4;

    /// <summary>Most frames sampled from a video.</summary>
    public int MaxFrames { get; init; } = 768;

    /// <summary>Side multiple of resized images: patch size x merge size (28).</summary>
    public int Factor => PatchSize * MergeSize;

    /// <summary>These settings as the shared pixel operations take them.</summary>
    internal PreprocessorConfig Pixels => new()
    {
        Source = Source,
        DoRescale = DoRescale,
        RescaleFactor = RescaleFactor,
        DoNormalize = DoNormalize,
        ImageMean = ImageMean,
        ImageStd = ImageStd,
    };

    /// <summary>The image processor's settings of a checkpoint folder.</summary>
    /// <exception cref="FileNotFoundException">No processor file is there.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or a value invalid; the message names the file and key.</exception>
    public static QwenProcessorConfig LoadImage(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string preprocessor = Path.Combine(directory, "preprocessor_config.json");
        string processor = Path.Combine(directory, "processor_config.json");
        if (File.Exists(preprocessor))
        {
            return LoadFile(preprocessor, null, null);
        }

        if (File.Exists(processor))
        {
            return LoadFile(processor, "image_processor", null);
        }

        throw new FileNotFoundException($"No image processor configuration in '{directory}': tried preprocessor_config.json and processor_config.json (its \"image_processor\" object).", preprocessor);
    }

    /// <summary>The video processor's settings of a checkpoint folder (else the image processor's, with video defaults).</summary>
    /// <exception cref="FileNotFoundException">No processor file is there.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or a value invalid; the message names the file and key.</exception>
    public static QwenProcessorConfig LoadVideo(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string video = Path.Combine(directory, "video_preprocessor_config.json");
        string processor = Path.Combine(directory, "processor_config.json");
        if (File.Exists(video))
        {
            return LoadFile(video, null, null);
        }

        if (File.Exists(processor))
        {
            using var doc = Read(processor);
            if (doc.RootElement.TryGetProperty("video_processor", out var v) && v.ValueKind == JsonValueKind.Object)
            {
                return Parse(v, processor + ": video_processor", null);
            }
        }

        // No video settings: transformers' video processor reads the image processor's file, with its own defaults.
        var image = LoadImage(directory);
        return new QwenProcessorConfig
        {
            Source = image.Source, MinPixels = image.MinPixels, MaxPixels = image.MaxPixels, PatchSize = image.PatchSize,
            TemporalPatchSize = image.TemporalPatchSize, MergeSize = image.MergeSize, DoResize = image.DoResize, Resample = image.Resample,
            DoRescale = image.DoRescale, RescaleFactor = image.RescaleFactor, DoNormalize = image.DoNormalize,
            ImageMean = image.ImageMean, ImageStd = image.ImageStd,
        };
    }

    /// <summary>Parses one processor object; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">A value is of the wrong type or invalid; the message names the key.</exception>
    public static QwenProcessorConfig Parse(JsonElement element, string source, QwenProcessorConfig? defaults)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"'{source}': expected a JSON object, found {element.ValueKind}.");
        }

        var d = defaults ?? new QwenProcessorConfig();
        JsonElement? Get(string key) => element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
        T Number<T>(string key, T fallback, Func<JsonElement, T> read)
        {
            if (Get(key) is not { } v)
            {
                return fallback;
            }

            try
            {
                return read(v);
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"'{source}': {key} must be a number; got {v.GetRawText()}.", ex);
            }
        }

        IReadOnlyList<double> Channels(string key, IReadOnlyList<double> fallback) => Get(key) switch
        {
            null => fallback,
            { ValueKind: JsonValueKind.Number } v => [v.GetDouble(), v.GetDouble(), v.GetDouble()],
            { ValueKind: JsonValueKind.Array } v when v.GetArrayLength() == 3 && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number)
                => v.EnumerateArray().Select(e => e.GetDouble()).ToArray(),
            { } v => throw new InvalidDataException($"'{source}': {key} must be three numbers; got {v.GetRawText()}."),
        };

        bool Flag(string key, bool fallback) => Get(key) switch
        {
            null => fallback,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            { } v => throw new InvalidDataException($"'{source}': {key} must be true or false; got {v.GetRawText()}."),
        };

        long min = d.MinPixels, max = d.MaxPixels;
        if (Get("size") is { ValueKind: JsonValueKind.Object } size)
        {
            if (size.TryGetProperty("shortest_edge", out var se) && se.ValueKind == JsonValueKind.Number)
            {
                min = se.GetInt64();
            }

            if (size.TryGetProperty("longest_edge", out var le) && le.ValueKind == JsonValueKind.Number)
            {
                max = le.GetInt64();
            }
        }

        // min_pixels and max_pixels override size, as the processors' constructors do.
        min = Number("min_pixels", min, v => v.GetInt64());
        max = Number("max_pixels", max, v => v.GetInt64());
        int resample = Number("resample", (int)d.Resample, v => v.GetInt32());
        var config = new QwenProcessorConfig
        {
            Source = source,
            MinPixels = min,
            MaxPixels = max,
            PatchSize = Number("patch_size", d.PatchSize, v => v.GetInt32()),
            TemporalPatchSize = Number("temporal_patch_size", d.TemporalPatchSize, v => v.GetInt32()),
            MergeSize = Number("merge_size", d.MergeSize, v => v.GetInt32()),
            DoResize = Flag("do_resize", d.DoResize),
            Resample = Enum.IsDefined((ResampleFilter)resample) ? (ResampleFilter)resample
                : throw new InvalidDataException($"'{source}': resample is {resample}; allowed: PIL filter codes 0-5."),
            DoRescale = Flag("do_rescale", d.DoRescale),
            RescaleFactor = Number("rescale_factor", d.RescaleFactor, v => v.GetDouble()),
            DoNormalize = Flag("do_normalize", d.DoNormalize),
            ImageMean = Channels("image_mean", d.ImageMean),
            ImageStd = Channels("image_std", d.ImageStd),
            Fps = Number("fps", d.Fps, v => v.GetDouble()),
            MinFrames = Number("min_frames", d.MinFrames, v => v.GetInt32()),
            MaxFrames = Number("max_frames", d.MaxFrames, v => v.GetInt32()),
        };
        if (config.MinPixels <= 0 || config.MaxPixels < config.MinPixels)
        {
            throw new InvalidDataException($"'{source}': the pixel budget must satisfy 0 < min_pixels ({config.MinPixels}) <= max_pixels ({config.MaxPixels}).");
        }

        if (config.PatchSize <= 0 || config.TemporalPatchSize <= 0 || config.MergeSize <= 0 || config.Fps <= 0 || config.MinFrames <= 0 || config.MaxFrames < config.MinFrames)
        {
            throw new InvalidDataException(
                $"'{source}': patch_size ({config.PatchSize}), temporal_patch_size ({config.TemporalPatchSize}), merge_size ({config.MergeSize}), fps ({config.Fps}) and min_frames ({config.MinFrames}) must be positive and max_frames ({config.MaxFrames}) at least min_frames.");
        }

        return config;
    }

    private static QwenProcessorConfig LoadFile(string file, string? section, QwenProcessorConfig? defaults)
    {
        using var doc = Read(file);
        if (section is null)
        {
            return Parse(doc.RootElement, file, defaults);
        }

        return doc.RootElement.TryGetProperty(section, out var nested) && nested.ValueKind == JsonValueKind.Object
            ? Parse(nested, $"{file}: {section}", defaults)
            : throw new InvalidDataException($"'{file}' has no \"{section}\" object.");
    }

    private static JsonDocument Read(string file)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(file));
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{file}' is not valid JSON: {ex.Message}", ex);
        }
    }
}
