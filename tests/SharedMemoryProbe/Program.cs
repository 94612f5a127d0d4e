// One process of the two-process video memory test: a VidKVChatClient registered with AddVidKVChatClient in a container
// that has a HybridCache over Redis (so the video memory is shared through Redis by default), answers one question about
// one video, and prints one JSON line: the answer, its usage and how often this process decoded media and ran the vision
// tower.
//   dotnet VidKV.AI.SharedMemoryProbe.dll --redis 127.0.0.1:6379 --instance vidkv-test: --video clip.mp4 --question "..."
//       [--frames 8] [--max-tokens 8] [--remember]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Backend;
using VidKV.AI.Connector;
using VidKV.AI.Quantization.Native;

TorchRuntime.EnsureLoaded();
string redis = Required("--redis"), instance = Required("--instance"), video = Required("--video"), question = Required("--question");
int frames = int.Parse(Arg("--frames") ?? "8", CultureInfo.InvariantCulture);
int maxTokens = int.Parse(Arg("--max-tokens") ?? "8", CultureInfo.InvariantCulture);

var services = new ServiceCollection();
services.AddStackExchangeRedisCache(o => { o.Configuration = redis; o.InstanceName = instance; });
services.AddHybridCache(o => o.MaximumPayloadBytes = 1 << 20);
services.AddVidKVChatClient(o => { o.CachePreset = "vidkv-1.5/1.58"; o.FrameCount = frames; o.MaxOutputTokens = maxTokens; });
await using var provider = services.BuildServiceProvider();
var client = provider.GetRequiredService<VidKVChatClient>();
var media = VidKVMedia.FromFile(video);
var options = new ChatOptions { MaxOutputTokens = maxTokens }.WithFrameCount(frames);

VidKVRememberedVideo? remembered = Array.IndexOf(args, "--remember") >= 0 ? await client.RememberVideoAsync(media, options) : null;
var watch = Stopwatch.StartNew();
var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [media, new TextContent(question)])], options);
watch.Stop();
var model = (VideoLanguageModelBase)client.GetService(typeof(VideoLanguageModelBase))!;
Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
{
    ["answer"] = response.Text,
    ["prompt_tokens"] = response.Usage?.InputTokenCount,
    ["cached_prompt_tokens"] = response.Usage?.CachedInputTokenCount,
    ["remembered_already"] = remembered?.AlreadyRemembered,
    ["media_decodes"] = model.MediaDecodes,
    ["visual_encodes"] = model.VisualEncodes,
    ["seconds"] = watch.Elapsed.TotalSeconds,
}));
return 0;

string? Arg(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

string Required(string name) => Arg(name) ?? throw new ArgumentException($"{name} is required (usage: --redis HOST:PORT --instance NAME --video FILE --question TEXT [--frames N] [--max-tokens N] [--remember]).");
