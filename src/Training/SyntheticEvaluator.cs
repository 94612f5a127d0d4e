using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

/// <summary>
/// Scores a model on held-out synthetic questions: greedy answers through the full pipeline (chat template, frame
/// preprocessing, the given KV cache), compared with the known answers after trimming and lower-casing.
/// </summary>
public static class SyntheticEvaluator
{
    /// <summary>Whether a generated reply is the expected answer: equal after trimming whitespace and final punctuation, case-insensitive.</summary>
    public static bool IsCorrect(string reply, string answer)
    {
        ArgumentNullException.ThrowIfNull(reply);
        ArgumentNullException.ThrowIfNull(answer);
        static string Normalize(string s) => s.Trim().TrimEnd('.', '!', '?').Trim().ToLowerInvariant();
        return Normalize(reply) == Normalize(answer);
    }

    /// <summary>
    /// Answers every sample with the given cache and counts exact matches per family. Videos longer than
    /// <paramref name="maxFrames"/> are sampled uniformly to that many frames (as LLaVA-OneVision is evaluated), except for
    /// needle questions, whose videos are given whole: the needle is visible on only a few frames, which sampling would skip.
    /// </summary>
    /// <remarks>
    /// <para>With <paramref name="reuseVideo"/>, each video is first remembered (<see cref="IVideoMemoryModel.RememberVideo(ChatRequest, KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/>:
    /// prefilled up to its end and stored) and the question is then answered from the stored cache, as a follow-up question
    /// about a known video is; without it every question is prefilled fresh in one pass (the video memory is not used).</para>
    /// Any model family: frames are rendered at <paramref name="frameSize"/> pixels square (0: the vision tower's input
    /// side for LLaVA-OneVision, else 384) and given to the model as pixels, which it preprocesses as it does any video.
    /// </remarks>
    public static EvaluationResult Evaluate(IVideoLanguageModel model, IReadOnlyList<VideoQaSample> samples, KVCacheOptions cache, string label, int maxFrames = 32, CancellationToken cancellationToken = default, Action<VideoQaSample, string>? onReply = null, int frameSize = 0, bool reuseVideo = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfNegative(frameSize);
        int size = frameSize > 0 ? frameSize : model is LlavaOnevisionVideoModel llava ? llava.Model.Config.Vision.ImageSize : 384;
        var counts = new Dictionary<QuestionFamily, (int Correct, int Total)>();
        CacheMemory memory = default;
        var options = new GenerationOptions { MaxNewTokens = 8, UseVideoMemory = reuseVideo };
        var memoryModel = reuseVideo
            ? model as IVideoMemoryModel ?? throw new ArgumentException($"reuseVideo needs a model with a video memory (IVideoMemoryModel); {model.GetType().Name} has none.", nameof(model))
            : null;
        foreach (var sample in samples)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var frames = SceneRenderer.Render(sample.Scene, VidKvTinyRecipe.FrameIndices(sample, maxFrames), size, size);

            var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(sample.Question) }) })
            {
                Videos = new[] { MediaSource.FromPixels(frames) },
            };
            string reply = string.Empty;
            memoryModel?.RememberVideo(request, cache, null, cancellationToken);
            foreach (var update in model.Generate(request, options, cache, cancellationToken))
            {
                reply += update.Text;
                if (update.Usage is { } usage)
                {
                    memory = usage.Cache;
                    if (memoryModel is not null && usage.CachedPromptTokens == 0)
                    {
                        throw new InvalidOperationException($"The question about a sample (seed {sample.Seed}) did not reuse its remembered video.");
                    }
                }
            }

            if (memoryModel is not null)
            {
                memoryModel.ForgetVideo(request.Videos[0], cancellationToken); // each sample's video is asked about once
            }

            onReply?.Invoke(sample, reply);
            var (correct, total) = counts.GetValueOrDefault(sample.Family);
            counts[sample.Family] = (correct + (IsCorrect(reply, sample.Answer) ? 1 : 0), total + 1);
        }

        return new EvaluationResult(label, counts, memory);
    }
}
