using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Generation;

public sealed class VideoLanguageModelTests : IClassFixture<PipelineFixture>
{
    private readonly PipelineFixture _f;
    private readonly ITestOutputHelper _output;

    public VideoLanguageModelTests(PipelineFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    private static ChatRequest VideoQuestion(Tensor frames, string question = "What happens in this video?")
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(question) }) }) { Videos = new[] { MediaSource.FromPixels(frames) } };

    [Fact]
    public void Layout_EqualsTheProcessorsInputIds()
    {
        using var scope = NewDisposeScope();
        var layout = _f.Vlm.Layout(VideoQuestion(_f.Ref("video.frames")));

        Assert.Equal(_f.Ref("video.input_ids").data<long>().Select(i => (int)i), layout.Ids);
        Assert.Equal(4 * 9 + 1, layout.VideoTokens);
        var (start, length) = Assert.Single(layout.VideoSpans);
        Assert.Equal(37, length);
        Assert.Equal(_f.Vlm.Model.Config.VideoTokenId, layout.Ids[start]);
    }

    [Fact]
    public void Greedy_ReproducesTransformersTokens()
    {
        using var scope = NewDisposeScope();
        var expected = _f.Ref("video.greedy_tokens").data<long>().Select(i => (int)i).ToArray();
        var options = new GenerationOptions { MaxNewTokens = expected.Length, StopAtEndOfTurn = false };

        var updates = _f.Vlm.Generate(VideoQuestion(_f.Ref("video.frames")), options, KVCacheOptions.FromPreset("fp16")).ToList();

        Assert.Equal(expected, updates.Select(u => u.TokenId!.Value));
        var last = updates[^1];
        Assert.Equal(FinishReason.Length, last.FinishReason);
        Assert.Equal(expected.Length, last.Usage!.OutputTokens);
        Assert.Equal(63, last.Usage.PromptTokens);
        Assert.Equal(37, last.Usage.VideoTokens);
        Assert.Equal(_f.Vlm.Tokenizer.Decode(expected, skipSpecialTokens: true), string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates.SkipLast(1), u => Assert.Null(u.FinishReason));
    }

    [Fact]
    public void PreprocessedFrames_GiveTheSameTokensAsRawFrames()
    {
        using var scope = NewDisposeScope();
        var expected = _f.Ref("video.greedy_tokens").data<long>().Select(i => (int)i).ToArray();
        var preprocessed = _f.Vlm.VideoPreprocessor.Preprocess(_f.Ref("video.frames"));

        var tokens = _f.Vlm.Generate(VideoQuestion(preprocessed), new GenerationOptions { MaxNewTokens = expected.Length, StopAtEndOfTurn = false }, KVCacheOptions.FromPreset("fp16"))
            .Select(u => u.TokenId!.Value);

        Assert.Equal(ScalarType.Float32, preprocessed.dtype);
        Assert.Equal(expected, tokens);
    }

    [Fact]
    public void StopSequence_AcrossTokenBoundaries_EndsBeforeIt()
    {
        using var scope = NewDisposeScope();
        var greedy = _f.Ref("video.greedy_tokens").data<long>().Select(i => (int)i).ToArray();
        string full = _f.Vlm.Tokenizer.Decode(greedy, skipSpecialTokens: true);
        // A stop sequence made of the end of token 3's text and the start of token 4's.
        string upTo3 = _f.Vlm.Tokenizer.Decode(greedy.Take(4), skipSpecialTokens: true);
        string stop = full.Substring(upTo3.Length - 1, 2);
        Assert.Equal(upTo3.Length - 1, full.IndexOf(stop, StringComparison.Ordinal));

        var updates = _f.Vlm.Generate(VideoQuestion(_f.Ref("video.frames")), new GenerationOptions { MaxNewTokens = 10, StopAtEndOfTurn = false, StopSequences = new[] { stop } },
            KVCacheOptions.FromPreset("fp16")).ToList();

        Assert.Equal(FinishReason.StopSequence, updates[^1].FinishReason);
        Assert.Equal(full[..(upTo3.Length - 1)], string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(5, updates.Count);
    }

    [Fact]
    public void Sampling_IsReproducibleFromTheSeed()
    {
        using var scope = NewDisposeScope();
        var frames = _f.Ref("video.frames");
        int[] Run(GenerationOptions o) => _f.Vlm.Generate(VideoQuestion(frames), o, KVCacheOptions.FromPreset("fp16")).Select(u => u.TokenId ?? -1).ToArray();
        var sampled = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.95, Seed = 42, StopAtEndOfTurn = false };

        var a = Run(sampled);
        var b = Run(sampled);
        var c = Run(sampled with { Seed = 7 });
        var topK1 = Run(sampled with { TopK = 1 });
        var greedy = Run(sampled with { Temperature = 0 });

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(greedy, topK1);
        Assert.NotEqual(greedy, a);
    }

    [Fact]
    public void Cancellation_StopsBetweenTokensAndFreesTheCache()
    {
        using var scope = NewDisposeScope();
        ModelKVCache? cache = null;
        _f.Vlm.CacheCreated = c => cache = c;
        try
        {
            using var cts = new CancellationTokenSource();
            int seen = 0;
            Assert.ThrowsAny<OperationCanceledException>(() =>
            {
                foreach (var update in _f.Vlm.Generate(VideoQuestion(_f.Ref("video.frames")), new GenerationOptions { MaxNewTokens = 50, StopAtEndOfTurn = false }, KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact), cts.Token))
                {
                    if (++seen == 2)
                    {
                        Assert.True(cache!.Memory.TotalBytes > 0);
                        cts.Cancel();
                    }
                }
            });

            Assert.Equal(2, seen);
            Assert.Equal(0, cache!.Memory.TotalBytes);
            Assert.Throws<ObjectDisposedException>(() => cache.Layers[0].Append(zeros(1, 2, 1, 64), zeros(1, 2, 1, 64)));
        }
        finally
        {
            _f.Vlm.CacheCreated = null;
        }
    }

    [Fact]
    public void AbandonedEnumeration_FreesTheCache()
    {
        using var scope = NewDisposeScope();
        ModelKVCache? cache = null;
        _f.Vlm.CacheCreated = c => cache = c;
        try
        {
            var first = _f.Vlm.Generate(VideoQuestion(_f.Ref("video.frames")), new GenerationOptions { MaxNewTokens = 50 }, KVCacheOptions.FromPreset("fp16")).First();
            Assert.NotNull(first.TokenId);
            Assert.Equal(0, cache!.Memory.TotalBytes);
        }
        finally
        {
            _f.Vlm.CacheCreated = null;
        }
    }

    [Fact]
    public void QuantizedPresets_ReportTheirCacheBytesInUsage()
    {
        using var scope = NewDisposeScope();
        var usage = new Dictionary<string, GenerationUsage>();
        foreach (var preset in new[] { "fp16", "vidkv-1.5/1.58", "vidkv-1.5/1.66" })
        {
            var options = KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { GroupSize = 16, ResidualLength = 16 };
            var updates = _f.Vlm.Generate(VideoQuestion(_f.Ref("video.frames")), new GenerationOptions { MaxNewTokens = 4, StopAtEndOfTurn = false }, options).ToList();
            usage[preset] = updates[^1].Usage!;
            Assert.All(updates, u => Assert.NotNull(u.TokenId));
        }

        var fp16 = usage["fp16"].Cache;
        var compressed = usage["vidkv-1.5/1.58"].Cache;
        _output.WriteLine($"fp16 cache {fp16.TotalBytes} bytes, vidkv-1.5/1.58 {compressed.TotalBytes} bytes ({compressed.BitsPerElement:F2} bits/element)");
        Assert.Equal(fp16.Elements, compressed.Elements);
        Assert.True(compressed.TotalBytes < fp16.TotalBytes / 2);
        Assert.Equal(2L * 2 * 2 * 64 * (63 + 3) * 2, fp16.Fp16Bytes); // K+V x layers x KV heads x head dim x tokens x 2 bytes
        Assert.Equal(fp16.Fp16Bytes, fp16.TotalBytes); // this model computes in float32; the fp16 preset holds its keys and values in fp16
    }

    [Fact]
    public void ImportanceScores_ScoreVideoTokensAgainstTheTextAfterThem()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var embeds = randn(1, 10, 4);

        var scores = PromptImportance.Scores(embeds, new[] { (2, 5) });

        var values = scores.data<float>().ToArray();
        Assert.All(new[] { 0, 1, 7, 8, 9 }, i => Assert.True(float.IsNaN(values[i])));
        var expected = matmul(embeds[0].narrow(0, 2, 5), embeds[0].narrow(0, 7, 3).t()).mean(new[] { 1L });
        Assert.True((scores.narrow(0, 2, 5) - expected).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void BadRequests_FailWithClearMessages()
    {
        using var scope = NewDisposeScope();
        var frames = _f.Ref("video.frames");
        var noVideo = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart("?") }) });
        Assert.Contains("more video parts", Assert.Throws<ArgumentException>(() => _f.Vlm.Layout(noVideo)).Message, StringComparison.Ordinal);

        var extra = VideoQuestion(frames) with { Images = new[] { MediaSource.FromPixels(zeros(new long[] { 10, 10, 3 }, ScalarType.Byte)) } };
        Assert.Contains("1 images were given", Assert.Throws<ArgumentException>(() => _f.Vlm.Layout(extra)).Message, StringComparison.Ordinal);

        var tooLong = new GenerationOptions { MaxNewTokens = 2000 };
        var ex = Assert.Throws<ArgumentException>(() => _f.Vlm.Generate(VideoQuestion(frames), tooLong, KVCacheOptions.FromPreset("fp16")).ToList());
        Assert.Contains("context is 2048 tokens", ex.Message, StringComparison.Ordinal);

        Assert.Contains("Temperature", Assert.Throws<ArgumentException>(() => _f.Vlm.Generate(VideoQuestion(frames), new GenerationOptions { Temperature = -1 }, KVCacheOptions.FromPreset("fp16"))).Message, StringComparison.Ordinal);
        var badFrames = VideoQuestion(zeros(new long[] { 2, 8, 8 }, ScalarType.Byte));
        Assert.Contains("[F >= 1, H, W, 3]", Assert.Throws<ArgumentException>(() => _f.Vlm.Layout(badFrames)).Message, StringComparison.Ordinal);
    }
}

/// <summary>Loads the tiny checkpoint as a whole pipeline once per test class.</summary>
public sealed class PipelineFixture : IDisposable
{
    private readonly SafetensorsFile _reference = SafetensorsFile.Open(Fixtures.Reference);

    public LlavaOnevisionVideoModel Vlm { get; } = LlavaOnevisionVideoModel.Load(Fixtures.Model);

    public Tensor Ref(string name) => _reference.Read(name);

    public void Dispose()
    {
        Vlm.Dispose();
        _reference.Dispose();
    }
}
