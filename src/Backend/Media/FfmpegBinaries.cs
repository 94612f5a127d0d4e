using System.Collections.Concurrent;
using System.ComponentModel;
using System.Globalization;
using System.Text.RegularExpressions;

namespace VidKV.AI.Backend.Media;

/// <summary>The ffmpeg and ffprobe executables in use, and ffmpeg's version.</summary>
internal sealed partial record FfmpegBinaries(string Folder, string Ffmpeg, string Ffprobe, int Major, int Minor)
{
    private static readonly ConcurrentDictionary<string, (int Major, int Minor)> Versions = new(StringComparer.Ordinal);

    /// <summary>ffmpeg 5.1 replaced <c>-vsync</c> with <c>-fps_mode</c>; older versions only know the first.</summary>
    public bool HasFpsMode => Major > 5 || (Major == 5 && Minor >= 1);

    /// <summary>Finds the binaries: <see cref="FfmpegOptions.BinaryFolder"/>, else <c>VIDKV_FFMPEG_DIR</c>, else <c>PATH</c>.</summary>
    /// <exception cref="FfmpegNotFoundException">They are not there, or ffmpeg does not run.</exception>
    public static FfmpegBinaries Resolve(FfmpegOptions options, string input)
    {
        string exe = OperatingSystem.IsWindows() ? ".exe" : string.Empty;
        string? named = options.BinaryFolder;
        string origin = "FfmpegOptions.BinaryFolder";
        if (string.IsNullOrEmpty(named))
        {
            named = Environment.GetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable);
            origin = FfmpegOptions.BinaryFolderVariable;
        }

        var candidates = new List<string>();
        if (!string.IsNullOrEmpty(named))
        {
            candidates.Add(named);
        }
        else
        {
            origin = "PATH";
            string path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
            candidates.AddRange(path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        foreach (string folder in candidates)
        {
            string ffmpeg = Path.Combine(folder, "ffmpeg" + exe);
            string ffprobe = Path.Combine(folder, "ffprobe" + exe);
            if (File.Exists(ffmpeg) && File.Exists(ffprobe))
            {
                var (major, minor) = Versions.GetOrAdd(ffmpeg, p => ReadVersion(p, input, candidates));
                return new FfmpegBinaries(folder, ffmpeg, ffprobe, major, minor);
            }
        }

        string detail = !string.IsNullOrEmpty(named)
            ? $"{origin} is '{named}', which does not hold both 'ffmpeg{exe}' and 'ffprobe{exe}'"
            : $"'ffmpeg{exe}' and 'ffprobe{exe}' are not both in any folder on PATH";
        throw new FfmpegNotFoundException(input, candidates.Count > 0 ? candidates : new[] { $"{origin} (empty)" }, detail);
    }

    private static (int Major, int Minor) ReadVersion(string ffmpeg, string input, IReadOnlyList<string> searched)
    {
        ProcessResult result;
        try
        {
            result = ProcessRunner.Run(ffmpeg, new[] { "-hide_banner", "-version" }, TimeSpan.FromSeconds(30), CancellationToken.None);
        }
        catch (Win32Exception ex)
        {
            throw new FfmpegNotFoundException(input, searched, $"'{ffmpeg}' exists but does not run ({ex.Message})");
        }

        if (result.ExitCode != 0)
        {
            throw new FfmpegNotFoundException(input, searched, $"'{ffmpeg} -version' failed with exit code {result.ExitCode}: {result.StandardError.Trim()}");
        }

        // "ffmpeg version 5.1.6-0+deb12u1", "ffmpeg version n7.0.2", "ffmpeg version N-113045-g..." (a git build: new).
        var match = VersionPattern().Match(result.StandardOutput);
        return match.Success
            ? (int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture))
            : (99, 0);
    }

    [GeneratedRegex(@"version n?(\d+)\.(\d+)")]
    private static partial Regex VersionPattern();
}
