using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// A video or image as the caller has it: a file (or a folder of frame images), encoded bytes in memory, or pixels already
/// decoded. The model decodes files and bytes itself, on its own thread and inside its own dispose scopes.
/// </summary>
/// <remarks>Immutable and thread-safe. Pixels given with <see cref="FromPixels"/> stay the caller's: the model never disposes them.</remarks>
public sealed class MediaSource
{
    private MediaSource(string name, string? path, ReadOnlyMemory<byte>? bytes, Tensor? pixels)
    {
        Name = name;
        Path = path;
        Bytes = bytes;
        Pixels = pixels;
    }

    /// <summary>How the media is named in errors: the file path, the given name, or "pixels [shape]".</summary>
    public string Name { get; }

    /// <summary>The file or folder, when the media is one.</summary>
    public string? Path { get; }

    /// <summary>The encoded bytes, when the media came as bytes.</summary>
    public ReadOnlyMemory<byte>? Bytes { get; }

    /// <summary>The decoded pixels, when the media came as pixels.</summary>
    public Tensor? Pixels { get; }

    /// <summary>A video or image file, or a folder of frame images (a video).</summary>
    /// <exception cref="ArgumentException">The path is empty.</exception>
    public static MediaSource FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new MediaSource(path, path, null, null);
    }

    /// <summary>An encoded video or image in memory; <paramref name="name"/> names it in errors (a file name helps detect the format).</summary>
    /// <exception cref="ArgumentException">The bytes are empty.</exception>
    public static MediaSource FromBytes(ReadOnlyMemory<byte> bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (bytes.IsEmpty)
        {
            throw new ArgumentException($"'{name}' is empty (0 bytes): there is no media in it.", nameof(bytes));
        }

        return new MediaSource(name, null, bytes, null);
    }

    /// <summary>
    /// Decoded pixels: a video's frames uint8 [F, H, W, 3] RGB or frames already preprocessed for the model (float
    /// [F, 3, S, S]), or an image uint8 [H, W, 3] RGB. The tensor stays the caller's.
    /// </summary>
    public static MediaSource FromPixels(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        return new MediaSource($"pixels {pixels.dtype} [{string.Join(", ", pixels.shape)}]", null, null, pixels);
    }

    /// <summary>Opens the media as a frame source (a video, an animated image, or a folder of frames) under a request's budget.</summary>
    /// <exception cref="InvalidOperationException">The media came as pixels.</exception>
    internal IFrameSource OpenFrames(MediaBudget budget, CancellationToken cancellationToken, FfmpegOptions? ffmpeg = null)
        => Path is { } path ? FrameSources.Open(path, ffmpeg, budget, cancellationToken)
            : Bytes is { } bytes ? FrameSources.Open(bytes, Name, ffmpeg, budget, cancellationToken)
            : throw new InvalidOperationException($"{Name} is decoded already.");

    /// <summary>
    /// Decodes the media as one image under a request's budget: uint8 [H, W, 3] RGB (pixels are returned as given, not
    /// copied). A file is read once; bytes are decoded in place.
    /// </summary>
    internal Tensor LoadImage(MediaBudget budget, CancellationToken cancellationToken)
    {
        if (Pixels is { } pixels)
        {
            return pixels;
        }

        if (Path is { } path)
        {
            return ImageFiles.Load(path, budget, charged: false, cancellationToken);
        }

        budget.CheckBytes(Name, Bytes!.Value.Length);
        using var data = EncodedMedia.Wrap(Bytes.Value);
        return ImageFiles.Decode(data, Name, budget, charged: false, cancellationToken);
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
