using SkiaSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>Decodes still images (PNG, JPEG, WebP, BMP, GIF's first frame) into RGB tensors, through SkiaSharp.</summary>
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

        var rgba = bitmap.GetPixelSpan().ToArray();
        using var scope = NewDisposeScope();
        var t = tensor(rgba, ScalarType.Byte).reshape(info.Height, info.Width, 4).narrow(2, 0, 3).contiguous();
        return t.MoveToOuterDisposeScope();
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
}
