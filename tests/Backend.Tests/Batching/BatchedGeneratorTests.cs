using VidKV.AI.Backend.Batching;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Tests.Generation;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Batching;

public sealed class BatchedGeneratorTests : IClassFixture<PipelineFixture>
{
    private readonly PipelineFixture _f;

    public BatchedGeneratorTests(PipelineFixture fixture)
    {
        _f = fixture;
        // The one-at-a-time runs compared with are plain prefills: no video memory (a remembered video is read compressed).
        _f.Vlm.ConfigureVideoMemory(new VidKV.AI.Backend.Memory.VideoMemoryOptions { Enabled = false });
    }

    /// <summary>Small groups and residuals, so that the caches flush to packed codes within a few decode steps.</summary>
    private static KVCacheOptions Cache(string preset) => KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { GroupSize = 16, ResidualLength = 16 };

    private ChatRequest Question(int frames, string question)
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(question) }) })
        {
            Videos = new[] { MediaSource.FromPixels(_f.Ref("video.frames").narrow(0, 0, frames)) },
        };

    private sealed record Plan(int JoinAt, ChatRequest Request, GenerationOptions Options, KVCacheOptions Cache, CancellationToken Token = default);

    private List<GenerationUpdate> Alone(Plan p) => _f.Vlm.Generate(p.Request, p.Options, p.Cache).ToList();

    /// <summary>Runs the plans through one generator: plan i joins before step JoinAt; returns each plan's updates or error.</summary>
    private (List<GenerationUpdate>[] Updates, Exception?[] Errors, int MaxActive) Together(IReadOnlyList<Plan> plans, Action<int, BatchedGenerator>? afterStep = null)
    {
        using var generator = new BatchedGenerator(_f.Vlm);
        Assert.True(generator.IsBatched);
        var updates = plans.Select(_ => new List<GenerationUpdate>()).ToArray();
        var errors = new Exception?[plans.Count];
        int maxActive = 0;
        void Record(SequenceUpdate u)
        {
            int index = (int)u.Sequence.Tag!;
            if (u.Update is { } update)
            {
                updates[index].Add(update);
            }

            errors[index] = u.Error;
        }

        for (int step = 0; step <= plans.Max(p => p.JoinAt) || generator.Active.Count > 0; step++)
        {
            for (int i = 0; i < plans.Count; i++)
            {
                if (plans[i].JoinAt == step)
                {
                    Record(generator.Admit(plans[i].Request, plans[i].Options, plans[i].Cache, plans[i].Token, tag: i));
                }
            }

            maxActive = Math.Max(maxActive, generator.Active.Count);
            foreach (var u in generator.Step())
            {
                Record(u);
            }

            afterStep?.Invoke(step, generator);
        }

        Assert.Equal(0, generator.Memory.TotalBytes);
        return (updates, errors, maxActive);
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
    public void Batched_GivesEachSequenceItsOneAtATimeUpdates(string preset)
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

        var (together, errors, maxActive) = Together(plans);

        Assert.Equal(4, maxActive);
        for (int i = 0; i < plans.Length; i++)
        {
            Assert.Null(errors[i]);
            AssertSame(Alone(plans[i]), together[i], $"{preset}, sequence {i}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchedStep_RowWiseLogitsAreBitwiseThoseOfOneSequenceSteps(bool rowWise)
    {
        using var scope = NewDisposeScope();
        var decoder = BatchedGenerator.BatchedDecoderOf(_f.Vlm)!;
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

        // Records what the batch-wide products cost in exactness (documented in BatchedGenerator's remarks).
        Assert.True(rowWise ? largest == 0 : largest > 0, $"largest difference {largest}");
    }

    [Fact]
    public void CancelledAndRemovedSequences_LeaveAtOnceAndFreeTheirCaches_OthersAreUnchanged()
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
            var removed = new Plan(1, Question(3, "Where?"), options, Cache("fp16"));
            BatchedSequence? toRemove = null;

            var (together, errors, _) = Together(new[] { keep, cancelled, removed }, (step, generator) =>
            {
                if (step == 2)
                {
                    cancel.Cancel();
                    toRemove = generator.Active.Single(s => (int)s.Tag! == 2);
                    Assert.True(toRemove.Cache.Memory.TotalBytes > 0);
                    Assert.True(generator.Remove(toRemove));
                    Assert.Equal(0, toRemove.Cache.Memory.TotalBytes);
                    Assert.DoesNotContain(toRemove, generator.Active);
                }

                if (step == 3)
                {
                    Assert.Single(generator.Active);
                }
            });

            Assert.Equal(3, caches.Count);
            Assert.All(caches, c => Assert.Equal(0, c.Memory.TotalBytes));
            Assert.Null(errors[0]);
            AssertSame(Alone(keep), together[0], "the sequence that stayed");
            Assert.IsType<OperationCanceledException>(errors[1]);
            Assert.Equal(4, together[1].Count); // the prefill's token and steps 0, 1 and 2; gone at step 3
            Assert.Equal(3, together[2].Count); // joined at step 1: the prefill's token and steps 1 and 2
            Assert.All(together[1].Concat(together[2]), u => Assert.Null(u.FinishReason));
        }
        finally
        {
            _f.Vlm.CacheCreated = null;
        }
    }

    [Fact]
    public void Admit_BadRequestOrCancelled_KeepsNothing()
    {
        using var scope = NewDisposeScope();
        using var generator = new BatchedGenerator(_f.Vlm);
        var tooLong = new GenerationOptions { MaxNewTokens = 2000 };
        var ex = Assert.Throws<ArgumentException>(() => generator.Admit(Question(4, "?"), tooLong, Cache("fp16")));
        Assert.Contains("context is 2048 tokens", ex.Message, StringComparison.Ordinal);
        Assert.Throws<OperationCanceledException>(() => generator.Admit(Question(4, "?"), new GenerationOptions(), Cache("fp16"), new CancellationToken(true)));
        Assert.Empty(generator.Active);
        Assert.Equal(0, generator.Memory.TotalBytes);
        Assert.Empty(generator.Step());
    }

    private ModelKVCache Prefilled(ChatRequest request, KVCacheOptions options)
    {
        var cache = _f.Vlm.CreateCache(options);
        var media = _f.Vlm.Decode(request, CancellationToken.None);
        var prompt = _f.Vlm.Encode(_f.Vlm.Layout(request, media), media, options);
        _f.Vlm.Forward(new DecoderInput(prompt.Embeddings) { Cache = cache, Importance = prompt.Importance });
        return cache;
    }
}
