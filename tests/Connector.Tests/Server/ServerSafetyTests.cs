using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>
/// The server trusts no caller with the machine's files: paths are off by default; with media roots, only regular files
/// under them, links resolved, one error for "not allowed or not found"; host allow-list and optional API key.
/// </summary>
public sealed class ServerSafetyTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("vidkv-server-safety-").FullName;

    public ServerSafetyTests()
    {
        Root = Path.Combine(_folder, "media");
        Outside = Path.Combine(_folder, "private");
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Outside);
        File.WriteAllBytes(Path.Combine(Root, "clip.mp4"), TinyModel.VideoBytes);
        File.WriteAllBytes(Path.Combine(Outside, "secret.mp4"), TinyModel.VideoBytes);
        File.WriteAllText(Path.Combine(Outside, "shadow"), "root:*:20000:0:99999:7:::\n");
        File.WriteAllText(Path.Combine(Root, "text.mp4"), "root:*:20000:0:99999:7:::\n");
        File.CreateSymbolicLink(Path.Combine(Root, "escape.mp4"), Path.Combine(Outside, "secret.mp4"));
        File.CreateSymbolicLink(Path.Combine(Root, "shadow.mp4"), Path.Combine(Outside, "shadow"));
        File.CreateSymbolicLink(Path.Combine(Root, "inside.mp4"), "clip.mp4");
        Directory.CreateSymbolicLink(Path.Combine(Root, "up"), _folder);
        Directory.CreateDirectory(Path.Combine(Root, "folder.mp4"));
        Run("mkfifo", Path.Combine(Root, "pipe.mp4"));
    }

    private string Root { get; }

    private string Outside { get; }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static JsonObject Ask(string url, string partType = "video_url") => new()
    {
        ["max_tokens"] = 3,
        ["messages"] = new JsonArray(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(
                partType == "video_file"
                    ? new JsonObject { ["type"] = "video_file", ["video_file"] = new JsonObject { ["path"] = url } }
                    : new JsonObject { ["type"] = partType, [partType] = new JsonObject { ["url"] = url } },
                new JsonObject { ["type"] = "text", ["text"] = "What moves?" }),
        }),
    };

    [Fact]
    public async Task DefaultSettings_NoRequestReadsAFile_AndTheReplyIsTheSameWhetherItExists()
    {
        await using var host = await ServerHost.StartAsync();
        string secret = Path.Combine(Outside, "secret.mp4");
        var asks = new[]
        {
            Ask(secret), Ask(new Uri(secret).AbsoluteUri), Ask(secret, "video_file"), Ask(Path.Combine(Root, "escape.mp4")),
            Ask(Path.Combine(Root, "pipe.mp4")), Ask(Path.Combine(Outside, "missing.mp4")), Ask(Path.Combine(Outside, "shadow") + ".png", "image_url"),
        };
        var bodies = new List<string>();
        foreach (var ask in asks)
        {
            using var response = await host.Http.PostAsJsonAsync("/v1/chat/completions", ask).WaitAsync(TimeSpan.FromSeconds(30));
            string body = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("file_paths_disabled", (string?)JsonNode.Parse(body)!["error"]!["code"]);
            Assert.DoesNotContain(_folder, body);
            bodies.Add(((string?)JsonNode.Parse(body)!["error"]!["message"])!.Replace("video_file.path", "video_url.url").Replace("image_url", "video_url"));
        }

        Assert.Single(bodies.Distinct());
    }

    [Fact]
    public async Task MediaRoots_OnlyRegularFilesUnderTheRootAreRead_EveryRefusalIsTheSameError()
    {
        await using var host = await ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:MediaRoots:0"] = Root });

        foreach (string allowed in new[] { Path.Combine(Root, "clip.mp4"), Path.Combine(Root, "inside.mp4"), new Uri(Path.Combine(Root, "clip.mp4")).AbsoluteUri })
        {
            using var ok = await host.Http.PostAsJsonAsync("/v1/chat/completions", Ask(allowed));
            Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{allowed}: {await ok.Content.ReadAsStringAsync()}");
        }

        var refused = new[]
        {
            Path.Combine(Root, "escape.mp4"),                     // a link out of the root
            Path.Combine(Root, "shadow.mp4"),                     // a link to a private text file
            Path.Combine(Root, "up", "private", "secret.mp4"),    // a linked folder out of the root
            Path.Combine(Root, "..", "private", "secret.mp4"),    // ..
            Path.Combine(Outside, "secret.mp4"),                  // outside, exists
            Path.Combine(Outside, "missing.mp4"),                 // outside, missing
            Path.Combine(Root, "missing.mp4"),                    // inside, missing
            Path.Combine(Root, "folder.mp4"),                     // a folder
            Path.Combine(Root, "pipe.mp4"),                       // a named pipe
            "/dev/zero.mp4",
        };
        var messages = new List<string>();
        foreach (string path in refused)
        {
            using var response = await host.Http.PostAsJsonAsync("/v1/chat/completions", Ask(path)).WaitAsync(TimeSpan.FromSeconds(30));
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {body}");
            var error = JsonNode.Parse(body)!["error"]!;
            Assert.Equal("file_not_allowed", (string?)error["code"]);
            Assert.DoesNotContain(_folder, body);
            messages.Add(error.ToJsonString());
        }

        Assert.Single(messages.Distinct());

        // A media-named file inside the root that is not media: the error quotes none of its bytes.
        using var text = await host.Http.PostAsJsonAsync("/v1/chat/completions", Ask(Path.Combine(Root, "text.mp4")));
        string textBody = await text.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, text.StatusCode);
        Assert.DoesNotContain("726F6F74", textBody, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("root:", textBody);
        Assert.DoesNotContain(_folder, textBody);
    }

    [Fact]
    public async Task NamedPipeAsAPath_NeverStallsOtherRequests()
    {
        await using var host = await ServerHost.StartAsync(new Dictionary<string, string?>
        {
            ["Server:MediaRoots:0"] = Root,
            ["VidKV:MaxQueueLength"] = "4",
        });
        string pipe = Path.Combine(Root, "pipe.mp4");
        var pipeAsks = Enumerable.Range(0, 3).Select(_ => host.Http.PostAsJsonAsync("/v1/chat/completions", Ask(pipe))).ToList();
        using var normal = await host.Http.PostAsJsonAsync("/v1/chat/completions", Ask("data:video/mp4;base64," + Convert.ToBase64String(TinyModel.VideoBytes)))
            .WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(HttpStatusCode.OK, normal.StatusCode);
        foreach (var ask in pipeAsks)
        {
            using var response = await ask.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }
    }

    [Fact]
    public async Task UnknownHost_IsRefused_UnlessAllowed()
    {
        await using (var host = await ServerHost.StartAsync())
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Host = "attacker.example";
            using var refused = await host.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("invalid_host", (string?)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]);

            using var local = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            local.Headers.Host = $"localhost:{host.Address.Port}";
            Assert.Equal(HttpStatusCode.OK, (await host.Http.SendAsync(local)).StatusCode);
        }

        await using (var open = await ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:AllowedHosts:0"] = "*.example" }))
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Host = "videos.example";
            Assert.Equal(HttpStatusCode.OK, (await open.Http.SendAsync(request)).StatusCode);
            Assert.Equal(HttpStatusCode.BadRequest, (await open.Http.GetAsync("/v1/models")).StatusCode); // 127.0.0.1 is no longer listed
        }
    }

    [Fact]
    public async Task ApiKey_WhenSet_IsRequiredAsBearer_OnV1Only()
    {
        const string Key = "test-key-0123456789";
        await using var host = await ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:ApiKey"] = Key });

        using var none = await host.Http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        var error = JsonNode.Parse(await none.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_api_key", (string?)error["code"]);

        using var wrong = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(Ask("data:,")) };
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key + "x");
        using var wrongResponse = await host.Http.SendAsync(wrong);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongResponse.StatusCode);
        Assert.DoesNotContain(Key, await wrongResponse.Content.ReadAsStringAsync());

        using var right = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        right.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        Assert.Equal(HttpStatusCode.OK, (await host.Http.SendAsync(right)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Http.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task BadMediaRoot_FailsAtStart_NamingTheSetting()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:MediaRoots:0"] = "relative/folder" }));
        Assert.Contains("Server:MediaRoots:0", e.Message);
    }

    private static void Run(string file, string argument)
    {
        using var process = Process.Start(new ProcessStartInfo(file, [argument]) { RedirectStandardError = true })!;
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{file} {argument}: {process.StandardError.ReadToEnd()}");
    }
}
