using Microsoft.Extensions.AI;

namespace VidKV.AI.Connector;

/// <summary>Builds the contents a <see cref="VidKVChatClient"/> reads from local files.</summary>
/// <remarks>Stateless and thread-safe.</remarks>
public static class VidKVMedia
{
    /// <summary>The media type of a folder of frame images read as a video.</summary>
    public const string ImageSequenceMediaType = "video/x-image-sequence";

    private static readonly Dictionary<string, string> Types = new(StringComparer.OrdinalIgnoreCase)
    {
        [".mp4"] = "video/mp4", [".m4v"] = "video/mp4", [".mov"] = "video/quicktime", [".mkv"] = "video/x-matroska",
        [".webm"] = "video/webm", [".avi"] = "video/x-msvideo", [".flv"] = "video/x-flv", [".ts"] = "video/mp2t",
        [".mpg"] = "video/mpeg", [".mpeg"] = "video/mpeg", [".ogv"] = "video/ogg", [".wmv"] = "video/x-ms-wmv",
        [".y4m"] = "video/x-yuv4mpeg", [".ivf"] = "video/x-ivf",
        [".png"] = "image/png", [".jpg"] = "image/jpeg", [".jpeg"] = "image/jpeg", [".bmp"] = "image/bmp", [".webp"] = "image/webp",
    };

    /// <summary>
    /// The media type of a file from its extension: <c>video/*</c> for videos, <c>image/*</c> for still images;
    /// an animated GIF is read as a video (<c>video/gif</c>). The decoder itself goes by the content, not this type.
    /// </summary>
    /// <exception cref="NotSupportedException">The extension is not a known video or image type; the message lists those.</exception>
    public static string MediaTypeOf(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string extension = Path.GetExtension(path);
        if (extension.Equals(".gif", StringComparison.OrdinalIgnoreCase))
        {
            return "video/gif";
        }

        return Types.TryGetValue(extension, out string? type)
            ? type
            : throw new NotSupportedException($"'{path}' has the extension '{extension}'; known video and image extensions: .gif, {string.Join(", ", Types.Keys)}.");
    }

    /// <summary>A <see cref="UriContent"/> naming a local video or image file (read when the request runs).</summary>
    /// <param name="path">The file.</param>
    /// <param name="mediaType">Its media type; <see langword="null"/> to infer it from the extension (<see cref="MediaTypeOf"/>).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="NotSupportedException">The type cannot be inferred from the extension.</exception>
    public static UriContent FromFile(string path, string? mediaType = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Media file '{path}' does not exist.", full);
        }

        return new UriContent(new Uri(full), mediaType ?? MediaTypeOf(full));
    }


    /// <summary>
    /// A folder of frame images (PNG, JPEG, ...; taken in natural file-name order) as one video, read without ffmpeg. Its
    /// media type is <c>video/x-image-sequence</c>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static UriContent FromFrameFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"Frame folder '{folder}' does not exist.");
        }

        return new UriContent(new Uri(Path.TrimEndingDirectorySeparator(full) + Path.DirectorySeparatorChar), ImageSequenceMediaType);
    }}
