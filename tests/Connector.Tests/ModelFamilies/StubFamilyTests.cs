using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.ModelFamilies;

/// <summary>
/// A model family added without touching the connector: a stub family registered with the backend's loader is served by
/// <see cref="VidKVChatClient"/> from a checkpoint folder whose config.json names it.
/// </summary>
public sealed class StubFamilyTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("vidkv-stub-family-").FullName;

    public StubFamilyTests()
    {
        VideoLanguageModel.RegisterFamily(new EchoFamily());
        File.WriteAllText(Path.Combine(_folder, "config.json"), """{ "model_type": "vidkv_echo_stub" }""");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task NewFamily_IsServedByTheChatClient_WithMediaAsSources()
    {
        using var client = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = _folder, FrameCount = 5 });
        var video = new DataContent(new byte[] { 1, 2, 3, 4 }, "video/mp4") { Name = "clip.mp4" };

        var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [video, new TextContent("count the dots")])]);

        // The stub answers with what the backend request carried: the user's text, the media it received and the sampling.
        Assert.Equal("count the dots | videos: clip.mp4 (4 bytes) | frames: 5", reply.Text);
        var info = client.GetService<ModelInfo>();
        Assert.Equal("vidkv_echo_stub", info!.Family);
        Assert.IsType<EchoModel>(client.GetService<IVideoLanguageModel>());
        Assert.Equal(3, reply.Usage!.OutputTokenCount);
    }

    [Fact]
    public void UnknownModelType_FailsNamingItAndTheSupportedOnes()
    {
        File.WriteAllText(Path.Combine(_folder, "config.json"), """{ "model_type": "qwen9_vl" }""");

        var e = Assert.Throws<NotSupportedException>(() => new VidKVChatClient(new VidKVChatClientOptions { ModelPath = _folder }));

        Assert.Contains("'qwen9_vl'", e.Message, StringComparison.Ordinal);
        Assert.Contains("llava_onevision", e.Message, StringComparison.Ordinal);
        Assert.Contains("vidkv_echo_stub", e.Message, StringComparison.Ordinal);
    }

    private sealed class EchoFamily : IModelFamily
    {
        public IReadOnlyList<string> ModelTypes { get; } = ["vidkv_echo_stub"];

        public IVideoLanguageModel Load(string directory, ModelLoadOptions options) => new EchoModel(directory);
    }

    private sealed class EchoModel(string directory) : IVideoLanguageModel
    {
        public string Directory { get; } = directory;

        public ModelInfo Info { get; } = new("vidkv_echo_stub", 4096, 1) { AcceptsImages = false };

        public IEnumerable<GenerationUpdate> Generate(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default)
        {
            string text = string.Concat(request.Turns.SelectMany(t => t.Parts).OfType<TextPart>().Select(p => p.Text));
            string videos = string.Join(", ", request.Videos.Select(v => $"{v.Name} ({v.Bytes?.Length} bytes)"));
            string[] words = [text, $" | videos: {videos}", $" | frames: {request.Sampling.FrameCount}"];
            for (int i = 0; i < words.Length - 1; i++)
            {
                yield return new GenerationUpdate(words[i], i);
            }

            var usage = new GenerationUsage(10, 0, 0, words.Length, default);
            yield return new GenerationUpdate(words[^1], words.Length - 1, FinishReason.Length, usage);
        }

        public void Dispose()
        {
        }
    }
}
