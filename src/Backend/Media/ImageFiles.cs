using SkiaSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Decodes still images (PNG, JPEG, WebP, BMP, GIF's first frame) into RGB tensors, through SkiaSharp. An EXIF
/// orientation (phone photos) is applied, so the pixels are upright as viewers show them.
/// </summary>
/// <remarks>
/// <see cref="MediaLimits"/> hold before memory is spent: the file's length is checked before it is read, and the size
/// its header declares before a pixel is decoded. The encoded bytes are held once, in native memory.
/// </remarks>
public static class ImageFiles
{
    /// <summary>Decodes an image file to uint8 [H, W, 3] RGB.</summary>
    /// <param name="path">The file (links are followed; it must be a regular file).</param>
    /// <param name="limits">Size limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Checked while the file is read and before it is decoded.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an image SkiaSharp can decode, or not a regular file.</exception>
    /// <exception cref="MediaLimitExceededException">The file or its declared size is over a limit.</exception>
    public static Tensor Load(string path, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var budget = new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: true);
        using var operation = budget.Begin(cancellationToken);
        try
        {
            return Load(path, budget, charged: false, operation.Token);
        }
        catch (OperationCanceledException ex)
        {
            throw operation.Stop(path, ex);
        }
    }

    /// <summary>Decodes an encoded image to uint8 [H, W, 3] RGB; <paramref name="name"/> names it in errors.</summary>
    /// <param name="stream">The encoded image, read to its end (not closed).</param>
    /// <param name="name">Names it in messages.</param>
    /// <param name="limits">Size limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Checked while the stream is read and before it is decoded.</param>
    /// <exception cref="InvalidDataException">The data is not an image SkiaSharp can decode.</exception>
    /// <exception cref="MediaLimitExceededException">The data or its declared size is over a limit.</exception>
    public static Tensor Decode(Stream stream, string name, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var budget = new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: true);
        using var operation = budget.Begin(cancellationToken);
        try
        {
            using var data = EncodedMedia.ReadStream(stream, ReadOnlySpan<byte>.Empty, name, budget, operation.Token);
            return Decode(data, name, budget, charged: false, operation.Token);
        }
        catch (OperationCanceledException ex)
        {
            throw operation.Stop(name, ex);
        }
    }

    /// <summary>Decodes image files as the frames of one video: uint8 [F, H, W, 3]; every frame must have the same size.</summary>
    /// <param name="paths">The frame files, first frame first.</param>
    /// <param name="limits">Limits for all the frames together; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Checked between frames.</param>
    /// <exception cref="ArgumentException">No files, or frames of different sizes.</exception>
    /// <exception cref="MediaLimitExceededException">A file, its declared size, the frame count or the pixels in all are over a limit.</exception>
    public static Tensor LoadFrames(IReadOnlyList<string> paths, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
        {
            throw new ArgumentException("At least one frame image is needed.", nameof(paths));
        }

        var budget = new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: true);
        budget.CheckFrames($"{paths[0]} ({paths.Count} frames)", paths.Count);
        using var operation = budget.Begin(cancellationToken);
        using var scope = NewDisposeScope();
        var frames = new List<Tensor>(paths.Count);
        try
        {
            foreach (string path in paths)
            {
                frames.Add(Load(path, budget, charged: false, operation.Token));
            }
        }
        catch (OperationCanceledException ex)
        {
            throw operation.Stop(paths[0], ex);
        }

        var first = frames[0].shape;
        for (int i = 1; i < frames.Count; i++)
        {
            if (!frames[i].shape.SequenceEqual(first))
            {
                throw new ArgumentException($"Frame '{paths[i]}' is {frames[i].shape[1]}x{frames[i].shape[0]} but '{paths[0]}' is {first[1]}x{first[0]}; all frames of a video must have one size.", nameof(paths));
            }
        }

        return stack(frames, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Reads a file once (its length checked first) and decodes it.</summary>
    internal static Tensor Load(string path, MediaBudget budget, bool charged, CancellationToken cancellationToken)
    {
        using var handle = EncodedMedia.OpenFile(path, "Image file", budget, out long length);
        using var data = EncodedMedia.ReadFile(handle, length, path, cancellationToken);
        return Decode(data, path, budget, charged, cancellationToken);
    }

    /// <summary>
    /// Decodes encoded image data: the declared size is checked against the limits and (unless already
    /// <paramref name="charged"/>) taken from the pixel budget before the pixels are allocated.
    /// </summary>
    internal static Tensor Decode(SKData data, string name, MediaBudget budget, bool charged, CancellationToken cancellationToken)
    {
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException($"'{name}' is not an image this library can decode (PNG, JPEG, WebP, BMP, GIF).");
        int width = codec.Info.Width, height = codec.Info.Height;
        bool swap = SwapsAxes(codec.EncodedOrigin);
        budget.CheckSize(name, swap ? height : width, swap ? width : height);
        if (!charged)
        {
            budget.Charge(name, 1, width, height);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var rgba = AllocatePixels(name, width, height);
        try
        {
            DecodeInto(codec, new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul), rgba, name, null);
            using var view = rgba.narrow(2, 0, 3);
            return Orient(view.contiguous(), codec.EncodedOrigin);
        }
        finally
        {
            rgba.Dispose();
        }
    }

    /// <summary>uint8 [H, W, 4] for a decoded frame; a failed allocation names the media (never SkiaSharp's bare exception).</summary>
    /// <exception cref="InsufficientMemoryException">The pixels cannot be allocated.</exception>
    internal static Tensor AllocatePixels(string name, int width, int height)
    {
        try
        {
            return empty(new long[] { height, width, 4 }, ScalarType.Byte);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new InsufficientMemoryException(
                $"'{name}' is {width}x{height} pixels; the {(long)width * height * 4:N0} bytes to decode it could not be allocated. Lower MediaLimits.MaxWidth and MaxHeight.", ex);
        }
    }

    /// <summary>Decodes one frame into RGBA8888 pixels [H, W, 4].</summary>
    internal static unsafe void DecodeInto(SKCodec codec, SKImageInfo info, Tensor rgba, string name, SKCodecOptions? options, string? what = null)
    {
        SKCodecResult result;
        fixed (byte* pixels = rgba.bytes)
        {
            result = options is { } o ? codec.GetPixels(info, (IntPtr)pixels, o) : codec.GetPixels(info, (IntPtr)pixels);
        }

        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
        {
            throw new InvalidDataException(what is null
                ? $"'{name}' could not be decoded: {result}."
                : $"'{name}': {what} could not be decoded ({result}); the file is truncated or corrupt.");
        }
    }

    /// <summary>Copies an RGBA8888 bitmap's colour channels: uint8 [H, W, 3] (alpha dropped, as PIL's convert("RGB") does).</summary>
    internal static Tensor ToRgb(SKBitmap bitmap)
    {
        using var rgba = empty(new long[] { bitmap.Height, bitmap.Width, 4 }, ScalarType.Byte);
        bitmap.GetPixelSpan().CopyTo(rgba.bytes);
        using var view = rgba.narrow(2, 0, 3);
        return view.contiguous();
    }

    /// <summary>Whether an EXIF origin swaps width and height.</summary>
    internal static bool SwapsAxes(SKEncodedOrigin origin) => origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>Applies an EXIF orientation to uint8 [H, W, 3] pixels, consuming <paramref name="rgb"/>.</summary>
    internal static Tensor Orient(Tensor rgb, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default)
        {
            return rgb;
        }

        using var scope = NewDisposeScope();
        var x = rgb;
        x = origin switch
        {
            SKEncodedOrigin.TopRight => x.flip(1),                          // mirrored
            SKEncodedOrigin.BottomRight => x.flip(0, 1),                    // rotated 180
            SKEncodedOrigin.BottomLeft => x.flip(0),                        // mirrored vertically
            SKEncodedOrigin.LeftTop => x.permute(1, 0, 2),                  // transposed
            SKEncodedOrigin.RightTop => x.permute(1, 0, 2).flip(1),         // needs 90 degrees clockwise
            SKEncodedOrigin.RightBottom => x.permute(1, 0, 2).flip(0, 1),   // transverse
            SKEncodedOrigin.LeftBottom => x.permute(1, 0, 2).flip(0),       // needs 90 degrees counter-clockwise
            _ => x,
        };
        var result = x.contiguous().MoveToOuterDisposeScope();
        rgb.Dispose();
        return result;
    }
}
