using System.Diagnostics;
using System.Text;

namespace VidKV.AI.Backend.Media;

/// <summary>The outcome of a finished process.</summary>
internal sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError, TimeSpan Elapsed);

/// <summary>Runs a short-lived tool (ffprobe, <c>ffmpeg -version</c>) to completion and collects its output.</summary>
internal static class ProcessRunner
{
    /// <summary>
    /// Runs <paramref name="fileName"/> with arguments passed verbatim (no shell, no quoting), writing <paramref name="standardInput"/>
    /// (when not empty) to its standard input.
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled; the process is killed.</exception>
    /// <exception cref="TimeoutException">It ran longer than <paramref name="timeout"/>; the process is killed.</exception>
    public static ProcessResult Run(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken, ReadOnlyMemory<byte> standardInput = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var process = new Process { StartInfo = CreateStartInfo(fileName, arguments) };
        process.StartInfo.RedirectStandardInput = !standardInput.IsEmpty;
        var clock = Stopwatch.StartNew();
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var writer = standardInput.IsEmpty ? Task.CompletedTask : Task.Run(() => WriteInput(process, standardInput), CancellationToken.None);
        using (cancellationToken.Register(() => Kill(process)))
        {
            if (!process.WaitForExit(timeout))
            {
                Kill(process);
                process.WaitForExit();
                cancellationToken.ThrowIfCancellationRequested();
                throw new TimeoutException($"'{Path.GetFileName(fileName)}' did not finish within {timeout.TotalSeconds:F0} s.");
            }

            process.WaitForExit(); // drains the asynchronous readers
        }

        writer.GetAwaiter().GetResult();

        cancellationToken.ThrowIfCancellationRequested();
        lock (stdout)
        {
            lock (stderr)
            {
                return new ProcessResult(process.ExitCode, stdout.ToString(), stderr.ToString(), clock.Elapsed);
            }
        }
    }

    /// <summary>Start settings for a tool: redirected output, no window, arguments verbatim.</summary>
    public static ProcessStartInfo CreateStartInfo(string fileName, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return info;
    }

    private static void WriteInput(Process process, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            using var input = process.StandardInput.BaseStream;
            input.Write(bytes.Span);
        }
        catch (IOException)
        {
            // The tool stopped reading (it failed or was killed); its exit code and error output say why.
        }
    }

    /// <summary>Kills the process (only that process: ffmpeg starts no children), ignoring one that has already exited.</summary>
    public static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: false);
            }
        }
        catch (InvalidOperationException)
        {
            // exited meanwhile
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // exiting meanwhile
        }
    }
}
