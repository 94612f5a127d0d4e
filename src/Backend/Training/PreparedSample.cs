using System.Collections.Concurrent;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Synthetic;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Training;

/// <summary>
/// One training sample made ready on the CPU without TorchSharp: the conversation's ids (the sample's question, then
/// any further questions about the same video as later turns), where each answer lies in them, the frames the model
/// sees (rgb24, frame-major) and the auxiliary visual targets of those frames.
/// </summary>
internal sealed record PreparedSample(VideoQaSample Sample, IReadOnlyList<int> Ids, IReadOnlyList<(int Start, int End)> Answers, byte[] Rgb, int Frames, VisualTargets Targets)
{
    /// <summary>Where the first (the sample's own) answer starts.</summary>
    public int AnswerStart => Answers[0].Start;

    /// <summary>Tokens of the first answer, its end of turn included.</summary>
    public int FirstAnswerTokens => Answers[0].End - Answers[0].Start;

    /// <summary>Answer tokens (and ends of turn) the loss is taken over, in every answer.</summary>
    public int AnswerTokens => Answers.Sum(a => a.End - a.Start);

    /// <summary>Renders the frames the model sees, encodes the prompt and computes the visual targets.</summary>
    public static PreparedSample Create(VideoQaSample sample, Func<VideoQaSample, (List<int> Ids, List<(int Start, int End)> Answers)> encode, int imageSize, int cellsPerSide)
    {
        var indices = VidKvTinyRecipe.FrameIndices(sample);
        byte[] rgb = SceneRenderer.RenderRgb(sample.Scene, indices, imageSize, imageSize);
        var (ids, answers) = encode(sample);
        return new PreparedSample(sample, ids, answers, rgb, indices.Length, VisualTargets.Compute(sample.Scene, indices, cellsPerSide));
    }
}

/// <summary>
/// Prepares the batches of the coming steps on background threads (one batch's samples in parallel) while the model
/// trains on the current one; a bounded queue keeps a few batches ahead.
/// </summary>
internal sealed class BatchProducer : IDisposable
{
    private readonly BlockingCollection<PreparedSample[]> _queue = new(boundedCapacity: 6);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _task;

    public BatchProducer(Func<int, PreparedSample[]> prepare, int firstStep)
    {
        _task = Task.Factory.StartNew(
            () =>
            {
                try
                {
                    for (int step = firstStep; !_stop.IsCancellationRequested; step++)
                    {
                        _queue.Add(prepare(step), _stop.Token);
                    }
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                }
                finally
                {
                    _queue.CompleteAdding();
                }
            },
            TaskCreationOptions.LongRunning);
    }

    /// <summary>The next batch; rethrows what stopped the producer.</summary>
    public PreparedSample[] Take()
    {
        if (_queue.TryTake(out var batch, Timeout.Infinite))
        {
            return batch;
        }

        _task.GetAwaiter().GetResult();
        throw new InvalidOperationException("The batch producer stopped.");
    }

    public void Dispose()
    {
        _stop.Cancel();
        while (_queue.TryTake(out _))
        {
        }

        try
        {
            _task.Wait();
        }
        catch (AggregateException)
        {
        }

        _queue.Dispose();
        _stop.Dispose();
    }
}
