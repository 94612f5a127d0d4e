namespace VidKV.AI.Backend.Media;

/// <summary>What a <see cref="FfmpegFrameSource"/> has cost so far.</summary>
/// <param name="Processes">ffmpeg and ffprobe processes run (probing included).</param>
/// <param name="ProcessTime">Wall-clock time those processes ran, summed.</param>
/// <param name="FramesDelivered">Frames returned.</param>
/// <param name="PeakDecoderMemory">
/// The largest peak resident memory of one decoding ffmpeg process, in bytes, as read from /proc when frames arrived
/// (Linux; 0 elsewhere).
/// </param>
internal sealed record FfmpegStatistics(int Processes, TimeSpan ProcessTime, long FramesDelivered, long PeakDecoderMemory);
