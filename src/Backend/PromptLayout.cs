namespace VidKV.AI.Backend;

/// <summary>A prompt's token ids (visual placeholders expanded) and where its visual tokens are.</summary>
/// <param name="Ids">Token ids.</param>
/// <param name="VideoTokens">How many are video features.</param>
/// <param name="ImageTokens">How many are image features.</param>
/// <param name="VideoSpans">Start and length of each video's tokens.</param>
public sealed record PromptLayout(IReadOnlyList<int> Ids, int VideoTokens, int ImageTokens, IReadOnlyList<(int Start, int Length)> VideoSpans)
{
    /// <summary>
    /// Expands each video and image placeholder of a rendered prompt to one token per visual feature, in order of
    /// appearance: <paramref name="videoTokens"/> and <paramref name="imageTokens"/> count the features of a decoded item.
    /// </summary>
    /// <exception cref="ArgumentException">The placeholders and the media differ in number; the message gives both.</exception>
    internal static PromptLayout Expand(
        IEnumerable<int> ids, int videoTokenId, int imageTokenId, Generation.DecodedMedia media, Func<TorchSharp.torch.Tensor, int> videoTokens, Func<TorchSharp.torch.Tensor, int> imageTokens)
    {
        var expanded = new List<int>();
        int videoIndex = 0, imageIndex = 0, videoCount = 0, imageCount = 0;
        var spans = new List<(int Start, int Length)>();
        foreach (int id in ids)
        {
            if (id == videoTokenId)
            {
                if (videoIndex >= media.Videos.Count)
                {
                    throw new ArgumentException($"The conversation has more video parts than the {media.Videos.Count} videos given.", "request");
                }

                int count = videoTokens(media.Videos[videoIndex++]);
                spans.Add((expanded.Count, count));
                expanded.AddRange(Enumerable.Repeat(id, count));
                videoCount += count;
            }
            else if (id == imageTokenId)
            {
                if (imageIndex >= media.Images.Count)
                {
                    throw new ArgumentException($"The conversation has more image parts than the {media.Images.Count} images given.", "request");
                }

                int count = imageTokens(media.Images[imageIndex++]);
                expanded.AddRange(Enumerable.Repeat(id, count));
                imageCount += count;
            }
            else
            {
                expanded.Add(id);
            }
        }

        if (videoIndex != media.Videos.Count || imageIndex != media.Images.Count)
        {
            throw new ArgumentException(
                $"The conversation has {videoIndex} video and {imageIndex} image parts, but {media.Videos.Count} videos and {media.Images.Count} images were given.", "request");
        }

        return new PromptLayout(expanded, videoCount, imageCount, spans);
    }
}
