namespace VidKV.AI.Backend.Media;

/// <summary>
/// ffmpeg or ffprobe, needed to read a video, is not installed where this library looks. The message says how to
/// install it and how to point to a folder that holds it.
/// </summary>
public sealed class FfmpegNotFoundException : InvalidOperationException
{
    /// <summary>Creates the exception with the standard advice.</summary>
    /// <param name="input">The media that needed ffmpeg.</param>
    /// <param name="searched">Where ffmpeg and ffprobe were looked for.</param>
    /// <param name="detail">What went wrong, e.g. "not found" or the error of running it.</param>
    public FfmpegNotFoundException(string input, IReadOnlyList<string> searched, string detail)
        : base(BuildMessage(input, searched, detail))
    {
        ArgumentNullException.ThrowIfNull(searched);
        Input = input;
        SearchedLocations = searched;
    }

    /// <summary>The media that needed ffmpeg.</summary>
    public string Input { get; }

    /// <summary>Where ffmpeg and ffprobe were looked for.</summary>
    public IReadOnlyList<string> SearchedLocations { get; }

    /// <summary>The fix, in one line, for messages and scripts.</summary>
    public static string InstallAdvice =>
        "Install it with 'sudo apt-get install ffmpeg' (Debian/Ubuntu; 'brew install ffmpeg' on macOS, 'winget install ffmpeg' on Windows), "
        + $"or set {FfmpegOptions.BinaryFolderVariable} (or FfmpegOptions.BinaryFolder) to the folder that holds ffmpeg and ffprobe.";

    private static string BuildMessage(string input, IReadOnlyList<string>? searched, string detail)
    {
        string where = searched is { Count: > 0 } ? string.Join(", ", searched) : "nowhere";
        return $"Reading '{input}' needs ffmpeg and ffprobe: {detail} (looked in: {where}). {InstallAdvice}";
    }
}
