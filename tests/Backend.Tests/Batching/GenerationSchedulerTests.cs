using VidKV.AI.Backend.Batching;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Tests.Generation;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Batching;

public sealed class GenerationSchedulerTests : IClassFixture<PipelineFixture>
{
    private readonly PipelineFixture _f;

    public GenerationSchedulerTests(PipelineFixture fixture)
    {
        _f = fixture;
        // The one-at-a-time runs compared with are plain prefills: no video memory (a remembered video is read compressed).
        _f.Vlm.ConfigureVideoMemory(new VideoMemoryOptions { Enabled = false });
    }

    /// <summary>Small groups and residuals, so that the caches flush to packed codes within a few decode steps.</summary>
    private static KVCacheOptions Cache(string preset) => KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { GroupSize = 16, ResidualLength = 16 };

    private ChatRequest Question(int frames, string question)
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(question) }) })
        {
            Videos = new[] { MediaSource.FromPixels(_f.Ref("video.frames").narrow(0, 0, frames)) },
            Sampling = new FrameSamplingOptions { FrameCount = frames },
        };

    private sealed record Plan(int JoinAt, ChatRequest Request, GenerationOptions Options, KVCacheOptions Cache, CancellationToken Token = default);

    private sealed class Run
    {
        public List<GenerationUpdate>[] Updates = Array.Empty<List<GenerationUpdate>>();
        public Exception?[] Errors = Array.Empty<Exception?>();
        public bool[] Ended = Array.Empty<bool>();
        public int MaxActive;

        /// <summary>Per step, the plans that got an update in it.</summary>
        public List<HashSet<int>> Steps = new();
    }

    private List<GenerationUpdate> Alone(Plan p) => _f.Vlm.Generate(p.Request, p.Options, p.Cache).ToList();

    /// <summary>Runs the plans through one scheduler: plan i joins before step JoinAt.</summary>
    private Run Together(IReadOnlyList<Plan> plans, GenerationSchedulerOptions? options = null, Action<int, GenerationScheduler>? afterStep = null)
    {
        using var scheduler = new GenerationScheduler(_f.Vlm, options ?? new GenerationSchedulerOptions { MaxConcurrentSequences = plans.Count });
        Assert.True(scheduler.IsBatched);
        var run = new Run
        {
            Updates = plans.Select(_ => new List<GenerationUpdate>()).ToArray(),
            Errors = new Exception?[plans.Count],
            Ended = new bool[plans.Count],
        };
        for (int step = 0; step <= plans.Max(p => p.JoinAt) || !scheduler.IsIdle; step++)
        {
            var got = new HashSet<int>();
            run.Steps.Add(got);
            for (int i = 0; i < plans.Count; i++)
            {
                if (plans[i].JoinAt == step)
                {
                    int index = i;
                    scheduler.Add(plans[i].Request, plans[i].Options, plans[i].Cache, u => { run.Updates[index].Add(u); run.Steps[^1].Add(index); }, e =>
                    {
                        Assert.False(run.Ended[index], "ended twice");
                        (run.Errors[index], run.Ended[index]) = (e, true);
                    }, plans[i].Token);
                }
            }

            run.MaxActive = Math.Max(run.MaxActive, scheduler.ActiveSequences);
            scheduler.Step();
            afterStep?.Invoke(step, scheduler);
        }

        Assert.Equal(0, scheduler.CacheMemory.TotalBytes);
        Assert.Equal(0, scheduler.ReservedCacheBytes);
        Assert.All(run.Ended, Assert.True);
        return run;
    }

    private static void AssertSame(List<GenerationUpdate> expected, List<GenerationUpdate> actual, string what)
    {
        Assert.True(expected.Count == actual.Count, $"{what}: {actual.Count} updates, {expected.Count} alone");
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i] == actual[i], $"{what}, update {i}: {actual[i]} batched, {expected[i]} alone");
        }
    }

    public static TheoryData<string> Presets() => new(KVCacheOptions.PresetNames);

    [Theory]
    [MemberData(nameof(Presets))]
    public void Scheduled_GivesEachSequenceItsOneAtATimeUpdates_AsSequencesJoinAndLeave(string preset)
    {
        using var scope = NewDisposeScope();
        string other = preset == "fp16" ? "vidkv-1.5/1.58" : "fp16";
        var greedy = new GenerationOptions { MaxNewTokens = 20, StopAtEndOfTurn = false };
        var sampled = new GenerationOptions { MaxNewTokens = 14, Temperature = 1.3, TopP = 0.95, Seed = 42, StopAtEndOfTurn = false };
        var plans = new[]
        {
            new Plan(0, Question(4, "What happens in this video?"), greedy, Cache(preset)),
            new Plan(0, Question(2, "Which colour is the square?"), sampled, Cache(preset)),
            new Plan(3, Question(3, "Where does it move?"), sampled with { Seed = 7, TopK = 20, MaxNewTokens = 9 }, Cache(other)),
            new Plan(5, Question(4, "Describe it."), greedy with { MaxNewTokens = 30, StopAtEndOfTurn = true }, Cache(preset)),
            new Plan(6, Question(1, "Count the objects."), sampled with { Seed = 3, MaxNewTokens = 1 }, Cache(preset)),
        };

        var run = Together(plans);

        Assert.True(run.MaxActive >= 4, $"at most {run.MaxActive} active together");
        for (int i = 0; i < plans.Length; i++)
        {
            Assert.Null(run.Errors[i]);
            AssertSame(Alone(plans[i]), run.Updates[i], $"{preset}, sequence {i}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchedStep_RowWiseLogitsAreBitwiseThoseOfOneSequenceSteps(bool rowWise)
    {
        using var scope = NewDisposeScope();
        var decoder = _f.Vlm.BatchedDecoder!;
        var requests = new[] { Question(4, "What happens?"), Question(2, "Which colour is the square in the first frame?"), Question(3, "Where?") };
        var presets = new[] { "fp16", "vidkv-1.5/1.58", "vidkv-2" };
        var ids = tensor(new long[] { 11, 220, 3 }).reshape(3, 1);
        var alone = requests.Select((r, i) => Prefilled(r, Cache(presets[i]))).ToArray();
        var batched = requests.Select((r, i) => Prefilled(r, Cache(presets[i]))).ToArray();
        double largest = 0;
        try
        {
            for (int step = 0; step < 20; step++)
            {
                using var stepScope = NewDisposeScope();
                var hb = decoder.ForwardDecodeBatch(_f.Vlm.Embed(ids), new Tensor?[3], batched, rowWise).select(1, -1);
                for (int i = 0; i < 3; i++)
                {
                    var h = _f.Vlm.Forward(new DecoderInput(_f.Vlm.Embed(ids.narrow(0, i, 1))) { Cache = alone[i] });
                    var single = _f.Vlm.Logits(h.select(1, -1))[0];
                    var row = _f.Vlm.Logits(hb.narrow(0, i, 1).clone())[0];
                    double difference = (single - row).abs().max().item<float>();
                    largest = Math.Max(largest, difference);
                    Assert.True(!rowWise || difference == 0, $"step {step}, sequence {i}: logits differ by up to {difference}");
                    Assert.True(difference < 1e-4, $"step {step}, sequence {i}: logits differ by up to {difference}");
                    Assert.Equal(alone[i].Length, batched[i].Length);
                }
            }
        }
        finally
        {
            foreach (var c in alone.Concat(batched))
            {
                c.Dispose();
            }
        }

        // Records what the batch-wide products cost in exactness (documented in GenerationSchedulerOptions.RowWise).
        Assert.True(rowWise ? largest == 0 : largest > 0, $"largest difference {largest}");
    }

    [Fact]
    public void CancelledSequence_LeavesAtTheNextStepAndFreesItsCache_OthersAreUnchanged()
    {
        using var scope = NewDisposeScope();
        var caches = new List<ModelKVCache>();
        _f.Vlm.CacheCreated = caches.Add;
        try
        {
            using var cancel = new CancellationTokenSource();
            var options = new GenerationOptions { MaxNewTokens = 12, StopAtEndOfTurn = false };
            var keep = new Plan(0, Question(4, "What happens in this video?"), options with { Temperature = 1.0, Seed = 5 }, Cache("vidkv-1.5/1.58"));
            var cancelled = new Plan(0, Question(2, "Which colour?"), options, Cache("vidkv-1.5/1.58"), cancel.Token);
            var late = new Plan(1, Question(3, "Where?"), options, Cache("fp16"));
            ModelKVCache? cancelledCache = null;
            Alone(late); // whatever the model builds on first use exists before the count
            caches.Clear();
            long live = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;

            var run = Together(new[] { keep, cancelled, late }, afterStep: (step, scheduler) =>
            {
                if (step == 3)
                {
                    cancelledCache = caches[1];
                    Assert.True(cancelledCache.Memory.TotalBytes > 0);
                    Assert.Equal(3, scheduler.ActiveSequences);
                    cancel.Cancel();
                }

                if (step == 4)
                {
                    // Gone within one step: its cache freed and its bytes no longer held.
                    Assert.Equal(0, cancelledCache!.Memory.TotalBytes);
                    Assert.Equal(2, scheduler.ActiveSequences);
                }
            });

            Assert.Equal(live, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount); // no tensor of any sequence is left
            Assert.Equal(3, caches.Count);
            Assert.All(caches, c => Assert.Equal(0, c.Memory.TotalBytes));
            Assert.Null(run.Errors[0]);
            Assert.Null(run.Errors[2]);
            AssertSame(Alone(keep), run.Updates[0], "the sequence that stayed");
            AssertSame(Alone(late), run.Updates[2], "the sequence that joined later");
            Assert.IsType<OperationCanceledException>(run.Errors[1]);
            Assert.InRange(run.Updates[1].Count, 1, 4);
            Assert.All(run.Updates[1], u => Assert.Null(u.FinishReason));
        }
        finally
        {
            _f.Vlm.CacheCreated = null;
        }
    }

    [Fact]
    public void ChunkedPrefill_InterleavesWithRunningStreams_AndGivesTheSameTokensAsAloneWithTheSameChunks()
    {
        using var scope = NewDisposeScope();
        var options = new GenerationOptions { MaxNewTokens = 16, StopAtEndOfTurn = false };
        var chunked = new GenerationSchedulerOptions { MaxConcurrentSequences = 4, PrefillChunkTokens = 16 };
        var first = new Plan(0, Question(2, "What happens?"), options with { MaxNewTokens = 60 }, Cache("vidkv-1.5/1.58"));
        var joiner = new Plan(12, Question(4, "Describe the video in detail."), options with { Temperature = 0.8, Seed = 11 }, Cache("vidkv-1.5/1.58"));

        var run = Together(new[] { first, joiner }, chunked);

        // The joiner's prompt is several chunks: while it prefilled, the running stream got a token at every step.
        int runningFirst = run.Steps.FindIndex(s => s.Contains(0));
        int joinerFirst = run.Steps.FindIndex(s => s.Contains(1));
        int prompt = run.Updates[1][^1].Usage!.PromptTokens;
        Assert.True(runningFirst < 12, $"the first stream's first token came at step {runningFirst}");
        Assert.True(prompt > 3 * 16, $"the joiner's prompt is {prompt} tokens");
        Assert.True(joinerFirst - 12 >= prompt / 16, $"the joiner's first token came at step {joinerFirst}");
        for (int step = 12; step <= joinerFirst; step++)
        {
            Assert.True(run.Steps[step].Contains(0), $"the running stream got no token at step {step} while the other prefilled");
        }

        // Alone with the same chunks: the same updates; chunks never depend on what else runs.
        var alone = Together(new[] { joiner with { JoinAt = 0 } }, chunked with { MaxConcurrentSequences = 1 });
        AssertSame(alone.Updates[0], run.Updates[1], "the chunked joiner");
        AssertSame(Together(new[] { first }, chunked with { MaxConcurrentSequences = 1 }).Updates[0], run.Updates[0], "the running stream");
    }

    [Fact]
    public void Admission_IsByMeasuredBytes_AndRefusesARequestThatCanNeverFit()
    {
        using var scope = NewDisposeScope();
        var options = new GenerationOptions { MaxNewTokens = 24, StopAtEndOfTurn = false };
        var request = Question(4, "What happens in this video?");
        using var probe = new GenerationScheduler(_f.Vlm);
        long fp16 = probe.CacheBytesNeeded(request, options, Cache("fp16"));
        long ternary = probe.CacheBytesNeeded(request, options, Cache("vidkv-1.5/1.58"));
        Assert.True(ternary * 2 < fp16, $"vidkv-1.5/1.58 {ternary} bytes, fp16 {fp16}");

        // The measure is what the cache reaches (the prompt and every new token but the last, which is never fed back): the
        // final usage reports those bytes (the prompt bound is exact here: the video has FrameCount frames).
        var alone = _f.Vlm.Generate(request, options, Cache("fp16")).Last();
        Assert.Equal(fp16, alone.Usage!.Cache.TotalBytes);

        // A compressed cache that decoded keeps its residual in buffers of R tokens (written in place each step): the
        // estimate counts them, so it bounds what the cache holds at the end, by at most those buffers.
        var compressed = _f.Vlm.Generate(request, options, Cache("vidkv-1.5/1.58")).Last().Usage!.Cache.TotalBytes;
        Assert.True(compressed <= ternary, $"vidkv-1.5/1.58 held {compressed} bytes, estimated {ternary}");
        Assert.True(ternary - compressed < ternary / 4, $"vidkv-1.5/1.58 held {compressed} bytes, estimated {ternary}");

        // Room for two fp16 caches: a third waits until one ends.
        using var scheduler = new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxCacheBytes = (2 * fp16) + (fp16 / 2) });
        var ended = new List<int>();
        for (int i = 0; i < 2; i++)
        {
            int index = i;
            Assert.True(scheduler.CanAdmit(scheduler.CacheBytesNeeded(request, options, Cache("fp16"))));
            scheduler.Add(request, options, Cache("fp16"), _ => { }, e => { Assert.Null(e); ended.Add(index); });
        }

        Assert.False(scheduler.CanAdmit(fp16));
        Assert.True(scheduler.CanAdmit(ternary));
        Assert.Throws<InvalidOperationException>(() => scheduler.Add(request, options, Cache("fp16"), _ => { }, _ => { }));
        while (!scheduler.IsIdle)
        {
            scheduler.Step();
        }

        Assert.Equal(new[] { 0, 1 }, ended);
        Assert.True(scheduler.CanAdmit(fp16));

        // One cache larger than the whole budget can never be admitted: a clear error, nothing kept.
        using var small = new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxCacheBytes = fp16 / 2 });
        var ex = Assert.Throws<ArgumentException>(() => small.Add(request, options, Cache("fp16"), _ => { }, _ => { }));
        Assert.Contains("MaxCacheBytes", ex.Message, StringComparison.Ordinal);
        Assert.True(small.IsIdle);

        // And by count.
        using var one = new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxConcurrentSequences = 1 });
        one.Add(request, options, Cache("fp16"), _ => { }, _ => { });
        Assert.False(one.CanAdmit(0));
    }

    [Fact]
    public void ARequestWhosePromptCannotBeCountedBeforeDecoding_ReservesItsContext_AtMostTheBudget_AndRunsAlone()
    {
        using var scope = NewDisposeScope();
        var image = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new ImagePart(), new TextPart("What is this?") }) })
        {
            Images = new[] { MediaSource.FromPixels(_f.Ref("video.frames")[0]) },
        };
        var options = new GenerationOptions { MaxNewTokens = 4, StopAtEndOfTurn = false };
        using var roomy = new GenerationScheduler(_f.Vlm);
        long context = roomy.CacheBytesNeeded(image, options, Cache("fp16"));
        Assert.True(context > roomy.CacheBytesNeeded(Question(4, "What is this?"), options, Cache("fp16")));

        using var tight = new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxCacheBytes = context / 4 });
        Assert.Equal(context / 4, tight.CacheBytesNeeded(image, options, Cache("fp16")));
        GenerationUpdate? last = null;
        tight.Add(image, options, Cache("fp16"), u => last = u, Assert.Null);
        Assert.False(tight.CanAdmit(1));
        while (!tight.IsIdle)
        {
            tight.Step();
        }

        Assert.Equal(FinishReason.Length, last!.FinishReason);
    }

    [Fact]
    public void BadRequestOrCancelled_EndsWithItsErrorAndKeepsNothing()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new GenerationScheduler(_f.Vlm);
        var ex = Assert.Throws<ArgumentException>(() => scheduler.Add(Question(4, "?"), new GenerationOptions { MaxNewTokens = 0 }, Cache("fp16"), _ => { }, _ => { }));
        Exception? tooLong = null, cancelled = null;
        scheduler.Add(Question(4, "?"), new GenerationOptions { MaxNewTokens = 2000 }, Cache("fp16"), _ => { }, e => tooLong = e);
        scheduler.Add(Question(4, "?"), new GenerationOptions(), Cache("fp16"), _ => { }, e => cancelled = e, new CancellationToken(true));
        while (!scheduler.IsIdle)
        {
            scheduler.Step();
        }

        Assert.Contains("context is 2048 tokens", Assert.IsType<ArgumentException>(tooLong).Message, StringComparison.Ordinal);
        Assert.IsType<OperationCanceledException>(cancelled);
        Assert.Equal(0, scheduler.CacheMemory.TotalBytes);
        Assert.Equal(0, scheduler.ReservedCacheBytes);
    }

    [Fact]
    public void SequencesOfARememberedVideo_PrefillOnlyTheirQuestions_AndAnswerAsAlone()
    {
        using var scope = NewDisposeScope();
        _f.Vlm.ConfigureVideoMemory(new VideoMemoryOptions());
        try
        {
            var cache = Cache("vidkv-1.5/1.58");
            var remembered = _f.Vlm.RememberVideo(Question(4, "What happens?"), cache);
            var options = new GenerationOptions { MaxNewTokens = 10, StopAtEndOfTurn = false };
            var plans = new[]
            {
                new Plan(0, Question(4, "Which colour is the square?"), options, cache),
                new Plan(1, Question(4, "Where does it move?"), options with { Temperature = 1.1, Seed = 9 }, cache),
            };
            var expected = plans.Select(Alone).ToArray();
            int encodes = _f.Vlm.VisualEncodes;

            var run = Together(plans);

            Assert.Equal(encodes, _f.Vlm.VisualEncodes); // the vision tower did not run: both read the stored video
            for (int i = 0; i < plans.Length; i++)
            {
                Assert.Null(run.Errors[i]);
                // At least the video (the runs alone also stored their conversations, which the scheduled ones then reuse).
                Assert.True(run.Updates[i][^1].Usage!.CachedPromptTokens >= remembered.PromptTokens, $"{run.Updates[i][^1].Usage!.CachedPromptTokens} cached tokens");
                AssertSame(expected[i].Select(WithoutCachedCount).ToList(), run.Updates[i].Select(WithoutCachedCount).ToList(), $"sequence {i}");
            }
        }
        finally
        {
            _f.Vlm.ConfigureVideoMemory(new VideoMemoryOptions { Enabled = false });
        }
    }

    [Fact]
    public void Options_OutOfRange_AreRefusedByName()
    {
        Assert.Contains("MaxConcurrentSequences", Assert.Throws<ArgumentException>(() => new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxConcurrentSequences = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("MaxCacheBytes", Assert.Throws<ArgumentException>(() => new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { MaxCacheBytes = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("PrefillChunkTokens", Assert.Throws<ArgumentException>(() => new GenerationScheduler(_f.Vlm, new GenerationSchedulerOptions { PrefillChunkTokens = -1 })).Message, StringComparison.Ordinal);
    }

    private static GenerationUpdate WithoutCachedCount(GenerationUpdate u) => u with { Usage = u.Usage is null ? null : u.Usage with { CachedPromptTokens = 0 } };

    private ModelKVCache Prefilled(ChatRequest request, KVCacheOptions options)
    {
        var cache = _f.Vlm.CreateCache(options);
        var media = _f.Vlm.Decode(request, CancellationToken.None);
        var prompt = _f.Vlm.Encode(_f.Vlm.Layout(request, media), media, options);
        _f.Vlm.Forward(new DecoderInput(prompt.Embeddings) { Cache = cache, Importance = prompt.Importance });
        return cache;
    }
}
