using Microsoft.Extensions.AI;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>Concurrent callers, the bounded queue and its time limit.</summary>
public sealed class ConcurrencyTests
{
    [Fact]
    public async Task EightConcurrentStreams_AllComplete_WithTheRepliesOfSequentialRuns()
    {
        using var client = new VidKVChatClient(TinyModel.Options());
        ChatOptions Options(int i) => new() { MaxOutputTokens = 6, Temperature = 1.3f, Seed = 100 + i };
        ChatMessage Question(int i) => TinyModel.VideoQuestion(i % 2 == 0 ? "What moves?" : "Where does the circle go?");

        var sequential = new List<string>();
        for (int i = 0; i < 8; i++)
        {
            sequential.Add(await Streams.Collect(client, Question(i), Options(i)));
        }

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => Streams.Collect(client, Question(i), Options(i)))));

        Assert.Equal(sequential, concurrent);
        Assert.True(sequential.Distinct().Count() > 1, "different seeds give different replies, so a mix-up would show");
        Assert.Equal(0, client.QueuedRequests);
    }

    [Fact]
    public async Task FullQueue_FailsAtOnce_WithModelBusy()
    {
        using var client = new VidKVChatClient(TinyModel.Options(o => o.MaxQueueLength = 1));
        using var gate = new ManualResetEventSlim();
        var blocker = client.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        await Streams.WaitUntil(() => client.QueuedRequests == 0, 5);
        var waiting = client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 2 });
        await Streams.WaitUntil(() => client.QueuedRequests == 1, 5);

        var e = await Assert.ThrowsAsync<ModelBusyException>(() => client.GetResponseAsync([TinyModel.VideoQuestion()]));

        Assert.Equal(ModelBusyReason.QueueFull, e.Reason);
        Assert.Contains("MaxQueueLength", e.Message);
        gate.Set();
        await blocker;
        Assert.NotNull((await waiting).FinishReason);
    }

    [Fact]
    public async Task WaitPastTheQueueTimeout_FailsWithModelBusy_AndLeavesTheQueue()
    {
        using var client = new VidKVChatClient(TinyModel.Options(o => o.QueueTimeout = TimeSpan.FromMilliseconds(300)));
        using var gate = new ManualResetEventSlim();
        var blocker = client.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        await Streams.WaitUntil(() => client.QueuedRequests == 0, 5);

        var e = await Assert.ThrowsAsync<ModelBusyException>(() => client.GetResponseAsync([TinyModel.VideoQuestion()]));

        Assert.Equal(ModelBusyReason.QueueTimeout, e.Reason);
        Assert.Contains("QueueTimeout", e.Message);
        Assert.Equal(0, client.QueuedRequests);
        gate.Set();
        await blocker;
        var response = await client.GetResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 2 });
        Assert.NotNull(response.FinishReason);
    }

    [Fact]
    public async Task CancelWhileQueued_LeavesTheQueue()
    {
        using var client = new VidKVChatClient(TinyModel.Options());
        using var gate = new ManualResetEventSlim();
        var blocker = client.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        using var cts = new CancellationTokenSource();
        var waiting = client.GetResponseAsync([TinyModel.VideoQuestion()], cancellationToken: cts.Token);
        await Streams.WaitUntil(() => client.QueuedRequests == 1, 5);

        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, client.QueuedRequests);
        gate.Set();
        await blocker;
    }

    [Fact]
    public async Task Dispose_FailsWaitingRequests_AndRefusesNewOnes()
    {
        var client = new VidKVChatClient(TinyModel.Options());
        using var gate = new ManualResetEventSlim();
        var blocker = client.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        var waiting = client.GetResponseAsync([TinyModel.VideoQuestion()]);
        await Streams.WaitUntil(() => client.QueuedRequests == 1, 5);

        var disposing = Task.Run(client.Dispose); // waits for the worker, which is held by the gate
        await Streams.WaitUntil(() => client.IsDisposed, 5);
        gate.Set();
        await disposing;

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.GetResponseAsync([TinyModel.VideoQuestion()]));
        Assert.Null(client.GetService<Backend.IVideoLanguageModel>());
        client.Dispose();
    }
}
