using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using VidKV.AI.Mcp;

namespace VidKV.AI.Connector.Tests.Mcp;

/// <summary>
/// The MCP server with the MCP client of the same packages: over stdio (the built sample launched as a process, as MCP
/// clients launch it) and over streamable HTTP (real Kestrel). Answers equal the connector's own for the same video.
/// </summary>
public sealed class McpServerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("vidkv-mcp-media-").FullName;
    private readonly string _outside = Directory.CreateTempSubdirectory("vidkv-mcp-private-").FullName;

    public McpServerTests()
    {
        File.WriteAllBytes(Path.Combine(_root, "clip.mp4"), TinyModel.VideoBytes);
        File.WriteAllBytes(Path.Combine(_outside, "secret.mp4"), TinyModel.VideoBytes);
        File.CreateSymbolicLink(Path.Combine(_root, "escape.mp4"), Path.Combine(_outside, "secret.mp4"));
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_outside, recursive: true);
    }

    private static Dictionary<string, string?> Settings(string? root)
    {
        var settings = new Dictionary<string, string?>
        {
            ["VidKV:ModelPath"] = TinyModel.Folder,
            ["VidKV:FrameCount"] = "4",
            ["VidKV:MaxOutputTokens"] = "6",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (root is not null)
        {
            settings["Mcp:MediaRoots:0"] = root;
        }

        return settings;
    }

    private static async Task<(string Ask, string Describe)> DirectAnswersAsync()
    {
        using var client = new VidKVChatClient(TinyModel.Options(o => o.MaxOutputTokens = 6));
        string ask = (await client.GetResponseAsync([TinyModel.VideoQuestion("What moves?")])).Text;
        string describe = (await client.GetResponseAsync([TinyModel.VideoQuestion("Describe what happens in this video.")])).Text;
        return (ask, describe);
    }

    private static string Text(CallToolResult result) => string.Concat(result.Content.OfType<TextContentBlock>().Select(b => b.Text));

    private async Task ExerciseAsync(McpClient client, bool pathsAllowed)
    {
        var tools = await client.ListToolsAsync();
        Assert.Equal(["ask_about_video", "describe_video", "forget_video", "remember_video"], tools.Select(t => t.Name).Order());
        var (ask, describe) = await DirectAnswersAsync();

        string dataUrl = "data:video/mp4;base64," + Convert.ToBase64String(TinyModel.VideoBytes);
        var described = await client.CallToolAsync("describe_video", new Dictionary<string, object?> { ["video"] = dataUrl });
        Assert.True(described.IsError is not true, Text(described));
        Assert.Equal(describe, Text(described));

        var byPath = await client.CallToolAsync("ask_about_video", new Dictionary<string, object?> { ["video"] = "clip.mp4", ["question"] = "What moves?" });
        if (pathsAllowed)
        {
            Assert.True(byPath.IsError is not true, Text(byPath));
            Assert.Equal(ask, Text(byPath));
        }
        else
        {
            Assert.True(byPath.IsError);
            Assert.Contains("Mcp:MediaRoots is empty", Text(byPath));
        }

        foreach (string refused in new[] { Path.Combine(_outside, "secret.mp4"), Path.Combine(_root, "escape.mp4"), Path.Combine(_root, "missing.mp4") })
        {
            var result = await client.CallToolAsync("ask_about_video", new Dictionary<string, object?> { ["video"] = refused, ["question"] = "What moves?" });
            Assert.True(result.IsError, Text(result));
            Assert.DoesNotContain(_outside, Text(result));
            if (pathsAllowed)
            {
                Assert.Contains("not allowed or not found", Text(result));
            }
        }

        // The questions above left the video remembered: forget it, remember it, ask (from the memory), forget it.
        Assert.StartsWith("Forgot ", Text(await client.CallToolAsync("forget_video", new Dictionary<string, object?> { ["video"] = dataUrl })));
        var remembered = await client.CallToolAsync("remember_video", new Dictionary<string, object?> { ["video"] = dataUrl });
        Assert.True(remembered.IsError is not true, Text(remembered));
        Assert.StartsWith("Remembered: ", Text(remembered));
        var again = await client.CallToolAsync("remember_video", new Dictionary<string, object?> { ["video"] = dataUrl });
        Assert.StartsWith("Already remembered: ", Text(again));
        var fromMemory = await client.CallToolAsync("ask_about_video", new Dictionary<string, object?> { ["video"] = dataUrl, ["question"] = "What moves?" });
        Assert.Equal(ask, Text(fromMemory));
        var forgot = await client.CallToolAsync("forget_video", new Dictionary<string, object?> { ["video"] = dataUrl });
        Assert.StartsWith("Forgot ", Text(forgot));

        var bad = await client.CallToolAsync("ask_about_video", new Dictionary<string, object?> { ["video"] = dataUrl, ["question"] = "What moves?", ["frameCount"] = 0 });
        Assert.True(bad.IsError);
        Assert.Contains("frameCount", Text(bad));
    }

    [Fact]
    public async Task Stdio_TheBuiltSampleAsAProcess_AnswersAsTheConnectorDoes()
    {
        string program = Path.Combine(AppContext.BaseDirectory, "VidKV.AI.Mcp.dll");
        Assert.True(File.Exists(program), program);
        var environment = Settings(_root).ToDictionary(p => p.Key.Replace(":", "__", StringComparison.Ordinal), p => p.Value);
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "vidkv",
            Command = "dotnet",
            Arguments = [program],
            EnvironmentVariables = environment,
            WorkingDirectory = Path.GetTempPath(),
        });
        await using var client = await McpClient.CreateAsync(transport);
        Assert.Equal("VidKV.AI.Mcp", client.ServerInfo?.Name);
        await ExerciseAsync(client, pathsAllowed: true);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Http_StreamableTransport_AnswersAsTheConnectorDoes_WithTheApiKey(bool withRoot)
    {
        const string Key = "mcp-test-key-0123";
        var settings = Settings(withRoot ? _root : null);
        settings["Urls"] = "http://127.0.0.1:0";
        settings["Mcp:ApiKey"] = Key;
        await using var app = VidKVMcpServer.CreateHttp([], builder => builder.Configuration.AddInMemoryCollection(settings));
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        var endpoint = new Uri(address, "/mcp");

        var options = new HttpClientTransportOptions { Endpoint = endpoint, TransportMode = HttpTransportMode.StreamableHttp, AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Key } };
        await using (var client = await McpClient.CreateAsync(new HttpClientTransport(options)))
        {
            await ExerciseAsync(client, pathsAllowed: withRoot);
        }

        using var http = new HttpClient();
        using var anonymous = await http.PostAsync(endpoint, new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var foreign = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json") };
        foreign.Headers.Host = "attacker.example";
        foreign.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.SendAsync(foreign)).StatusCode);
        await app.StopAsync();
    }
}
