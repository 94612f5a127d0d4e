using TorchSharp;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

public sealed class QuantizedKVCacheSnapshotTests
{
    private const int Heads = 2, Dim = 16, Appends = 14;

    public static TheoryData<string, CacheProfile, int> PresetsProfilesPrefixes()
    {
        var data = new TheoryData<string, CacheProfile, int>();
        foreach (var p in KVCacheOptions.PresetNames)
        {
            foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
            {
                data.Add(p, profile, 12); // a whole number of groups (G = 4)
                data.Add(p, profile, 14); // two tokens past a group
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(PresetsProfilesPrefixes))]
    public void Fork_ContinuesBitIdenticallyToTheOriginalCache_AcrossFlushes(string preset, CacheProfile profile, int prefix)
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small(preset, profile);
        var data = Data.Make(prefix, seed: 21);
        using var original = new QuantizedKVCache(options);
        original.Prefill(data.Keys, data.Values, data.Importance);
        var heldBefore = CacheTestData.HeldTensors(original).Sum(t => t.NumberOfElements * t.ElementSize);

        using var snapshot = original.CreateSnapshot();
        using var fork = snapshot.Fork();

        Assert.Equal(original.Memory, snapshot.Memory);
        Assert.Equal(heldBefore, snapshot.Memory.TotalBytes);
        Assert.Equal((original.Length, original.QuantizedLength, original.ResidualLength, original.FlushCount, original.DType),
            (snapshot.Length, snapshot.QuantizedLength, snapshot.ResidualLength, snapshot.FlushCount, snapshot.DType));
        Assert.Equal(original.Blocks.Count, fork.Blocks.Count);
        for (int i = 0; i < fork.Blocks.Count; i++)
        {
            Assert.Same(original.Blocks[i], fork.Blocks[i]); // shared, not copied
        }

        AssertSame(original, fork, data.Query, "after the fork");
        var sharedFirst = fork.Blocks.FirstOrDefault();
        foreach (var (k, v, label) in data.Steps())
        {
            original.Append(k, v);
            fork.Append(k, v);
            AssertSame(original, fork, data.Query, label);
        }

        Assert.True(original.FlushCount > snapshot.FlushCount || !options.IsQuantized, "the appends cross a flush");
        if (sharedFirst is not null && options.Flush == FlushPolicy.Streaming)
        {
            Assert.Same(sharedFirst, fork.Blocks[0]); // streaming flushes keep sharing the snapshot's blocks
        }
        else if (sharedFirst is not null)
        {
            Assert.NotSame(sharedFirst, fork.Blocks[0]); // re-quantize-all made the fork's own block
        }
    }

    [Theory]
    [InlineData("vidkv-1.5/1.66", CacheProfile.Reference)]
    [InlineData("vidkv-1.5/1.58", CacheProfile.Compact)]
    [InlineData("kivi-2", CacheProfile.Reference)]
    [InlineData("fp16", CacheProfile.Compact)]
    public void Fork_IsIndependentOfTheOriginalAndOfTheSnapshotsLifetime_AndNothingLeaks(string preset, CacheProfile profile)
    {
        long live = LiveTensors();
        var options = CacheTestData.Small(preset, profile);
        using (var scope = NewDisposeScope())
        {
            var data = Data.Make(14, seed: 22);
            var snapshot = SnapshotOfPrefill(options, data, mutateAndDisposeOriginal: true);
            using var first = snapshot.Fork();
            var second = snapshot.Fork();

            // The snapshot goes first; its forks keep the shared blocks alive.
            snapshot.Dispose();
            snapshot.Dispose();
            Assert.Throws<ObjectDisposedException>(() => snapshot.Fork());
            foreach (var (k, v, label) in data.Steps())
            {
                first.Append(k, v);
                second.Append(k, v);
                AssertSame(first, second, data.Query, label);
            }

            // Disposing one fork leaves the other intact.
            var expected = Results(first, data.Query);
            second.Dispose();
            AssertEqual(expected, Results(first, data.Query), "after the other fork was disposed");
        }

        Assert.Equal(live, LiveTensors());
    }

    [Fact]
    public void Snapshot_OutlivesTheDisposeScopeAndThreadThatMadeIt()
    {
        var options = CacheTestData.Small("vidkv-1.5/1.66", CacheProfile.Compact);
        QuantizedKVCacheSnapshot? snapshot = null;
        List<byte[]>? expected = null;
        ScalarType[]? expectedTypes = null;
        long[][]? expectedShapes = null;
        var maker = new Thread(() =>
        {
            using var scope = NewDisposeScope();
            var data = Data.Make(14, seed: 23);
            using var cache = new QuantizedKVCache(options);
            cache.Prefill(data.Keys, data.Values, data.Importance);
            snapshot = cache.CreateSnapshot();
            cache.Append(data.StepKeys[0], data.StepValues[0]);
            expected = Results(cache, data.Query);
            using var attention = cache.Attend(data.Query, causal: true);
            using var fused = cache.AttendFused(data.Query, causal: true);
            expectedTypes = [attention.dtype, fused.dtype];
            expectedShapes = [attention.shape, fused.shape];
        });
        maker.Start();
        maker.Join();
        Assert.NotNull(snapshot);
        using (snapshot)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var scope = NewDisposeScope();
            var data = Data.Make(14, seed: 23);
            using var fork = snapshot!.Fork();
            fork.Append(data.StepKeys[0], data.StepValues[0]);
            // The cache's contents are bit for bit those of the original; attention computed on another thread may round
            // its reductions differently (libtorch's intra-op threads are per thread, and the results are fp16, where one
            // rounding step is 2^-11 relative), so attention is compared within two fp16 steps.
            var actual = Results(fork, data.Query);
            AssertEqual(expected!.Take(2).ToList(), actual.Take(2).ToList(), "on another thread");
            for (int i = 2; i < 4; i++)
            {
                using var e = AsFloat(expected![i], expectedTypes![i - 2], expectedShapes![i - 2]);
                using var f = AsFloat(actual[i], expectedTypes[i - 2], expectedShapes[i - 2]);
                double worst = (e - f).abs().div(e.abs().clamp_min(1)).max().item<float>();
                Assert.True(worst <= 2.0 / 2048, $"on another thread: attention result {i} differs by {worst:G3} relative (allowed 2 fp16 steps, {2.0 / 2048:G3})");
            }
        }
    }

    private static Tensor AsFloat(byte[] bytes, ScalarType type, long[] shape)
    {
        using var typed = empty(shape, type);
        typed.bytes = bytes;
        return typed.to(ScalarType.Float32);
    }

    [Fact]
    public void EmptyCache_CannotBeSnapshotted()
    {
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58"));
        var ex = Assert.Throws<InvalidOperationException>(() => cache.CreateSnapshot());
        Assert.Contains("empty", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelSnapshot_SnapshotsAndForksEveryLayer()
    {
        long live = LiveTensors();
        using (var scope = NewDisposeScope())
        {
            var options = CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact);
            var layers = Enumerable.Range(0, 3).Select(_ => new QuantizedKVCache(options)).ToArray();
            var data = Enumerable.Range(0, 3).Select(i => Data.Make(14, seed: 30 + i)).ToArray();
            for (int i = 0; i < 3; i++)
            {
                layers[i].Prefill(data[i].Keys, data[i].Values, data[i].Importance);
            }

            using var snapshot = KVCacheSnapshot.Create(layers);
            Assert.Equal(3, snapshot.Layers.Count);
            Assert.Equal(14, snapshot.Length);
            Assert.Same(options, snapshot.Options);
            Assert.Equal(layers[0].Memory + layers[1].Memory + layers[2].Memory, snapshot.Memory);
            var forks = snapshot.Fork();
            for (int i = 0; i < 3; i++)
            {
                layers[i].Append(data[i].StepKeys[0], data[i].StepValues[0]);
                forks[i].Append(data[i].StepKeys[0], data[i].StepValues[0]);
                AssertSame(layers[i], forks[i], data[i].Query, $"layer {i}");
            }

            foreach (var c in layers.Concat(forks))
            {
                c.Dispose();
            }

            using var other = new QuantizedKVCache(options with { GroupSize = 8 });
            other.Prefill(data[0].Keys, data[0].Values);
            using var same = new QuantizedKVCache(options);
            same.Prefill(data[0].Keys, data[0].Values);
            var ex = Assert.Throws<ArgumentException>(() => KVCacheSnapshot.Create(new[] { same, other }));
            Assert.Contains("layer 1", ex.Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentException>(() => KVCacheSnapshot.Create(Array.Empty<QuantizedKVCache>()));
        }

        Assert.Equal(live, LiveTensors());
    }

    internal static long LiveTensors() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    /// <summary>Prefills a cache, snapshots it, optionally goes on with the cache (flushing it) and disposes it.</summary>
    private static QuantizedKVCacheSnapshot SnapshotOfPrefill(KVCacheOptions options, Data data, bool mutateAndDisposeOriginal)
    {
        var cache = new QuantizedKVCache(options);
        cache.Prefill(data.Keys, data.Values, data.Importance);
        var snapshot = cache.CreateSnapshot();
        if (mutateAndDisposeOriginal)
        {
            for (int i = 0; i < 10; i++)
            {
                cache.Append(randn(1, Heads, 1, Dim).half(), randn(1, Heads, 1, Dim).half());
            }

            cache.Dispose();
        }

        return snapshot;
    }

    internal static void AssertSame(QuantizedKVCache expected, QuantizedKVCache actual, Tensor query, string label)
    {
        Assert.Equal(expected.Memory, actual.Memory);
        Assert.Equal((expected.Length, expected.QuantizedLength, expected.FlushCount), (actual.Length, actual.QuantizedLength, actual.FlushCount));
        AssertEqual(Results(expected, query), Results(actual, query), label);
    }

    internal static void AssertEqual(List<byte[]> expected, List<byte[]> actual, string label)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].AsSpan().SequenceEqual(actual[i]), $"{label}: result {i} differs (0 keys, 1 values, 2 attention, 3 fused attention)");
        }
    }

    /// <summary>The dequantized cache and attention through both paths, as raw bytes.</summary>
    internal static List<byte[]> Results(QuantizedKVCache cache, Tensor query)
    {
        using var scope = NewDisposeScope();
        var (k, v) = cache.GetKeysValues();
        return new List<byte[]>
        {
            Bytes(k), Bytes(v), Bytes(cache.Attend(query, causal: true)), Bytes(cache.AttendFused(query, causal: true)),
        };
    }

    private static byte[] Bytes(Tensor t) => t.contiguous().bytes.ToArray();

    /// <summary>A prompt (fp16 keys with an outlier channel, values, importance with two text tokens) and appends.</summary>
    internal sealed record Data(Tensor Keys, Tensor Values, Tensor Importance, Tensor[] StepKeys, Tensor[] StepValues, Tensor Query)
    {
        public static Data Make(int prefix, int seed)
        {
            // A generator of its own: tests running in parallel draw from the global one, and two calls with one seed must
            // give the same data (a snapshot's test rebuilds the data on another thread and compares).
            using var g = new Generator((ulong)seed);
            Tensor Randn(params long[] shape) => randn(shape, generator: g);
            var offset = zeros(Dim);
            offset[3] = 5f;
            var importance = Randn(prefix);
            importance[0] = float.NaN;
            importance[1] = float.NaN;
            var stepKeys = new Tensor[Appends];
            var stepValues = new Tensor[Appends];
            for (int i = 0; i < Appends; i++)
            {
                // Step 4 appends a chunk of three tokens, the others one token.
                long t = i == 4 ? 3 : 1;
                stepKeys[i] = ((Randn(1, Heads, t, Dim) * 2) + offset).half();
                stepValues[i] = Randn(1, Heads, t, Dim).half();
            }

            return new Data(((Randn(1, Heads, prefix, Dim) * 2) + offset).half(), Randn(1, Heads, prefix, Dim).half(), importance,
                stepKeys, stepValues, Randn(1, 2 * Heads, 1, Dim));
        }

        public IEnumerable<(Tensor Keys, Tensor Values, string Label)> Steps()
            => StepKeys.Select((k, i) => (k, StepValues[i], $"append {i}"));
    }
}
