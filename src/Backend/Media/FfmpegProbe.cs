using System.Globalization;
using System.Text.Json;
using FFMpegCore;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// What ffprobe says about a file's video stream, through FFMpegCore's parser (<see cref="FFProbe.FromJson"/>), plus
/// an estimate of the keyframe interval that decides how sampled frames are grouped into ffmpeg runs.
/// </summary>
internal sealed record FfmpegProbe
{
    /// <summary>Set in <see cref="Exception.Data"/> when ffprobe cannot read the file at all (rather than finding no video in it).</summary>
    public const string UnreadableKey = "VidKV.Media.Unreadable";

    /// <summary>Keyframe interval assumed when the packets cannot be read.</summary>
    private static readonly double DefaultKeyframeInterval = 10;

    /// <summary>The video stream's absolute index in the file.</summary>
    public required int StreamIndex { get; init; }

    /// <summary>Container name as ffprobe gives it, e.g. "mov,mp4,m4a,3gp,3g2,mj2".</summary>
    public required string ContainerName { get; init; }

    /// <summary>Codec name, e.g. "h264".</summary>
    public required string Codec { get; init; }

    /// <summary>Displayed width (after rotation).</summary>
    public required int Width { get; init; }

    /// <summary>Displayed height (after rotation).</summary>
    public required int Height { get; init; }

    /// <summary>Clockwise rotation applied to decoded frames: 0, 90, 180 or 270.</summary>
    public required int Rotation { get; init; }

    /// <summary>Average frames per second.</summary>
    public required double FrameRate { get; init; }

    /// <summary>Whether the base rate and the average rate differ.</summary>
    public required bool IsVariableFrameRate { get; init; }

    /// <summary>Frames in the stream (from the container, or duration times rate).</summary>
    public required long FrameCount { get; init; }

    /// <summary>The video stream's length in seconds.</summary>
    public required double Duration { get; init; }

    /// <summary>The video stream's first timestamp in seconds (frame times below are counted from it).</summary>
    public required double StreamStart { get; init; }

    /// <summary>The file's first timestamp in seconds: ffmpeg's <c>-ss</c> counts from it.</summary>
    public required double FileStart { get; init; }

    /// <summary>Estimated longest distance between keyframes, in seconds.</summary>
    public double KeyframeInterval { get; init; } = DefaultKeyframeInterval;

    /// <summary>
    /// Runs ffprobe on <paramref name="path"/> and reads its video stream; the declared size and frame count are checked
    /// against <paramref name="budget"/>'s limits as soon as they are known.
    /// </summary>
    /// <exception cref="InvalidDataException">ffprobe cannot read the file, it has no video stream, or the stream has no frames.</exception>
    /// <exception cref="MediaLimitExceededException">The declared size or frame count is over a limit.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (ffprobe is killed).</exception>
    public static FfmpegProbe Run(FfmpegBinaries binaries, string path, string name, string format, Action<TimeSpan> timed, MediaBudget budget, CancellationToken cancellationToken)
    {
        var result = ProcessRunner.Run(binaries.Ffprobe,
            new[] { "-loglevel", "error", "-print_format", "json", "-show_format", "-sexagesimal", "-show_streams", "-show_chapters", path },
            TimeSpan.FromMinutes(2), cancellationToken);
        timed(result.Elapsed);
        if (result.ExitCode != 0 || result.StandardOutput.Trim().Length <= 2)
        {
            string why = FirstLines(result.StandardError, 2, path, name);
            throw new InvalidDataException(
                $"'{name}' starts like a {format.ToUpperInvariant()} file but ffprobe cannot read it ({why}): it is truncated or corrupt. Re-download or re-export it (an MP4 cut off before its end loses its index, the 'moov' box).")
            {
                Data = { [UnreadableKey] = true },
            };
        }

        IMediaAnalysis analysis;
        try
        {
            analysis = FFProbe.FromJson(result.StandardOutput);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or OverflowException or ArgumentException)
        {
            throw new InvalidDataException($"'{name}': ffprobe's description of it could not be read ({ex.Message}); the file is probably corrupt.", ex);
        }

        var streams = analysis.Raw.Streams ?? Array.Empty<FFProbeStream>();
        var video = streams.FirstOrDefault(s => s.CodecType == "video" && !(s.Disposition?.TryGetValue("attached_pic", out int pic) == true && pic == 1));
        if (video is null)
        {
            string present = streams.Count == 0 ? "none" : string.Join(", ", streams.Select(s => s.CodecType == "video" ? $"cover art ({s.CodecName})" : $"{s.CodecType} ({s.CodecName})"));
            throw new InvalidDataException(
                $"'{name}' has no video stream (its streams: {present}); it cannot be sampled for frames. Give a file that holds a video stream.");
        }

        double avg = ParseRate(video.AvgFrameRate);
        double real = ParseRate(video.FrameRate);
        double duration = ParseSeconds(video.Duration);
        if (duration <= 0 && video.Tags?.TryGetValue("DURATION", out string? tag) == true)
        {
            duration = ParseSeconds(tag);
        }

        if (duration <= 0)
        {
            duration = ParseSeconds(analysis.Raw.Format?.Duration);
        }

        long declared = Extension(video, "nb_frames") is { } nb && long.TryParse(nb, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) ? n : -1;
        double fps = avg > 0 ? avg : real > 0 ? real : declared > 0 && duration > 0 ? declared / duration : 0;
        int codedWidth = video.Width ?? 0, codedHeight = video.Height ?? 0;
        int rotation = ReadRotation(video);
        bool swap = rotation is 90 or 270;
        budget.CheckSize(name, swap ? codedHeight : codedWidth, swap ? codedWidth : codedHeight);
        budget.CheckFrames(name, declared);
        if (declared <= 0 && (duration <= 0 || !(fps > 0 && fps <= 1000)) && codedWidth > 0)
        {
            // No frame count and no usable duration or rate (a live recording, e.g. a browser's MediaRecorder WebM):
            // count the packets, which reads the file once without decoding.
            (declared, double first, double last) = CountPackets(binaries, path, video.Index, timed, cancellationToken);
            if (declared > 0)
            {
                double span = last - first;
                double step = declared > 1 && span > 0 ? span / (declared - 1) : 1 / (fps > 0 && fps <= 1000 ? fps : 25);
                duration = span + step;
                fps = declared / duration;
            }
        }

        double estimate = fps > 0 && duration > 0 ? Math.Round(duration * fps) : 0;
        long frames = declared > 0 ? declared : estimate >= long.MaxValue ? long.MaxValue : (long)estimate;
        if (frames <= 0 || fps <= 0 || codedWidth <= 0 || codedHeight <= 0)
        {
            throw new InvalidDataException(
                $"'{name}' has a video stream ({video.CodecName}, {codedWidth}x{codedHeight}) but no frames (ffprobe finds {(declared >= 0 ? declared.ToString(CultureInfo.InvariantCulture) + " frames" : "no frame count")}, duration {duration.ToString("0.###", CultureInfo.InvariantCulture)} s, {fps.ToString("0.###", CultureInfo.InvariantCulture)} fps). Re-export the video.");
        }

        budget.CheckFrames(name, frames);
        if (duration <= 0)
        {
            duration = frames / fps;
        }

        double streamStart = ParseSeconds(video.StartTime);
        double fileStart = ParseSeconds(analysis.Raw.Format?.StartTime);
        return new FfmpegProbe
        {
            StreamIndex = video.Index,
            ContainerName = analysis.Raw.Format?.FormatName ?? "unknown",
            Codec = video.CodecName ?? "unknown",
            Width = swap ? codedHeight : codedWidth,
            Height = swap ? codedWidth : codedHeight,
            Rotation = rotation,
            FrameRate = fps,
            IsVariableFrameRate = avg > 0 && real > 0 && Math.Abs(avg - real) > 0.01 * avg,
            FrameCount = frames,
            Duration = duration,
            StreamStart = streamStart,
            FileStart = fileStart,
        };
    }

    /// <summary>
    /// Reads the packets at the start and in the middle of the stream (about 300 each, no decoding) and estimates the
    /// longest keyframe interval, including how far before the middle the nearest keyframe lies (a screen recording
    /// may have a single keyframe at the start).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled (ffprobe is killed).</exception>
    public FfmpegProbe WithKeyframeInterval(FfmpegBinaries binaries, string path, Action<TimeSpan> timed, CancellationToken cancellationToken)
    {
        double middle = Math.Floor(Duration / 2);
        string intervals = middle > 20 ? $"%+#300,{(middle + StreamStart).ToString("0.###", CultureInfo.InvariantCulture)}%+#300" : "%+#300";
        ProcessResult result;
        try
        {
            result = ProcessRunner.Run(binaries.Ffprobe,
                new[] { "-loglevel", "error", "-select_streams", StreamIndex.ToString(CultureInfo.InvariantCulture), "-read_intervals", intervals,
                    "-show_entries", "packet=pts_time,dts_time,flags", "-print_format", "json", path },
                TimeSpan.FromMinutes(1), cancellationToken);
        }
        catch (TimeoutException)
        {
            return this;
        }

        timed(result.Elapsed);
        if (result.ExitCode != 0)
        {
            return this;
        }

        var blocks = new List<List<(double Time, bool Key)>>();
        try
        {
            using var json = JsonDocument.Parse(result.StandardOutput);
            if (!json.RootElement.TryGetProperty("packets", out var packets))
            {
                return this;
            }

            double previous = double.NaN;
            foreach (var packet in packets.EnumerateArray())
            {
                double time = Number(packet, "dts_time");
                time = double.IsNaN(time) ? Number(packet, "pts_time") : time;
                if (double.IsNaN(time))
                {
                    continue;
                }

                bool key = packet.TryGetProperty("flags", out var flags) && flags.GetString()?.StartsWith('K') == true;
                if (blocks.Count == 0 || double.IsNaN(previous) || time < previous - 1 || time > previous + 5)
                {
                    blocks.Add(new List<(double, bool)>());
                }

                blocks[^1].Add((time, key));
                previous = time;
            }
        }
        catch (JsonException)
        {
            return this;
        }

        if (blocks.Count == 0)
        {
            return this;
        }

        double interval = 0;
        foreach (var block in blocks)
        {
            var keys = block.Where(p => p.Key).Select(p => p.Time).ToList();
            double span = block[^1].Time - block[0].Time;
            if (keys.Count < 2)
            {
                interval = Math.Max(interval, span); // no second keyframe seen: at least this long
            }

            for (int i = 1; i < keys.Count; i++)
            {
                interval = Math.Max(interval, keys[i] - keys[i - 1]);
            }
        }

        if (blocks.Count > 1)
        {
            // Seeking to the middle lands on the keyframe before it: that distance is a keyframe interval too.
            interval = Math.Max(interval, middle + StreamStart - blocks[^1][0].Time);
        }

        return this with { KeyframeInterval = Math.Max(interval, 1 / FrameRate) };
    }

    /// <summary>Counts the stream's packets and finds their first and last presentation times (no decoding).</summary>
    private static (long Count, double First, double Last) CountPackets(FfmpegBinaries binaries, string path, int stream, Action<TimeSpan> timed, CancellationToken cancellationToken)
    {
        var result = ProcessRunner.Run(binaries.Ffprobe,
            new[] { "-loglevel", "error", "-select_streams", stream.ToString(CultureInfo.InvariantCulture), "-show_entries", "packet=pts_time", "-of", "csv=p=0", path },
            TimeSpan.FromMinutes(10), cancellationToken);
        timed(result.Elapsed);
        long count = 0;
        double first = double.PositiveInfinity, last = double.NegativeInfinity;
        foreach (var line in result.StandardOutput.AsSpan().EnumerateLines())
        {
            if (double.TryParse(line.Trim().TrimEnd(','), NumberStyles.Float, CultureInfo.InvariantCulture, out double t))
            {
                count++;
                first = Math.Min(first, t);
                last = Math.Max(last, t);
            }
        }

        return count > 0 ? (count, first, last) : (0, 0, 0);
    }

    private static double Number(JsonElement packet, string name)
        => packet.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            && double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : double.NaN;

    private static string? Extension(FFProbeStream stream, string key)
        => stream.ExtensionData?.TryGetValue(key, out var value) == true && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>The clockwise rotation ffmpeg applies: the display matrix's angle is counter-clockwise; the old 'rotate' tag is clockwise.</summary>
    private static int ReadRotation(FFProbeStream stream)
    {
        double? degrees = null;
        foreach (var side in stream.SideData ?? Array.Empty<IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonValue>>())
        {
            if (side.TryGetValue("rotation", out var value) && value.TryGetValue(out double d))
            {
                degrees = -d;
            }
            else if (side.TryGetValue("rotation", out value) && value.TryGetValue(out int i))
            {
                degrees = -i;
            }
        }

        if (degrees is null && stream.Tags?.TryGetValue("rotate", out string? tag) == true
            && double.TryParse(tag, NumberStyles.Float, CultureInfo.InvariantCulture, out double t))
        {
            degrees = t;
        }

        int quarter = (int)Math.Round((degrees ?? 0) / 90.0);
        return ((quarter % 4) + 4) % 4 * 90;
    }

    private static double ParseRate(string? rate)
    {
        if (string.IsNullOrEmpty(rate))
        {
            return 0;
        }

        var parts = rate.Split('/');
        if (parts.Length == 2 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double num)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double den) && den > 0)
        {
            return num / den;
        }

        return double.TryParse(rate, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) ? value : 0;
    }

    /// <summary>Seconds from "12.5", "0:00:12.500000" or "00:00:12.500000000"; 0 when absent or "N/A".</summary>
    internal static double ParseSeconds(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text == "N/A")
        {
            return 0;
        }

        double total = 0;
        foreach (string part in text.Trim().Split(':'))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
            {
                return 0;
            }

            total = (total * 60) + value;
        }

        return text.TrimStart().StartsWith('-') ? -Math.Abs(total) : total;
    }

    private static string FirstLines(string text, int count, string path, string name)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(count).Select(l => FfmpegMessages.Clean(l, path, name)).ToList();
        return lines.Count == 0 ? "no message" : "ffprobe: " + string.Join(" / ", lines);
    }
}
