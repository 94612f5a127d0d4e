using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Tests.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>Prefix reuse through the generation loop, on the built-in model with a real clip decoded by ffmpeg.</summary>
public sealed class VideoMemoryTests : IClassFixture<VideoMemoryFixture>
{
    private static readonly KVCacheOptions Compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
    private static readonly FrameSamplingOptions EightFrames = new() { FrameCount = 8 };
    private readonly VideoLanguageModelBase _model;

    public VideoMemoryTests(VideoMemoryFixture fixture)
    {
        _model = fixture.Model;
        _model.ConfigureVideoMemory(new VideoMemoryOptions()); // every test starts with an empty memory
    }

    internal static ChatRequest Ask(string question, string? video = null, FrameSamplingOptions? sampling = null, params ChatTurn[] history)
        => new(history.Append(new ChatTurn(ChatRole.User, history.Length == 0 ? new ChatPart[] { new VideoPart(), new TextPart(question) } : new ChatPart[] { new TextPart(question) })).ToArray())
        {
            Videos = new[] { MediaSource.FromFile(video ?? TestClips.Mp4) },
            Sampling = sampling ?? EightFrames,
        };

    internal static (int[] Tokens, GenerationUsage Usage) Run(VideoLanguageModelBase model, ChatRequest request, KVCacheOptions options, bool useMemory = true)
    {
        using var scope = NewDisposeScope();
        var updates = model.Generate(request, new GenerationOptions { MaxNewTokens = 6, StopAtEndOfTurn = false, UseVideoMemory = useMemory }, options).ToList();
        return (updates.Select(u => u.TokenId!.Value).ToArray(), updates[^1].Usage!);
    }

    [Fact]
    public void FollowUpQuestion_ReusesTheVideo_WithoutDecodingOrEncodingIt()
    {
        var first = Run(_model, Ask("what color is the square?"), Compact);
        int decodes = _model.MediaDecodes, encodes = _model.VisualEncodes;

        var second = Run(_model, Ask("how many objects are there?"), Compact);

        Assert.Equal(0, first.Usage.CachedPromptTokens);
        Assert.Equal(decodes, _model.MediaDecodes);
        Assert.Equal(encodes, _model.VisualEncodes);
        // The prefix is the turn's opening and the video: everything before the question's text.
        int prefix = first.Usage.PromptTokens - _model.Tokenizer.Encode("\nwhat color is the square?<|im_end|><|im_start|>assistant\n").Count;
        Assert.Equal(prefix, second.Usage.CachedPromptTokens);
        Assert.Equal(8 * 16 + 1, first.Usage.VideoTokens);
        Assert.Equal(first.Usage.VideoTokens, second.Usage.VideoTokens);
        Assert.Equal(1, _model.VideoMemory.Hits);
    }

    [Fact]
    public void ReusedAnswer_EqualsTheAnswerOfAFirstQuestion()
    {
        // A first question prefills the video, then the question over the compressed cache: exactly what a reused video
        // gives, so an answer never depends on what was asked before.
        var asked = Ask("what shape moves left?");
        var first = Run(_model, asked, Compact);
        _model.ConfigureVideoMemory(new VideoMemoryOptions());
        Run(_model, Ask("something else entirely"), Compact);
        var reused = Run(_model, asked, Compact);

        Assert.True(reused.Usage.CachedPromptTokens > 0);
        Assert.Equal(first.Tokens, reused.Tokens);
    }

    [Fact]
    public void SecondTurn_ReusesTheWholeEarlierConversation()
    {
        var turn1 = Ask("what color is the square?");
        var (tokens, usage1) = Run(_model, turn1, Compact);
        string reply = _model.Tokenizer.Decode(tokens, skipSpecialTokens: true);
        var history = new[] { turn1.Turns[0], new ChatTurn(ChatRole.Assistant, reply) };
        var turn2 = Ask("and the circle?", history: history);

        var usage2 = Run(_model, turn2, Compact).Usage;

        // Turn 1's prompt up to its closing <|im_end|> (without "<|im_start|>assistant\n") is turn 2's cached prefix.
        int conversation = usage1.PromptTokens - _model.Tokenizer.Encode("<|im_start|>assistant\n").Count;
        Assert.Equal(conversation, usage2.CachedPromptTokens);
        Assert.True(usage2.CachedPromptTokens > usage1.PromptTokens - 20);

        // A third request of the same two turns finds the longer prefix stored by turn 2.
        var turn3 = Ask("and the triangle?", history: new[] { turn1.Turns[0], history[1], new ChatTurn(ChatRole.User, "and the circle?"), new ChatTurn(ChatRole.Assistant, "red") });
        var usage3 = Run(_model, turn3, Compact).Usage;
        Assert.True(usage3.CachedPromptTokens > usage2.CachedPromptTokens);
    }

    [Fact]
    public void OtherSamplingOrOptions_AreMisses()
    {
        Run(_model, Ask("what color is the square?"), Compact);

        Assert.Equal(0, Run(_model, Ask("what color is the square?", sampling: new FrameSamplingOptions { FrameCount = 4 }), Compact).Usage.CachedPromptTokens);
        Assert.Equal(0, Run(_model, Ask("what color is the square?"), Compact with { ValueAxis = Quantization.Quantizers.QuantizationAxis.PerToken }).Usage.CachedPromptTokens);
        Assert.Equal(0, Run(_model, Ask("what color is the square?", video: TestClips.Mkv), Compact).Usage.CachedPromptTokens);
        Assert.True(Run(_model, Ask("what color is the square?"), Compact).Usage.CachedPromptTokens > 0);
    }

    [Fact]
    public void ProtectedPresets_AreNeverReused()
    {
        var stp = KVCacheOptions.FromPreset("vidkv-1.5/1.66", CacheProfile.Compact);
        var fresh = Run(_model, Ask("what color is the square?"), stp, useMemory: false);

        Run(_model, Ask("how many objects are there?"), stp);
        var again = Run(_model, Ask("what color is the square?"), stp);

        Assert.Equal(0, again.Usage.CachedPromptTokens);
        Assert.Equal(fresh.Tokens, again.Tokens);
        Assert.Equal(0, _model.VideoMemory.Saves);
        Assert.Throws<NotSupportedException>(() => _model.RememberVideo(MediaSource.FromFile(TestClips.Mp4), EightFrames, stp));
    }

    [Fact]
    public void ProtectionScores_DependOnTheQuestionAfterTheVideo()
    {
        // Why protected presets are not reused: the same video's scores change with the question.
        using var scope = NewDisposeScope();
        var stp = KVCacheOptions.FromPreset("vidkv-1.5/1.66", CacheProfile.Compact);
        Tensor Scores(string question)
        {
            var request = Ask(question);
            var media = _model.Decode(request, CancellationToken.None);
            return _model.Encode(_model.Layout(request, media), media, stp).Importance!;
        }

        var a = Scores("what color is the square?");
        var b = Scores("how many objects are there?");
        var videoA = a.masked_select(a.isfinite());
        var videoB = b.masked_select(b.isfinite());
        Assert.Equal(8 * 16 + 1, videoA.shape[0]);
        Assert.Equal(videoA.shape, videoB.shape);
        Assert.False(videoA.allclose(videoB));
    }

    [Fact]
    public void RememberVideo_EncodesAheadOfTime_WithProgress_AndForgetVideoDropsIt()
    {
        var stages = new List<VideoMemoryStage>();
        var video = MediaSource.FromFile(TestClips.Mp4);

        var remembered = _model.RememberVideo(video, EightFrames, Compact, new SynchronousProgress(p => stages.Add(p.Stage)));
        int encodes = _model.VisualEncodes;
        var usage = Run(_model, Ask("what color is the square?"), Compact).Usage;
        var again = _model.RememberVideo(video, EightFrames, Compact);

        Assert.Equal(new[] { VideoMemoryStage.Lookup, VideoMemoryStage.Decoding, VideoMemoryStage.Encoding, VideoMemoryStage.Prefilling, VideoMemoryStage.Storing, VideoMemoryStage.Done }, stages);
        Assert.False(remembered.AlreadyRemembered);
        Assert.True(again.AlreadyRemembered);
        Assert.Equal(remembered.PromptTokens, usage.CachedPromptTokens);
        Assert.Equal(usage.VideoTokens, remembered.VideoTokens);
        Assert.Equal(encodes, _model.VisualEncodes);
        Assert.True(remembered.Cache.TotalBytes > 0 && remembered.Cache.TotalBytes < remembered.Cache.Fp16Bytes);

        Assert.True(_model.ForgetVideo(video) >= 1);
        Assert.Equal(0, _model.VideoMemory.InMemoryStore!.Count);
        Assert.Equal(0, Run(_model, Ask("what color is the square?"), Compact).Usage.CachedPromptTokens);
        Assert.Equal(encodes + 1, _model.VisualEncodes);
    }

    [Fact]
    public void RememberVideo_Cancelled_StoresNothing()
    {
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress(p =>
        {
            if (p.Stage == VideoMemoryStage.Encoding)
            {
                cts.Cancel();
            }
        });

        Assert.ThrowsAny<OperationCanceledException>(() => _model.RememberVideo(MediaSource.FromFile(TestClips.Mp4), EightFrames, Compact, progress, cts.Token));
        Assert.Equal(0, _model.VideoMemory.InMemoryStore!.Count);
        Assert.Throws<ArgumentException>(() => _model.RememberVideo(new ChatRequest(new[] { new ChatTurn(ChatRole.User, "no video here") }), Compact));
    }

    [Fact]
    public void MemoryBudget_EvictsTheLeastRecentlyUsed()
    {
        // Four clips at 8 frames: snapshots of equal size; room for two and a half.
        RememberedVideo Remember(string clip) => _model.RememberVideo(MediaSource.FromFile(clip), EightFrames, Compact);
        var one = Remember(TestClips.Mp4);
        _model.ConfigureVideoMemory(new VideoMemoryOptions { MemoryBudgetBytes = one.Cache.TotalBytes * 5 / 2 });
        var store = _model.VideoMemory.InMemoryStore!;

        Remember(TestClips.Mp4);
        Remember(TestClips.Mkv);
        Assert.True(Remember(TestClips.Mp4).AlreadyRemembered); // now the most recently used
        Assert.Equal(one.Cache.TotalBytes, Remember(TestClips.Avi).Cache.TotalBytes);

        Assert.Equal(2, store.Count);
        Assert.True(store.Bytes <= store.BudgetBytes);
        Assert.True(Remember(TestClips.Mp4).AlreadyRemembered);
        Assert.False(Remember(TestClips.Mkv).AlreadyRemembered);
    }

    [Fact]
    public void MemoryOff_PrefillsInOnePass()
    {
        _model.ConfigureVideoMemory(new VideoMemoryOptions { Enabled = false });
        Run(_model, Ask("what color is the square?"), Compact);
        var second = Run(_model, Ask("what color is the square?"), Compact);

        Assert.Equal(0, second.Usage.CachedPromptTokens);
        Assert.Null(_model.VideoMemory.InMemoryStore);
        Assert.Throws<NotSupportedException>(() => _model.RememberVideo(MediaSource.FromFile(TestClips.Mp4), EightFrames, Compact));
        Assert.Throws<ArgumentException>(() => _model.ConfigureVideoMemory(new VideoMemoryOptions { MemoryBudgetBytes = 0 }));
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    internal sealed class SynchronousProgress(Action<VideoMemoryProgress> report) : IProgress<VideoMemoryProgress>
    {
        public void Report(VideoMemoryProgress value) => report(value);
    }
}
