using static TorchSharp.torch;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// Turns decoded video frames into the vision tower's input as transformers 5.17's
/// <c>LlavaOnevisionVideoProcessor</c> does: resize to the configured size (antialiased, uint8, with the configured
/// filter), optional center crop, then the fused rescale and normalize with the checkpoint's mean and std.
/// </summary>
/// <remarks>Stateless after construction and thread-safe; each call allocates its own tensors.</remarks>
public sealed class VideoFramePreprocessor
{
    /// <summary>Creates a preprocessor from explicit settings.</summary>
    /// <param name="config">The video processor's settings, usually from <see cref="PreprocessorConfig.LoadVideo"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentException">The settings are unusable; the message names the value.</exception>
    public VideoFramePreprocessor(PreprocessorConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.FindProblem() is { } problem)
        {
            throw new ArgumentException($"'{config.Source}': {problem}", nameof(config));
        }

        Config = config;
    }

    /// <summary>The settings in use.</summary>
    public PreprocessorConfig Config { get; }

    /// <summary>Creates a preprocessor from a checkpoint folder's video processor settings (<see cref="PreprocessorConfig.LoadVideo"/>).</summary>
    /// <param name="checkpointDir">The checkpoint folder.</param>
    /// <exception cref="FileNotFoundException">The folder has no processor configuration.</exception>
    /// <exception cref="InvalidDataException">The configuration is malformed; the message names the file and the key.</exception>
    public static VideoFramePreprocessor FromCheckpoint(string checkpointDir) => new(PreprocessorConfig.LoadVideo(checkpointDir));

    /// <summary>
    /// The number of <c>&lt;video&gt;</c> placeholder tokens transformers' processor inserts for a video:
    /// <c>frames * ceil(p / 2)^2 + 1</c> for <c>p</c> features per tile side (2x2 pooling, one newline for the video).
    /// </summary>
    /// <param name="frameCount">The number of frames.</param>
    /// <param name="tokensPerSide">Features per tile side before pooling (vision <c>image_size / patch_size</c>; sqrt of <c>num_image_tokens</c>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is not positive.</exception>
    public static int CountVideoTokens(int frameCount, int tokensPerSide)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSide);
        int pooled = (tokensPerSide + 1) / 2;
        return (frameCount * pooled * pooled) + 1;
    }

    /// <summary>Preprocesses a clip of frames.</summary>
    /// <param name="frames">uint8 <c>[F, H, W, 3]</c>: RGB, channels last, as decoders produce; any device.</param>
    /// <returns>
    /// float32 <c>[F, 3, S, S]</c> on the frames' device, for <c>size = {height: S, width: S}</c> (in general
    /// <c>[F, 3, height, width]</c> of the configured size or crop).
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="frames"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="frames"/> is not uint8 <c>[F, H, W, 3]</c> with positive sizes.</exception>
    public Tensor Preprocess(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.dtype != ScalarType.Byte || frames.dim() != 4 || frames.shape[3] != 3 || frames.shape.Take(3).Any(s => s <= 0))
        {
            throw new ArgumentException(
                $"frames must be uint8 [frames, height, width, 3] (RGB, channels last, at least one frame); got {PixelOps.Describe(frames)}.",
                nameof(frames));
        }

        using var scope = NewDisposeScope();
        var x = frames.permute(0, 3, 1, 2).contiguous(); // [F, 3, H, W]
        if (Config.DoResize)
        {
            var (height, width) = PixelOps.TargetSize(Config, (int)x.shape[2], (int)x.shape[3]);
            x = PixelOps.Resize(x, height, width, Config.Resample);
        }

        if (Config.DoCenterCrop)
        {
            x = PixelOps.CenterCrop(x, Config.CropHeight!.Value, Config.CropWidth!.Value);
        }

        return PixelOps.RescaleAndNormalize(x, Config).contiguous().MoveToOuterDisposeScope();
    }
}
