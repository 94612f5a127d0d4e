using Microsoft.Extensions.AI;

namespace VidKV.AI.Server;

/// <summary>A parsed and validated <c>/v1/chat/completions</c> request.</summary>
/// <param name="Messages">The conversation; media already read (data URLs decoded, allowed files loaded).</param>
/// <param name="Options">Sampling, length and VidKV settings.</param>
/// <param name="Stream">Whether to answer with server-sent events.</param>
/// <param name="IncludeUsage">Streaming only: <c>stream_options.include_usage</c>, a last chunk with <c>choices: []</c> and the usage.</param>
/// <param name="MaxTokensName">The name the client gave the length limit (<c>max_tokens</c> or <c>max_completion_tokens</c>), for messages.</param>
public sealed record CompletionRequest(IReadOnlyList<ChatMessage> Messages, ChatOptions Options, bool Stream, bool IncludeUsage, string MaxTokensName);
