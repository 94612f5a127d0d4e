using System.Runtime.CompilerServices;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// The arithmetic of LLaVA-OneVision's "anyres" image layout, shared by the preprocessor (which cuts an image into
/// tiles) and the model (which packs the tiles' features back into one unpadded grid with a newline per row):
/// transformers' <c>select_best_resolution</c>, <c>get_patch_output_size</c>, <c>get_anyres_image_grid_shape</c>,
/// <c>image_size_to_num_patches</c>, <c>unpad_image</c>, the <c>anyres_max_N</c> downscaling of
/// <c>LlavaOnevisionModel.pack_image_features</c>, and <c>LlavaOnevisionProcessor._get_number_of_features</c>.
/// </summary>
/// <remarks>
/// Every computation repeats Python's floating-point steps (true division, <c>int()</c> truncation,
/// <c>math.ceil</c>, <c>round(x, 7)</c>, float floor division) so that sizes agree with transformers to the pixel.
/// Sizes are (height, width). All members are pure and thread-safe.
/// </remarks>
internal static class AnyResGeometry
{
    private const string MaxPrefix = "anyres_max_";

    /// <summary>
    /// The possible resolution that keeps the most of the image's pixels when the image is scaled to fit it, ties
    /// going to the one that wastes the least area (transformers' <c>select_best_resolution</c>).
    /// </summary>
    /// <param name="height">The image's height.</param>
    /// <param name="width">The image's width.</param>
    /// <param name="pinpoints">The possible resolutions (<c>image_grid_pinpoints</c>), as (height, width).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="pinpoints"/> is empty or holds a non-positive size.</exception>
    public static (int Height, int Width) SelectBestResolution(int height, int width, IReadOnlyList<(int Height, int Width)> pinpoints)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        RequirePinpoints(pinpoints);

        (int, int) best = default;
        long maxEffective = 0;
        long minWasted = long.MaxValue;
        foreach (var (h, w) in pinpoints)
        {
            double scale = Math.Min((double)w / width, (double)h / height);
            long downscaledWidth = (long)(width * scale);
            long downscaledHeight = (long)(height * scale);
            long effective = Math.Min(downscaledWidth * downscaledHeight, (long)width * height);
            long wasted = ((long)w * h) - effective;
            if (effective > maxEffective || (effective == maxEffective && wasted < minWasted))
            {
                maxEffective = effective;
                minWasted = wasted;
                best = (h, w);
            }
        }

        return best;
    }

    /// <summary>
    /// The size an image is resized to so that it fits <paramref name="targetHeight"/> x <paramref name="targetWidth"/>
    /// with its aspect ratio kept (transformers' <c>get_patch_output_size</c>); the rest is padding.
    /// </summary>
    /// <param name="height">The image's height.</param>
    /// <param name="width">The image's width.</param>
    /// <param name="targetHeight">The resolution's height.</param>
    /// <param name="targetWidth">The resolution's width.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public static (int Height, int Width) GetPatchOutputSize(int height, int width, int targetHeight, int targetWidth)
    {
        RequirePositive(height, width, targetHeight, targetWidth);
        double scaleWidth = (double)targetWidth / width;
        double scaleHeight = (double)targetHeight / height;
        return scaleWidth < scaleHeight
            ? (Math.Min((int)Math.Ceiling(height * scaleWidth), targetHeight), targetWidth)
            : (targetHeight, Math.Min((int)Math.Ceiling(width * scaleHeight), targetWidth));
    }

    /// <summary>
    /// The zero padding that centers a resized image in its resolution, the odd pixel going to the bottom or right
    /// (transformers' <c>_get_padding_size</c>).
    /// </summary>
    /// <param name="height">The resized image's height.</param>
    /// <param name="width">The resized image's width.</param>
    /// <param name="targetHeight">The resolution's height.</param>
    /// <param name="targetWidth">The resolution's width.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or the image is larger than the resolution.</exception>
    public static (int Top, int Bottom, int Left, int Right) GetPadding(int height, int width, int targetHeight, int targetWidth)
    {
        RequirePositive(height, width, targetHeight, targetWidth);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(height, targetHeight);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, targetWidth);
        int top = (targetHeight - height) / 2;
        int left = (targetWidth - width) / 2;
        return (top, targetHeight - height - top, left, targetWidth - width - left);
    }

    /// <summary>
    /// The number of tile rows and columns an image is cut into (transformers' <c>get_anyres_image_grid_shape</c>):
    /// the best resolution divided by the tile size.
    /// </summary>
    /// <param name="imageHeight">The original image's height.</param>
    /// <param name="imageWidth">The original image's width.</param>
    /// <param name="pinpoints">The possible resolutions.</param>
    /// <param name="tileSize">The side of one tile (the vision tower's <c>image_size</c>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="pinpoints"/> is empty or holds a non-positive size.</exception>
    public static (int Rows, int Columns) GetGridShape(int imageHeight, int imageWidth, IReadOnlyList<(int Height, int Width)> pinpoints, int tileSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tileSize);
        var (h, w) = SelectBestResolution(imageHeight, imageWidth, pinpoints);
        return (h / tileSize, w / tileSize);
    }

    /// <summary>
    /// The number of images the preprocessor produces for one image: the tiles of the best resolution (partial tiles
    /// counted) plus the whole image (transformers' <c>image_size_to_num_patches</c>).
    /// </summary>
    /// <param name="imageHeight">The original image's height.</param>
    /// <param name="imageWidth">The original image's width.</param>
    /// <param name="pinpoints">The possible resolutions.</param>
    /// <param name="tileSize">The side of one tile.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="pinpoints"/> is empty or holds a non-positive size.</exception>
    public static int GetNumPatches(int imageHeight, int imageWidth, IReadOnlyList<(int Height, int Width)> pinpoints, int tileSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tileSize);
        var (h, w) = SelectBestResolution(imageHeight, imageWidth, pinpoints);
        return (CeilDiv(h, tileSize) * CeilDiv(w, tileSize)) + 1;
    }

    /// <summary>
    /// The part of a padded feature map (or image) that holds the original image (transformers' <c>unpad_image</c>):
    /// the padding that resizing-with-aspect-ratio added is cut symmetrically from the longer-than-needed side.
    /// </summary>
    /// <param name="currentHeight">The padded map's height (tile rows x patches per side for features).</param>
    /// <param name="currentWidth">The padded map's width.</param>
    /// <param name="originalHeight">The original image's height.</param>
    /// <param name="originalWidth">The original image's width.</param>
    /// <returns>The kept rectangle: rows <c>Top .. Top + Height</c>, columns <c>Left .. Left + Width</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public static (int Top, int Left, int Height, int Width) GetUnpadRegion(int currentHeight, int currentWidth, int originalHeight, int originalWidth)
    {
        RequirePositive(currentHeight, currentWidth, originalHeight, originalWidth);
        double originalAspect = (double)originalWidth / originalHeight;
        double currentAspect = (double)currentWidth / currentHeight;
        if (originalAspect > currentAspect)
        {
            double scale = (double)currentWidth / originalWidth;
            int newHeight = (int)Math.Round(originalHeight * scale, 7, MidpointRounding.ToEven);
            int padding = FloorDiv(currentHeight - newHeight, 2);
            return (padding, 0, currentHeight - (2 * padding), currentWidth);
        }
        else
        {
            double scale = (double)currentHeight / originalHeight;
            int newWidth = (int)Math.Round(originalWidth * scale, 7, MidpointRounding.ToEven);
            int padding = FloorDiv(currentWidth - newWidth, 2);
            return (0, padding, currentHeight, currentWidth - (2 * padding));
        }
    }

    /// <summary>The N of a <c>vision_aspect_ratio</c> of the form <c>anyres_max_N</c> (9 for LLaVA-OneVision).</summary>
    /// <param name="visionAspectRatio">The model's <c>vision_aspect_ratio</c>, e.g. <c>anyres_max_9</c>.</param>
    /// <exception cref="ArgumentException">The value is not of the form <c>anyres_max_N</c> with a positive N.</exception>
    public static int ParseMaxNumPatches(string visionAspectRatio)
    {
        ArgumentException.ThrowIfNullOrEmpty(visionAspectRatio);
        if (!visionAspectRatio.StartsWith(MaxPrefix, StringComparison.Ordinal)
            || !int.TryParse(visionAspectRatio.AsSpan(MaxPrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int max)
            || max <= 0)
        {
            throw new ArgumentException(
                $"vision_aspect_ratio '{visionAspectRatio}' is not supported; expected anyres_max_N with a positive N (LLaVA-OneVision uses anyres_max_9).",
                nameof(visionAspectRatio));
        }

        return max;
    }

    /// <summary>
    /// The size an unpadded feature map is brought down to when it holds more than about N tiles' worth of features
    /// (the <c>anyres_max_N</c> rule): with <c>ratio = sqrt(height * width / (N * patchesPerSide^2))</c>, maps with
    /// ratio above 1.1 become <c>(floor(height / ratio), floor(width / ratio))</c>, which the model reaches by
    /// bilinear interpolation; smaller maps keep their size.
    /// </summary>
    /// <param name="height">The unpadded map's height.</param>
    /// <param name="width">The unpadded map's width.</param>
    /// <param name="patchesPerSide">Features per tile side (vision <c>image_size / patch_size</c>; sqrt of <c>num_image_tokens</c>).</param>
    /// <param name="maxNumPatches">N, from <see cref="ParseMaxNumPatches"/>.</param>
    /// <remarks>
    /// A map may be empty: unpadding a very elongated image can leave zero rows or columns (a 9x400 image in a 10x15
    /// map), and transformers then counts no grid features at all.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative, or <paramref name="patchesPerSide"/> or <paramref name="maxNumPatches"/> is not positive.</exception>
    public static (int Height, int Width) GetAnyResMaxSize(int height, int width, int patchesPerSide, int maxNumPatches)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(height);
        ArgumentOutOfRangeException.ThrowIfNegative(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(patchesPerSide);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNumPatches);
        double ratio = Math.Sqrt((double)((long)height * width) / ((long)maxNumPatches * patchesPerSide * patchesPerSide));
        return ratio > 1.1
            ? ((int)PyFloorDiv(height, ratio), (int)PyFloorDiv(width, ratio))
            : (height, width);
    }

    /// <summary>
    /// The size of an image's packed feature grid, before the newline column: tile grid x patches per side, unpadded
    /// (<see cref="GetUnpadRegion"/>), then limited by <see cref="GetAnyResMaxSize"/>.
    /// </summary>
    /// <param name="imageHeight">The original image's height.</param>
    /// <param name="imageWidth">The original image's width.</param>
    /// <param name="pinpoints">The possible resolutions.</param>
    /// <param name="tileSize">The side of one tile in pixels.</param>
    /// <param name="patchesPerSide">Features per tile side.</param>
    /// <param name="maxNumPatches">N of <c>anyres_max_N</c>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="pinpoints"/> is empty, or the best resolution is smaller than a tile.</exception>
    public static (int Height, int Width) GetPackedGridSize(
        int imageHeight, int imageWidth, IReadOnlyList<(int Height, int Width)> pinpoints, int tileSize, int patchesPerSide, int maxNumPatches)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(patchesPerSide);
        var (rows, columns) = GetGridShape(imageHeight, imageWidth, pinpoints, tileSize);
        if (rows == 0 || columns == 0)
        {
            throw new ArgumentException($"The best resolution for {imageHeight}x{imageWidth} is smaller than one {tileSize}-pixel tile.", nameof(pinpoints));
        }

        var region = GetUnpadRegion(rows * patchesPerSide, columns * patchesPerSide, imageHeight, imageWidth);
        return GetAnyResMaxSize(region.Height, region.Width, patchesPerSide, maxNumPatches);
    }

    /// <summary>
    /// The number of image features (and so of <c>&lt;image&gt;</c> placeholder tokens) for one single-image input:
    /// the packed grid, one newline feature per grid row, and the whole-image tile's features
    /// (transformers' <c>LlavaOnevisionProcessor._get_number_of_features</c>, vision_feature_select_strategy "full").
    /// </summary>
    /// <param name="imageHeight">The original image's height.</param>
    /// <param name="imageWidth">The original image's width.</param>
    /// <param name="pinpoints">The possible resolutions.</param>
    /// <param name="tileSize">The side of one tile in pixels.</param>
    /// <param name="patchesPerSide">Features per tile side.</param>
    /// <param name="maxNumPatches">N of <c>anyres_max_N</c>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="pinpoints"/> is empty, or the best resolution is smaller than a tile.</exception>
    public static int CountImageFeatures(
        int imageHeight, int imageWidth, IReadOnlyList<(int Height, int Width)> pinpoints, int tileSize, int patchesPerSide, int maxNumPatches)
    {
        var (h, w) = GetPackedGridSize(imageHeight, imageWidth, pinpoints, tileSize, patchesPerSide, maxNumPatches);
        return (h * w) + h + (patchesPerSide * patchesPerSide);
    }

    /// <summary>Python's float floor division <c>a // b</c> (via fmod, as CPython computes it), for positive operands.</summary>
    private static double PyFloorDiv(double a, double b)
    {
        double mod = a % b;
        double div = (a - mod) / b;
        if (mod != 0 && (b < 0) != (mod < 0))
        {
            div -= 1.0;
        }

        if (div == 0)
        {
            return 0;
        }

        double floor = Math.Floor(div);
        return div - floor > 0.5 ? floor + 1.0 : floor;
    }

    private static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;

    private static void RequirePositive(
        int a, int b, int c, int d,
        [CallerArgumentExpression(nameof(a))] string? aName = null,
        [CallerArgumentExpression(nameof(b))] string? bName = null,
        [CallerArgumentExpression(nameof(c))] string? cName = null,
        [CallerArgumentExpression(nameof(d))] string? dName = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(a, aName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(b, bName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(c, cName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, dName);
    }

    private static void RequirePinpoints(IReadOnlyList<(int Height, int Width)> pinpoints)
    {
        ArgumentNullException.ThrowIfNull(pinpoints);
        if (pinpoints.Count == 0)
        {
            throw new ArgumentException("image_grid_pinpoints is empty; the anyres layout needs at least one resolution.", nameof(pinpoints));
        }

        if (pinpoints.Any(p => p.Height <= 0 || p.Width <= 0))
        {
            throw new ArgumentException("image_grid_pinpoints must hold positive (height, width) pairs.", nameof(pinpoints));
        }
    }
}
