using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models;

/// <summary>Puts visual features in the place of their placeholder tokens' embeddings: what every family does alike.</summary>
internal static class VisualEmbeddings
{
    /// <summary>
    /// A copy of <paramref name="embeds"/> [1, T, D] whose rows at the video and image placeholders of <paramref name="ids"/>
    /// hold the features, in order. The number of placeholders must equal the number of feature rows.
    /// </summary>
    /// <exception cref="ArgumentException">Counts differ; the message names the placeholder and gives both.</exception>
    public static Tensor Merge(Tensor ids, Tensor embeds, Device device, (int TokenId, Tensor? Features, string Placeholder) video, (int TokenId, Tensor? Features, string Placeholder) image)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(embeds);
        using var scope = NewDisposeScope();
        var result = embeds.clone();
        var flatIds = ids.to(device).reshape(-1);
        foreach (var (tokenId, features, placeholder, what) in new[] { (video.TokenId, video.Features, video.Placeholder, "video"), (image.TokenId, image.Features, image.Placeholder, "image") })
        {
            var positions = flatIds.eq(tokenId).nonzero().reshape(-1);
            long expected = features?.shape[0] ?? 0;
            if (positions.shape[0] != expected)
            {
                throw new ArgumentException($"The prompt has {positions.shape[0]} {placeholder} placeholder tokens but the {what} inputs give {expected} feature rows.");
            }

            if (expected > 0)
            {
                result.index_copy_(1, positions, features!.to(result.dtype).unsqueeze(0));
            }
        }

        return result.MoveToOuterDisposeScope();
    }
}
