using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// One ffmpeg process that seeks (input <c>-ss</c>, accurate), decodes a stretch of the video and writes only the
/// selected frames to its standard output as raw rgb24, one after another. A <c>showinfo</c> filter after the
/// selection reports each written frame's presentation time on standard error.
/// </summary>
/// <remarks>The pipe holds at most a frame or two: ffmpeg blocks until the reader takes them.</remarks>
internal sealed partial class FfmpegDecodeRun : IDisposable
{
    private readonly Process _process;
    private readonly Stream _stdout;
    private readonly BlockingCollection<double> _times = new();
    private readonly List<string> _errors = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenRegistration _cancellation;
    private double _timeBase = double.NaN;
    private bool _timesMissing;
    private volatile bool _showInfoSeen;
    private bool _exited;

    private FfmpegDecodeRun(Process process, CancellationToken cancellationToken)
    {
        _process = process;
        _stdout = process.StandardOutput.BaseStream;
        _cancellation = cancellationToken.Register(() => ProcessRunner.Kill(process));
    }

    /// <summary>Error and fatal messages ffmpeg printed (at most 20).</summary>
    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToList();
            }
        }
    }

    /// <summary>The exit code, once <see cref="WaitForExit"/> has returned.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>
    /// The largest peak resident memory (VmHWM) of the ffmpeg process seen when frames were read, in bytes; 0 where
    /// /proc is not available.
    /// </summary>
    public long PeakResidentBytes { get; private set; }

    /// <summary>Wall-clock time since the process started (until it exited, once it has).</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Starts ffmpeg.</summary>
    /// <param name="binaries">The ffmpeg to run.</param>
    /// <param name="path">The file.</param>
    /// <param name="probe">Its video stream.</param>
    /// <param name="seek">Input seek in seconds from the file's start (0 for none).</param>
    /// <param name="window">Seconds to read after the seek point; <see langword="null"/> for up to the end.</param>
    /// <param name="select">A <c>select</c> filter expression; <see langword="null"/> for every frame.</param>
    /// <param name="maxFrames">Stop after this many frames; <see langword="null"/> for no limit.</param>
    /// <param name="cancellationToken">Kills the process when cancelled.</param>
    public static FfmpegDecodeRun Start(FfmpegBinaries binaries, string path, FfmpegProbe probe, double seek, double? window, string? select, int? maxFrames, CancellationToken cancellationToken)
    {
        // -copyts keeps the container's timestamps, so select and showinfo see exact presentation times (after an
        // input seek ffmpeg would otherwise shift them and round them to the stream's time base).
        var args = new List<string> { "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-copyts", "-noautorotate" };
        if (seek > 0)
        {
            args.AddRange(new[] { "-ss", Seconds(seek) });
        }

        if (window is { } w)
        {
            args.AddRange(new[] { "-t", Seconds(w) });
        }

        args.AddRange(new[] { "-i", path, "-map", "0:" + probe.StreamIndex.ToString(CultureInfo.InvariantCulture), "-an", "-sn", "-dn" });

        // Select first, so that rotation, scaling and the RGB conversion touch only the frames kept. The scale is a
        // no-op for the usual stream; it keeps every frame at the probed size if the stream changes resolution.
        var filters = new List<string>();
        if (select is not null)
        {
            filters.Add($"select='{select}'");
        }

        filters.AddRange(probe.Rotation switch
        {
            90 => new[] { "transpose=clock" },
            180 => new[] { "hflip", "vflip" },
            270 => new[] { "transpose=cclock" },
            _ => Array.Empty<string>(),
        });
        filters.Add($"scale={probe.Width}:{probe.Height}");
        filters.Add("format=rgb24");
        filters.Add("showinfo");
        args.AddRange(new[] { "-vf", string.Join(',', filters) });
        args.AddRange(binaries.HasFpsMode ? new[] { "-fps_mode", "passthrough" } : new[] { "-vsync", "passthrough" });
        if (maxFrames is { } m)
        {
            args.AddRange(new[] { "-frames:v", m.ToString(CultureInfo.InvariantCulture) });
        }

        args.AddRange(new[] { "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1" });

        var process = new Process { StartInfo = ProcessRunner.CreateStartInfo(binaries.Ffmpeg, args), EnableRaisingEvents = false };
        FfmpegDecodeRun? run = null;
        process.ErrorDataReceived += (_, e) => run?.OnStandardError(e.Data);
        process.Start();
        run = new FfmpegDecodeRun(process, cancellationToken);
        process.BeginErrorReadLine();
        return run;
    }

    /// <summary>Formats seconds for ffmpeg (microseconds, invariant culture).</summary>
    public static string Seconds(double seconds) => seconds.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads the next frame into <paramref name="destination"/> (exactly width * height * 3 bytes).
    /// </summary>
    /// <param name="destination">The frame's bytes.</param>
    /// <param name="time">Its presentation time in seconds (the container's timeline); NaN if ffmpeg did not report it.</param>
    /// <returns><see langword="false"/> at the end of the output (a partial frame counts as the end).</returns>
    public bool TryReadFrame(Span<byte> destination, out double time)
    {
        time = double.NaN;
        int read = _stdout.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
        if (read < destination.Length)
        {
            return false;
        }

        PeakResidentBytes = Math.Max(PeakResidentBytes, ReadPeakResident(_process.Id));

        // showinfo logs the frame before it is encoded, so its line is on its way when the bytes arrive, however late the
        // reader of ffmpeg's messages runs on a busy machine: once showinfo has been heard from, wait for the line (the
        // wait ends if the messages end). Should an ffmpeg print it differently (nothing heard within 5 s), stop waiting
        // for good: the caller then uses the target time.
        if (!_timesMissing)
        {
            bool taken = _times.TryTake(out double t, TimeSpan.FromSeconds(5))
                || (_showInfoSeen && _times.TryTake(out t, Timeout.InfiniteTimeSpan));
            if (taken)
            {
                time = t;
            }
            else
            {
                _timesMissing = true;
            }
        }

        return true;
    }

    /// <summary>Waits for ffmpeg to exit and for its messages to be read.</summary>
    public void WaitForExit()
    {
        if (!_exited)
        {
            _process.WaitForExit();
            _clock.Stop();
            _exited = true;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _cancellation.Dispose();
        if (!_exited)
        {
            ProcessRunner.Kill(_process);
            _process.WaitForExit();
            _clock.Stop();
            _exited = true;
        }

        _process.Dispose();
        _times.Dispose();
    }

    /// <summary>VmHWM from /proc/PID/status in bytes (Linux); 0 if unavailable.</summary>
    private static long ReadPeakResident(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib) ? kib * 1024 : 0;
                }
            }
        }
        catch (IOException)
        {
            // exited meanwhile
        }
        catch (UnauthorizedAccessException)
        {
            // not ours to read
        }

        return 0;
    }

    private void OnStandardError(string? line)
    {
        if (line is null)
        {
            _times.CompleteAdding();
            return;
        }

        if (line.Contains("showinfo", StringComparison.Ordinal) && ShowInfoPattern().Match(line) is { Success: true } frame)
        {
            double time = long.TryParse(frame.Groups[1].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long pts) && !double.IsNaN(_timeBase)
                ? pts * _timeBase
                : double.TryParse(frame.Groups[2].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) ? seconds : double.NaN;
            _showInfoSeen = true;
            _times.Add(time);
        }
        else if (line.Contains("config in time_base:", StringComparison.Ordinal) && TimeBasePattern().Match(line) is { Success: true } tb)
        {
            _showInfoSeen = true;
            double num = double.Parse(tb.Groups[1].Value, CultureInfo.InvariantCulture), den = double.Parse(tb.Groups[2].Value, CultureInfo.InvariantCulture);
            _timeBase = num > 0 && den > 0 ? num / den : double.NaN;
        }
        else if (line.Contains("[error]", StringComparison.Ordinal) || line.Contains("[fatal]", StringComparison.Ordinal))
        {
            lock (_errors)
            {
                if (_errors.Count < 20)
                {
                    _errors.Add(line.Trim());
                }
            }
        }
    }

    [GeneratedRegex(@"\bn:\s*\d+\s+pts:\s*(-?\d+)\s+pts_time:(\S+)")]
    private static partial Regex ShowInfoPattern();

    [GeneratedRegex(@"config in time_base:\s*(\d+)/(\d+)")]
    private static partial Regex TimeBasePattern();
}
