using Microsoft.Extensions.AI;
using VidKV.AI.Backend;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>Many streams served at once: progress together, the same replies as one at a time, admission and cancellation.</summary>
public sealed class BatchedServingTests
{
    private static ChatOptions Options(int i, int tokens = 16) => new() { MaxOutputTokens = tokens, Temperature = 1.2f, Seed = 500 + i };

    private static ChatMessage Question(int i) => TinyModel.VideoQuestion(i % 2 == 0 ? "What moves?" : "Where does the circle go?");

    [Fact]
    public async Task ConcurrentStreams_AllGetTheirFirstTokensBeforeAnyCompletes_WithTheRepliesOfSequentialRuns()
    {
        const int streams = 4;
        using var client = new VidKVChatClient(TinyModel.Options(o => o.MaxConcurrentSequences = streams));
        var sequential = new List<string>();
        for (int i = 0; i < streams; i++)
        {
            sequential.Add(await Streams.Collect(client, Question(i), Options(i)));
        }

        // Hold the worker until all streams wait, so that they join together; then order what the worker sends.
        var sent = new List<(long Seed, bool Last)>();
        client.UpdateSent = (seed, update) => sent.Add((seed!.Value, update.FinishReason is not null));
        using var gate = new ManualResetEventSlim();
        var blocker = client.Worker.RunAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        await Streams.WaitUntil(() => client.QueuedRequests == 0, 10);
        var concurrent = Enumerable.Range(0, streams).Select(i => Streams.Collect(client, Question(i), Options(i))).ToArray();
        await Streams.WaitUntil(() => client.QueuedRequests == streams, 10);
        gate.Set();
        await blocker;
        var replies = await Task.WhenAll(concurrent);
        client.UpdateSent = null;

        Assert.Equal(sequential, replies);
        int firstEnd = sent.FindIndex(u => u.Last);
        for (int i = 0; i < streams; i++)
        {
            int first = sent.FindIndex(u => u.Seed == 500 + i);
            Assert.True(first >= 0 && first < firstEnd, $"stream {i}'s first update is update {first} of all; the first stream ended at update {firstEnd}");
        }

        // Interleaved: between the first and the last stream's first tokens, no stream ran alone to its end.
        Assert.True(sent.Take(firstEnd).Select(u => u.Seed).Distinct().Count() == streams);
        Assert.Equal(0, client.QueuedRequests);
    }

    [Fact]
    public async Task CancelledStream_StopsWithinOneStep_OthersFinishUnchanged()
    {
        // No video memory, so that every tensor of a request is gone when it ends (counted on the worker thread).
        using var client = new VidKVChatClient(TinyModel.Options(o => o.VideoMemory = false));
        string expected = await Streams.Collect(client, Question(1), Options(1, 24));
        long live = await client.Worker.RunAsync(_ => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        var ended = new TaskCompletionSource<(int Tokens, bool Cancelled)>(TaskCreationOptions.RunContinuationsAsynchronously);
        int sentToCancelled = 0;
        using var cts = new CancellationTokenSource();
        client.UpdateSent = (seed, _) =>
        {
            if (seed == 500)
            {
                Interlocked.Increment(ref sentToCancelled);
            }
        };
        client.GenerationEnded = (tokens, cancelled) =>
        {
            if (cancelled)
            {
                ended.TrySetResult((tokens, cancelled));
            }
        };

        var other = Streams.Collect(client, Question(1), Options(1, 24));
        int sentAtCancel = -1;
        var cancelledStream = Task.Run(async () =>
        {
            int seen = 0;
            await foreach (var update in client.GetStreamingResponseAsync([Question(0)], Options(0, 200), cts.Token))
            {
                if (++seen == 3)
                {
                    sentAtCancel = Volatile.Read(ref sentToCancelled);
                    cts.Cancel();
                }
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelledStream);
        var (tokens, wasCancelled) = await ended.Task;
        client.GenerationEnded = null;
        client.UpdateSent = null;

        // The worker runs on while the caller reads, so it may have sent more than the caller saw; after the cancel, at
        // most the update of the step then running follows.
        Assert.True(wasCancelled);
        Assert.True(sentToCancelled <= sentAtCancel + 1, $"{sentToCancelled} updates sent, {sentAtCancel} when it was cancelled");
        Assert.Equal(sentToCancelled, tokens);
        Assert.Equal(expected, await other);
        Assert.Equal(live, await client.Worker.RunAsync(_ => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount));
    }

    [Fact]
    public async Task CacheBudget_QueuesWhatDoesNotFit_AndRefusesWhatNeverFits()
    {
        const long budget = 1L << 20;
        var fp16 = TinyModel.Options(o => o.CachePreset = "fp16");
        using var probe = new VidKVChatClient(TinyModel.Options(o => { o.CachePreset = "fp16"; o.MaxConcurrentSequences = 1; }));
        Task<long> Needed(int tokens) => probe.Worker.RunAsync(model =>
        {
            using var scheduler = new Backend.Batching.GenerationScheduler((VideoLanguageModelBase)model);
            var prepared = Inference.PreparedRequest.Create([Question(0)], Options(0, tokens), fp16, "m");
            return scheduler.CacheBytesNeeded(prepared.ToChatRequest(), prepared.Generation, prepared.Cache);
        });

        // Output lengths whose caches fit twice in the budget but not three times, and not at all.
        int twice = 0, never = 0;
        foreach (int tokens in new[] { 16, 32, 64, 128, 256, 512, 1024, 1536 })
        {
            long bytes = await Needed(tokens);
            twice = bytes > budget / 3 && bytes <= budget / 2 && twice == 0 ? tokens : twice;
            never = bytes > budget && never == 0 ? tokens : never;
        }

        Assert.True(twice > 0 && never > 0, $"no output length fits the test's budget: {twice}, {never}");
        string alone = await Streams.Collect(probe, Question(0), Options(0, twice));

        using var client = new VidKVChatClient(TinyModel.Options(o => { o.CachePreset = "fp16"; o.MaxCacheBytes = budget; }));
        int maxActive = 0;
        client.UpdateSent = (_, _) => maxActive = Math.Max(maxActive, client.Worker.ActiveSequences);
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Streams.Collect(client, Question(0), Options(0, twice))));
        Assert.All(replies, r => Assert.Equal(alone, r));
        Assert.InRange(maxActive, 1, 2);

        // A request whose cache alone is larger than the whole budget fails with a clear error.
        var e = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([Question(0)], Options(0, never)));
        Assert.Contains("MaxCacheBytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChunkedPrefill_StreamsAnswerAsTheBackendSchedulerAloneWithTheSameParts()
    {
        using var client = new VidKVChatClient(TinyModel.Options(o => { o.VideoMemory = false; o.PrefillChunkTokens = 8; }));
        var expected = await client.Worker.RunAsync(model =>
        {
            var prepared = Inference.PreparedRequest.Create([Question(0)], Options(0), TinyModel.Options(), "m");
            using var scheduler = new Backend.Batching.GenerationScheduler((VideoLanguageModelBase)model, new Backend.Batching.GenerationSchedulerOptions { MaxConcurrentSequences = 1, PrefillChunkTokens = 8 });
            var updates = new List<GenerationUpdate>();
            bool ended = false;
            scheduler.Add(prepared.ToChatRequest(), prepared.Generation, prepared.Cache, updates.Add, e => { Assert.Null(e); ended = true; });
            while (!ended)
            {
                scheduler.Step();
            }

            return string.Concat(updates.Select(u => u.Text));
        });

        var replies = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => client.GetResponseAsync([Question(0)], Options(0))));
        Assert.All(replies, r => Assert.Equal(expected, r.Text));
    }

    [Theory]
    [InlineData(nameof(VidKVChatClientOptions.MaxConcurrentSequences), 0)]
    [InlineData(nameof(VidKVChatClientOptions.MaxConcurrentSequences), 5000)]
    [InlineData(nameof(VidKVChatClientOptions.MaxCacheBytes), 1000)]
    [InlineData(nameof(VidKVChatClientOptions.PrefillChunkTokens), -1)]
    public void Options_OutOfRange_AreRefusedByName(string name, long value)
    {
        var options = new VidKVChatClientOptions();
        if (name == nameof(VidKVChatClientOptions.MaxConcurrentSequences))
        {
            options.MaxConcurrentSequences = (int)value;
        }
        else if (name == nameof(VidKVChatClientOptions.PrefillChunkTokens))
        {
            options.PrefillChunkTokens = (int)value;
        }
        else
        {
            options.MaxCacheBytes = value;
        }

        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains($"VidKV:{name} is {value}", e.Message, StringComparison.Ordinal);
    }
}
