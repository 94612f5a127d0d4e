namespace VidKV.AI.Backend.Media;

/// <summary>
/// Opens whatever a user has (a video file, an upload's bytes, an animated GIF, a still image, a folder of frames)
/// as an <see cref="IFrameSource"/>, choosing the decoder from the content's magic bytes, not the extension.
/// </summary>
/// <remarks>
/// Videos (MP4, MOV, MKV, WebM, AVI, FLV, MPEG-TS/PS, OGG, WMV, Y4M, IVF) go to <see cref="FfmpegFrameSource"/>;
/// GIF, WebP, PNG, JPEG and BMP to <see cref="AnimatedImageFrameSource"/>; folders and lists of images to
/// <see cref="ImageSequenceFrameSource"/>. Thread-safe; each call returns a new source the caller disposes.
/// </remarks>
public static class FrameSources
{
    /// <summary>Opens a media file, or a folder of frame images (1 frame per second).</summary>
    /// <param name="path">A video, an animated or still image, or a folder of frame images.</param>
    /// <param name="ffmpeg">Where ffmpeg is, for videos; <see langword="null"/> for <see cref="FfmpegOptions.Default"/>.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is empty, truncated or corrupt, has no video stream or no frames.</exception>
    /// <exception cref="NotSupportedException">The content is no supported media type; the message lists those.</exception>
    /// <exception cref="FfmpegNotFoundException">The file is a video and ffmpeg is not installed; the message says how to install it.</exception>
    public static IFrameSource Open(string path, FfmpegOptions? ffmpeg = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            return ImageSequenceFrameSource.FromFolder(path);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Media file '{path}' does not exist.", path);
        }

        var head = MediaSniffer.ReadHead(path);
        var type = MediaSniffer.Sniff(head);
        return type.Family switch
        {
            MediaFamily.Image => AnimatedImageFrameSource.Open(path),
            MediaFamily.Ffmpeg => FfmpegFrameSource.Create(path, path, null, head, ffmpeg ?? FfmpegOptions.Default),
            MediaFamily.Empty => throw Empty(path),
            _ => throw MediaSniffer.NotSupported(path, head, type),
        };
    }

    /// <summary>
    /// Opens media from a stream (read to its end, not closed). Images are decoded from memory; videos are copied to a
    /// temporary file, deleted when the source is disposed, so that ffmpeg can seek.
    /// </summary>
    /// <param name="stream">The encoded media.</param>
    /// <param name="name">Names it in messages, e.g. the uploaded file's name.</param>
    /// <param name="ffmpeg">Where ffmpeg is and where the copy goes.</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream or no frames.</exception>
    /// <exception cref="NotSupportedException">No supported media type.</exception>
    /// <exception cref="FfmpegNotFoundException">A video, and ffmpeg is not installed.</exception>
    public static IFrameSource Open(Stream stream, string name, FfmpegOptions? ffmpeg = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var head = new byte[MediaSniffer.HeadLength];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var type = MediaSniffer.Sniff(head.AsSpan(0, read));
        switch (type.Family)
        {
            case MediaFamily.Image:
                using (var memory = new MemoryStream())
                {
                    memory.Write(head, 0, read);
                    stream.CopyTo(memory);
                    return AnimatedImageFrameSource.Open(memory.GetBuffer().AsMemory(0, (int)memory.Length), name);
                }

            case MediaFamily.Ffmpeg:
                return FfmpegFrameSource.FromCopy(name, head.AsMemory(0, read), stream, ffmpeg ?? FfmpegOptions.Default);
            case MediaFamily.Empty:
                throw Empty(name);
            default:
                throw MediaSniffer.NotSupported(name, head.AsSpan(0, read), type);
        }
    }

    /// <summary>Opens media held in memory (e.g. an HTTP upload); videos are copied to a temporary file deleted on dispose.</summary>
    /// <param name="bytes">The encoded media.</param>
    /// <param name="name">Names it in messages.</param>
    /// <param name="ffmpeg">Where ffmpeg is and where the copy goes.</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream or no frames.</exception>
    /// <exception cref="NotSupportedException">No supported media type.</exception>
    /// <exception cref="FfmpegNotFoundException">A video, and ffmpeg is not installed.</exception>
    public static IFrameSource Open(ReadOnlyMemory<byte> bytes, string name, FfmpegOptions? ffmpeg = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var head = bytes.Span[..Math.Min(bytes.Length, MediaSniffer.HeadLength)];
        var type = MediaSniffer.Sniff(head);
        return type.Family switch
        {
            MediaFamily.Image => AnimatedImageFrameSource.Open(bytes, name),
            MediaFamily.Ffmpeg => FfmpegFrameSource.FromCopy(name, bytes, null, ffmpeg ?? FfmpegOptions.Default),
            MediaFamily.Empty => throw Empty(name),
            _ => throw MediaSniffer.NotSupported(name, head, type),
        };
    }

    /// <summary>Opens frame images in the given order as one video.</summary>
    /// <param name="files">The frame files, first frame first.</param>
    /// <param name="framesPerSecond">The rate the frames were taken at. Default 1.</param>
    /// <exception cref="ArgumentException">The list is empty.</exception>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is not a decodable image, or the frames differ in size.</exception>
    public static IFrameSource FromFiles(IReadOnlyList<string> files, double framesPerSecond = 1)
        => ImageSequenceFrameSource.FromFiles(files, framesPerSecond);

    private static InvalidDataException Empty(string name)
        => new($"'{name}' is empty (0 bytes): there is no video or image in it. Check that the upload or copy completed.");
}
