using VidKV.AI.Backend.Vision;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The Qwen2-VL / Qwen2.5-VL image and video processors of transformers 5.17: dynamic resolution (<see cref="SmartResize"/>:
/// sides rounded to multiples of 28 within the pixel budget), torchvision's antialiased resize, fused rescale and
/// normalization, the frame count padded to a multiple of the temporal patch size by repeating the last frame, and the
/// patch layout (frame pair, merge block row, merge block column, patch row, patch column; each patch C·T·P·P values).
/// </summary>
/// <remarks>Stateless apart from its settings; thread-safe.</remarks>
public sealed class QwenVisionPreprocessor
{
    /// <summary>Creates a preprocessor with the given image and video settings.</summary>
    public QwenVisionPreprocessor(QwenProcessorConfig image, QwenProcessorConfig video)
    {
        Image = image ?? throw new ArgumentNullException(nameof(image));
        Video = video ?? throw new ArgumentNullException(nameof(video));
    }

    /// <summary>The image processor's settings.</summary>
    public QwenProcessorConfig Image { get; }

    /// <summary>The video processor's settings.</summary>
    public QwenProcessorConfig Video { get; }

    /// <summary>Loads the settings of a checkpoint folder.</summary>
    /// <exception cref="FileNotFoundException">No processor file is there.</exception>
    /// <exception cref="InvalidDataException">A file is malformed; the message names it.</exception>
    public static QwenVisionPreprocessor FromCheckpoint(string directory)
        => new(QwenProcessorConfig.LoadImage(directory), QwenProcessorConfig.LoadVideo(directory));

    /// <summary>
    /// transformers' <c>smart_resize</c>: both sides multiples of <paramref name="factor"/>, rounded half to even, and the
    /// area within [<paramref name="minPixels"/>, <paramref name="maxPixels"/>] at about the same aspect ratio.
    /// </summary>
    /// <exception cref="ArgumentException">A side is not positive or the aspect ratio exceeds 200.</exception>
    public static (int Height, int Width) SmartResize(int height, int width, int factor, long minPixels, long maxPixels)
    {
        if (height <= 0 || width <= 0)
        {
            throw new ArgumentException($"An image of {height}x{width} pixels cannot be resized; both sides must be positive.");
        }

        double ratio = (double)Math.Max(height, width) / Math.Min(height, width);
        if (ratio > 200)
        {
            throw new ArgumentException($"A {height}x{width} image has an aspect ratio of {ratio:F1}; at most 200 is allowed.");
        }

        long hBar = (long)Math.Round((double)height / factor, MidpointRounding.ToEven) * factor;
        long wBar = (long)Math.Round((double)width / factor, MidpointRounding.ToEven) * factor;
        if (hBar * wBar > maxPixels)
        {
            double beta = Math.Sqrt((double)height * width / maxPixels);
            hBar = Math.Max(factor, (long)Math.Floor(height / beta / factor) * factor);
            wBar = Math.Max(factor, (long)Math.Floor(width / beta / factor) * factor);
        }
        else if (hBar * wBar < minPixels)
        {
            double beta = Math.Sqrt((double)minPixels / ((double)height * width));
            hBar = (long)Math.Ceiling(height * beta / factor) * factor;
            wBar = (long)Math.Ceiling(width * beta / factor) * factor;
        }

        return (checked((int)hBar), checked((int)wBar));
    }

    /// <summary>
    /// How many frames the video processor samples from a video of <paramref name="totalFrames"/> at
    /// <paramref name="videoFps"/>: fps x duration within [min_frames, max_frames] and the frame count, rounded down to a
    /// multiple of the temporal patch size (transformers' <c>Qwen2VLVideoProcessor.sample_frames</c>); at least one.
    /// </summary>
    public int SampledFrameCount(long totalFrames, double videoFps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalFrames);
        int tps = Video.TemporalPatchSize;
        double max = Math.Floor(Math.Min(Video.MaxFrames, totalFrames) / (double)tps) * tps;
        double n = videoFps > 0 ? totalFrames / videoFps * Video.Fps : totalFrames;
        n = Math.Min(Math.Min(Math.Max(n, Video.MinFrames), max), totalFrames);
        int count = (int)(Math.Floor(n / tps) * tps);
        return Math.Max(count, (int)Math.Min(totalFrames, 1));
    }

    /// <summary>An image uint8 [H, W, 3] resized and normalized: float32 [1, 3, H', W'] (H', W' multiples of 28).</summary>
    /// <exception cref="ArgumentException">The image is not uint8 [H, W, 3].</exception>
    public Tensor PreprocessImage(Tensor image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.dtype != ScalarType.Byte || image.dim() != 3 || image.shape[2] != 3 || image.shape[0] <= 0 || image.shape[1] <= 0)
        {
            throw new ArgumentException($"An image must be uint8 [H, W, 3] RGB; got {PixelOps.Describe(image)}.", nameof(image));
        }

        using var frames = image.unsqueeze(0);
        return Resize(frames, Image);
    }

    /// <summary>
    /// Video frames uint8 [F, H, W, 3] resized and normalized, the count padded to a multiple of the temporal patch size by
    /// repeating the last frame: float32 [F', 3, H', W'].
    /// </summary>
    /// <exception cref="ArgumentException">The frames are not uint8 [F, H, W, 3].</exception>
    public Tensor PreprocessFrames(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.dtype != ScalarType.Byte || frames.dim() != 4 || frames.shape[3] != 3 || frames.shape.Take(3).Any(s => s <= 0))
        {
            throw new ArgumentException($"Video frames must be uint8 [F, H, W, 3] RGB with at least one frame; got {PixelOps.Describe(frames)}.", nameof(frames));
        }

        using var scope = NewDisposeScope();
        return PadFrames(Resize(frames, Video)).MoveToOuterDisposeScope();
    }

    /// <summary>Video frames uint8 [F, H, W, 3] resized and normalized without padding: float32 [F, 3, H', W'] (frame by frame as they are decoded).</summary>
    /// <exception cref="ArgumentException">The frames are not uint8 [F, H, W, 3].</exception>
    public Tensor ResizeFrames(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.dtype != ScalarType.Byte || frames.dim() != 4 || frames.shape[3] != 3 || frames.shape.Take(3).Any(s => s <= 0))
        {
            throw new ArgumentException($"Video frames must be uint8 [F, H, W, 3] RGB with at least one frame; got {PixelOps.Describe(frames)}.", nameof(frames));
        }

        return Resize(frames, Video);
    }

    /// <summary>Repeats the last frame of [F, 3, H, W] until the count is a multiple of the temporal patch size.</summary>
    public Tensor PadFrames(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        int tps = Video.TemporalPatchSize;
        long pad = (tps - (frames.shape[0] % tps)) % tps;
        if (pad == 0)
        {
            return frames.alias();
        }

        using var scope = NewDisposeScope();
        var last = frames.narrow(0, frames.shape[0] - 1, 1).expand(pad, -1, -1, -1);
        return cat(new[] { frames, last }, 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The processor's patch rows of preprocessed frames [F, 3, H, W] (F a multiple of the temporal patch size, or 1 for an
    /// image, which is repeated): [T·H/P·W/P, 3·T_p·P·P] and the grid.
    /// </summary>
    /// <exception cref="ArgumentException">The sizes are not multiples of patch x merge or the frame count does not fit.</exception>
    public (Tensor Patches, VisionGrid Grid) Patchify(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        var c = Video;
        int p = c.PatchSize, m = c.MergeSize, tps = c.TemporalPatchSize;
        if (frames.dim() != 4 || frames.shape[1] != 3 || frames.shape[2] % (p * m) != 0 || frames.shape[3] % (p * m) != 0)
        {
            throw new ArgumentException($"Preprocessed frames must be [F, 3, H, W] with H and W multiples of {p * m}; got {PixelOps.Describe(frames)}.", nameof(frames));
        }

        using var scope = NewDisposeScope();
        var x = frames.shape[0] == 1 ? frames.expand(tps, -1, -1, -1) : frames;
        if (x.shape[0] % tps != 0)
        {
            throw new ArgumentException($"{frames.shape[0]} frames are not a multiple of the temporal patch size {tps}; pad them first.", nameof(frames));
        }

        long gt = x.shape[0] / tps, gh = x.shape[2] / p, gw = x.shape[3] / p;
        var patches = x.contiguous()
            .view(gt, tps, 3, gh / m, m, p, gw / m, m, p)
            .permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
            .reshape(gt * gh * gw, 3L * tps * p * p);
        return (patches.MoveToOuterDisposeScope(), new VisionGrid((int)gt, (int)gh, (int)gw));
    }

    private static Tensor Resize(Tensor framesHwc, QwenProcessorConfig config)
    {
        using var scope = NewDisposeScope();
        var x = framesHwc.permute(0, 3, 1, 2).contiguous(); // [F, 3, H, W]
        if (config.DoResize)
        {
            var (h, w) = SmartResize((int)x.shape[2], (int)x.shape[3], config.Factor, config.MinPixels, config.MaxPixels);
            x = PixelOps.Resize(x, h, w, config.Resample);
        }
        else if (x.shape[2] % config.Factor != 0 || x.shape[3] % config.Factor != 0)
        {
            throw new ArgumentException($"do_resize is off but the images are {x.shape[2]}x{x.shape[3]}, not multiples of {config.Factor}.");
        }

        return PixelOps.RescaleAndNormalize(x, config.Pixels).contiguous().MoveToOuterDisposeScope();
    }
}
