using VidKV.AI.Backend.Models;

namespace VidKV.AI.Backend.Memory;

/// <summary>A prefilled request: its cache (the caller owns it), layout, first generated token and the next position.</summary>
/// <param name="Cache">The request's cache.</param>
/// <param name="Layout">The whole prompt's layout.</param>
/// <param name="Next">The first generated token.</param>
/// <param name="Position">The position of the first generated token.</param>
/// <param name="CachedTokens">Prompt tokens read from a stored prefix.</param>
internal sealed record PrefilledPrompt(ModelKVCache Cache, PromptLayout Layout, int Next, long Position, int CachedTokens);
