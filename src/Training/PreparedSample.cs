using System.Collections.Concurrent;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

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

    /// <summary>
    /// Positions of an answer's tokens that predict the next answer token (or the end of turn): the queries that read the
    /// cache when the answer is generated (its first token is predicted from the prompt, at prefill).
    /// </summary>
    public IEnumerable<int> DecodePositions(int answer) => Enumerable.Range(Answers[answer].Start, Answers[answer].End - Answers[answer].Start - 1);

    /// <summary>
    /// Positions after the video (its last placeholder, the closing newline feature): the queries that read the stored
    /// cache when the conversation is answered from a remembered video (the question's tokens after the video, the
    /// generation prompt and every answer). Empty when the ids hold no video.
    /// </summary>
    public IEnumerable<int> AfterVideoPositions(int videoTokenId)
    {
        int last = -1;
        for (int t = 0; t < Ids.Count; t++)
        {
            if (Ids[t] == videoTokenId)
            {
                last = t;
            }
        }

        return last < 0 ? [] : Enumerable.Range(last + 1, Ids.Count - last - 1);
    }

    /// <summary>Answer tokens (and ends of turn) the loss is taken over, in every answer.</summary>
    public int AnswerTokens => Answers.Sum(a => a.End - a.Start);

    /// <summary>Renders the frames the model sees, encodes the prompt and computes the visual targets.</summary>
    public static PreparedSample Create(VideoQaSample sample, Func<VideoQaSample, (List<int> Ids, List<(int Start, int End)> Answers)> encode, int imageSize, int cellsPerSide, PositionTarget position = PositionTarget.InCell)
    {
        var indices = VidKvTinyRecipe.FrameIndices(sample);
        byte[] rgb = SceneRenderer.RenderRgb(sample.Scene, indices, imageSize, imageSize);
        var (ids, answers) = encode(sample);
        return new PreparedSample(sample, ids, answers, rgb, indices.Length, VisualTargets.Compute(sample.Scene, indices, cellsPerSide, position));
    }
}

/// <summary>
/// One step's samples, assembled on the batch producer's thread: grouped by length (needle videos are given every frame
/// and are far longer), each group with everything the step copies to the device — the frames as one uint8 CPU tensor,
/// the right-padded ids, where the video placeholders and the answers lie, and the visual targets — and the batch's
/// counts that turn loss sums into batch means.
/// </summary>
internal sealed class PreparedBatch : IDisposable
{
    private PreparedBatch(IReadOnlyList<BatchGroup> groups, int samples, int answerTokens, int cells, int objectCells, int motionCells)
    {
        Groups = groups;
        Samples = samples;
        AnswerTokens = answerTokens;
        Cells = cells;
        ObjectCells = objectCells;
        MotionCells = motionCells;
    }

    /// <summary>The length groups: ordinary videos first, then needle videos.</summary>
    public IReadOnlyList<BatchGroup> Groups { get; }

    /// <summary>Samples in the batch.</summary>
    public int Samples { get; }

    /// <summary>Answer tokens (ends of turn included) in the whole batch.</summary>
    public int AnswerTokens { get; }

    /// <summary>Pooled video tokens in the whole batch.</summary>
    public int Cells { get; }

    /// <summary>Pooled video tokens with an object in them (at least 1).</summary>
    public int ObjectCells { get; }

    /// <summary>Pooled video tokens with a motion target (at least 1).</summary>
    public int MotionCells { get; }

    public static PreparedBatch Create(IReadOnlyList<PreparedSample> samples, int videoTokenId, int imageSize)
    {
        var groups = samples.GroupBy(p => p.Sample.Family == QuestionFamily.Needle).OrderBy(g => g.Key)
            .Select(g => BatchGroup.Create([.. g], videoTokenId, imageSize)).ToList();
        return new PreparedBatch(
            groups,
            samples.Count,
            samples.Sum(p => p.AnswerTokens),
            samples.Sum(p => p.Targets.Color.Length),
            Math.Max(1, samples.Sum(p => p.Targets.Shape.Count(s => s != VisualTargets.Ignore))),
            Math.Max(1, samples.Sum(p => p.Targets.Motion.Count(m => m != VisualTargets.Ignore))));
    }

    public void Dispose()
    {
        foreach (var g in Groups)
        {
            g.Dispose();
        }
    }
}

/// <summary>One length group of a <see cref="PreparedBatch"/>.</summary>
internal sealed class BatchGroup : IDisposable
{
    private BatchGroup(IReadOnlyList<PreparedSample> samples, int longest, Tensor frames)
    {
        Samples = samples;
        Longest = longest;
        Frames = frames;
    }

    public IReadOnlyList<PreparedSample> Samples { get; }

    /// <summary>The longest conversation's ids; the others are right-padded to it.</summary>
    public int Longest { get; }

    /// <summary>Every sample's frames, in order: uint8 [ΣF, S, S, 3] on the CPU.</summary>
    public Tensor Frames { get; }

    /// <summary>Ids [samples × Longest], padded with 0 (causal attention keeps real tokens from seeing the padding).</summary>
    public long[] Ids { get; private init; } = [];

    /// <summary>Flat indices into Ids of the video placeholders, in order.</summary>
    public long[] VideoPositions { get; private init; } = [];

    /// <summary>
    /// Flat indices into Ids of the pooled video tokens (the video placeholders without each video's closing newline),
    /// in the order of the visual targets.
    /// </summary>
    public long[] CellPositions { get; private init; } = [];

    /// <summary>Flat indices of the positions that predict an answer token (the token before it).</summary>
    public long[] AnswerRows { get; private init; } = [];

    /// <summary>
    /// Flat indices of the answer tokens that predict the next answer token (or the end of turn): the positions whose
    /// queries read the cache when the answer is generated (the first answer token comes from the prompt's prefill).
    /// </summary>
    public long[] DecodeRows { get; private init; } = [];

    /// <summary>
    /// Flat indices of every real (not padding) position after each sample's video (<see cref="PreparedSample.AfterVideoPositions"/>):
    /// the queries that read a remembered video's stored cache.
    /// </summary>
    public long[] AfterVideoRows { get; private init; } = [];

    /// <summary>The answer tokens those positions predict.</summary>
    public long[] AnswerTargets { get; private init; } = [];

    /// <summary>Frames per sample.</summary>
    public int[] FramesPerVideo { get; private init; } = [];

    public long[] Color { get; private init; } = [];

    public long[] Shape { get; private init; } = [];

    public long[] Size { get; private init; } = [];

    public float[] Offset { get; private init; } = [];

    public long[] Motion { get; private init; } = [];

    public static BatchGroup Create(IReadOnlyList<PreparedSample> samples, int videoTokenId, int imageSize)
    {
        int longest = samples.Max(p => p.Ids.Count);
        int frameBytes = imageSize * imageSize * 3;
        int frames = samples.Sum(p => p.Frames);
        byte[] rgb = new byte[frames * frameBytes];
        long[] ids = new long[samples.Count * longest];
        var positions = new List<long>();
        var cellPositions = new List<long>();
        var rows = new List<long>();
        var decodeRows = new List<long>();
        var afterVideoRows = new List<long>();
        var targets = new List<long>();
        int offset = 0;
        for (int b = 0; b < samples.Count; b++)
        {
            var p = samples[b];
            Buffer.BlockCopy(p.Rgb, 0, rgb, offset, p.Frames * frameBytes);
            offset += p.Frames * frameBytes;
            int first = positions.Count;
            for (int t = 0; t < p.Ids.Count; t++)
            {
                ids[(b * longest) + t] = p.Ids[t];
                if (p.Ids[t] == videoTokenId)
                {
                    positions.Add(((long)b * longest) + t);
                }
            }

            // The video's last placeholder is its newline feature; the others are its frames' pooled tokens.
            cellPositions.AddRange(positions.Skip(first).SkipLast(1));

            for (int a = 0; a < p.Answers.Count; a++)
            {
                var (from, to) = p.Answers[a];
                for (int t = from; t < to; t++)
                {
                    // Position t - 1 predicts token t: the answer tokens and the end of turn.
                    rows.Add(((long)b * longest) + t - 1);
                    targets.Add(p.Ids[t]);
                }

                decodeRows.AddRange(p.DecodePositions(a).Select(t => ((long)b * longest) + t));
            }

            afterVideoRows.AddRange(p.AfterVideoPositions(videoTokenId).Select(t => ((long)b * longest) + t));
        }

        return new BatchGroup(samples, longest, torch.tensor(rgb, [frames, imageSize, imageSize, 3], ScalarType.Byte))
        {
            Ids = ids,
            VideoPositions = [.. positions],
            CellPositions = [.. cellPositions],
            AnswerRows = [.. rows],
            DecodeRows = [.. decodeRows],
            AfterVideoRows = [.. afterVideoRows],
            AnswerTargets = [.. targets],
            FramesPerVideo = [.. samples.Select(p => p.Frames)],
            Color = [.. samples.SelectMany(p => p.Targets.Color)],
            Shape = [.. samples.SelectMany(p => p.Targets.Shape)],
            Size = [.. samples.SelectMany(p => p.Targets.Size)],
            Offset = [.. samples.SelectMany(p => p.Targets.Offset)],
            Motion = [.. samples.SelectMany(p => p.Targets.Motion)],
        };
    }

    public void Dispose() => Frames.Dispose();
}

/// <summary>
/// Prepares the batches of the coming steps on background threads (one batch's samples in parallel) while the model
/// trains on the current one; a bounded queue keeps a few batches ahead.
/// </summary>
internal sealed class BatchProducer<T> : IDisposable
    where T : IDisposable
{
    private readonly BlockingCollection<T> _queue = new(boundedCapacity: 6);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _task;

    public BatchProducer(Func<int, T> prepare, int firstStep)
    {
        _task = Task.Factory.StartNew(
            () =>
            {
                try
                {
                    for (int step = firstStep; !_stop.IsCancellationRequested; step++)
                    {
                        var item = prepare(step);
                        try
                        {
                            _queue.Add(item, _stop.Token);
                        }
                        catch
                        {
                            item.Dispose();
                            throw;
                        }
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
    public T Take()
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
        while (_queue.TryTake(out var left))
        {
            left.Dispose();
        }

        try
        {
            _task.Wait();
        }
        catch (AggregateException)
        {
        }

        while (_queue.TryTake(out var left))
        {
            left.Dispose();
        }

        _queue.Dispose();
        _stop.Dispose();
    }
}
