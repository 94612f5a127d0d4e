using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

/// <summary>
/// TorchSharp reads a Scalar's native handle before the native call; a temporary Scalar may then be finalized (and its
/// memory freed) while the call still reads it. The cache's per-request paths use Scalars that live as long as the
/// process or the quantizer, so collecting garbage all the time must never change a result.
/// </summary>
public sealed class ScalarLifetimeTests
{
    private const int Iterations = 20;

    /// <summary>
    /// Configurations that between them run every quantizer branch that passes a number to TorchSharp: asymmetric 2- and
    /// 4-bit codes per channel and per token, sign codes (both reconstructions, FFT, real FFT and time domain), ternary
    /// codes with the reference metadata and scaled, the outlier-count channel statistic, semantic token protection with
    /// re-quantization of everything (NaN scores for new tokens), and streaming flushes.
    /// </summary>
    private static KVCacheOptions[] Configurations() => new[]
    {
        CacheTestData.Small("vidkv-1.5/1.66", CacheProfile.Reference) with { ChannelStatistic = ChannelStatistic.OutlierCount },
        CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact) with { ScaledTernary = true, SignReconstruction = SignReconstruction.PlusMinusScale },
        CacheTestData.Small("vidkv-1.25/1.58", CacheProfile.Reference) with { ChannelStatistic = ChannelStatistic.Variance },
        CacheTestData.Small("kivi-2", CacheProfile.Compact) with { ValueBits = 4 },
    };

    [Fact]
    public void QuantizeFlushAttend_UnderConstantGarbageCollection_GivesIdenticalResultsEveryIteration()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(11);
        const int prompt = 22, steps = 14, dim = 16;
        var offset = zeros(dim);
        offset[0] = 6f;
        var keys = (randn(1, 2, prompt, dim) * 2) + offset;
        var values = randn(1, 2, prompt, dim);
        var importance = randn(prompt);
        importance[0] = float.NaN; // a text token: never protected
        importance[1] = float.NaN;
        var stepKeys = Enumerable.Range(0, steps).Select(_ => (randn(1, 2, 1, dim) * 2) + offset).ToArray();
        var stepValues = Enumerable.Range(0, steps).Select(_ => randn(1, 2, 1, dim)).ToArray();
        var query = randn(1, 4, 2, dim);
        var configurations = Configurations();
        var first = new List<byte[]>?[configurations.Length];

        // Another thread collects and runs finalizers all the time, so that a Scalar the GC may reclaim can be reclaimed
        // while a native call runs, not only between calls (the window is tiny: this makes a hit possible, not likely;
        // PerRequestCode_CreatesNoTemporaryScalars is the deterministic check).
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            for (int it = 0; it < Iterations; it++)
            {
                for (int c = 0; c < configurations.Length; c++)
                {
                    var results = Run(configurations[c], keys, values, importance, stepKeys, stepValues, query);
                    if (first[c] is null)
                    {
                        first[c] = results;
                        continue;
                    }

                    Assert.Equal(first[c]!.Count, results.Count);
                    for (int r = 0; r < results.Count; r++)
                    {
                        Assert.True(first[c]![r].AsSpan().SequenceEqual(results[r]),
                            $"{configurations[c].Preset} {configurations[c].Profile}, iteration {it}: result {r} differs from the first iteration's.");
                    }
                }
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }

        Assert.True(Interlocked.Read(ref collections) > Iterations, $"only {collections} collections ran alongside the loop");
    }

    /// <summary>
    /// One request: prefill (quantize), decode steps (flush), then every attention path; returns the raw bytes of every
    /// packed code tensor, the dequantized cache and each attention output.
    /// </summary>
    private static List<byte[]> Run(KVCacheOptions options, Tensor keys, Tensor values, Tensor importance, Tensor[] stepKeys, Tensor[] stepValues, Tensor query)
    {
        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(options);
        cache.Prefill(keys, values, importance);
        Collect();
        for (int i = 0; i < stepKeys.Length; i++)
        {
            cache.Append(stepKeys[i], stepValues[i]);
            if (i % 7 == 6)
            {
                Collect();
            }
        }

        Assert.True(cache.FlushCount > 0 && cache.QuantizedLength > 0);
        var results = new List<byte[]>();
        foreach (var b in cache.Blocks)
        {
            foreach (var q in new[] { b.Keys.Outliers, b.Keys.Easy, b.Values.Protected, b.Values.Rest })
            {
                if (q is not null)
                {
                    results.Add(Bytes(q.Codes));
                    results.Add(q.Scale is null ? Array.Empty<byte>() : Bytes(q.Scale));
                    results.Add(q.Zero is null ? Array.Empty<byte>() : Bytes(q.Zero));
                }
            }
        }

        var (k, v) = cache.GetKeysValues();
        results.Add(Bytes(k));
        results.Add(Bytes(v));
        Collect();
        results.Add(Bytes(cache.Attend(query, causal: true)));
        results.Add(Bytes(cache.AttendFused(query, causal: true)));
        results.Add(Bytes(ChunkedFusedAttention.Attend(cache, query, causal: true, scale: 0.25, chunkTokens: 2 * options.GroupSize)));
        return results;
    }

    /// <summary>
    /// The deterministic half of the guarantee: no method of the per-request code (quantizers, packing, cache,
    /// attention; lambdas and local functions included) converts a number to a Scalar implicitly, or calls a TorchSharp
    /// member that does so inside (<c>t.add(u)</c>, <c>t + u</c>, <c>t * 2</c>, <c>arange(n)</c>, ...). A Scalar the
    /// code creates on purpose is written <c>x.ToScalar()</c> and is either disposed by the code or kept for good.
    /// </summary>
    [Fact]
    public void PerRequestCode_CreatesNoTemporaryScalars()
    {
        var assembly = typeof(Scalars).Assembly;
        string[] namespaces = { "VidKV.AI.Quantization.Quantizers", "VidKV.AI.Quantization.Packing", "VidKV.AI.Quantization.Cache", "VidKV.AI.Quantization.Attention" };
        var scanned = 0;
        var offenders = new List<string>();
        var torchSharp = typeof(Scalar).Assembly;
        var creates = new Dictionary<MethodBase, bool>();
        foreach (var type in assembly.GetTypes().Where(t => namespaces.Contains(Outermost(t).Namespace)))
        {
            const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                scanned++;
                foreach (var callee in Callees(method))
                {
                    if (IsImplicitScalar(callee))
                    {
                        offenders.Add($"{type.FullName}.{method.Name}: implicit number -> Scalar");
                    }
                    else if (callee.Module.Assembly == torchSharp && CreatesTemporary(callee, creates, 0))
                    {
                        offenders.Add($"{type.FullName}.{method.Name}: calls {callee.DeclaringType!.Name}.{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))}), which creates a temporary Scalar");
                    }
                }
            }
        }

        Assert.True(scanned > 100, $"only {scanned} methods scanned");
        Assert.True(offenders.Count == 0, string.Join(Environment.NewLine, offenders.Distinct()));

        // The check itself sees what it is looking for.
        Assert.True(CreatesTemporary(typeof(Tensor).GetMethod(nameof(Tensor.add), new[] { typeof(Tensor) })!, creates, 0));
        Assert.True(CreatesTemporary(typeof(Tensor).GetMethod("op_Addition", new[] { typeof(Tensor), typeof(Tensor) })!, creates, 0));
        Assert.False(CreatesTemporary(typeof(Tensor).GetMethod(nameof(Tensor.add), new[] { typeof(Tensor), typeof(Scalar) })!, creates, 0));
    }

    private static Type Outermost(Type t) => t.DeclaringType is null ? t : Outermost(t.DeclaringType);

    private static bool IsImplicitScalar(MethodBase m) => m.DeclaringType == typeof(Scalar) && m.Name == "op_Implicit";

    /// <summary>Whether a TorchSharp member converts a number to a Scalar itself, or through the members it calls (3 levels).</summary>
    private static bool CreatesTemporary(MethodBase m, Dictionary<MethodBase, bool> memo, int depth)
    {
        if (memo.TryGetValue(m, out bool known))
        {
            return known;
        }

        memo[m] = false; // recursion guard
        bool result = Callees(m).Any(c => IsImplicitScalar(c)
            || (depth < 3 && c.Module.Assembly == typeof(Scalar).Assembly && CreatesTemporary(c, memo, depth + 1)));
        memo[m] = result;
        return result;
    }

    private static readonly Dictionary<short, OpCode> OpCodeTable = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The methods a method body calls (call, callvirt, newobj, ldftn).</summary>
    private static IEnumerable<MethodBase> Callees(MethodBase m)
    {
        var il = m.GetMethodBody()?.GetILAsByteArray();
        if (il is null)
        {
            yield break;
        }

        var typeArgs = m.DeclaringType?.IsGenericType == true ? m.DeclaringType.GetGenericArguments() : null;
        var methodArgs = m.IsGenericMethod ? m.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            var op = il[i] == 0xFE ? OpCodeTable[(short)(0xFE00 | il[i + 1])] : OpCodeTable[il[i]];
            i += op.Size;
            int operand = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, i)),
                _ => 4,
            };
            if (op.OperandType == OperandType.InlineMethod)
            {
                MethodBase? callee = null;
                try
                {
                    callee = m.Module.ResolveMethod(BitConverter.ToInt32(il, i), typeArgs, methodArgs);
                }
                catch (ArgumentException)
                {
                }

                if (callee is not null)
                {
                    yield return callee;
                }
            }

            i += operand;
        }
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    private static byte[] Bytes(Tensor t) => t.contiguous().bytes.ToArray();
}
