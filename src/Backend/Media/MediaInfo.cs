namespace VidKV.AI.Backend.Media;

/// <summary>What a frame source holds.</summary>
/// <param name="Source">The path or name it was opened from.</param>
/// <param name="Format">Container or image format, e.g. "mp4", "webm", "gif", "png", "frames".</param>
/// <param name="Codec">Video codec (e.g. "h264"), or the image format.</param>
/// <param name="Width">Frame width in pixels, as the frames are returned (after <see cref="Rotation"/>).</param>
/// <param name="Height">Frame height in pixels, as the frames are returned (after <see cref="Rotation"/>).</param>
/// <param name="Duration">Length of the video stream (zero for a still image).</param>
/// <param name="FrameRate">Average frames per second (0 when unknown).</param>
/// <param name="FrameCount">Frames in the stream, exact or estimated from duration and rate.</param>
public sealed record MediaInfo(string Source, string Format, string Codec, int Width, int Height, TimeSpan Duration, double FrameRate, long FrameCount)
{
    /// <summary>
    /// Clockwise rotation in degrees (0, 90, 180 or 270) that the file asks players to apply (a phone's display matrix,
    /// or a JPEG's EXIF orientation). Frames are returned already rotated, so <see cref="Width"/> and
    /// <see cref="Height"/> are the displayed size.
    /// </summary>
    public int Rotation { get; init; }

    /// <summary>
    /// Whether the frame rate varies over the video (the container's average rate differs from its base rate). Frames
    /// are then chosen by time at <see cref="FrameRate"/>, and each one's timestamp is its own presentation time.
    /// </summary>
    public bool IsVariableFrameRate { get; init; }
}
