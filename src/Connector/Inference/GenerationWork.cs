using VidKV.AI.Backend;

namespace VidKV.AI.Connector.Inference;

/// <summary>
/// A streamed request the worker may run beside others through its scheduler: what to generate and where its updates
/// go. The callbacks run on the worker thread; <see cref="OnEnded"/> runs once, with the error that ended it or null.
/// </summary>
/// <param name="Request">The checked request.</param>
/// <param name="OnUpdate">Receives each update (the last carries the finish reason and usage).</param>
/// <param name="OnEnded">Called once at the end.</param>
internal sealed record GenerationWork(PreparedRequest Request, Action<GenerationUpdate> OnUpdate, Action<Exception?> OnEnded)
{
    private ChatRequest? _chatRequest;

    /// <summary>The backend's request, made once (on the worker thread).</summary>
    public ChatRequest ChatRequest => _chatRequest ??= Request.ToChatRequest();
}
