namespace VidKV.AI.Backend.Media;

/// <summary>Where ffmpeg and ffprobe are and where temporary copies go.</summary>
/// <remarks>
/// The binaries are looked up in <see cref="BinaryFolder"/>, else in the folder named by the environment variable
/// <c>VIDKV_FFMPEG_DIR</c> (<see cref="BinaryFolderVariable"/>), else on <c>PATH</c>. A folder that is named but does
/// not hold both binaries is an error; there is no fallback to <c>PATH</c>.
/// </remarks>
public sealed record FfmpegOptions
{
    /// <summary>The environment variable that names the folder holding ffmpeg and ffprobe.</summary>
    public const string BinaryFolderVariable = "VIDKV_FFMPEG_DIR";

    /// <summary>The default options: binaries from <c>VIDKV_FFMPEG_DIR</c> or <c>PATH</c>, temporary files in the system's temp folder.</summary>
    public static FfmpegOptions Default { get; } = new();

    /// <summary>The folder holding <c>ffmpeg</c> and <c>ffprobe</c>; <see langword="null"/> to use <c>VIDKV_FFMPEG_DIR</c> or <c>PATH</c>.</summary>
    public string? BinaryFolder { get; init; }

    /// <summary>
    /// Where a stream or byte array is copied so that ffmpeg can seek in it; <see langword="null"/> for
    /// <see cref="Path.GetTempPath"/>. The copy is deleted when the source is disposed.
    /// </summary>
    public string? TemporaryFolder { get; init; }
}
