namespace VidKV.AI.Connector;

/// <summary>
/// An answer of <see cref="VideoPlugin.AnswerAsync"/> with what it cost: how many prompt tokens the client's video memory
/// supplied (a video asked about before is not decoded, encoded or prefilled again) and the time taken.
/// </summary>
/// <param name="Text">The model's answer.</param>
/// <param name="PromptTokens">Prompt tokens of the request (video tokens included); 0 when the client does not report usage.</param>
/// <param name="CachedPromptTokens">
/// Of them, tokens read from the video memory instead of being prefilled (<c>UsageDetails.CachedInputTokenCount</c>); 0 for
/// a video the client had not read before, or a client without a video memory.
/// </param>
/// <param name="TimeToFirstToken">From the call to the first streamed text (download, decoding, encoding and prefill included).</param>
/// <param name="Elapsed">From the call to the end of the answer.</param>
public sealed record VideoAnswer(string Text, long PromptTokens, long CachedPromptTokens, TimeSpan TimeToFirstToken, TimeSpan Elapsed)
{
    /// <summary>Whether part of the prompt (the video) came from the video memory.</summary>
    public bool FromMemory => CachedPromptTokens > 0;
}
