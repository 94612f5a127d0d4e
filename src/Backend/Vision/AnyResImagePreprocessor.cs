using static TorchSharp.torch;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// LLaVA-OneVision's single-image preprocessing, as transformers 5.17's <c>LlavaOnevisionImageProcessor</c>
/// (torchvision backend) does it: choose the best of the configured resolutions (<c>image_grid_pinpoints</c>), resize
/// the image into it keeping the aspect ratio, zero-pad it to that resolution, cut it into S x S tiles, put the whole
/// image resized to S x S in front, then rescale and normalize with the checkpoint's mean and std.
/// </summary>
/// <remarks>
/// Covers the single-image case, the one that is tiled; transformers gives each image of a multi-image prompt a
/// single square tile instead. Stateless after construction and thread-safe.
/// </remarks>
public sealed class AnyResImagePreprocessor
{
    private readonly int _tileSize;
    private readonly int _baseSize;

    /// <summary>Creates a preprocessor from explicit settings.</summary>
    /// <param name="config">The image processor's settings, usually from <see cref="PreprocessorConfig.LoadImage"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentException">
    /// The settings are unusable: no <c>image_grid_pinpoints</c>, no size, a size that is not square, or an invalid
    /// value; the message names it.
    /// </exception>
    public AnyResImagePreprocessor(PreprocessorConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        string? problem = config.FindProblem();
        if (problem is null && config.ImageGridPinpoints.Count == 0)
        {
            problem = "image_grid_pinpoints is missing or empty; the anyres layout needs the possible resolutions.";
        }

        if (problem is null && config.TileSize is null)
        {
            problem = "size is missing; the anyres layout needs the tile size.";
        }

        if (problem is null && config.Height is int h && config.Width is int w && h != w)
        {
            problem = $"size is {h}x{w}; the anyres layout needs square tiles (height equal to width).";
        }

        if (problem is not null)
        {
            throw new ArgumentException($"'{config.Source}': {problem}", nameof(config));
        }

        Config = config;
        _tileSize = config.TileSize!.Value;

        // transformers resizes the whole image to size (height, or shortest_edge), the tiles to crop_size when set.
        _baseSize = config.Height ?? config.ShortestEdge ?? _tileSize;
    }

    /// <summary>The settings in use.</summary>
    public PreprocessorConfig Config { get; }

    /// <summary>The side S of one tile in pixels (<see cref="PreprocessorConfig.TileSize"/>).</summary>
    public int TileSize => _tileSize;

    /// <summary>Creates a preprocessor from a checkpoint folder's image processor settings (<see cref="PreprocessorConfig.LoadImage"/>).</summary>
    /// <param name="checkpointDir">The checkpoint folder.</param>
    /// <exception cref="FileNotFoundException">The folder has no processor configuration.</exception>
    /// <exception cref="InvalidDataException">The configuration is malformed; the message names the file and the key.</exception>
    /// <exception cref="ArgumentException">The settings cannot drive the anyres layout (for example, no pinpoints).</exception>
    public static AnyResImagePreprocessor FromCheckpoint(string checkpointDir) => new(PreprocessorConfig.LoadImage(checkpointDir));

    /// <summary>Preprocesses one image.</summary>
    /// <param name="image">uint8 <c>[H, W, 3]</c>: RGB, channels last, as decoders produce; any device.</param>
    /// <returns>The whole image and its tiles, float32 <c>[1 + rows * columns, 3, S, S]</c>, with the original size.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="image"/> is not uint8 <c>[H, W, 3]</c> with positive sizes.</exception>
    public AnyResImage Preprocess(Tensor image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.dtype != ScalarType.Byte || image.dim() != 3 || image.shape[2] != 3 || image.shape[0] <= 0 || image.shape[1] <= 0)
        {
            throw new ArgumentException(
                $"image must be uint8 [height, width, 3] (RGB, channels last); got {PixelOps.Describe(image)}.",
                nameof(image));
        }

        using var scope = NewDisposeScope();
        int height = (int)image.shape[0], width = (int)image.shape[1];
        var chw = image.permute(2, 0, 1).contiguous().unsqueeze(0); // [1, 3, H, W]

        // The tiles: fit the image into the best resolution, pad it to that resolution, cut S x S pieces row by row.
        var (bestHeight, bestWidth) = AnyResGeometry.SelectBestResolution(height, width, Config.ImageGridPinpoints);
        var (fitHeight, fitWidth) = AnyResGeometry.GetPatchOutputSize(height, width, bestHeight, bestWidth);
        var fitted = PixelOps.Resize(chw, fitHeight, fitWidth, Config.Resample);
        var (top, bottom, left, right) = AnyResGeometry.GetPadding(fitHeight, fitWidth, bestHeight, bestWidth);
        var padded = top + bottom + left + right == 0
            ? fitted
            : nn.functional.pad(fitted, [left, right, top, bottom], TorchSharp.PaddingModes.Constant, 0);

        var patches = new List<Tensor> { PixelOps.Resize(chw, _baseSize, _baseSize, Config.Resample) };
        int rows = 0, columns = 0;
        for (int y = 0; y < bestHeight; y += _tileSize, rows++)
        {
            columns = 0;
            for (int x = 0; x < bestWidth; x += _tileSize, columns++)
            {
                patches.Add(padded.narrow(2, y, Math.Min(_tileSize, bestHeight - y)).narrow(3, x, Math.Min(_tileSize, bestWidth - x)));
            }
        }

        // Each piece then goes through the processor's per-patch steps (a no-op resize for full S x S tiles).
        var processed = patches.Select(patch =>
        {
            var p = patch;
            if (Config.DoResize)
            {
                var (h, w) = PixelOps.TargetSize(Config, (int)p.shape[2], (int)p.shape[3]);
                p = PixelOps.Resize(p, h, w, Config.Resample);
            }

            return Config.DoCenterCrop ? PixelOps.CenterCrop(p, Config.CropHeight!.Value, Config.CropWidth!.Value) : p;
        }).ToList();

        var stacked = cat(processed, 0); // [1 + rows * columns, 3, S, S]
        var pixels = PixelOps.RescaleAndNormalize(stacked, Config).contiguous().MoveToOuterDisposeScope();
        return new AnyResImage(pixels, height, width, rows, columns);
    }

    /// <summary>
    /// The number of <c>&lt;image&gt;</c> placeholder tokens transformers' <c>LlavaOnevisionProcessor</c> inserts for a
    /// single image of this size (<c>_get_number_of_features</c>): the unpadded, <c>anyres_max_N</c>-limited tile
    /// grid, one newline per grid row, and the whole image's features.
    /// </summary>
    /// <param name="height">The image's original height.</param>
    /// <param name="width">The image's original width.</param>
    /// <param name="tokensPerSide">Features per tile side: vision <c>image_size / patch_size</c> (the square root of the processor's <c>num_image_tokens</c>).</param>
    /// <param name="visionAspectRatio">The model's <c>vision_aspect_ratio</c>, <c>anyres_max_N</c> (LLaVA-OneVision: <c>anyres_max_9</c>).</param>
    /// <remarks>For <c>vision_feature_select_strategy</c> "default" (CLS-token towers) transformers counts one token fewer; LLaVA-OneVision uses "full".</remarks>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="visionAspectRatio"/> is not of the form <c>anyres_max_N</c>.</exception>
    public int CountImageTokens(int height, int width, int tokensPerSide, string visionAspectRatio)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSide);
        int maxNumPatches = AnyResGeometry.ParseMaxNumPatches(visionAspectRatio);
        return AnyResGeometry.CountImageFeatures(height, width, Config.ImageGridPinpoints, _tileSize, tokensPerSide, maxNumPatches);
    }
}
