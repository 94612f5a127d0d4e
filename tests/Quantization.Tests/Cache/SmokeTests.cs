using TorchSharp;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

public sealed class SmokeTests
{
    [Theory]
    [InlineData(CacheProfile.Reference)]
    [InlineData(CacheProfile.Compact)]
    public void AllPresets_Run(CacheProfile profile)
    {
        foreach (var name in KVCacheOptions.PresetNames)
        {
            using var scope = NewDisposeScope();
            random.manual_seed(1);
            var k = randn(1, 4, 300, 128);
            var v = randn(1, 4, 300, 128);
            using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(name, profile));
            var scores = randn(300);
            cache.Prefill(k, v, scores);
            for (int i = 0; i < 200; i++)
            {
                cache.Append(randn(1, 4, 1, 128), randn(1, 4, 1, 128));
            }

            var (kk, vv) = cache.GetKeysValues();
            var m = cache.Memory;
            var ek = ((kk.narrow(2, 0, 300) - k).norm() / k.norm()).item<float>();
            var ev = ((vv.narrow(2, 0, 300) - v).norm() / v.norm()).item<float>();
            Console.WriteLine($"{profile} {name}: len {cache.Length} q {cache.QuantizedLength} r {cache.ResidualLength} flush {cache.FlushCount} qbits {m.QuantizedBitsPerElement:F3} bits {m.BitsPerElement:F3} ek {ek:F3} ev {ev:F3}");
        }
    }
}
