namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A rendered prompt's token ids before placeholder expansion (one placeholder per media item), known without decoding any
/// media, and where a reusable prefix may end.
/// </summary>
/// <param name="Ids">Token ids, one placeholder per media item.</param>
/// <param name="MediaEnd">The index just after the last media placeholder; 0 without media.</param>
/// <param name="TurnEnds">The index just after each turn's closing token, ascending.</param>
internal sealed record PromptTokens(IReadOnlyList<int> Ids, int MediaEnd, IReadOnlyList<int> TurnEnds)
{
    /// <summary>
    /// Finds the cuts of a rendered prompt: the media end just after the last token that <paramref name="endsMedia"/>
    /// accepts, the turn ends just after each <paramref name="turnEnd"/>.
    /// </summary>
    public static PromptTokens Scan(IReadOnlyList<int> ids, Func<int, bool> endsMedia, int? turnEnd)
    {
        int mediaEnd = 0;
        var turnEnds = new List<int>();
        for (int i = 0; i < ids.Count; i++)
        {
            if (endsMedia(ids[i]))
            {
                mediaEnd = i + 1;
            }
            else if (ids[i] == turnEnd)
            {
                turnEnds.Add(i + 1);
            }
        }

        return new PromptTokens(ids, mediaEnd, turnEnds);
    }
}
