using System.Globalization;
using SkiaSharp;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// A video given as one image file per frame (PNG, JPEG, WebP, BMP): a folder, sorted naturally by file name
/// ("frame2" before "frame10"), or an explicit list in order. Frame <c>i</c> is shown at <c>i / FramesPerSecond</c>.
/// </summary>
/// <remarks>
/// Opening reads every file's header (not its pixels) and rejects frames whose size differs from the first; sampling
/// decodes only the frames it returns. Not thread-safe.
/// </remarks>
internal sealed class ImageSequenceFrameSource : IFrameSource
{
    /// <summary>The file extensions a folder is searched for (case-insensitive).</summary>
    public static IReadOnlyList<string> FrameExtensions { get; } = new[] { ".png", ".jpg", ".jpeg", ".webp", ".bmp" };

    private readonly double _fps;
    private readonly MediaBudget _budget;

    private ImageSequenceFrameSource(string name, IReadOnlyList<string> files, double framesPerSecond, int width, int height, string codec, MediaBudget budget)
    {
        Files = files;
        _fps = framesPerSecond;
        _budget = budget;
        Info = new MediaInfo(name, "frames", codec, width, height, TimeSpan.FromSeconds(files.Count / framesPerSecond), framesPerSecond, files.Count);
    }

    /// <inheritdoc />
    public MediaInfo Info { get; }

    /// <summary>The frame files, in order.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>Opens the frame images of a folder (<see cref="FrameExtensions"/>), in natural file-name order.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="framesPerSecond">The rate the frames were taken at (for timestamps and frames-per-second sampling). Default 1.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">It holds no frame image, or a file is not a decodable image, or the frames differ in size.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is not greater than 0 and at most 240.</exception>
    /// <exception cref="MediaLimitExceededException">The folder holds more frames, or a file is longer or declares a larger size, than the limits allow.</exception>
    public static ImageSequenceFrameSource FromFolder(string folder, double framesPerSecond = 1, MediaBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        CheckRate(framesPerSecond);
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Frame folder '{folder}' does not exist.");
        }

        var files = Directory.EnumerateFiles(folder)
            .Where(f => FrameExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .OrderBy(Path.GetFileName, NaturalFileNameComparer.Instance)
            .ToList();
        if (files.Count == 0)
        {
            throw new InvalidDataException($"Frame folder '{folder}' holds no frame images (files ending in {string.Join(", ", FrameExtensions)}); it has zero frames.");
        }

        return Create(folder, files, framesPerSecond, budget);
    }

    /// <summary>Opens frame images in the given order.</summary>
    /// <param name="files">The frame files, first frame first.</param>
    /// <param name="framesPerSecond">The rate the frames were taken at. Default 1.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <exception cref="ArgumentException">The list is empty.</exception>
    /// <exception cref="FileNotFoundException">A file does not exist; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is not a decodable image, or the frames differ in size.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is not greater than 0 and at most 240.</exception>
    /// <exception cref="MediaLimitExceededException">There are more frames, or a file is longer or declares a larger size, than the limits allow.</exception>
    public static ImageSequenceFrameSource FromFiles(IReadOnlyList<string> files, double framesPerSecond = 1, MediaBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        CheckRate(framesPerSecond);
        if (files.Count == 0)
        {
            throw new ArgumentException("At least one frame image is needed; the list is empty.", nameof(files));
        }

        string name = files.Count == 1 ? files[0] : $"{files[0]} ... {Path.GetFileName(files[^1])} ({files.Count} frames)";
        return Create(name, files.ToArray(), framesPerSecond, budget);
    }

    /// <inheritdoc />
    public IEnumerable<SampledFrame> Sample(FrameSamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        double fps = _fps;
        var indices = FrameIndexSampler.Select(Files.Count, i => i / fps, Files.Count / fps, options, Info.Source);
        _budget.Charge(Info.Source, indices.Length, Info.Width, Info.Height);
        var operation = _budget.Begin(cancellationToken);
        return operation.Guard(SampleCore(indices, operation.Token), Info.Source);
    }

    /// <summary>Nothing to release: files are opened only while a frame is decoded.</summary>
    public void Dispose()
    {
    }

    private static void CheckRate(double framesPerSecond)
    {
        if (!(framesPerSecond > 0 && framesPerSecond <= 240))
        {
            throw new ArgumentOutOfRangeException(nameof(framesPerSecond), framesPerSecond,
                $"framesPerSecond is {framesPerSecond.ToString(CultureInfo.InvariantCulture)}; allowed: greater than 0, at most 240.");
        }
    }

    private static ImageSequenceFrameSource Create(string name, IReadOnlyList<string> files, double framesPerSecond, MediaBudget? budget)
    {
        budget ??= new MediaBudget(MediaLimits.Default, sharedDeadline: false);
        budget.CheckFrames(name, files.Count);
        int width = 0, height = 0;
        string? firstFile = null;
        var formats = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string file in files)
        {
            var (w, h, format) = ReadHeader(file, budget);
            formats.Add(format);
            if (firstFile is null)
            {
                (width, height, firstFile) = (w, h, file);
            }
            else if (w != width || h != height)
            {
                throw new InvalidDataException(
                    $"Frame '{file}' is {w}x{h} but '{firstFile}' is {width}x{height}; all frames of a sequence must have one size. Resize them to one size first.");
            }
        }

        return new ImageSequenceFrameSource(name, files, framesPerSecond, width, height, string.Join("+", formats), budget);
    }

    /// <summary>Reads a frame's header only (its length and declared size checked), never its pixels.</summary>
    private static (int Width, int Height, string Format) ReadHeader(string file, MediaBudget budget)
    {
        using var handle = EncodedMedia.OpenFile(file, "Frame image", budget, out long length);
        var head = EncodedMedia.ReadHead(handle);
        var type = MediaSniffer.Sniff(head);
        if (type.Family == MediaFamily.Empty)
        {
            throw new InvalidDataException($"Frame image '{file}' is empty (0 bytes).");
        }

        if (type.Family != MediaFamily.Image)
        {
            throw new InvalidDataException($"Frame '{file}' is not a PNG, JPEG, WebP or BMP image (its content is {(type.Family == MediaFamily.Ffmpeg ? type.Format : "unrecognised")}); a frame sequence holds one image per frame.");
        }

        using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 1);
        using var codec = SKCodec.Create(stream) ?? throw new InvalidDataException($"Frame image '{file}' starts like a {type.Format.ToUpperInvariant()} but cannot be decoded: it is truncated or corrupt.");
        bool swap = ImageFiles.SwapsAxes(codec.EncodedOrigin);
        int width = swap ? codec.Info.Height : codec.Info.Width, height = swap ? codec.Info.Width : codec.Info.Height;
        budget.CheckSize(file, width, height);
        return (width, height, type.Format);
    }

    private IEnumerable<SampledFrame> SampleCore(long[] indices, CancellationToken cancellationToken)
    {
        foreach (long index in indices)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var pixels = ImageFiles.Load(Files[(int)index], _budget, charged: true, cancellationToken);
            if (pixels.shape[0] != Info.Height || pixels.shape[1] != Info.Width)
            {
                pixels.Dispose();
                throw new InvalidDataException($"Frame '{Files[(int)index]}' changed since it was opened: it is now {pixels.shape[1]}x{pixels.shape[0]}, not {Info.Width}x{Info.Height}.");
            }

            yield return new SampledFrame(pixels, TimeSpan.FromSeconds(index / _fps), index);
        }
    }
}
