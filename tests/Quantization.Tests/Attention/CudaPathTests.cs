using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using VidKV.AI.Quantization.Tests.Cache;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Attention;

/// <summary>
/// What of the CUDA path runs without a GPU: the kernel itself is checked on a CUDA machine by
/// <c>vidkv-bench cuda-check</c> (docs/BENCHMARKS.md), which runs the cases of <see cref="FusedAttentionTests"/> there.
/// </summary>
public sealed class CudaPathTests
{
    [Fact]
    public unsafe void DataPointer_IsTheAddressOfTheFirstElement_OffsetsIncluded()
    {
        using var scope = NewDisposeScope();
        var whole = arange(20, ScalarType.Float32);
        var part = whole.narrow(0, 5, 10);
        Assert.Equal((IntPtr)PackedSource.Pointer(whole), CudaRuntime.DataPointer(whole));
        Assert.Equal((IntPtr)PackedSource.Pointer(whole) + (5 * sizeof(float)), CudaRuntime.DataPointer(part));
        var bytes = zeros(new long[] { 4, 8 }, ScalarType.Byte).narrow(0, 1, 2);
        Assert.Equal((IntPtr)PackedSource.Pointer(bytes), CudaRuntime.DataPointer(bytes));
        Assert.Throws<InvalidOperationException>(() => CudaRuntime.DataPointer(whole.reshape(4, 5).t()));
    }

    [Fact]
    public void ValueRowMap_GivesEachTokenItsRowInTheProtectedOrTheRestValues()
    {
        using var scope = NewDisposeScope();
        var protectedTokens = tensor(new long[] { 0, 3, 4, 9, 2, 5, 6, 7 }, new long[] { 2, 4 });

        var map = CudaFusedAttention.ValueRowMap(protectedTokens, 10);

        Assert.Equal(new long[] { -1, 0, 1, -2, -3, 2, 3, 4, 5, -4 }, map[0].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, -1, 2, 3, -2, -3, -4, 4, 5 }, map[1].data<long>().ToArray());
    }

    [Theory]
    [InlineData(OneBitKeyMode.Fft, 9)]
    [InlineData(OneBitKeyMode.Rfft, 8)]
    [InlineData(OneBitKeyMode.Rfft, 7)]
    public unsafe void TransformMatrix_GivesTheComponentWeightsOfAnyQuery(OneBitKeyMode mode, int channels)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(8);
        var w = CudaFusedAttention.TransformMatrix(mode, channels);
        for (int trial = 0; trial < 3; trial++)
        {
            var q = randn(channels, ScalarType.Float64);
            var expected = new float[w.shape[1]];
            fixed (float* e = expected)
            {
                CpuFusedAttention.EasyWeights(q.data<double>().ToArray(), mode, e);
            }

            var actual = matmul(q.to(ScalarType.Float32).unsqueeze(0), w).squeeze(0);
            Assert.True(MaxAbsDiff(actual, tensor(expected)) <= 1e-5, $"{mode} De={channels}");
        }
    }

    [Fact]
    public void CudaPath_OnCpuTensors_IsRejectedByName_ChunkedPath_RunsAnywhere()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(7);
        using var cache = new QuantizedKVCache(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact));
        cache.Prefill(randn(1, 2, 40, 16), randn(1, 2, 40, 16), randn(1, 40));
        var query = randn(1, 4, 1, 16);

        var ex = Assert.Throws<ArgumentException>(() => cache.AttendFused(query, path: FusedKernelPath.Cuda));
        Assert.Contains("CUDA", ex.Message, StringComparison.Ordinal);
        Assert.True(FusedAttention.IsSupported(FusedKernelPath.Chunked));
        Assert.True(MaxAbsDiff(cache.AttendFused(query, path: FusedKernelPath.Chunked), cache.Attend(query)) <= 2e-5);
        Assert.False(string.IsNullOrEmpty(FusedAttention.CudaDescription));
    }

    [Theory]
    [InlineData(128, 1.5)]
    [InlineData(128, 1.25)]
    [InlineData(64, 1.5)]
    [InlineData(112, 1.75)]
    public void TensorCoreStage_HoldsAUnitsCodesAndMetadata_At16ByteOffsets_AndItsRowDivisionIsExact(int dim, double keyBits)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(dim);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { KeyBits = keyBits });
        cache.Prefill(randn(1, 4, 64, dim), randn(1, 4, 64, dim));
        var block = cache.Blocks[0];
        var stage = new MmaAttention.StageLayout(block);

        long outlierRow = block.Keys.Outliers?.Codes.shape[^1] ?? 0, easyRow = block.Keys.Easy?.Codes.shape[^1] ?? 0;
        long valueRow = block.Values.Rest.Codes.shape[^1];
        long outlierChannels = block.Keys.Outliers?.Shape[^1] ?? 0, easyChannels = block.Keys.Easy?.Shape[^1] ?? 0;
        var offsets = new[] { stage.OutlierCodes, stage.EasyCodes, stage.ValueCodes, stage.OutlierScale, stage.OutlierZero, stage.EasyScale, stage.EasyZero, stage.Bytes };
        Assert.All(offsets, o => Assert.Equal(0, o % 16));
        Assert.True(stage.EasyCodes - stage.OutlierCodes >= 32 * outlierRow);
        Assert.True(stage.ValueCodes - stage.EasyCodes >= 32 * easyRow);
        Assert.True(stage.OutlierScale - stage.ValueCodes >= 32 * valueRow);
        Assert.True(stage.OutlierZero - stage.OutlierScale >= 2 * outlierChannels);
        Assert.True(stage.Bytes - stage.EasyZero >= 2 * easyChannels);

        // The launch's instantiation is specialized for exactly this geometry (what every block of the cache shares), with
        // the 1-bit keys' scale on the A side (float16 metadata, codes reconstructed as 0 or the scale, no zero point).
        var geometry = new MmaKernelSource.Geometry((int)outlierChannels, (int)easyChannels, (int)outlierRow, (int)easyRow, (int)valueRow, dim);
        Assert.Equal(MmaKernelSource.Name(2, 1, geometry, scaledBits: true), MmaAttention.KernelName(block, cache.Options));

        // Not where a 1-bit code reads as minus or plus the scale, or with bfloat16 metadata: there the scale goes into B.
        using var plusMinus = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { KeyBits = keyBits, SignReconstruction = SignReconstruction.PlusMinusScale });
        plusMinus.Prefill(randn(1, 4, 64, dim), randn(1, 4, 64, dim));
        Assert.Equal(MmaKernelSource.Name(2, 1, geometry), MmaAttention.KernelName(plusMinus.Blocks[0], plusMinus.Options));
        using var bf16 = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { KeyBits = keyBits, MetadataType = ScalarType.BFloat16 });
        bf16.Prefill(randn(1, 4, 64, dim), randn(1, 4, 64, dim));
        Assert.StartsWith("vidkv_mma_2_5_2_", MmaAttention.KernelName(bf16.Blocks[0], bf16.Options), StringComparison.Ordinal);

        // The kernel's lanes decode 4 value bytes of a row each (8 lane groups: at most 32 bytes, 160 channels), and its
        // work area holds the 4 warps' Σ p·digit for 8 rows of float32.
        Assert.True(valueRow <= 8 * 4);
        Assert.True(4 * MmaKernelSource.Rows * dim * 4 <= MmaKernelSource.WorkAreaBytes);
    }

    /// <summary>
    /// A launch compiles the tensor-core kernel only for the instantiations it names (outlier bits and key metadata type);
    /// a name that is not one is refused with the allowed form.
    /// </summary>
    [Fact]
    public void TensorCoreSource_InstantiatesTheNamedKernels_AndRefusesOtherNames()
    {
        string source = MmaKernelSource.Source([MmaKernelSource.Name(4, 2)]);
        Assert.Contains("INSTANTIATE(4, 5, 2, 0, )", source, StringComparison.Ordinal);
        Assert.DoesNotContain("INSTANTIATE(2, 5, 1", source, StringComparison.Ordinal);
        Assert.Equal("vidkv_mma_4_5_2", MmaKernelSource.Name(4, 2));
        Assert.Equal("vidkv_mma_2_5_1a", MmaKernelSource.Name(2, 1, scaledBits: true));
        Assert.Contains("INSTANTIATE(2, 5, 1, 1, a)", MmaKernelSource.Source([MmaKernelSource.Name(2, 1, scaledBits: true)]), StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => MmaKernelSource.Name(2, 2, scaledBits: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => MmaKernelSource.Name(4, 1, scaledBits: true));

        var e = Assert.Throws<ArgumentException>(() => MmaKernelSource.Source(["vidkv_mma_2_5"]));
        Assert.Contains("'vidkv_mma_2_5'", e.Message, StringComparison.Ordinal);
        Assert.Contains("vidkv_mma_<outlier bits>_5_<metadata type>", e.Message, StringComparison.Ordinal);

        // An instantiation specialized for one geometry: its constants in the name and in the instantiation.
        string specialized = MmaKernelSource.Name(2, 1, new MmaKernelSource.Geometry(64, 64, 16, 8, 26, 128));
        Assert.Equal("vidkv_mma_2_5_1_64_64_16_8_26_128", specialized);
        Assert.Equal("vidkv_mma_2_5_1", MmaKernelSource.GenericName(specialized));
        string both = MmaKernelSource.Source([specialized, MmaKernelSource.GenericName(specialized)]);
        Assert.Contains("INSTANTIATE_GEOMETRY(2, 5, 1, 0, , 64, 64, 16, 8, 26, 128)", both, StringComparison.Ordinal);
        Assert.Contains("INSTANTIATE(2, 5, 1, 0, )", both, StringComparison.Ordinal);
        string scaled = MmaKernelSource.Name(2, 1, new MmaKernelSource.Geometry(64, 64, 16, 8, 26, 128), scaledBits: true);
        Assert.Equal("vidkv_mma_2_5_1a_64_64_16_8_26_128", scaled);
        Assert.Equal("vidkv_mma_2_5_1a", MmaKernelSource.GenericName(scaled));
        Assert.Contains("INSTANTIATE_GEOMETRY(2, 5, 1, 1, a, 64, 64, 16, 8, 26, 128)", MmaKernelSource.Source([scaled]), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => MmaKernelSource.Source(["vidkv_mma_2_5_2a"]));
        var bad = Assert.Throws<ArgumentException>(() => MmaKernelSource.Source(["vidkv_mma_2_5_1_64_64_16_8_26_x"]));
        Assert.Contains("'vidkv_mma_2_5_1_64_64_16_8_26_x'", bad.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The kernels compile with NVRTC for the H100/H200 (sm_90) and for sm_80, every tensor-core instantiation without
    /// register spills, and its parameter struct has the layout the host fills (size and the offset of the per-sequence entries),
    /// within CUDA's 4 KiB of kernel parameters. Needs libnvrtc (Debian's libnvrtc11.2, or <c>VIDKV_NVRTC</c>); without it there is nothing to
    /// compile with and the test says so on its output.
    /// </summary>
    [Theory]
    [InlineData("sm_90")]
    [InlineData("sm_80")]
    public void Kernels_CompileWithNvrtc_AndTheTensorCoreParametersMatchTheHostLayout(string architecture)
    {
        if (!NvrtcCompiler.TryLoad(out _, out var why))
        {
            Console.WriteLine($"NVRTC kernel compilation not checked: {why}");
            return;
        }

        var (bytes, sequencesOffset) = MmaAttention.ParamsLayout;
        Assert.True(bytes <= 4096, $"{bytes} bytes of kernel parameters");
        string layout = $$"""

            static_assert(sizeof(Params) == {{bytes}}, "Params size differs from the host's");
            static_assert(sizeof(Params) - sizeof(((Params*)0)->seqs) == {{sequencesOffset}}, "Params.seqs (last) starts elsewhere than on the host");
            static_assert(sizeof(Seq) == 80 && MAX_SEQS == {{MmaKernelSource.MaxSequences}}, "Seq differs from the host's");
            """;
        var names = MmaKernelSource.GenericNames.ToList();

        // And instantiations specialized for the geometries of real caches: head dims 128, 64 and 112, 1.25 to 1.75 key bits,
        // float16 and bfloat16 metadata.
        foreach (var (dim, keyBits, metadata) in new[] { (128, 1.5, ScalarType.Float16), (128, 1.25, ScalarType.BFloat16), (64, 1.5, ScalarType.Float16), (112, 1.75, ScalarType.Float16) })
        {
            using var scope = NewDisposeScope();
            using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { KeyBits = keyBits, MetadataType = metadata });
            cache.Prefill(randn(1, 4, 64, dim), randn(1, 4, 64, dim));
            names.Add(MmaAttention.KernelName(cache.Blocks[0], cache.Options));
        }

        var (cubin, log) = NvrtcCompiler.Compile(MmaKernelSource.Source(names) + layout, "vidkv_mma_attention.cu", architecture, "--ptxas-options=-v");
        Assert.True(cubin > 0, log);

        // Every instantiation (outlier bits x metadata type) fits its 128 registers (4 blocks of 128 threads per
        // multiprocessor) without spilling.
        var spills = log.Split('\n').Where(l => l.Contains("spill stores", StringComparison.Ordinal)).ToList();
        Assert.Equal(names.Count, spills.Count);
        Assert.All(spills, l => Assert.Contains("0 bytes spill stores, 0 bytes spill loads", l, StringComparison.Ordinal));
        var (general, generalLog) = NvrtcCompiler.Compile(KernelSource.Text, "vidkv_fused_attention.cu", architecture);
        Assert.True(general > 0, generalLog);
    }

    /// <summary>
    /// The diagnostic build of the tensor-core kernel (<c>VIDKV_TIMELINE</c>, what <c>vidkv-bench timeline</c> launches)
    /// compiles for sm_90 without spills, and writes as many slots per block as the host reads
    /// (<see cref="MmaAttention.TimelineSlots"/>). Needs libnvrtc, as above.
    /// </summary>
    [Fact]
    public void TimelineBuild_CompilesWithTheHostsSlotCount()
    {
        if (!NvrtcCompiler.TryLoad(out _, out var why))
        {
            Console.WriteLine($"NVRTC kernel compilation not checked: {why}");
            return;
        }

        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact));
        cache.Prefill(randn(1, 4, 64, 128), randn(1, 4, 64, 128));
        string name = MmaAttention.KernelName(cache.Blocks[0], cache.Options);
        string check = $"\nstatic_assert(TL_SLOTS == {MmaAttention.TimelineSlots}, \"timeline slots differ from the host's\");\n";
        var (cubin, log) = NvrtcCompiler.Compile("#define VIDKV_TIMELINE\n" + MmaKernelSource.Source([name]) + check, "vidkv_mma_attention.cu", "sm_90", "--ptxas-options=-v");
        Assert.True(cubin > 0, log);
        Assert.Contains("0 bytes spill stores, 0 bytes spill loads", log, StringComparison.Ordinal);
    }

    /// <summary>
    /// <see cref="NvrtcCompiler.CompileCubin"/> returns the compiled image itself (what <c>vidkv-bench kernels</c> hands to
    /// cuobjdump): an ELF file of the size <see cref="NvrtcCompiler.Compile"/> reports. Needs libnvrtc, as above.
    /// </summary>
    [Fact]
    public void CompileCubin_ReturnsTheElfImage()
    {
        if (!NvrtcCompiler.TryLoad(out _, out var why))
        {
            Console.WriteLine($"NVRTC kernel compilation not checked: {why}");
            return;
        }

        var (image, log) = NvrtcCompiler.CompileCubin(ResidualAppend.Source, "vidkv_append.cu", "sm_90", "--ptxas-options=-v");
        var (bytes, _) = NvrtcCompiler.Compile(ResidualAppend.Source, "vidkv_append.cu", "sm_90");
        Assert.Equal(bytes, image.Length);
        Assert.Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, image.Take(4).ToArray());
        Assert.Contains("vidkv_append_rows", log, StringComparison.Ordinal);
        var e = Assert.Throws<InvalidOperationException>(() => NvrtcCompiler.CompileCubin("__global__ void k() { undefined_name(); }", "bad.cu", "sm_90"));
        Assert.Contains("bad.cu", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The tensor-core kernel divides packed value bytes by 3 in fp16 (one fma per digit with fp16(1/3) and the constants
    /// 683.5, then 683, above 1024 where the fp16 grid is the integers): with the constants as they stand in its source,
    /// every byte 0 to 242 gives its five base-3 digits, exactly. Each fp16 step is emulated with one rounding of the exact
    /// result (fp16 products and sums of these sizes are exact in double), as fma.rn.f16x2 and add.rn.f16x2 compute.
    /// </summary>
    [Fact]
    public void TensorCoreValueDecode_ConstantsGiveEveryBytesFiveDigits()
    {
        string text = MmaKernelSource.Text;
        static string Function(string text, string signature)
        {
            string body = text[text.IndexOf(signature, StringComparison.Ordinal)..];
            return body[..body.IndexOf("\n}\n", StringComparison.Ordinal)];
        }

        string body = Function(text, "u32 tritDigit("), start = Function(text, "void tritStart(");
        Half Constant(string name)
        {
            var m = System.Text.RegularExpressions.Regex.Match(body, name + @" = 0x([0-9A-Fa-f]{4})\1u");
            Assert.True(m.Success, $"{name} (an fp16 pair of equal halves) not found in tritDigit");
            return BitConverter.UInt16BitsToHalf(Convert.ToUInt16(m.Groups[1].Value, 16));
        }

        var steps = System.Text.RegularExpressions.Regex.Match(body, @"k == 0 \? 0x([0-9A-Fa-f]{4})\1u : 0x([0-9A-Fa-f]{4})\2u");
        Assert.True(steps.Success, "the per-step constants not found in tritDigit");
        Half first = BitConverter.UInt16BitsToHalf(Convert.ToUInt16(steps.Groups[1].Value, 16));
        Half next = BitConverter.UInt16BitsToHalf(Convert.ToUInt16(steps.Groups[2].Value, 16));
        Half third = Constant("third"), minus3 = Constant("minus3"), minus1025 = Constant("minus1025");
        Assert.Contains("0x64006400u", start, StringComparison.Ordinal);
        Assert.Contains("hadd2(t, 0xE400E400u)", start, StringComparison.Ordinal);
        static Half Fma(Half a, Half b, Half c) => (Half)(((double)a * (double)b) + (double)c);
        static Half Add(Half a, Half b) => (Half)((double)a + (double)b);

        for (int x = 0; x < 243; x++)
        {
            Half t = (Half)(1024 + x), digits = Add(t, (Half)(-1024));
            var got = new double[5];
            for (int k = 0; k < 4; k++)
            {
                t = Fma(t, third, k == 0 ? first : next);
                Half q = Add(t, minus1025);
                got[k] = (double)Fma(q, minus3, digits);
                digits = q;
            }

            got[4] = (double)digits;
            Assert.Equal(Enumerable.Range(0, 5).Select(k => (double)(x / (int)Math.Pow(3, k) % 3)).ToArray(), got);
        }
    }
}
