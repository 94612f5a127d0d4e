using SkiaSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Decodes still images (PNG, JPEG, WebP, BMP, GIF's first frame) into RGB tensors, through SkiaSharp. An EXIF
/// orientation (phone photos) is applied, so the pixels are upright as viewers show them.
/// </summary>
public static class ImageFiles
{
    /// <summary>Decodes an image file to uint8 [H, W, 3] RGB.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an image SkiaSharp can decode.</exception>
    public static Tensor Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Image file '{path}' does not exist.", path);
        }

        using var stream = File.OpenRead(path);
        return Decode(stream, path);
    }

    /// <summary>Decodes an encoded image to uint8 [H, W, 3] RGB; <paramref name="name"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">The data is not an image SkiaSharp can decode.</exception>
    public static Tensor Decode(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var codec = SKCodec.Create(stream) ?? throw new InvalidDataException($"'{name}' is not an image this library can decode (PNG, JPEG, WebP, BMP, GIF).");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
        {
            throw new InvalidDataException($"'{name}' could not be decoded: {result}.");
        }

        return Orient(ToRgb(bitmap), codec.EncodedOrigin);
    }

    /// <summary>Decodes image files as the frames of one video: uint8 [F, H, W, 3]; every frame must have the same size.</summary>
    /// <exception cref="ArgumentException">No files, or frames of different sizes.</exception>
    public static Tensor LoadFrames(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
        {
            throw new ArgumentException("At least one frame image is needed.", nameof(paths));
        }

        using var scope = NewDisposeScope();
        var frames = paths.Select(Load).ToList();
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
