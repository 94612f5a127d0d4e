using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Where a request's prompt may be cut into a reusable prefix and the rest, and the keys of those prefixes. A cut lies at
/// the end of the last media item (the video alone: "describe it", "count", "when" share it) or at the end of a later turn
/// (an earlier conversation), and always leaves at least one token after it.
/// </summary>
/// <param name="Context">The hash of everything but the prefix's tokens (see <see cref="VideoMemoryKey.Context"/>).</param>
/// <param name="Media">Each media item's content hash.</param>
/// <param name="Tokens">The prompt before placeholder expansion.</param>
/// <param name="Cuts">Candidate cuts in <see cref="PromptTokens.Ids"/>, ascending.</param>
internal sealed record ReusePlan(string Context, IReadOnlyList<string> Media, PromptTokens Tokens, IReadOnlyList<int> Cuts)
{
    /// <summary>The key of the prefix that ends at <paramref name="cut"/>.</summary>
    public VideoMemoryKey Key(int cut)
    {
        var ids = Tokens.Ids.Take(cut).ToArray();
        return new VideoMemoryKey(Context, Convert.ToHexStringLower(XxHash128.Hash(MemoryMarshal.AsBytes(ids.AsSpan()))), Media);
    }

    /// <summary>
    /// The cuts worth storing after a prefix ending at <paramref name="after"/> (0: none) was reused: the end of the media
    /// and the end of the conversation so far (its last turn), where they lie beyond it.
    /// </summary>
    public IReadOnlyList<int> SaveCuts(int after) => new[] { Cuts[0], Cuts[^1] }.Distinct().Where(c => c > after).ToArray();

    /// <summary>Whether a stored prefix's ids are the first <paramref name="cut"/> ids of this prompt.</summary>
    public bool Matches(VideoMemoryPrefix prefix, int cut) => prefix.PromptIds.Count == cut && prefix.PromptIds.SequenceEqual(Tokens.Ids.Take(cut));
}
