using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace VidKV.AI.Connector.Tests.Resilience;

public sealed class VidKVResilienceChatClientTests
{
    [Fact]
    public async Task Retry_BeforeTheFirstToken_RunsTheRequestAgain()
    {
        int calls = 0;
        using var inner = new TestChatClient((_, _, ct) => Stream(++calls == 1 ? new ModelBusyException(ModelBusyReason.QueueFull, "full") : null, ct, "a", "b"));
        using var client = new VidKVResilienceChatClient(inner, RetryAll());

        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);

        Assert.Equal("ab", response.Text);
        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task NoRetry_AfterTheFirstToken_TheErrorReachesTheCaller()
    {
        int calls = 0;
        using var inner = new TestChatClient((_, _, ct) => { calls++; return Stream(new InvalidOperationException("mid-stream"), ct, "a"); });
        using var client = new VidKVResilienceChatClient(inner, RetryAll());
        var seen = new List<string>();

        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")]))
            {
                seen.Add(update.Text);
            }
        });

        Assert.Equal("mid-stream", e.Message);
        Assert.Equal(["a"], seen);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task FirstTokenTimeout_AbandonsTheQueuedRequest()
    {
        using var model = new VidKVChatClient(TinyModel.Options());
        var pipeline = new ResiliencePipelineBuilder().AddTimeout(TimeSpan.FromMilliseconds(300)).Build();
        using var client = new VidKVResilienceChatClient(model, pipeline);
        using var gate = new ManualResetEventSlim();
        var blocker = model.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));

        await Assert.ThrowsAsync<TimeoutRejectedException>(() => client.GetResponseAsync([TinyModel.VideoQuestion()]));

        Assert.Equal(0, model.QueuedRequests);
        gate.Set();
        await blocker;
    }

    [Fact]
    public async Task TheTimeout_DoesNotCutAStreamAfterItsFirstToken()
    {
        using var inner = new TestChatClient((_, _, ct) => Slow(ct));
        var pipeline = new ResiliencePipelineBuilder().AddTimeout(TimeSpan.FromMilliseconds(200)).Build();
        using var client = new VidKVResilienceChatClient(inner, pipeline);

        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);

        Assert.Equal("0123", response.Text);
    }

    [Fact]
    public async Task DefaultPipeline_FromAddResiliencePipeline_RetriesAFullQueue()
    {
        var services = new ServiceCollection();
        services.AddVidKVChatClient(o =>
        {
            o.ModelPath = TinyModel.Folder;
            o.FrameCount = 4;
            o.MaxQueueLength = 0;
            o.Resilience.MaxRetryAttempts = 5;
            o.Resilience.RetryDelay = TimeSpan.FromMilliseconds(200);
        });
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IChatClient>();
        var model = provider.GetRequiredService<VidKVChatClient>();
        using var gate = new ManualResetEventSlim();
        var blocker = model.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        await Task.Delay(100);

        var request = client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 2 });
        await Task.Delay(300);
        Assert.False(request.IsCompleted, "the full queue's refusals are retried");
        gate.Set();
        await blocker;

        Assert.NotNull((await request).FinishReason);
    }

    private static ResiliencePipeline RetryAll() => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions { ShouldHandle = new PredicateBuilder().Handle<Exception>(), MaxRetryAttempts = 3, Delay = TimeSpan.Zero })
        .Build();

    private static async IAsyncEnumerable<ChatResponseUpdate> Stream(Exception? error, [EnumeratorCancellation] CancellationToken ct, params string[] texts)
    {
        await Task.Yield();
        if (error is not null && texts.Length > 1) // fails before its first update
        {
            throw error;
        }

        foreach (var text in texts)
        {
            ct.ThrowIfCancellationRequested();
            yield return new ChatResponseUpdate(ChatRole.Assistant, text);
        }

        if (error is not null)
        {
            throw error;
        }
    }

    private static async IAsyncEnumerable<ChatResponseUpdate> Slow([EnumeratorCancellation] CancellationToken ct)
    {
        for (int i = 0; i < 4; i++)
        {
            await Task.Delay(i == 0 ? 0 : 150, ct);
            yield return new ChatResponseUpdate(ChatRole.Assistant, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>A callback test double, as dotnet/extensions' tests use.</summary>
    private sealed class TestChatClient(Func<IEnumerable<ChatMessage>, ChatOptions?, CancellationToken, IAsyncEnumerable<ChatResponseUpdate>> stream) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
            => stream(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
            => stream(messages, options, cancellationToken);

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }
}
