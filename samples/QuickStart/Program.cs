// QuickStart: compress one attention layer's key-value cache with every VidKV preset and compare it with FP16.
// (Until the built-in VideoLLM ships, this runs on a synthetic cache of LLaVA-OneVision-0.5B's geometry.)
using System.Diagnostics;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

TorchRuntime.EnsureLoaded();
Console.WriteLine($"TorchSharp native layer: {TorchRuntime.Description}");

const int kvHeads = 2, queryHeads = 14, headDim = 64, tokens = 32 * 196 + 64; // 32 frames of 196 tokens + a prompt
random.manual_seed(0);
using var scope = NewDisposeScope();
// Shaped like real caches: keys have per-channel offsets and a few large outlier channels, values per-channel means.
var keyOffset = randn(headDim) * 0.5;
keyOffset.index_copy_(0, randperm(headDim).narrow(0, 0, 4), randn(4) * 10);
var keys = ((randn(1, kvHeads, tokens, headDim) * (randn(headDim) * 0.5).exp()) + keyOffset).half();
var values = ((randn(1, kvHeads, tokens, headDim) * (randn(headDim) * 0.3).exp()) + (randn(headDim) * 0.5)).half();
var query = randn(1, queryHeads, 1, headDim);
var exact = ReferenceAttention.Attend(query, keys, values);

Console.WriteLine($"One layer, {tokens} cached tokens, {kvHeads} KV heads x {headDim} channels (LLaVA-OneVision-0.5B geometry)");
Console.WriteLine($"{"profile",-10} {"preset",-16} {"KiB",9} {"bits/elem",10} {"vs FP16",8} {"attn err",9} {"ms",7}");
foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
{
    foreach (var preset in KVCacheOptions.PresetNames)
    {
        using var layerScope = NewDisposeScope();
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, profile));
        var clock = Stopwatch.StartNew();
        cache.Prefill(keys, values);
        clock.Stop();
        var err = ((cache.Attend(query) - exact).norm() / exact.norm()).item<float>();
        var m = cache.Memory;
        Console.WriteLine($"{profile,-10} {preset,-16} {m.TotalBytes / 1024.0,9:F0} {m.BitsPerElement,10:F3} {m.RatioToFp16,8:P1} {err,9:F4} {clock.Elapsed.TotalMilliseconds,7:F0}");
    }
}
