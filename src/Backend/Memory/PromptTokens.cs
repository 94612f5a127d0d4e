namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A rendered prompt's token ids before placeholder expansion (one placeholder per media item), known without decoding any
/// media, and where a reusable prefix may end.
/// </summary>
/// <param name="Ids">Token ids, one placeholder per media item.</param>
/// <param name="MediaEnd">The index just after the last media placeholder; 0 without media.</param>
/// <param name="TurnEnds">The index just after each turn's closing token, ascending.</param>
internal sealed record PromptTokens(IReadOnlyList<int> Ids, int MediaEnd, IReadOnlyList<int> TurnEnds);
