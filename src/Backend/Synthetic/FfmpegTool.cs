using System.Diagnostics;
using System.Text;

namespace VidKV.AI.Backend.Synthetic;

/// <summary>
/// Finds and runs the ffmpeg command-line tools for <see cref="SampleWriter"/>: the folder named by
/// <c>VIDKV_FFMPEG_DIR</c> when set, otherwise PATH. Self-contained on purpose (no dependency on the media layer).
/// </summary>
internal static class FfmpegTool
{
    /// <summary>The full path of <paramref name="tool"/> ("ffmpeg" or "ffprobe"), found as the media layer finds it.</summary>
    /// <exception cref="Media.FfmpegNotFoundException">Not found; the message says how to install it.</exception>
    public static string Resolve(string tool, Media.FfmpegOptions? options = null)
    {
        var binaries = Media.FfmpegBinaries.Resolve(options ?? Media.FfmpegOptions.Default, "the synthetic sample writer");
        return tool == "ffprobe" ? binaries.Ffprobe : binaries.Ffmpeg;
    }

    /// <summary>Runs a tool, writing <paramref name="stdin"/> to its standard input; returns its standard output.</summary>
    /// <exception cref="IOException">The tool exited with an error; the message holds its error output.</exception>
    public static string Run(string tool, IEnumerable<string> arguments, ReadOnlyMemory<byte> stdin, string what)
    {
        var start = new ProcessStartInfo(Resolve(tool))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new IOException($"{tool} could not be started for {what}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        IOException? pipeError = null;
        try
        {
            using var input = process.StandardInput.BaseStream;
            input.Write(stdin.Span);
        }
        catch (IOException e)
        {
            // The tool stopped reading (it failed); its error output says why.
            pipeError = e;
        }

        process.WaitForExit();
        string output = stdout.GetAwaiter().GetResult();
        string errors = stderr.GetAwaiter().GetResult();
        if (process.ExitCode != 0 || pipeError is not null)
        {
            var message = new StringBuilder($"{tool} failed (exit code {process.ExitCode}) for {what}.");
            if (errors.Length > 0)
            {
                message.Append(' ').Append(errors.Length > 2000 ? errors[^2000..] : errors.Trim());
            }

            throw new IOException(message.ToString(), pipeError);
        }

        return output;
    }
}
