using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models.Qwen25VL;
using VidKV.AI.Backend.Tests.Models;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>
/// The video memory on Qwen2.5-VL and Qwen2-VL (the tiny transformers fixtures): the prefix is cut right after the last
/// <c>&lt;|vision_end|&gt;</c>, and the text after it continues from the multimodal rotary position the prefix ends at,
/// which after a video or image is not its token count.
/// </summary>
public sealed class QwenVideoMemoryTests : IClassFixture<QwenTinyFixture>, IDisposable
{
    private static readonly KVCacheOptions Compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
    private readonly QwenTinyFixture _f;
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "vidkv-qwen-memory-" + Guid.NewGuid().ToString("N"));

    public QwenVideoMemoryTests(QwenTinyFixture fixture)
    {
        _f = fixture;
        foreach (var family in QwenTinyFixture.Families)
        {
            _f.Model(family).ConfigureVideoMemory(new VideoMemoryOptions()); // every test starts with an empty memory
        }
    }

    public static TheoryData<string, string> FamiliesAndMedia()
    {
        var data = new TheoryData<string, string>();
        foreach (var family in QwenTinyFixture.Families)
        {
            data.Add(family, "video");
            data.Add(family, "image");
        }

        return data;
    }

    public void Dispose()
    {
        foreach (var family in QwenTinyFixture.Families)
        {
            _f.Model(family).ConfigureVideoMemory(new VideoMemoryOptions());
        }

        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(FamiliesAndMedia))]
    public void FollowUpQuestion_ReusesTheMedia_WithoutDecodingOrEncodingIt(string family, string media)
    {
        var model = _f.Model(family);
        var first = Run(model, Ask(family, media, "What happens here?"));
        int decodes = model.MediaDecodes, encodes = model.VisualEncodes;

        var second = Run(model, Ask(family, media, "How many objects are there?"));

        Assert.Equal(0, first.Usage.CachedPromptTokens);
        Assert.Equal(decodes, model.MediaDecodes);
        Assert.Equal(encodes, model.VisualEncodes);
        // The prefix ends with <|vision_end|>: everything before the question's text.
        int prefix = first.Usage.PromptTokens - model.Tokenizer.Encode("What happens here?<|im_end|>\n<|im_start|>assistant\n").Count;
        Assert.Equal(prefix, second.Usage.CachedPromptTokens);
        Assert.Equal(first.Usage.VideoTokens + first.Usage.ImageTokens, second.Usage.VideoTokens + second.Usage.ImageTokens);
        Assert.True(first.Usage.VideoTokens + first.Usage.ImageTokens > 0);
        Assert.Equal(1, model.VideoMemory.Hits);
    }

    [Theory]
    [MemberData(nameof(FamiliesAndMedia))]
    public void ReusedAnswer_EqualsTheAnswerPrefilledOverTheSameCut(string family, string media)
    {
        var model = _f.Model(family);
        var asked = Ask(family, media, "What happens here?");
        var fresh = Run(model, asked); // nothing stored: the prefix, then the question over its compressed cache
        model.ConfigureVideoMemory(new VideoMemoryOptions());
        Run(model, Ask(family, media, "Something else entirely?"));

        var reused = Run(model, asked);

        Assert.True(reused.Usage.CachedPromptTokens > 0);
        Assert.Equal(fresh.Tokens, reused.Tokens);
        Assert.Equal(fresh.Usage.PromptTokens, reused.Usage.PromptTokens);
    }

    [Theory]
    [MemberData(nameof(FamiliesAndMedia))]
    public async Task StoredPrefix_ContinuesFromTheMultimodalPosition_NotTheTokenCount(string family, string media)
    {
        var model = _f.Model(family);
        var remembered = model.RememberVideo(Ask(family, media, "What happens here?"), Compact);
        using var hit = await model.VideoMemory.InMemoryStore!.TryRestoreAsync(remembered.Key, Compact);
        using var scope = NewDisposeScope();
        var (positions, _) = model.PositionIds(Ask(family, media, "What happens here?"));

        var prefix = hit!.Prefix;
        Assert.Equal(remembered.PromptTokens, prefix.Ids.Count);
        Assert.Equal(model.Model.Config.VisionEndTokenId, prefix.Ids[^1]);
        Assert.Equal(positions.narrow(1, 0, prefix.Ids.Count).max().item<long>() + 1, prefix.NextPosition);
        Assert.Equal(positions[0, prefix.Ids.Count].item<long>(), prefix.NextPosition); // where the full prompt's question starts
        Assert.True(prefix.NextPosition < prefix.Ids.Count, $"next position {prefix.NextPosition}, {prefix.Ids.Count} tokens");
    }

    [Theory]
    [MemberData(nameof(FamiliesAndMedia))]
    public void SecondTurn_ReusesTheWholeEarlierConversation(string family, string media)
    {
        var model = _f.Model(family);
        var turn1 = Ask(family, media, "What happens here?");
        var usage1 = Run(model, turn1).Usage;
        var history = new[] { turn1.Turns[0], new ChatTurn(ChatRole.Assistant, "Three objects move.") };
        var turn2 = Ask(family, media, "And then?", history);

        var usage2 = Run(model, turn2).Usage;

        // Turn 1's prompt up to its user turn's <|im_end|> is turn 2's cached prefix.
        int conversation = usage1.PromptTokens - model.Tokenizer.Encode("\n<|im_start|>assistant\n").Count;
        Assert.Equal(conversation, usage2.CachedPromptTokens);

        // A third turn finds the longer prefix turn 2 stored.
        var turn3 = Ask(family, media, "Why?", [.. history, new ChatTurn(ChatRole.User, "And then?"), new ChatTurn(ChatRole.Assistant, "They stop.")]);
        Assert.Equal(usage2.PromptTokens - model.Tokenizer.Encode("\n<|im_start|>assistant\n").Count, Run(model, turn3).Usage.CachedPromptTokens);
    }

    [Theory]
    [MemberData(nameof(FamiliesAndMedia))]
    public void DiskStore_RoundTrip_AnswersWithoutDecodingOrEncoding(string family, string media)
    {
        var model = _f.Model(family);
        var request = Ask(family, media, "What happens here?");
        model.ConfigureVideoMemory(new VideoMemoryOptions { MemoryBudgetBytes = 0, SharedStore = new SerializedVideoMemoryStore(new DiskVideoMemoryStore(_folder)) });
        var first = Run(model, request);
        Assert.NotEmpty(Directory.GetFiles(_folder, "*" + DiskVideoMemoryStore.Extension));

        // A new memory over the same folder: nothing in memory, the entries read back from the files.
        model.ConfigureVideoMemory(new VideoMemoryOptions { SharedStore = new SerializedVideoMemoryStore(new DiskVideoMemoryStore(_folder)) });
        int decodes = model.MediaDecodes, encodes = model.VisualEncodes;
        var second = Run(model, request);

        Assert.Equal(decodes, model.MediaDecodes);
        Assert.Equal(encodes, model.VisualEncodes);
        Assert.True(second.Usage.CachedPromptTokens > 0);
        Assert.Equal(first.Tokens, second.Tokens);
    }

    [Fact]
    public void MemoryOff_AndProtectedPresets_PrefillTheWholePrompt()
    {
        var model = _f.Model("qwen2_5_vl");
        var request = Ask("qwen2_5_vl", "video", "What happens here?");
        Run(model, request);

        Assert.Equal(0, Run(model, request, useMemory: false).Usage.CachedPromptTokens);
        var protectedOptions = KVCacheOptions.FromPreset("vidkv-1.5/1.66") with { GroupSize = 16, ResidualLength = 16 };
        Assert.Equal(0, Run(model, request, protectedOptions).Usage.CachedPromptTokens);
    }

    private ChatRequest Ask(string family, string media, string question, params ChatTurn[] history)
    {
        bool video = media == "video";
        ChatPart visual = video ? new VideoPart() : new ImagePart();
        var turns = history.Length == 0
            ? new[] { new ChatTurn(ChatRole.User, [visual, new TextPart(question)]) }
            : history.Append(new ChatTurn(ChatRole.User, [new TextPart(question)])).ToArray();
        var pixels = MediaSource.FromPixels(_f.Ref(family, video ? "video.video0.raw" : "image.image0.raw"));
        return video ? new ChatRequest(turns) { Videos = [pixels] } : new ChatRequest(turns) { Images = [pixels] };
    }

    private static (int[] Tokens, GenerationUsage Usage) Run(Qwen25VLVideoModel model, ChatRequest request, KVCacheOptions? options = null, bool useMemory = true)
        => VideoMemoryTests.Run(model, request, options ?? Compact, useMemory);
}
