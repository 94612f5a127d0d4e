namespace VidKV.AI.Backend;

/// <summary>A prompt's token ids (visual placeholders expanded) and where its visual tokens are.</summary>
/// <param name="Ids">Token ids.</param>
/// <param name="VideoTokens">How many are video features.</param>
/// <param name="ImageTokens">How many are image features.</param>
/// <param name="VideoSpans">Start and length of each video's tokens.</param>
public sealed record PromptLayout(IReadOnlyList<int> Ids, int VideoTokens, int ImageTokens, IReadOnlyList<(int Start, int Length)> VideoSpans);
