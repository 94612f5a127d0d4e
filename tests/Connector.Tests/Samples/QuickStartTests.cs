using System.Diagnostics;

namespace VidKV.AI.Connector.Tests.Samples;

/// <summary>The README's first command works on a machine without ffmpeg: the QuickStart, run with no ffmpeg to be found.</summary>
public sealed class QuickStartTests
{
    [Fact]
    public async Task QuickStart_WithoutFfmpegOnThePath_AnswersItsThreeQuestions()
    {
        string dll = SampleBuild.Locate("QuickStart", "VidKV.AI.QuickStart.dll");
        string emptyPath = Directory.CreateTempSubdirectory("vidkv-no-ffmpeg-").FullName;
        try
        {
            var start = new ProcessStartInfo(SampleBuild.DotnetHost, [dll])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.Environment["PATH"] = emptyPath; // nothing there: no ffmpeg, no ffprobe
            start.Environment.Remove("VIDKV_FFMPEG_DIR");
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await process.WaitForExitAsync(timeout.Token);
            string output = await stdout, errors = await stderr;

            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{output}\n{errors}");
            Assert.Contains("folders of PNG frames", output, StringComparison.Ordinal);
            var answers = output.Split('\n').Where(l => l.StartsWith("Answer:", StringComparison.Ordinal)).ToList();
            var expected = output.Split('\n').Where(l => l.StartsWith("Expected:", StringComparison.Ordinal)).ToList();
            Assert.Equal(3, answers.Count);
            Assert.Equal(3, expected.Count);
            // The built-in model answers these three fixed scenes right (greedy, measured on this machine's CPU).
            Assert.Equal(expected.Select(e => e["Expected:".Length..].Trim()), answers.Select(a => a["Answer:".Length..].Trim()));
            Assert.Equal(3, output.Split('\n').Count(l => l.StartsWith("KV cache:", StringComparison.Ordinal)));
        }
        finally
        {
            Directory.Delete(emptyPath, recursive: true);
        }
    }
}
