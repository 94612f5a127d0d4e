using VidKV.AI.Backend.Models.LlavaOnevision;
using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using Xunit.Abstractions;
using static TorchSharp.torch;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>Contract tests in the manner of dotnet/extensions' ChatClientIntegrationTests, on a random-weight checkpoint.</summary>
public sealed class VidKVChatClientTests : IClassFixture<ClientFixture>
{
    private readonly ClientFixture _f;
    private readonly ITestOutputHelper _output;

    public VidKVChatClientTests(ClientFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    private VidKVChatClient Client => _f.Client;

    [Fact]
    public async Task GetStreamingResponseAsync_Video_OneResponseAndMessageId_FinalUpdateCarriesFinishReasonAndUsage()
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in Client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 6 }))
        {
            updates.Add(update);
        }

        _output.WriteLine(string.Join(" | ", updates.Select(u => u.Text)));
        Assert.NotEmpty(updates);
        var responseId = Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        var messageId = Assert.Single(updates.Select(u => u.MessageId).Distinct());
        Assert.False(string.IsNullOrEmpty(responseId));
        Assert.False(string.IsNullOrEmpty(messageId));
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.All(updates, u => Assert.Equal(Client.ModelId, u.ModelId));
        Assert.All(updates.SkipLast(1), u => Assert.Null(u.FinishReason));
        Assert.All(updates.SkipLast(1), u => Assert.DoesNotContain(u.Contents, c => c is UsageContent));
        var last = updates[^1];
        Assert.NotNull(last.FinishReason);
        var usage = Assert.Single(last.Contents.OfType<UsageContent>()).Details;

        // The same request run on the backend directly gives the same counts.
        var expected = await Client.Worker.RunAsync(model =>
        {
            var request = new ChatRequest([new ChatTurn(Backend.Text.ChatRole.User, [new VideoPart(), new TextPart("What color is the circle?")])])
            {
                Videos = [MediaSource.FromBytes(TinyModel.VideoBytes, "scene.mp4")],
                Sampling = new FrameSamplingOptions { FrameCount = 4 },
            };
            return model.Generate(request, new GenerationOptions { MaxNewTokens = 6 }, KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact)).ToList();
        });
        var final = expected[^1].Usage!;
        Assert.Equal(string.Concat(expected.Select(u => u.Text)), string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(final.PromptTokens, usage.InputTokenCount);
        Assert.Equal(final.OutputTokens, usage.OutputTokenCount);
        Assert.Equal(final.PromptTokens + final.OutputTokens, usage.TotalTokenCount);
        Assert.Equal(final.VideoTokens, usage.AdditionalCounts![VidKVUsage.VideoTokensKey]);
        Assert.Equal(4 * 16 + 1, usage.AdditionalCounts[VidKVUsage.VideoTokensKey]);
        Assert.Equal(final.Cache.TotalBytes, usage.AdditionalCounts[VidKVUsage.KVBytesKey]);
        Assert.Equal(final.Cache.Fp16Bytes, usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey]);
        Assert.True(usage.AdditionalCounts[VidKVUsage.KVBytesKey] > 0);
        Assert.Equal(expected[^1].FinishReason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, last.FinishReason);
    }

    [Fact]
    public async Task GetResponseAsync_EqualsTheStreamedResponse()
    {
        var options = new ChatOptions { MaxOutputTokens = 5, Temperature = 1.2f, Seed = 3 };
        var streamed = await Client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], options).ToChatResponseAsync();
        var response = await Client.GetResponseAsync([TinyModel.VideoQuestion()], options);

        Assert.Equal(streamed.Text, response.Text);
        Assert.Equal(streamed.FinishReason, response.FinishReason);
        Assert.NotNull(response.Usage);
        Assert.Equal(streamed.Usage!.InputTokenCount, response.Usage.InputTokenCount);
        Assert.Equal(streamed.Usage.OutputTokenCount, response.Usage.OutputTokenCount);
        Assert.Equal(Client.ModelId, response.ModelId);
        var message = Assert.Single(response.Messages);
        Assert.Equal(ChatRole.Assistant, message.Role);
        Assert.False(string.IsNullOrEmpty(response.ResponseId));
    }

    [Fact]
    public async Task MaxOutputTokens_EndsWithLength_AndCountsTheTokens()
    {
        var response = await Client.GetResponseAsync([new ChatMessage(ChatRole.User, "Count the shapes.")], new ChatOptions { MaxOutputTokens = 3, Temperature = 1.5f, Seed = 1, TopK = 50 });

        _output.WriteLine($"{response.FinishReason}: '{response.Text}' {response.Usage?.OutputTokenCount}");
        if (response.FinishReason == ChatFinishReason.Length)
        {
            Assert.Equal(3, response.Usage!.OutputTokenCount);
        }
        else
        {
            Assert.True(response.Usage!.OutputTokenCount < 3, "only an end-of-turn token ends a reply early");
        }

        Assert.Null(response.Usage.AdditionalCounts![VidKVUsage.VideoTokensKey] is 0 ? null : "video tokens in a text-only request");
    }

    [Fact]
    public async Task SeedAndSampling_AreMapped_SameSeedSameReply_OtherSeedOtherReply()
    {
        ChatOptions Sampled(long seed) => new() { MaxOutputTokens = 8, Temperature = 1.5f, TopP = 0.99f, Seed = seed };
        async Task<string> Run(ChatOptions o) => string.Join(",", await Tokens(o));

        string a = await Run(Sampled(42));
        string b = await Run(Sampled(42));
        var others = new[] { await Run(Sampled(7)), await Run(Sampled(8)), await Run(Sampled(9)) };
        string greedy = await Run(new ChatOptions { MaxOutputTokens = 8 });
        string topK1 = await Run(new ChatOptions { MaxOutputTokens = 8, Temperature = 1.5f, TopK = 1, Seed = 5 });

        Assert.Equal(a, b);
        Assert.Contains(others, o => o != a);
        Assert.Equal(greedy, topK1);
    }

    [Fact]
    public async Task StopSequences_EndTheReplyBeforeTheSequence()
    {
        var greedy = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 8 });
        string text = greedy.Text;
        _output.WriteLine($"greedy: '{text}' ({greedy.FinishReason})");
        Assert.True(text.Length >= 3, $"the random model's greedy reply is long enough to cut: '{text}'");
        string stop = text.Substring(text.Length / 2, 2);
        int at = text.IndexOf(stop, StringComparison.Ordinal);

        var stopped = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 8, StopSequences = [stop] });

        Assert.Equal(text[..at], stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
    }

    [Fact]
    public async Task Instructions_BecomeTheSystemTurn()
    {
        var plain = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 1 });
        var instructed = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 1, Instructions = "You are a helpful assistant." });

        var expected = await Client.Worker.RunAsync(model =>
        {
            var system = ((LlavaOnevisionVideoModel)model).Tokenizer.Encode("<|im_start|>system \nYou are a helpful assistant.<|im_end|>").Count;
            return system;
        });
        Assert.Equal(plain.Usage!.InputTokenCount + expected, instructed.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task History_SeveralTurns_AreAllRead()
    {
        var one = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 1 });
        var history = new List<ChatMessage>
        {
            TinyModel.VideoQuestion(),
            new(ChatRole.Assistant, "red"),
            new(ChatRole.User, "And the square?"),
        };

        var three = await Client.GetResponseAsync(history, new ChatOptions { MaxOutputTokens = 1 });

        int extra = await Client.Worker.RunAsync(model => ((LlavaOnevisionVideoModel)model).Tokenizer.Encode("<|im_start|>assistant \nred<|im_end|><|im_start|>user \nAnd the square?<|im_end|>").Count);
        Assert.Equal(one.Usage!.InputTokenCount + extra, three.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task Image_AsDataContent_IsRead()
    {
        var response = await Client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new DataContent(TinyModel.PngBytes, "image/png"), new TextContent("What is this?")])], new ChatOptions { MaxOutputTokens = 2 });

        Assert.True(response.Usage!.AdditionalCounts![VidKVUsage.ImageTokensKey] > 0);
        Assert.Equal(0, response.Usage.AdditionalCounts[VidKVUsage.VideoTokensKey]);
    }

    [Fact]
    public async Task Video_AsFileUri_EqualsTheSameVideoAsBytes()
    {
        var options = new ChatOptions { MaxOutputTokens = 4 };
        var fromBytes = await Client.GetResponseAsync([TinyModel.VideoQuestion("What moves?")], options);
        var fromFile = await Client.GetResponseAsync([new ChatMessage(ChatRole.User, [VidKVMedia.FromFile(TinyModel.VideoPath), new TextContent("What moves?")])], options);

        Assert.Equal(fromBytes.Text, fromFile.Text);
        Assert.Equal(fromBytes.Usage!.InputTokenCount, fromFile.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task FrameCountAndCachePreset_FromAdditionalProperties_AreApplied_AndTheCallersOptionsAreUnchanged()
    {
        var options = new ChatOptions { MaxOutputTokens = 1 }.WithFrameCount(2).WithCachePreset("fp16");
        var before = options.AdditionalProperties!.ToDictionary(p => p.Key, p => p.Value);

        var two = await Client.GetResponseAsync([TinyModel.VideoQuestion()], options);
        var compressed = await Client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 1 }.WithFrameCount(2));

        Assert.Equal(2 * 16 + 1, two.Usage!.AdditionalCounts![VidKVUsage.VideoTokensKey]);
        Assert.Equal(before, options.AdditionalProperties!.ToDictionary(p => p.Key, p => p.Value));
        Assert.Equal(1, options.MaxOutputTokens);
        Assert.Null(options.Instructions);
        // fp16 holds what an FP16 cache would at most (it keeps the model's float32 in the residual), vidkv-1.5/1.58 less.
        Assert.True(compressed.Usage!.AdditionalCounts![VidKVUsage.KVBytesKey] < two.Usage.AdditionalCounts[VidKVUsage.KVBytesKey]);
        Assert.Equal(two.Usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey], compressed.Usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey]);
    }

    [Fact]
    public async Task Cancellation_StopsWithinOneToken_AndFreesTheRequestsTensors()
    {
        long before = await _f.LiveTensorsAsync();
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in Client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 400, Temperature = 2, Seed = 1 }, cts.Token))
            {
                seen++;
                cts.Cancel();
            }
        });

        Assert.Equal(1, seen);
        Assert.Equal(before, await _f.LiveTensorsAsync());
        Assert.Equal(0, Client.QueuedRequests);
    }

    [Fact]
    public async Task AbandonedStream_StopsGeneration_AndFreesTheRequestsTensors()
    {
        long before = await _f.LiveTensorsAsync();
        await foreach (var update in Client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 400, Temperature = 2, Seed = 2 }))
        {
            break;
        }

        Assert.Equal(before, await _f.LiveTensorsAsync());
    }

    [Fact]
    public async Task CancelledBeforeStart_Throws_WithoutRunning()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.GetResponseAsync([TinyModel.VideoQuestion()], cancellationToken: cts.Token));
    }

    [Fact]
    public void GetService_ReturnsMetadataModelAndOptions_AndNothingForAKey()
    {
        var metadata = Client.GetService<ChatClientMetadata>();
        Assert.NotNull(metadata);
        Assert.Equal(VidKVChatClient.ProviderName, metadata.ProviderName);
        Assert.Equal("vidkv-tiny-random", metadata.DefaultModelId);
        Assert.Same(_f.Model, Client.GetService<LlavaOnevisionVideoModel>());
        Assert.Equal(4, Client.GetService<VidKVChatClientOptions>()!.FrameCount);
        Assert.Same(Client, Client.GetService<IChatClient>());
        Assert.Null(Client.GetService<ChatClientMetadata>("key"));
        Assert.Null(Client.GetService<string>());
    }

    private async Task<List<string>> Tokens(ChatOptions options)
    {
        var texts = new List<string>();
        await foreach (var update in Client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], options))
        {
            texts.Add(update.Text);
        }

        return texts;
    }
}
