using VidKV.AI.Backend.Media;

namespace VidKV.AI.Connector.Inference;

/// <summary>A media item of a request, as the caller gave it (bytes in memory or a local file), and whether it is a video.</summary>
/// <param name="IsVideo">A video (else an image).</param>
/// <param name="Source">The media.</param>
internal sealed record MediaInput(bool IsVideo, MediaSource Source);
