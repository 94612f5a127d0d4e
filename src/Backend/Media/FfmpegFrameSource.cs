using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// A video read through ffmpeg (MP4, MOV, MKV, WebM, AVI and whatever else the installed ffmpeg decodes): ffprobe
/// describes it, and ffmpeg seeks to the sampled frames and pipes them as raw RGB.
/// </summary>
/// <remarks>
/// <para>
/// <b>Which frames.</b> Uniform sampling takes frame indices <c>np.linspace(0, total_frames - 1, N).astype(int)</c>, as
/// LLaVA-OneVision is evaluated, within <see cref="FrameSamplingOptions.Start"/> and <see cref="FrameSamplingOptions.End"/>
/// when given. Frame <c>i</c> is the one shown at <c>i / fps</c> (fps the stream's average rate); a video with fewer
/// frames than asked for returns each frame once, so fewer frames come back (never an error).
/// </para>
/// <para>
/// <b>Seeking.</b> The sampled frames are grouped into runs: consecutive frames closer together than the longest
/// keyframe interval (estimated from the packets at the start and in the middle, without decoding) share one ffmpeg
/// process that decodes straight through; any larger gap starts a new process that seeks (<c>-ss</c> before <c>-i</c>,
/// which is accurate: ffmpeg decodes from the keyframe before the target and drops the frames before it). So a
/// two-hour video sampled to 32 frames decodes about 32 keyframe intervals, and no frame is decoded twice. Only
/// the kept frames are converted to RGB; the pipe and this class hold one frame at a time.
/// </para>
/// <para>
/// <b>Variable frame rate.</b> Targets are times (<c>i / average fps</c>): each sampled frame is the first one shown at
/// or after its target (less half a frame), and its <see cref="SampledFrame.Timestamp"/> is that frame's own
/// presentation time (for a constant rate, exactly <c>i / fps</c>). <see cref="SampledFrame.SourceIndex"/> is the
/// nominal index <c>i</c>. Two targets that fall on one long frame return it once.
/// </para>
/// <para>
/// <b>Rotation.</b> A display matrix (phones record portrait video as rotated landscape) is applied, as players do,
/// so frames and <see cref="MediaInfo.Width"/>/<see cref="MediaInfo.Height"/> are upright. Non-square pixels are not
/// resampled: frames have the stored width and height.
/// </para>
/// <para>
/// <b>Ends and damage.</b> When the stream holds fewer frames than its header declares, the last target yields the
/// video's actual last frame. When a needed frame cannot be decoded (a download cut off in the middle, corrupt data),
/// or the stream ends long before it claims to, <see cref="Sample"/> throws <see cref="InvalidDataException"/>.
/// </para>
/// <para>Not thread-safe; one <see cref="Sample"/> enumeration at a time. Dispose to delete the temporary copy of a stream or byte array.</para>
/// </remarks>
internal sealed class FfmpegFrameSource : IFrameSource
{
    /// <summary>Most frames one ffmpeg process selects (keeps its select expression short).</summary>
    private const int MaxFramesPerRun = 128;

    private readonly FfmpegBinaries _binaries;
    private readonly FfmpegProbe _probe;
    private readonly MediaBudget _budget;
    private readonly string? _temporaryCopy;
    private int _processes;
    private TimeSpan _processTime;
    private long _delivered;
    private long _peakDecoderMemory;
    private bool _disposed;

    private FfmpegFrameSource(string name, string filePath, string? temporaryCopy, string format, FfmpegBinaries binaries, FfmpegProbe probe, int processes, TimeSpan processTime, MediaBudget budget)
    {
        Name = name;
        _budget = budget;
        FilePath = filePath;
        _temporaryCopy = temporaryCopy;
        _binaries = binaries;
        _probe = probe;
        _processes = processes;
        _processTime = processTime;
        Info = new MediaInfo(name, format, probe.Codec, probe.Width, probe.Height, TimeSpan.FromSeconds(probe.Duration), probe.FrameRate, probe.FrameCount)
        {
            Rotation = probe.Rotation,
            IsVariableFrameRate = probe.IsVariableFrameRate,
        };
    }

    /// <inheritdoc />
    public MediaInfo Info { get; }

    /// <summary>The path or name the media was opened from.</summary>
    public string Name { get; }

    /// <summary>The file ffmpeg reads: the path itself, or the temporary copy of a stream or byte array.</summary>
    public string FilePath { get; }

    /// <summary>Estimated longest distance between keyframes; sampled frames closer than this share one ffmpeg run.</summary>
    public TimeSpan KeyframeInterval => TimeSpan.FromSeconds(_probe.KeyframeInterval);

    /// <summary>Processes run, their summed wall time, frames returned and the decoders' peak memory so far.</summary>
    public FfmpegStatistics Statistics => new(_processes, _processTime, _delivered, _peakDecoderMemory);

    /// <summary>Opens a video file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="options">Where ffmpeg is; <see langword="null"/> for <see cref="FfmpegOptions.Default"/>.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Stops probing (ffprobe is killed).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">It is empty, truncated or corrupt, has no video stream, or its video stream has no frames.</exception>
    /// <exception cref="NotSupportedException">Neither this library nor ffmpeg recognises its content.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg or ffprobe is not installed where <paramref name="options"/> say.</exception>
    public static FfmpegFrameSource Open(string path, FfmpegOptions? options = null, MediaBudget? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        budget ??= new MediaBudget(MediaLimits.Default, sharedDeadline: false);
        byte[] head;
        using (var handle = EncodedMedia.OpenFile(path, "Video file", budget, out _))
        {
            head = EncodedMedia.ReadHead(handle);
        }

        return Create(path, path, null, head, options ?? FfmpegOptions.Default, budget, cancellationToken);
    }

    /// <summary>
    /// Opens a video from a stream, which is copied to a temporary file (so that ffmpeg can seek) and deleted on
    /// <see cref="Dispose"/>. The stream is read to its end and not closed.
    /// </summary>
    /// <param name="stream">The encoded video.</param>
    /// <param name="name">Names it in messages and <see cref="MediaInfo.Source"/>, e.g. the uploaded file's name.</param>
    /// <param name="options">Where ffmpeg is and where the copy goes.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Stops probing (ffprobe is killed).</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream, or no frames.</exception>
    /// <exception cref="NotSupportedException">Neither this library nor ffmpeg recognises its content.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg or ffprobe is not installed.</exception>
    public static FfmpegFrameSource Open(Stream stream, string name, FfmpegOptions? options = null, MediaBudget? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var head = new byte[MediaSniffer.HeadLength];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        return FromCopy(name, head.AsMemory(0, read), stream, options ?? FfmpegOptions.Default, budget ?? new MediaBudget(MediaLimits.Default, sharedDeadline: false), cancellationToken);
    }

    /// <summary>Opens a video held in memory (e.g. an HTTP upload); it is copied to a temporary file deleted on <see cref="Dispose"/>.</summary>
    /// <param name="bytes">The encoded video.</param>
    /// <param name="name">Names it in messages and <see cref="MediaInfo.Source"/>.</param>
    /// <param name="options">Where ffmpeg is and where the copy goes.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Stops probing (ffprobe is killed).</param>
    /// <exception cref="InvalidDataException">Empty, truncated or corrupt, no video stream, or no frames.</exception>
    /// <exception cref="NotSupportedException">Neither this library nor ffmpeg recognises its content.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg or ffprobe is not installed.</exception>
    public static FfmpegFrameSource Open(ReadOnlyMemory<byte> bytes, string name, FfmpegOptions? options = null, MediaBudget? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        budget ??= new MediaBudget(MediaLimits.Default, sharedDeadline: false);
        budget.CheckBytes(name, bytes.Length);
        return FromCopy(name, bytes, null, options ?? FfmpegOptions.Default, budget, cancellationToken);
    }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The source is disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the running ffmpeg is killed.</exception>
    public IEnumerable<SampledFrame> Sample(FrameSamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.Validate();
        double fps = _probe.FrameRate;
        var indices = FrameIndexSampler.Select(_probe.FrameCount, i => i / fps, _probe.Duration, options, Name);
        _budget.Charge(Name, indices.Length, _probe.Width, _probe.Height);
        var operation = _budget.Begin(cancellationToken);
        return operation.Guard(SampleCore(indices, operation.Token), Name);
    }

    /// <summary>Deletes the temporary copy, if any.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DeleteQuietly(_temporaryCopy);
    }

    internal static FfmpegFrameSource Create(string name, string filePath, string? temporaryCopy, ReadOnlySpan<byte> head, FfmpegOptions options, MediaBudget budget, CancellationToken cancellationToken)
    {
        var type = MediaSniffer.Sniff(head);
        if (type.Family == MediaFamily.Empty)
        {
            throw new InvalidDataException($"'{name}' is empty (0 bytes): there is no video in it. Check that the upload or copy completed.");
        }

        if (type.Family == MediaFamily.Unsupported)
        {
            throw MediaSniffer.NotSupported(name, type);
        }

        var binaries = FfmpegBinaries.Resolve(options, name);
        int processes = 0;
        var time = TimeSpan.Zero;
        void Timed(TimeSpan elapsed)
        {
            processes++;
            time += elapsed;
        }

        using var operation = budget.Begin(cancellationToken);
        FfmpegProbe probe;
        try
        {
            // The declared size and frame count are checked as soon as ffprobe has read them, before anything is decoded.
            probe = FfmpegProbe.Run(binaries, filePath, name, type.Format, Timed, budget, operation.Token);
            probe = probe.WithKeyframeInterval(binaries, filePath, Timed, operation.Token);
        }
        catch (InvalidDataException ex) when (type.Family == MediaFamily.Unknown && ex.Data.Contains(FfmpegProbe.UnreadableKey))
        {
            throw MediaSniffer.NotSupported(name, type);
        }
        catch (OperationCanceledException ex)
        {
            throw operation.Stop(name, ex);
        }

        string format = type.Family == MediaFamily.Unknown ? probe.ContainerName.Split(',')[0] : type.Format;
        return new FfmpegFrameSource(name, filePath, temporaryCopy, format, binaries, probe, processes, time, budget);
    }

    /// <summary>Writes the head and the rest of the stream (at most <see cref="MediaLimits.MaxBytes"/> in all) to a temporary file and opens that.</summary>
    internal static FfmpegFrameSource FromCopy(string name, ReadOnlyMemory<byte> head, Stream? rest, FfmpegOptions options, MediaBudget budget, CancellationToken cancellationToken)
    {
        var type = MediaSniffer.Sniff(head.Span[..Math.Min(head.Length, MediaSniffer.HeadLength)]);
        if (type.Family == MediaFamily.Empty)
        {
            throw new InvalidDataException($"'{name}' is empty (0 bytes): there is no video in it. Check that the upload or copy completed.");
        }

        budget.CheckBytes(name, head.Length);
        FfmpegBinaries.Resolve(options, name); // fail before copying anything
        string folder = options.TemporaryFolder ?? Path.GetTempPath();
        string copy = Path.Combine(folder, $"vidkv-media-{Guid.NewGuid():N}{type.Extension}");
        try
        {
            using (var operation = budget.Begin(cancellationToken))
            using (var file = new FileStream(copy, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                file.Write(head.Span);
                if (rest is not null)
                {
                    try
                    {
                        EncodedMedia.CopyCapped(rest, file, head.Length, name, budget, operation.Token);
                    }
                    catch (OperationCanceledException ex)
                    {
                        throw operation.Stop(name, ex);
                    }
                }
            }

            return Create(name, copy, copy, head.Span[..Math.Min(head.Length, MediaSniffer.HeadLength)], options, budget, cancellationToken);
        }
        catch
        {
            DeleteQuietly(copy);
            throw;
        }
    }

    private static void DeleteQuietly(string? path)
    {
        if (path is null)
        {
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // in use or gone; the temp folder is cleaned by the system
        }
        catch (UnauthorizedAccessException)
        {
            // same
        }
    }

    private IEnumerable<SampledFrame> SampleCore(long[] indices, CancellationToken cancellationToken)
    {
        // Times are the container's own (ffmpeg runs with -copyts): frame i is due at StreamStart + i / fps, and a
        // frame's timestamp is its presentation time minus StreamStart. -ss counts from the file's start.
        double fps = _probe.FrameRate, half = 0.5 / fps, origin = _probe.StreamStart;
        var runs = GroupIntoRuns(indices, fps);
        int width = _probe.Width, height = _probe.Height;
        double lastDelivered = double.NegativeInfinity;
        long deliveredHere = 0;
        for (int r = 0; r < runs.Count; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            var run = runs[r];
            double[] due = run.Select(i => origin + (i / fps)).ToArray();
            double[] from = due.Select(t => t - half).ToArray(); // a frame shown from here on satisfies the target
            double seek = Math.Max(0, from[0] - _probe.FileStart);
            double window = due[^1] - (seek + _probe.FileStart) + Math.Max(1.0, 4 / fps);
            int served = 0;
            using (var decode = FfmpegDecodeRun.Start(_binaries, FilePath, _probe, seek, window, SelectExpression(from), run.Length, cancellationToken))
            {
                while (served < run.Length)
                {
                    var pixels = empty(new long[] { height, width, 3 }, ScalarType.Byte);
                    bool got;
                    double time;
                    try
                    {
                        got = decode.TryReadFrame(pixels.bytes, out time);
                    }
                    catch
                    {
                        pixels.Dispose();
                        throw;
                    }

                    if (!got)
                    {
                        pixels.Dispose();
                        break;
                    }

                    // The frame satisfies every pending target at or before its time; it is reported for the first.
                    long index = run[served];
                    time = double.IsNaN(time) ? due[served] : time;
                    served = Math.Max(served + 1, CountAtOrBefore(from, time));
                    lastDelivered = time;
                    deliveredHere++;
                    _delivered++;
                    yield return new SampledFrame(pixels, ToTimestamp(time - origin), index);
                    cancellationToken.ThrowIfCancellationRequested();
                }

                decode.WaitForExit();
                Account(decode);
                cancellationToken.ThrowIfCancellationRequested();
                if (served < run.Length && (decode.Errors.Count > 0 || decode.ExitCode != 0))
                {
                    throw Damaged(due[served] - origin, decode);
                }
            }

            if (served < run.Length && r == runs.Count - 1)
            {
                // The stream ended before the last target (the header's frame count or duration was generous):
                // return the actual last frame, unless the end is far too early (a cut-off file).
                double tailFrom = double.IsFinite(lastDelivered) ? lastDelivered + half : from[0];
                var tail = ReadLastFrame(Math.Max(0, tailFrom - _probe.FileStart), tailFrom, width, height, cancellationToken);
                double missing = due[served];
                double end = tail?.Time ?? lastDelivered;
                double tolerance = Math.Max(3 / fps, Math.Min(2.0, 0.05 * _probe.Duration));
                if (!double.IsFinite(end) || missing - end > tolerance)
                {
                    tail?.Pixels.Dispose();
                    string ends = double.IsFinite(end) ? $"its last frame is at {Clock(end - origin)}" : "no frame decodes near the end";
                    throw new InvalidDataException(
                        $"'{Name}' declares {Clock(_probe.Duration)} ({_probe.FrameCount} frames) but {ends}, and the frame at {Clock(missing - origin)} does not exist: the file is truncated or corrupt. Re-download or re-export it, or sample with End before the damage.");
                }

                if (tail is { } last)
                {
                    deliveredHere++;
                    _delivered++;
                    yield return new SampledFrame(last.Pixels, ToTimestamp(last.Time - origin), run[served]);
                }
            }
        }

        if (deliveredHere == 0)
        {
            throw new InvalidDataException($"'{Name}': ffmpeg decoded no frame of its {_probe.Codec} stream; the file is corrupt or uses a codec this ffmpeg cannot decode.");
        }
    }

    /// <summary>Splits the sorted indices into runs; within a run, consecutive frames are closer than a keyframe interval.</summary>
    private List<long[]> GroupIntoRuns(long[] indices, double fps)
    {
        var runs = new List<long[]>();
        var current = new List<long>();
        foreach (long index in indices)
        {
            if (current.Count > 0 && ((index - current[^1]) / fps > _probe.KeyframeInterval || current.Count >= MaxFramesPerRun))
            {
                runs.Add(current.ToArray());
                current.Clear();
            }

            current.Add(index);
        }

        runs.Add(current.ToArray());
        return runs;
    }

    /// <summary>
    /// Keeps the first frame at or after each target: frame time t passes when some target lies in
    /// (previously kept frame's time, t]. Register 0 holds the previous time (-1e9 before the first).
    /// </summary>
    private static string SelectExpression(double[] from)
    {
        var text = new StringBuilder("st(0\\,if(isnan(prev_selected_t)\\,-1e9\\,prev_selected_t));gt(");
        for (int k = 0; k < from.Length; k++)
        {
            string t = FfmpegDecodeRun.Seconds(from[k]);
            text.Append(k > 0 ? "+" : string.Empty).Append("gte(t\\,").Append(t).Append(")*lt(ld(0)\\,").Append(t).Append(')');
        }

        return text.Append("\\,0)").ToString();
    }

    private static int CountAtOrBefore(double[] from, double time)
    {
        int count = 0;
        while (count < from.Length && from[count] <= time + 1e-6)
        {
            count++;
        }

        return count;
    }

    /// <summary>Decodes from <paramref name="seek"/> to the end and keeps only the last frame shown at or after <paramref name="after"/>.</summary>
    private (Tensor Pixels, double Time)? ReadLastFrame(double seek, double after, int width, int height, CancellationToken cancellationToken)
    {
        var buffer = new byte[width * height * 3];
        double time = double.NaN;
        using (var decode = FfmpegDecodeRun.Start(_binaries, FilePath, _probe, seek, null, $"gte(t\\,{FfmpegDecodeRun.Seconds(after)})", null, cancellationToken))
        {
            while (decode.TryReadFrame(buffer, out double t))
            {
                time = t;
            }

            decode.WaitForExit();
            Account(decode);
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (double.IsNaN(time))
        {
            return null;
        }

        var pixels = empty(new long[] { height, width, 3 }, ScalarType.Byte);
        buffer.CopyTo(pixels.bytes);
        return (pixels, time);
    }

    private void Account(FfmpegDecodeRun decode)
    {
        _processes++;
        _processTime += decode.Elapsed;
        _peakDecoderMemory = Math.Max(_peakDecoderMemory, decode.PeakResidentBytes);
    }

    private InvalidDataException Damaged(double target, FfmpegDecodeRun decode)
    {
        string detail = decode.Errors.Count > 0
            ? string.Join(" / ", decode.Errors.Take(3).Select(e => FfmpegMessages.Clean(e, FilePath, Name)))
            : $"ffmpeg exited with code {decode.ExitCode}";
        return new InvalidDataException(
            $"'{Name}': the frame at {Clock(target)} could not be decoded (ffmpeg: {detail}); the file is truncated or corrupt. Re-download or re-export it, or sample with End before the damage.");
    }

    private static TimeSpan ToTimestamp(double seconds) => TimeSpan.FromTicks((long)Math.Round(Math.Max(0, seconds) * TimeSpan.TicksPerSecond));

    private static string Clock(double seconds) => TimeSpan.FromSeconds(Math.Max(0, seconds)).ToString(@"hh\:mm\:ss\.fff", CultureInfo.InvariantCulture);
}
