using System.Text.RegularExpressions;

namespace VidKV.AI.Backend.Media;

/// <summary>Makes ffmpeg's and ffprobe's messages fit to show a caller: no heap addresses, no temporary or server paths.</summary>
internal static partial class FfmpegMessages
{
    /// <summary>
    /// Removes the context addresses ffmpeg prints (<c>[h264 @ 0x55d5c3a0]</c> becomes <c>[h264]</c>), the level tags, and
    /// replaces the file ffmpeg read (a temporary copy, or a path on the server) with the media's name.
    /// </summary>
    public static string Clean(string line, string filePath, string name)
    {
        ArgumentNullException.ThrowIfNull(line);
        string text = string.IsNullOrEmpty(filePath) ? line : line.Replace(filePath, name, StringComparison.Ordinal);
        text = Address().Replace(text, string.Empty);
        text = Level().Replace(text, string.Empty);
        return text.Trim();
    }

    [GeneratedRegex(@"\s*@\s*0x[0-9a-fA-F]+")]
    private static partial Regex Address();

    [GeneratedRegex(@"\[(error|fatal|warning|info)\]\s*")]
    private static partial Regex Level();
}
