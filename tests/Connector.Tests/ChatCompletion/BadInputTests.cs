using Microsoft.Extensions.AI;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>Each bad input gives an error naming the input and what is allowed, and leaves no tensor behind.</summary>
public sealed class BadInputTests : IClassFixture<ClientFixture>
{
    private readonly ClientFixture _f;

    public BadInputTests(ClientFixture fixture) => _f = fixture;

    private VidKVChatClient Client => _f.Client;

    private static ChatMessage Ask(params AIContent[] contents) => new(ChatRole.User, [.. contents, new TextContent("What happens?")]);

    [Fact]
    public async Task UnsupportedMediaType_IsRefused_NamingTheTypeAndWhatIsAllowed()
    {
        var e = await Expect<NotSupportedException>([Ask(new DataContent(new byte[] { 1, 2, 3 }, "audio/wav"))]);
        Assert.Contains("audio/wav", e.Message);
        Assert.Contains("image/* and video/*", e.Message);
    }

    [Fact]
    public async Task UnsupportedContent_IsRefused_NotDropped()
    {
        var e = await Expect<NotSupportedException>([new ChatMessage(ChatRole.User, [new FunctionCallContent("1", "f"), new TextContent("hi")])]);
        Assert.Contains("FunctionCallContent", e.Message);
    }

    [Fact]
    public async Task RemoteUri_IsRefused_WithTheFix()
    {
        var e = await Expect<NotSupportedException>([Ask(new UriContent(new Uri("https://example.invalid/clip.mp4"), "video/mp4"))]);
        Assert.Contains("Download remote media first", e.Message);
    }

    [Fact]
    public async Task MissingFile_IsRefused_NamingIt()
    {
        string path = Path.Combine(TinyModel.TempFolder, "missing.mp4");
        var e = await Expect<FileNotFoundException>([Ask(new UriContent(new Uri(path), "video/mp4"))]);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public async Task CorruptVideo_IsRefused_NamingIt()
    {
        var bytes = TinyModel.VideoBytes.ToArray();
        Array.Fill(bytes, (byte)0x5A, 64, bytes.Length - 64); // the header survives, the frames do not
        var e = await Expect<InvalidDataException>([Ask(new DataContent(bytes, "video/mp4") { Name = "broken.mp4" })]);
        Assert.Contains("broken.mp4", e.Message);
    }

    [Fact]
    public async Task NotAVideo_IsRefused_ListingWhatIsSupported()
    {
        var e = await Expect<NotSupportedException>([Ask(new DataContent("plain text, not a video"u8.ToArray(), "video/mp4") { Name = "notes.mp4" })]);
        Assert.Contains("notes.mp4", e.Message);
    }

    [Fact]
    public async Task EmptyVideo_IsRefused()
    {
        var e = await Expect<ArgumentException>([Ask(new DataContent(Array.Empty<byte>(), "video/mp4") { Name = "empty.mp4" })]);
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public async Task PromptLongerThanTheContext_IsRefused_WithTheCounts()
    {
        string question = string.Join(' ', Enumerable.Range(0, 6000).Select(i => "circle square"));
        var e = await Expect<ArgumentException>([new ChatMessage(ChatRole.User, question)]);
        Assert.Contains("context is 8192 tokens", e.Message);
    }

    [Theory]
    [InlineData("temperature", "Temperature is -1")]
    [InlineData("topp", "TopP is 0")]
    [InlineData("topk", "TopK is -3")]
    [InlineData("max", "MaxOutputTokens is 0")]
    [InlineData("preset", "Unknown KV cache preset 'vidkv-3'")]
    [InlineData("frames", "vidkv.frame_count\"] is 5000")]
    [InlineData("frames-type", "vidkv.frame_count\"] is String 'many'")]
    [InlineData("fps", "FramesPerSecond is 500")]
    [InlineData("range", "must be after Start")]
    [InlineData("model", "ChatOptions.ModelId is 'gpt-4o'")]
    public async Task InvalidOptions_AreRefused_NamingTheValue(string which, string expected)
    {
        var options = which switch
        {
            "temperature" => new ChatOptions { Temperature = -1 },
            "topp" => new ChatOptions { TopP = 0 },
            "topk" => new ChatOptions { TopK = -3 },
            "max" => new ChatOptions { MaxOutputTokens = 0 },
            "preset" => new ChatOptions().WithCachePreset("vidkv-3"),
            "frames" => new ChatOptions().WithFrameCount(5000),
            "frames-type" => new ChatOptions { AdditionalProperties = new() { [VidKVChatOptions.FrameCountKey] = "many" } },
            "fps" => new ChatOptions().WithFramesPerSecond(500),
            "range" => new ChatOptions().WithTimeRange(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1)),
            "model" => new ChatOptions { ModelId = "gpt-4o" },
            _ => throw new ArgumentOutOfRangeException(nameof(which)),
        };

        var e = await Expect<ArgumentException>([TinyModel.VideoQuestion()], options);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task ToolMessage_IsRefused()
    {
        var e = await Expect<NotSupportedException>([new ChatMessage(ChatRole.Tool, "42")]);
        Assert.Contains("role 'tool'", e.Message);
    }

    [Fact]
    public async Task NoMessages_IsRefused()
    {
        var e = await Expect<ArgumentException>([]);
        Assert.Contains("no messages", e.Message);
    }

    [Fact]
    public async Task AfterBadInputs_TheClientStillAnswers()
    {
        await Expect<NotSupportedException>([Ask(new DataContent(new byte[] { 1 }, "application/pdf"))]);
        var response = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 2 });
        Assert.NotNull(response.FinishReason);
    }

    private async Task<T> Expect<T>(IEnumerable<ChatMessage> messages, ChatOptions? options = null)
        where T : Exception
    {
        long before = await _f.LiveTensorsAsync();
        var e = await Assert.ThrowsAnyAsync<T>(() => Client.GetResponseAsync(messages, options));
        Assert.Equal(before, await _f.LiveTensorsAsync());
        Assert.Equal(0, Client.QueuedRequests);
        return e;
    }
}
