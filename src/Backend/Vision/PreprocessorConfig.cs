using System.Text.Json;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// The pixel settings of a checkpoint's image or video processor (transformers' <c>LlavaOnevisionImageProcessor</c>
/// and <c>LlavaOnevisionVideoProcessor</c>): target size, resampling filter, rescale factor, mean and standard
/// deviation, and the anyres grid of possible resolutions.
/// </summary>
/// <remarks>
/// <para>
/// Three layouts are read. Hub checkpoints have <c>preprocessor_config.json</c> (the image processor's fields at the
/// top level) and sometimes <c>video_preprocessor_config.json</c> (the video processor's); transformers 5's
/// <c>save_pretrained</c> writes one <c>processor_config.json</c> with nested <c>image_processor</c> and
/// <c>video_processor</c> objects. The specific files win over the combined one, and the video processor falls back to
/// the image processor's settings when a checkpoint has none of its own.
/// </para>
/// <para>
/// Nothing pixel-related is assumed: <c>size</c> is required when <c>do_resize</c> is on, and <c>image_mean</c> and
/// <c>image_std</c> when <c>do_normalize</c> is on. Switches left out take transformers' defaults (on), the rescale
/// factor 1/255 and the filter bicubic, as LLaVA-OneVision's processor classes do.
/// </para>
/// <para>Instances are immutable and thread-safe.</para>
/// </remarks>
public sealed record PreprocessorConfig
{
    /// <summary>The Hub's image processor file: the image processor's fields at the top level.</summary>
    public const string PreprocessorFileName = "preprocessor_config.json";

    /// <summary>The Hub's video processor file: the video processor's fields at the top level.</summary>
    public const string VideoPreprocessorFileName = "video_preprocessor_config.json";

    /// <summary>transformers 5's combined file, with nested <c>image_processor</c> and <c>video_processor</c> objects.</summary>
    public const string ProcessorFileName = "processor_config.json";

    private const int Channels = 3;

    /// <summary>Where the settings came from (a file, and the nested object if any); used in error messages.</summary>
    public string Source { get; init; } = "(in code)";

    /// <summary>Whether images are resized to <see cref="Height"/> x <see cref="Width"/> (or <see cref="ShortestEdge"/>).</summary>
    public bool DoResize { get; init; } = true;

    /// <summary>Target height (<c>size.height</c>), or <see langword="null"/> when the size is a shortest edge.</summary>
    public int? Height { get; init; }

    /// <summary>Target width (<c>size.width</c>), or <see langword="null"/> when the size is a shortest edge.</summary>
    public int? Width { get; init; }

    /// <summary>Target shortest edge (<c>size.shortest_edge</c>; the longer edge keeps the aspect ratio), or <see langword="null"/>.</summary>
    public int? ShortestEdge { get; init; }

    /// <summary>The resampling filter (<c>resample</c>).</summary>
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;

    /// <summary>Whether images are center-cropped to <see cref="CropHeight"/> x <see cref="CropWidth"/> after resizing.</summary>
    public bool DoCenterCrop { get; init; }

    /// <summary>Center-crop height (<c>crop_size.height</c>), or <see langword="null"/>.</summary>
    public int? CropHeight { get; init; }

    /// <summary>Center-crop width (<c>crop_size.width</c>), or <see langword="null"/>.</summary>
    public int? CropWidth { get; init; }

    /// <summary>Whether pixel values are multiplied by <see cref="RescaleFactor"/>.</summary>
    public bool DoRescale { get; init; } = true;

    /// <summary>The rescale factor (<c>rescale_factor</c>, normally 1/255).</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255.0;

    /// <summary>Whether pixel values are normalized with <see cref="ImageMean"/> and <see cref="ImageStd"/>.</summary>
    public bool DoNormalize { get; init; } = true;

    /// <summary>Per-channel (R, G, B) mean (<c>image_mean</c>), in the rescaled range.</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = Array.Empty<double>();

    /// <summary>Per-channel (R, G, B) standard deviation (<c>image_std</c>), in the rescaled range.</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = Array.Empty<double>();

    /// <summary>Whether images are converted to RGB (<c>do_convert_rgb</c>); inputs here are RGB already.</summary>
    public bool DoConvertRgb { get; init; } = true;

    /// <summary>Whether a batch of images is padded to the same number of tiles (<c>do_pad</c>).</summary>
    public bool DoPad { get; init; } = true;

    /// <summary>The anyres grid's possible resolutions as (height, width) (<c>image_grid_pinpoints</c>); empty for video processors.</summary>
    public IReadOnlyList<(int Height, int Width)> ImageGridPinpoints { get; init; } = Array.Empty<(int, int)>();

    /// <summary>
    /// The side of one anyres tile, as transformers chooses it: <c>crop_size.height</c> when set, else
    /// <c>size.height</c>, else <c>size.shortest_edge</c>; <see langword="null"/> when none is set.
    /// </summary>
    public int? TileSize => CropHeight ?? Height ?? ShortestEdge;

    /// <summary>
    /// Loads the image processor's settings of a checkpoint folder: <c>preprocessor_config.json</c>, else the
    /// <c>image_processor</c> object of <c>processor_config.json</c>.
    /// </summary>
    /// <param name="checkpointDir">The checkpoint folder.</param>
    /// <exception cref="ArgumentException"><paramref name="checkpointDir"/> is null or empty.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">None of the files exists; the message lists the names tried.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or a value is missing or invalid; the message names the file and the key.</exception>
    public static PreprocessorConfig LoadImage(string checkpointDir)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointDir);
        RequireDirectory(checkpointDir);
        string preprocessor = Path.Combine(checkpointDir, PreprocessorFileName);
        string processor = Path.Combine(checkpointDir, ProcessorFileName);
        if (File.Exists(preprocessor))
        {
            return LoadFile(preprocessor, section: null);
        }

        if (File.Exists(processor))
        {
            return LoadFile(processor, "image_processor");
        }

        throw new FileNotFoundException(
            $"No image processor configuration in '{checkpointDir}': tried {PreprocessorFileName} and {ProcessorFileName} (its \"image_processor\" object).",
            preprocessor);
    }

    /// <summary>
    /// Loads the video processor's settings of a checkpoint folder: <c>video_preprocessor_config.json</c>, else the
    /// <c>video_processor</c> object of <c>processor_config.json</c>, else the image processor's settings
    /// (<see cref="LoadImage"/>).
    /// </summary>
    /// <param name="checkpointDir">The checkpoint folder.</param>
    /// <exception cref="ArgumentException"><paramref name="checkpointDir"/> is null or empty.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">None of the files exists; the message lists the names tried.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or a value is missing or invalid; the message names the file and the key.</exception>
    public static PreprocessorConfig LoadVideo(string checkpointDir)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointDir);
        RequireDirectory(checkpointDir);
        string video = Path.Combine(checkpointDir, VideoPreprocessorFileName);
        string preprocessor = Path.Combine(checkpointDir, PreprocessorFileName);
        string processor = Path.Combine(checkpointDir, ProcessorFileName);
        if (File.Exists(video))
        {
            return LoadFile(video, section: null);
        }

        if (File.Exists(processor) && HasObject(processor, "video_processor"))
        {
            return LoadFile(processor, "video_processor");
        }

        if (File.Exists(preprocessor))
        {
            return LoadFile(preprocessor, section: null);
        }

        if (File.Exists(processor))
        {
            return LoadFile(processor, "image_processor");
        }

        throw new FileNotFoundException(
            $"No video processor configuration in '{checkpointDir}': tried {VideoPreprocessorFileName}, {ProcessorFileName} "
            + $"(its \"video_processor\", then \"image_processor\" object) and {PreprocessorFileName}.",
            video);
    }

    /// <summary>Parses a processor object (the fields at its top level); <paramref name="source"/> names it in errors.</summary>
    /// <param name="element">The JSON object.</param>
    /// <param name="source">What to call it in error messages, e.g. the file and section.</param>
    /// <exception cref="ArgumentException"><paramref name="source"/> is null or empty.</exception>
    /// <exception cref="InvalidDataException">A value is missing, of the wrong type or invalid; the message names the key.</exception>
    public static PreprocessorConfig Parse(JsonElement element, string source)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"'{source}': expected a JSON object, found {element.ValueKind}.");
        }

        var reader = new Reader(element, source);
        (int? height, int? width, int? shortest) = reader.Size("size");
        (int? cropHeight, int? cropWidth, int? cropShortest) = reader.Size("crop_size");
        if (cropShortest is not null)
        {
            // get_size_dict(crop_size, default_to_square=True) turns a single number into a square.
            (cropHeight, cropWidth) = (cropShortest, cropShortest);
        }

        var config = new PreprocessorConfig
        {
            Source = source,
            DoResize = reader.Bool("do_resize", true),
            Height = height,
            Width = width,
            ShortestEdge = shortest,
            Resample = reader.Resample("resample"),
            DoCenterCrop = reader.Bool("do_center_crop", false),
            CropHeight = cropHeight,
            CropWidth = cropWidth,
            DoRescale = reader.Bool("do_rescale", true),
            RescaleFactor = reader.Double("rescale_factor", 1.0 / 255.0),
            DoNormalize = reader.Bool("do_normalize", true),
            ImageMean = reader.Channels("image_mean"),
            ImageStd = reader.Channels("image_std"),
            DoConvertRgb = reader.Bool("do_convert_rgb", true),
            DoPad = reader.Bool("do_pad", true),
            ImageGridPinpoints = reader.Pinpoints("image_grid_pinpoints"),
        };

        if (config.FindProblem() is { } problem)
        {
            throw new InvalidDataException($"'{source}': {problem}");
        }

        return config;
    }

    /// <summary>
    /// The first thing wrong with these settings for preprocessing, or <see langword="null"/> when they are usable;
    /// the text names the JSON key.
    /// </summary>
    internal string? FindProblem()
    {
        if ((Height is null) != (Width is null))
        {
            return "size must have both \"height\" and \"width\", or \"shortest_edge\".";
        }

        if (Height is <= 0 || Width is <= 0 || ShortestEdge is <= 0)
        {
            return $"size values must be positive; got height {Height}, width {Width}, shortest_edge {ShortestEdge}.";
        }

        if (DoResize && Height is null && ShortestEdge is null)
        {
            return "size is missing, but do_resize is true; expected {\"height\": H, \"width\": W} or {\"shortest_edge\": S}.";
        }

        if (Resample is not (ResampleFilter.Nearest or ResampleFilter.Lanczos or ResampleFilter.Bilinear or ResampleFilter.Bicubic))
        {
            return $"resample {(int)Resample} ({Resample}) is not supported for tensors; allowed: 0 (nearest), 1 (lanczos, applied as bicubic), 2 (bilinear), 3 (bicubic).";
        }

        if (DoCenterCrop && (CropHeight is not > 0 || CropWidth is not > 0))
        {
            return "crop_size must have positive \"height\" and \"width\" when do_center_crop is true.";
        }

        if (DoRescale && (!double.IsFinite(RescaleFactor) || RescaleFactor <= 0))
        {
            return $"rescale_factor is {RescaleFactor}; it must be a positive number.";
        }

        if (DoNormalize)
        {
            if (ImageMean.Count != Channels || ImageMean.Any(m => !double.IsFinite(m)))
            {
                return $"image_mean must list {Channels} finite numbers (R, G, B) when do_normalize is true; it has {ImageMean.Count}.";
            }

            if (ImageStd.Count != Channels || ImageStd.Any(s => !double.IsFinite(s) || s == 0))
            {
                return $"image_std must list {Channels} finite, non-zero numbers (R, G, B) when do_normalize is true; got [{string.Join(", ", ImageStd)}].";
            }
        }

        if (ImageGridPinpoints.Any(p => p.Height <= 0 || p.Width <= 0))
        {
            return "image_grid_pinpoints must hold positive [height, width] pairs.";
        }

        return null;
    }

    private static void RequireDirectory(string checkpointDir)
    {
        if (!Directory.Exists(checkpointDir))
        {
            throw new DirectoryNotFoundException($"Checkpoint folder '{checkpointDir}' does not exist.");
        }
    }

    private static JsonDocument ReadJson(string file)
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

    private static bool HasObject(string file, string key)
    {
        using var doc = ReadJson(file);
        return doc.RootElement.ValueKind == JsonValueKind.Object
            && doc.RootElement.TryGetProperty(key, out var value)
            && value.ValueKind == JsonValueKind.Object;
    }

    private static PreprocessorConfig LoadFile(string file, string? section)
    {
        using var doc = ReadJson(file);
        var root = doc.RootElement;
        if (section is null)
        {
            return Parse(root, file);
        }

        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(section, out var nested) || nested.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"'{file}' has no \"{section}\" object.");
        }

        return Parse(nested, $"{file}: {section}");
    }

    /// <summary>Typed reads whose errors name the key.</summary>
    private readonly struct Reader(JsonElement element, string source)
    {
        public bool Bool(string key, bool fallback) => Value(key) switch
        {
            null => fallback,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            { } v => throw Wrong(key, "true or false", v),
        };

        public double Double(string key, double fallback) => Value(key) switch
        {
            null => fallback,
            { ValueKind: JsonValueKind.Number } v => v.GetDouble(),
            { } v => throw Wrong(key, "a number", v),
        };

        public ResampleFilter Resample(string key) => Value(key) switch
        {
            null => ResampleFilter.Bicubic,
            { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int code) && Enum.IsDefined((ResampleFilter)code) => (ResampleFilter)code,
            { } v => throw Wrong(key, "a PIL filter code 0-5", v),
        };

        public IReadOnlyList<double> Channels(string key) => Value(key) switch
        {
            null => Array.Empty<double>(),

            // A single number applies to every channel, as transformers broadcasts it.
            { ValueKind: JsonValueKind.Number } v => [v.GetDouble(), v.GetDouble(), v.GetDouble()],
            { ValueKind: JsonValueKind.Array } v when v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number)
                => v.EnumerateArray().Select(e => e.GetDouble()).ToArray(),
            { } v => throw Wrong(key, "a list of numbers", v),
        };

        public (int? Height, int? Width, int? ShortestEdge) Size(string key)
        {
            switch (Value(key))
            {
                case null:
                    return (null, null, null);
                case { ValueKind: JsonValueKind.Number } v:
                    // Older configs store a bare number: get_size_dict makes it {"shortest_edge": n}.
                    return (null, null, Int(key, v));
                case { ValueKind: JsonValueKind.Object } v:
                    foreach (var property in v.EnumerateObject())
                    {
                        if (property.Name is not ("height" or "width" or "shortest_edge") && property.Value.ValueKind != JsonValueKind.Null)
                        {
                            throw new InvalidDataException(
                                $"'{source}': {key}.{property.Name} is not supported; expected {{\"height\": H, \"width\": W}} or {{\"shortest_edge\": S}}.");
                        }
                    }

                    int? height = Member(v, key, "height");
                    int? width = Member(v, key, "width");
                    int? shortest = Member(v, key, "shortest_edge");
                    if (shortest is not null && (height is not null || width is not null))
                    {
                        throw new InvalidDataException($"'{source}': {key} has both shortest_edge and height/width; expected one of them.");
                    }

                    return (height, width, shortest);
                case { } v:
                    throw Wrong(key, "an object such as {\"height\": 384, \"width\": 384}", v);
            }
        }

        public IReadOnlyList<(int Height, int Width)> Pinpoints(string key)
        {
            switch (Value(key))
            {
                case null:
                    return Array.Empty<(int, int)>();
                case { ValueKind: JsonValueKind.Array } v:
                    var result = new List<(int, int)>();
                    foreach (var pair in v.EnumerateArray())
                    {
                        if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2
                            || !pair[0].TryGetInt32(out int h) || !pair[1].TryGetInt32(out int w))
                        {
                            throw Wrong(key, "a list of [height, width] integer pairs", pair);
                        }

                        result.Add((h, w));
                    }

                    return result;
                case { } v:
                    throw Wrong(key, "a list of [height, width] integer pairs", v);
            }
        }

        private JsonElement? Value(string key)
            => element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        private int? Member(JsonElement obj, string key, string name)
            => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? Int($"{key}.{name}", v) : null;

        private int Int(string key, JsonElement v)
            => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int value) ? value : throw Wrong(key, "an integer", v);

        private InvalidDataException Wrong(string key, string expected, JsonElement actual)
            => new($"'{source}': {key} must be {expected}; found {actual.GetRawText()}.");
    }
}
