using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

internal static class CacheTestData
{
    /// <summary>Every tensor a cache holds, for checking its byte account independently.</summary>
    public static IEnumerable<Tensor> HeldTensors(QuantizedKVCache cache)
    {
        foreach (var b in cache.Blocks)
        {
            yield return b.Keys.OutlierChannels;
            yield return b.Keys.EasyChannels;
            foreach (var q in new[] { b.Keys.Outliers, b.Keys.Easy, b.Values.Protected, b.Values.Rest })
            {
                if (q is null)
                {
                    continue;
                }

                yield return q.Codes;
                if (q.Scale is not null)
                {
                    yield return q.Scale;
                }

                if (q.Zero is not null)
                {
                    yield return q.Zero;
                }
            }

            if (b.Values.ProtectedTokens is not null)
            {
                yield return b.Values.ProtectedTokens;
            }
        }

        if (cache.RetainedScores is not null)
        {
            yield return cache.RetainedScores;
        }

        if (cache.ResidualKeys is not null)
        {
            yield return cache.ResidualKeys;
            yield return cache.ResidualValues!;
        }
    }

    public static KVCacheOptions Small(string preset, CacheProfile profile) =>
        KVCacheOptions.FromPreset(preset, profile) with { GroupSize = 4, ResidualLength = 8 };
}
