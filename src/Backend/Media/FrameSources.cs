using SkiaSharp;

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
    /// <param name="path">A video, an animated or still image, or a folder of frame images (links are followed; files must be regular files).</param>
    /// <param name="ffmpeg">Where ffmpeg is, for videos; <see langword="null"/> for <see cref="FfmpegOptions.Default"/>.</param>
    /// <param name="limits">
    /// Size and time limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>. Opening and each
    /// <see cref="IFrameSource.Sample"/> each have <see cref="MediaLimits.DecodeTimeout"/>; the pixel budget is the source's.
    /// </param>
    /// <param name="cancellationToken">Stops probing (ffprobe is killed).</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is empty, truncated or corrupt, not a regular file, has no video stream or no frames.</exception>
    /// <exception cref="MediaLimitExceededException">The file, its declared size or frame count is over a limit, or probing took too long.</exception>
    /// <exception cref="NotSupportedException">The content is no supported media type; the message lists those.</exception>
    /// <exception cref="FfmpegNotFoundException">The file is a video and ffmpeg is not installed; the message says how to install it.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static IFrameSource Open(string path, FfmpegOptions? ffmpeg = null, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Open(path, ffmpeg, new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: false), cancellationToken);
    }

    /// <summary>
    /// Opens media from a stream (read to its end, not closed). Images are read into memory once; videos are copied to a
    /// temporary file, deleted when the source is disposed, so that ffmpeg can seek. At most <see cref="MediaLimits.MaxBytes"/> are read.
    /// </summary>
    /// <param name="stream">The encoded media.</param>
    /// <param name="name">Names it in messages, e.g. the uploaded file's name.</param>
    /// <param name="ffmpeg">Where ffmpeg is and where the copy goes.</param>
    /// <param name="limits">Size and time limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Stops reading and probing.</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream or no frames.</exception>
    /// <exception cref="MediaLimitExceededException">The stream, its declared size or frame count is over a limit, or probing took too long.</exception>
    /// <exception cref="NotSupportedException">No supported media type.</exception>
    /// <exception cref="FfmpegNotFoundException">A video, and ffmpeg is not installed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static IFrameSource Open(Stream stream, string name, FfmpegOptions? ffmpeg = null, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var budget = new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: false);
        var head = new byte[MediaSniffer.HeadLength];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var type = MediaSniffer.Sniff(head.AsSpan(0, read));
        switch (type.Family)
        {
            case MediaFamily.Image:
                using (var operation = budget.Begin(cancellationToken))
                {
                    SKData data;
                    try
                    {
                        data = EncodedMedia.ReadStream(stream, head.AsSpan(0, read), name, budget, operation.Token);
                    }
                    catch (OperationCanceledException ex)
                    {
                        throw operation.Stop(name, ex);
                    }

                    return AnimatedImageFrameSource.Open(data, name, budget);
                }

            case MediaFamily.Ffmpeg:
                return FfmpegFrameSource.FromCopy(name, head.AsMemory(0, read), stream, ffmpeg ?? FfmpegOptions.Default, budget, cancellationToken);
            case MediaFamily.Empty:
                throw Empty(name);
            default:
                throw MediaSniffer.NotSupported(name, type);
        }
    }

    /// <summary>Opens media held in memory (e.g. an HTTP upload); images are decoded from the bytes without copying them, videos are copied to a temporary file deleted on dispose.</summary>
    /// <param name="bytes">The encoded media (not changed, and not to be changed while the source is open).</param>
    /// <param name="name">Names it in messages.</param>
    /// <param name="ffmpeg">Where ffmpeg is and where the copy goes.</param>
    /// <param name="limits">Size and time limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Stops probing.</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream or no frames.</exception>
    /// <exception cref="MediaLimitExceededException">The bytes, the declared size or frame count are over a limit, or probing took too long.</exception>
    /// <exception cref="NotSupportedException">No supported media type.</exception>
    /// <exception cref="FfmpegNotFoundException">A video, and ffmpeg is not installed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static IFrameSource Open(ReadOnlyMemory<byte> bytes, string name, FfmpegOptions? ffmpeg = null, MediaLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return Open(bytes, name, ffmpeg, new MediaBudget(limits ?? MediaLimits.Default, sharedDeadline: false), cancellationToken);
    }

    /// <summary>Opens frame images in the given order as one video.</summary>
    /// <param name="files">The frame files, first frame first.</param>
    /// <param name="framesPerSecond">The rate the frames were taken at. Default 1.</param>
    /// <exception cref="ArgumentException">The list is empty.</exception>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is not a decodable image, or the frames differ in size.</exception>
    public static IFrameSource FromFiles(IReadOnlyList<string> files, double framesPerSecond = 1)
        => ImageSequenceFrameSource.FromFiles(files, framesPerSecond);

    /// <summary>Opens a file or folder under a budget (a request's, or a source's own).</summary>
    internal static IFrameSource Open(string path, FfmpegOptions? ffmpeg, MediaBudget budget, CancellationToken cancellationToken)
    {
        if (Directory.Exists(path))
        {
            return ImageSequenceFrameSource.FromFolder(path, 1, budget);
        }

        // The file is opened once, without blocking on pipes or devices: its length and first bytes come from that handle.
        using var handle = EncodedMedia.OpenFile(path, "Media file", budget, out long length);
        var head = EncodedMedia.ReadHead(handle);
        var type = MediaSniffer.Sniff(head);
        switch (type.Family)
        {
            case MediaFamily.Image:
                using (var operation = budget.Begin(cancellationToken))
                {
                    SKData data;
                    try
                    {
                        data = EncodedMedia.ReadFile(handle, length, path, operation.Token);
                    }
                    catch (OperationCanceledException ex)
                    {
                        throw operation.Stop(path, ex);
                    }

                    return AnimatedImageFrameSource.Open(data, path, budget);
                }

            case MediaFamily.Ffmpeg:
                return FfmpegFrameSource.Create(path, path, null, head, ffmpeg ?? FfmpegOptions.Default, budget, cancellationToken);
            case MediaFamily.Empty:
                throw Empty(path);
            default:
                throw MediaSniffer.NotSupported(path, type);
        }
    }

    /// <summary>Opens bytes under a budget.</summary>
    internal static IFrameSource Open(ReadOnlyMemory<byte> bytes, string name, FfmpegOptions? ffmpeg, MediaBudget budget, CancellationToken cancellationToken)
    {
        budget.CheckBytes(name, bytes.Length);
        var head = bytes.Span[..Math.Min(bytes.Length, MediaSniffer.HeadLength)];
        var type = MediaSniffer.Sniff(head);
        return type.Family switch
        {
            MediaFamily.Image => AnimatedImageFrameSource.Open(bytes, name, budget),
            MediaFamily.Ffmpeg => FfmpegFrameSource.FromCopy(name, bytes, null, ffmpeg ?? FfmpegOptions.Default, budget, cancellationToken),
            MediaFamily.Empty => throw Empty(name),
            _ => throw MediaSniffer.NotSupported(name, type),
        };
    }

    private static InvalidDataException Empty(string name)
        => new($"'{name}' is empty (0 bytes): there is no video or image in it. Check that the upload or copy completed.");
}
