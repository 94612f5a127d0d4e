using TorchSharp;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;
using Xunit;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// The decoder's CUDA inference path (<see cref="LayerKernels"/>): fused q/k/v and gate/up projections, RoPE in place, residual
/// adds folded into the output projections. Here it runs on the CPU with the kernels' TorchSharp stand-ins, against the
/// layers' own TorchSharp operations; the kernels themselves are compiled with NVRTC here and run on a GPU by
/// <c>vidkv-bench cuda-check</c>.
/// </summary>
public sealed class LayerKernelsTests
{
    private static readonly Qwen2Config Config = new()
    {
        VocabSize = 64,
        HiddenSize = 96,
        IntermediateSize = 160,
        NumLayers = 2,
        NumHeads = 6,
        NumKeyValueHeads = 2,
        HeadDim = 32,
        RmsNormEps = 1e-6,
        RopeTheta = 10000,
        MaxPositionEmbeddings = 512,
        TieWordEmbeddings = true,
        EosTokenIds = [1],
    };

    [Theory]
    [InlineData("fp16")]
    [InlineData("vidkv-1.5/1.58")]
    public void FusedPath_GivesWhatTheLayersGive_AtPrefillAndDecode(string preset)
    {
        using var scope = NewDisposeScope();
        using var reference = Decoder(seed: 3);
        using var fused = Decoder(seed: 3);
        var options = KVCacheOptions.FromPreset(preset) with { GroupSize = 32, ResidualLength = 32 };
        using var referenceCache = new ModelKVCache(Config.NumLayers, options);
        using var fusedCache = new ModelKVCache(Config.NumLayers, options);
        manual_seed(11);
        var prompt = randn(1, 70, Config.HiddenSize);

        var expected = reference.Forward(prompt, arange(70), referenceCache.Layers, importance: null, hook: null);
        var actual = OnCpu(() => fused.Forward(prompt, arange(70), fusedCache.Layers, importance: null, hook: null));
        AssertClose(expected, actual, "prefill");
        for (int step = 0; step < 40; step++)
        {
            var token = randn(1, 1, Config.HiddenSize);
            var position = tensor(new long[] { 70 + step });
            expected = reference.Forward(token, position, referenceCache.Layers, null, null);
            actual = OnCpu(() => fused.Forward(token, position, fusedCache.Layers, null, null));
            AssertClose(expected, actual, $"decode step {step}");
        }

        Assert.Equal(referenceCache.Length, fusedCache.Length);
    }

    [Fact]
    public void FusedPath_BatchedDecodeStep_GivesWhatTheLayersGive()
    {
        using var scope = NewDisposeScope();
        using var reference = Decoder(seed: 5);
        using var fused = Decoder(seed: 5);
        var options = KVCacheOptions.FromPreset("vidkv-1.5/1.58") with { GroupSize = 32, ResidualLength = 32 };
        var caches = new ModelKVCache[4];
        try
        {
            for (int i = 0; i < caches.Length; i++)
            {
                caches[i] = new ModelKVCache(Config.NumLayers, options);
            }

            manual_seed(13);
            var prompts = new[] { randn(1, 40, Config.HiddenSize), randn(1, 65, Config.HiddenSize) };
            for (int s = 0; s < 2; s++)
            {
                reference.Forward(prompts[s], arange(prompts[s].shape[1]), caches[s].Layers, null, null);
                OnCpu(() => fused.Forward(prompts[s], arange(prompts[s].shape[1]), caches[s + 2].Layers, null, null));
            }

            for (int step = 0; step < 5; step++)
            {
                var tokens = randn(2, 1, Config.HiddenSize);
                var positions = new[] { tensor(new long[] { 40 + step }), tensor(new long[] { 65 + step }) };
                var expected = reference.ForwardDecodeBatch(tokens, positions, [caches[0].Layers, caches[1].Layers], rowWise: false);
                var actual = OnCpu(() => fused.ForwardDecodeBatch(tokens, positions, [caches[2].Layers, caches[3].Layers], rowWise: false));
                AssertClose(expected, actual, $"batched step {step}");
            }
        }
        finally
        {
            foreach (var c in caches)
            {
                c?.Dispose();
            }
        }
    }

    [Fact]
    public void Fusing_KeepsEachProjectionsWeights_InOneTensorWithoutASecondCopy()
    {
        using var scope = NewDisposeScope();
        using var reference = Decoder(seed: 7);
        using var fused = Decoder(seed: 7);
        OnCpu(() => fused.Forward(randn(1, 3, Config.HiddenSize), arange(3), null, null, null));

        var before = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var after = fused.named_parameters().ToList();
        Assert.Equal(before.Count, after.Count);
        foreach (var (name, parameter) in after)
        {
            Assert.True(parameter.equal(before[name]).all().item<bool>(), $"{name} changed when fused");
        }

        // q, k and v of a layer now share one storage, rows in that order; so do gate and up.
        var q = after.Single(p => p.name == "layers.0.self_attn.q_proj.weight").parameter;
        var k = after.Single(p => p.name == "layers.0.self_attn.k_proj.weight").parameter;
        var v = after.Single(p => p.name == "layers.0.self_attn.v_proj.weight").parameter;
        Assert.Equal(At(q) + (q.numel() * 4), At(k));
        Assert.Equal(At(k) + (k.numel() * 4), At(v));
        var gate = after.Single(p => p.name == "layers.1.mlp.gate_proj.weight").parameter;
        var up = after.Single(p => p.name == "layers.1.mlp.up_proj.weight").parameter;
        Assert.Equal(At(gate) + (gate.numel() * 4), At(up));
    }

    private static long At(Tensor t) => (long)CudaRuntime.DataPointer(t);

    [Fact]
    public void NotUsed_WhereAutogradTracksTheWeights()
    {
        using var scope = NewDisposeScope();
        var weight = randn(8).requires_grad_(true);
        LayerKernels.OnCpuForTests = true;
        try
        {
            Assert.False(LayerKernels.Applies(randn(2, 8), weight));
            Assert.True(LayerKernels.Applies(randn(2, 8), weight.detach()));
            Assert.False(LayerKernels.Applies(randn(2, 8).to(ScalarType.Float64), weight.detach().to(ScalarType.Float64)));
        }
        finally
        {
            LayerKernels.OnCpuForTests = false;
        }

        Assert.False(LayerKernels.Applies(randn(2, 8), weight.detach()));
    }

    /// <summary>
    /// The kernels compile with NVRTC for the H100/H200 (sm_90) and sm_80, their parameter structs as the host lays them out.
    /// Needs libnvrtc (Debian's libnvrtc11.2, which <c>.ci/run</c> installs, or <c>VIDKV_NVRTC</c>); skipped with the reason without it.
    /// </summary>
    [NvrtcTheory]
    [InlineData("sm_90")]
    [InlineData("sm_80")]
    public void Kernels_CompileWithNvrtc(string architecture)
    {
        const string layout = """

            static_assert(sizeof(NormArgs) == 40 && sizeof(RotaryArgs) == 64 && sizeof(SwigluArgs) == 40, "argument structs differ from the host's");
            """;
        var (cubin, log) = NvrtcCompiler.Compile(LayerKernelSource.Text + layout, "vidkv_layers.cu", architecture, "--ptxas-options=-v");
        Assert.True(cubin > 0, log);
        Assert.DoesNotContain("spill stores, 0 bytes spill loads", log.Replace("0 bytes spill stores, 0 bytes spill loads", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
    }

    private static Tensor OnCpu(Func<Tensor> f)
    {
        LayerKernels.OnCpuForTests = true;
        try
        {
            return f();
        }
        finally
        {
            LayerKernels.OnCpuForTests = false;
        }
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double scale = expected.abs().max().item<float>();
        double difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference <= 2e-5 * Math.Max(1, scale), $"{what}: differs by up to {difference} (largest value {scale})");
    }

    private static Qwen2Decoder Decoder(long seed)
    {
        // A generator of its own: tests of other classes draw from the global one in parallel, and two decoders built
        // from one seed must hold the same weights.
        var decoder = new Qwen2Decoder(Config, ScalarType.Float32, CPU);
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in decoder.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal))
            {
                parameter.copy_(rand(parameter.shape, generator: generator) + 0.5);
            }
            else
            {
                parameter.copy_(randn(parameter.shape, generator: generator) * (name.Contains("bias", StringComparison.Ordinal) ? 0.1 : 1.0 / Math.Sqrt(parameter.shape[^1])));
            }
        }

        return decoder;
    }

    private sealed class NvrtcTheoryAttribute : TheoryAttribute
    {
        public NvrtcTheoryAttribute()
        {
            if (!NvrtcCompiler.TryLoad(out _, out var why))
            {
                Skip = $"NVRTC is not installed here, so the CUDA layer kernels cannot be compiled: {why}";
            }
        }
    }
}
