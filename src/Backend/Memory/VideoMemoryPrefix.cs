namespace VidKV.AI.Backend.Memory;

/// <summary>
/// The prompt layout of a stored prefix, kept with its cache snapshot so that a request reusing it knows its tokens and
/// video positions without decoding the media again.
/// </summary>
/// <param name="PromptIds">The prefix's token ids before placeholder expansion (one placeholder per media item); checked
/// against the request's on every reuse.</param>
/// <param name="Ids">The prefix's token ids with the placeholders expanded (one per visual token): the cached tokens.</param>
/// <param name="VideoTokens">How many of <paramref name="Ids"/> are video features.</param>
/// <param name="ImageTokens">How many of <paramref name="Ids"/> are image features.</param>
/// <param name="VideoSpans">Start and length of each video's tokens in <paramref name="Ids"/>.</param>
/// <param name="NextPosition">The position id of the first token after the prefix, from which the text after it counts on.
/// With multimodal rotary positions (Qwen2.5-VL, Qwen2-VL) a video or image advances the position by its time and its
/// grid's height and width, not by its token count, so this is smaller than <c>Ids.Count</c>; it is stored with every
/// entry (format version 1 has always held it).</param>
public sealed record VideoMemoryPrefix(
    IReadOnlyList<int> PromptIds,
    IReadOnlyList<int> Ids,
    int VideoTokens,
    int ImageTokens,
    IReadOnlyList<(int Start, int Length)> VideoSpans,
    long NextPosition)
{
    /// <summary>Checks the values against each other.</summary>
    /// <exception cref="ArgumentException">A count, span or position is out of range; the message says which.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(PromptIds);
        ArgumentNullException.ThrowIfNull(Ids);
        ArgumentNullException.ThrowIfNull(VideoSpans);
        if (PromptIds.Count == 0 || Ids.Count < PromptIds.Count)
        {
            throw new ArgumentException($"A prefix needs at least one token and at least as many expanded ids ({Ids.Count}) as prompt ids ({PromptIds.Count}).");
        }

        if (VideoTokens < 0 || ImageTokens < 0 || VideoTokens + ImageTokens > Ids.Count || NextPosition < 1)
        {
            throw new ArgumentException($"The prefix's counts do not fit its {Ids.Count} tokens: {VideoTokens} video, {ImageTokens} image, next position {NextPosition}.");
        }

        if (VideoSpans.Any(s => s.Start < 0 || s.Length < 1 || s.Start + s.Length > Ids.Count) || VideoSpans.Sum(s => s.Length) != VideoTokens)
        {
            throw new ArgumentException($"The prefix's video spans do not fit its {Ids.Count} tokens and {VideoTokens} video tokens.");
        }
    }
}
