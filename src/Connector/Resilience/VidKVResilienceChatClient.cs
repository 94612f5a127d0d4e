using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Polly;

namespace VidKV.AI.Connector;

/// <summary>
/// A chat client middleware that runs each request's first phase (until the first streamed update) through a Polly
/// <see cref="ResiliencePipeline"/>: its timeouts and retries apply before the first token only, so a reply is never
/// repeated or cut by a retry.
/// </summary>
/// <remarks>
/// Thread-safe when the inner client is. Polly's token is not handed to the stream (Polly reuses its token sources
/// once the callback returns); each attempt gets its own source that Polly's token cancels while the attempt runs.
/// </remarks>
public sealed class VidKVResilienceChatClient : DelegatingChatClient
{
    private readonly ResiliencePipeline _pipeline;

    /// <summary>Wraps <paramref name="innerClient"/>.</summary>
    /// <param name="innerClient">The client to protect.</param>
    /// <param name="pipeline">Timeouts and retries for the phase before the first token.</param>
    public VidKVResilienceChatClient(IChatClient innerClient, ResiliencePipeline pipeline)
        : base(innerClient)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        _pipeline = pipeline;
    }

    /// <inheritdoc />
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var attempt = new Attempt(this, messages, options, cancellationToken);
        try
        {
            bool any = await _pipeline.ExecuteAsync(static (a, token) => a.StartAsync(token), attempt, cancellationToken).ConfigureAwait(false);
            if (!any)
            {
                yield break;
            }

            yield return attempt.Enumerator!.Current;
            while (await attempt.Enumerator.MoveNextAsync().ConfigureAwait(false))
            {
                yield return attempt.Enumerator.Current;
            }
        }
        finally
        {
            await attempt.DisposeAsync().ConfigureAwait(false);
        }
    }

    private IAsyncEnumerable<ChatResponseUpdate> InnerStream(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
        => base.GetStreamingResponseAsync(messages, options, cancellationToken);

    /// <summary>The current attempt's stream and its cancellation.</summary>
    private sealed class Attempt(VidKVResilienceChatClient owner, IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken callerToken) : IAsyncDisposable
    {
        private CancellationTokenSource? _cts;

        public IAsyncEnumerator<ChatResponseUpdate>? Enumerator { get; private set; }

        public async ValueTask<bool> StartAsync(CancellationToken pollyToken)
        {
            await DisposeAsync().ConfigureAwait(false); // a retry: drop the failed attempt
            _cts = CancellationTokenSource.CreateLinkedTokenSource(callerToken);
            using var link = pollyToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _cts);
            Enumerator = owner.InnerStream(messages, options, _cts.Token).GetAsyncEnumerator(_cts.Token);
            return await Enumerator.MoveNextAsync().ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (Enumerator is { } e)
            {
                Enumerator = null;
                await e.DisposeAsync().ConfigureAwait(false);
            }

            _cts?.Dispose();
            _cts = null;
        }
    }
}
