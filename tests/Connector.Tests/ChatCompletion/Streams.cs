using Microsoft.Extensions.AI;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>Helpers of the concurrency and batched-serving tests.</summary>
internal static class Streams
{
    /// <summary>A streamed reply as its parts joined by '|', with the finish reason and output token count at the end.</summary>
    public static async Task<string> Collect(IChatClient client, ChatMessage question, ChatOptions options)
    {
        var parts = new List<string>();
        await foreach (var update in client.GetStreamingResponseAsync([question], options))
        {
            parts.Add(update.Text);
            if (update.FinishReason is { } reason)
            {
                parts.Add($"<{reason}:{update.Contents.OfType<UsageContent>().Single().Details.OutputTokenCount}>");
            }
        }

        return string.Join("|", parts);
    }

    /// <summary>Polls <paramref name="condition"/> every 10 ms for up to <paramref name="seconds"/> and asserts it holds.</summary>
    public static async Task WaitUntil(Func<bool> condition, int seconds)
    {
        for (int i = 0; i < seconds * 100 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition(), $"condition not reached in {seconds} s");
    }
}
