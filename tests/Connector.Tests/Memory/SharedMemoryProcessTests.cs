using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.AI;
using VidKV.AI.Backend.Tests.Memory;
using VidKV.AI.Connector.Tests.Samples;
using VidKV.AI.Connector.Tests.Server;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.Memory;

/// <summary>
/// Two operating-system processes (tests/SharedMemoryProbe, run with <c>dotnet exec</c>) that share nothing but one real
/// Redis: the second answers a question about a video the first encoded, without decoding it or running the vision tower,
/// and its answer is the one a fresh client gives.
/// </summary>
public sealed class SharedMemoryProcessTests : IClassFixture<RedisServer>, IDisposable
{
    private const int MaxTokens = 8;
    private readonly RedisServer _redis;
    private readonly string _folder = Directory.CreateTempSubdirectory("vidkv-shared-processes-").FullName;

    public SharedMemoryProcessTests(RedisServer redis) => _redis = redis;

    private static SyntheticClip Clip => SyntheticClip.MotionScene;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task SecondProcess_AnswersFromTheFirstProcessesVideo_WithoutDecodingOrTheVisionTower()
    {
        string video = Path.Combine(_folder, "scene.mp4");
        await File.WriteAllBytesAsync(video, Clip.Mp4);
        string instance = $"vidkv-processes-{Guid.NewGuid():N}:";

        var first = await ProbeAsync(instance, video, "What color is the moving object?", remember: true);
        var second = await ProbeAsync(instance, video, Clip.Question, remember: false);
        string fresh = await FreshAnswerAsync(video, Clip.Question);

        // The first process encoded the video (once: remembering it, then answering from its own memory).
        Assert.Equal(1, first.GetProperty("visual_encodes").GetInt32());
        Assert.False(first.GetProperty("remembered_already").GetBoolean());
        // The second process read it from Redis: no media decoded, no vision tower, the video's tokens came from the memory.
        Assert.Equal(0, second.GetProperty("media_decodes").GetInt32());
        Assert.Equal(0, second.GetProperty("visual_encodes").GetInt32());
        Assert.True(second.GetProperty("cached_prompt_tokens").GetInt64() > 0, second.ToString());
        Assert.True(second.GetProperty("cached_prompt_tokens").GetInt64() < second.GetProperty("prompt_tokens").GetInt64(), second.ToString());
        Assert.Equal(fresh, second.GetProperty("answer").GetString());
    }

    /// <summary>The answer of a client in this process that remembers nothing (no shared memory): the video is encoded.</summary>
    private static async Task<string> FreshAnswerAsync(string video, string question)
    {
        using var client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.58", FrameCount = Clip.Frames, MaxOutputTokens = MaxTokens });
        var response = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [VidKVMedia.FromFile(video), new TextContent(question)])],
            new ChatOptions { MaxOutputTokens = MaxTokens }.WithFrameCount(Clip.Frames));
        Assert.Equal(0, response.Usage!.CachedInputTokenCount);
        return response.Text;
    }

    private async Task<JsonElement> ProbeAsync(string instance, string video, string question, bool remember)
    {
        var arguments = new List<string>
        {
            "exec", LocateProbe(), "--redis", _redis.Configuration, "--instance", instance, "--video", video, "--question", question,
            "--frames", Clip.Frames.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--max-tokens", MaxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (remember)
        {
            arguments.Add("--remember");
        }

        var start = new ProcessStartInfo(SampleBuild.DotnetHost, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The probe did not finish within 5 minutes. stderr: {await stderr}");
        }

        string output = await stdout;
        Assert.True(process.ExitCode == 0, $"The probe exited with {process.ExitCode}. stdout: {output} stderr: {await stderr}");
        string line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last(l => l.StartsWith('{'));
        return JsonDocument.Parse(line).RootElement.Clone();
    }

    /// <summary>tests/SharedMemoryProbe/bin/&lt;configuration&gt;/&lt;tfm&gt;/VidKV.AI.SharedMemoryProbe.dll, built with this project.</summary>
    private static string LocateProbe()
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = output.Name, configuration = output.Parent!.Name;
        for (var dir = output; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "SharedMemoryProbe", "bin", configuration, framework, "VidKV.AI.SharedMemoryProbe.dll");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"tests/SharedMemoryProbe/bin/{configuration}/{framework}/VidKV.AI.SharedMemoryProbe.dll was not found above {AppContext.BaseDirectory}; build tests/Connector.Tests first.");
    }
}
