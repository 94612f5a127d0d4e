using System.Text;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// The ffmpeg command-line tools as the media layer finds them (<see cref="FfmpegOptions.BinaryFolder"/>, else
/// <c>VIDKV_FFMPEG_DIR</c>, else <c>PATH</c>), for code that writes media (the synthetic task's sample writer, benchmarks).
/// </summary>
/// <remarks>Thread-safe: every call starts its own process.</remarks>
public static class FfmpegTools
{
    /// <summary>The full path of <paramref name="tool"/>: "ffmpeg" or "ffprobe".</summary>
    /// <exception cref="ArgumentException"><paramref name="tool"/> is neither.</exception>
    /// <exception cref="FfmpegNotFoundException">Not found; the message says how to install it.</exception>
    public static string Locate(string tool, FfmpegOptions? options = null)
    {
        if (tool is not ("ffmpeg" or "ffprobe"))
        {
            throw new ArgumentException($"The tool is '{tool}'; allowed: ffmpeg, ffprobe.", nameof(tool));
        }

        var binaries = FfmpegBinaries.Resolve(options ?? FfmpegOptions.Default, $"running {tool}");
        return tool == "ffprobe" ? binaries.Ffprobe : binaries.Ffmpeg;
    }

    /// <summary>
    /// Runs <paramref name="tool"/> with arguments passed verbatim, writing <paramref name="standardInput"/> to it, and
    /// returns its standard output.
    /// </summary>
    /// <param name="tool">"ffmpeg" or "ffprobe".</param>
    /// <param name="arguments">Arguments, passed without a shell.</param>
    /// <param name="standardInput">Bytes for its standard input (empty for none).</param>
    /// <param name="what">What the run does, for error messages ("writing 8 frames to 'x.mp4'").</param>
    /// <param name="timeout">How long it may run; <see langword="null"/> for 10 minutes.</param>
    /// <param name="options">Where the binaries are; <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Kills the tool when cancelled.</param>
    /// <exception cref="FfmpegNotFoundException">The tool is not installed.</exception>
    /// <exception cref="IOException">It exited with an error; the message holds the end of its error output.</exception>
    /// <exception cref="TimeoutException">It ran past <paramref name="timeout"/> and was killed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the tool was killed.</exception>
    public static string Run(string tool, IEnumerable<string> arguments, ReadOnlyMemory<byte> standardInput, string what,
        TimeSpan? timeout = null, FfmpegOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var result = ProcessRunner.Run(Locate(tool, options), arguments, timeout ?? TimeSpan.FromMinutes(10), cancellationToken, standardInput);
        if (result.ExitCode != 0)
        {
            var message = new StringBuilder($"{tool} failed (exit code {result.ExitCode}) for {what}.");
            string errors = result.StandardError.Trim();
            if (errors.Length > 0)
            {
                message.Append(' ').Append(errors.Length > 2000 ? errors[^2000..] : errors);
            }

            throw new IOException(message.ToString());
        }

        return result.StandardOutput;
    }
}
