using VidKV.AI.Backend.Vision;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>Samples a frame source into one tensor: raw frames, or frames preprocessed for the model as they arrive.</summary>
/// <remarks>Thread-safe as far as the source is (sources are not: one call per source at a time).</remarks>
public static class VideoFrames
{
    /// <summary>Samples the frames and stacks them as decoded: uint8 [F, H, W, 3], the input of <see cref="ChatRequest.Videos"/>.</summary>
    /// <param name="source">The media.</param>
    /// <param name="options">Which frames; <see langword="null"/> for 32 uniformly.</param>
    /// <param name="cancellationToken">Checked between frames.</param>
    /// <exception cref="ArgumentException">The options are invalid or select no frame.</exception>
    /// <exception cref="InvalidDataException">The media is damaged where a frame was needed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static SampledVideo Load(IFrameSource source, FrameSamplingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var frames = new List<Tensor>();
        var times = new List<TimeSpan>();
        var indices = new List<long>();
        try
        {
            foreach (var frame in source.Sample(options ?? new FrameSamplingOptions(), cancellationToken))
            {
                frames.Add(frame.Rgb);
                times.Add(frame.Timestamp);
                indices.Add(frame.SourceIndex);
            }

            if (frames.Count == 0)
            {
                throw new InvalidDataException($"'{source.Info.Source}' gave no frame.");
            }

            var stacked = stack(frames, 0);
            return new SampledVideo(stacked, times, indices, source.Info);
        }
        finally
        {
            foreach (var frame in frames)
            {
                frame.Dispose();
            }
        }
    }

    /// <summary>
    /// Samples the frames and preprocesses each one as it is decoded (<see cref="VideoFramePreprocessor.Preprocess"/>
    /// on [1, H, W, 3]), so that the full-size frames are never held together: float32 [F, 3, S, S].
    /// </summary>
    /// <param name="source">The media.</param>
    /// <param name="options">Which frames; <see langword="null"/> for 32 uniformly.</param>
    /// <param name="preprocessor">The checkpoint's video preprocessing (<see cref="Models.LlavaOnevision.LlavaOnevisionVideoModel.VideoPreprocessor"/>).</param>
    /// <param name="cancellationToken">Checked between frames.</param>
    /// <exception cref="ArgumentException">The options are invalid or select no frame.</exception>
    /// <exception cref="InvalidDataException">The media is damaged where a frame was needed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static PreprocessedVideo LoadForModel(IFrameSource source, FrameSamplingOptions? options, VideoFramePreprocessor preprocessor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(preprocessor);
        var pixels = new List<Tensor>();
        var times = new List<TimeSpan>();
        var indices = new List<long>();
        try
        {
            foreach (var frame in source.Sample(options ?? new FrameSamplingOptions(), cancellationToken))
            {
                using (var rgb = frame.Rgb)
                using (var batch = rgb.unsqueeze(0))
                {
                    pixels.Add(preprocessor.Preprocess(batch)); // [1, 3, S, S]
                }

                times.Add(frame.Timestamp);
                indices.Add(frame.SourceIndex);
            }

            if (pixels.Count == 0)
            {
                throw new InvalidDataException($"'{source.Info.Source}' gave no frame.");
            }

            return new PreprocessedVideo(cat(pixels, 0), times, indices, source.Info);
        }
        finally
        {
            foreach (var p in pixels)
            {
                p.Dispose();
            }
        }
    }
}
