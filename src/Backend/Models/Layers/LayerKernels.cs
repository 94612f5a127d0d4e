using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Attention.Cuda;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// The decoder's element-wise layers as single CUDA launches at inference (<see cref="LayerKernelSource"/>): RMSNorm, rotary
/// positions in place over a fused q/k/v projection, and SwiGLU's silu · up over a fused gate/up projection. With the fused
/// projections (<see cref="Attention"/>, <see cref="GatedMlp"/>) and the residual adds folded into the output projections,
/// a decode step issues about a third of the operations it issued as separate TorchSharp calls, each of which costs host
/// time: at batch 1 on a GPU the step is bound by that host time, not by the device.
/// </summary>
/// <remarks>
/// Applies to CUDA tensors of float32, float16 or bfloat16 that autograd does not track, where NVRTC compiles the kernels
/// (the same run-time compilation as the fused attention); everything else keeps the TorchSharp operations.
/// <c>VIDKV_CUDA_LAYER_KERNELS=off</c> turns the path off for a process.
/// </remarks>
internal static unsafe class LayerKernels
{
    /// <summary>Environment variable that turns the path off ("off").</summary>
    public const string Variable = "VIDKV_CUDA_LAYER_KERNELS";

    private static readonly bool OffByEnvironment =
        string.Equals(Environment.GetEnvironmentVariable(Variable), "off", StringComparison.OrdinalIgnoreCase);

    private static readonly ConcurrentDictionary<int, Lazy<IReadOnlyDictionary<string, IntPtr>?>> Compiled = new();
    private static string _why = "not compiled yet";

    /// <summary>For benchmarks, on the calling thread: the TorchSharp operations, to compare both paths in one process.</summary>
    [field: ThreadStatic]
    internal static bool Off { get; set; }

    /// <summary>
    /// For tests, on the calling thread: the same path on the CPU with TorchSharp stand-ins for the RoPE and SwiGLU kernels,
    /// so that the fused projections, views and residual folding are checked where no GPU is (RMSNorm keeps its layer's
    /// own operations there).
    /// </summary>
    [field: ThreadStatic]
    internal static bool OnCpuForTests { get; set; }

    /// <summary>Why the kernels did not compile on the last device that failed, or that they have not.</summary>
    public static string Description => _why;

    /// <summary>Whether the path serves <paramref name="x"/> with <paramref name="weight"/>: see the remarks.</summary>
    public static bool Applies(Tensor x, Tensor weight)
    {
        if (Off || OffByEnvironment || x.requires_grad || weight.requires_grad
            || x.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16) || weight.dtype != x.dtype)
        {
            return false;
        }

        return x.device_type switch
        {
            DeviceType.CUDA => Functions(Math.Max(0, x.device_index)) is not null,
            DeviceType.CPU => OnCpuForTests,
            _ => false,
        };
    }

    /// <summary>Qwen2's RMSNorm of each row of <paramref name="x"/> [..., D] (a CUDA tensor) with <paramref name="weight"/> [D].</summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        long dim = x.size(-1);
        var input = x.is_contiguous() ? x : x.contiguous();
        var output = empty_like(input);
        var args = new NormArgs
        {
            X = CudaRuntime.DataPointer(input), Weight = CudaRuntime.DataPointer(weight), Y = CudaRuntime.DataPointer(output),
            Dim = dim, Eps = (float)eps, Type = TypeCode(x.dtype),
        };
        Launch("vidkv_rms_norm", x, ((uint)(input.numel() / dim), 1, 1), LayerKernelSource.NormThreads, ref args);
        return output;
    }

    /// <summary>
    /// Rotate-half RoPE, in place, over the first <paramref name="heads"/> heads of each row of <paramref name="projection"/>
    /// [B · T, H_all · hd] (contiguous, T = <paramref name="tokens"/>): row (b, t) takes row t of tables [T, hd], or row
    /// b · T + t of tables with B · T rows.
    /// </summary>
    public static void RotaryInPlace(Tensor projection, long tokens, int heads, int headDim, RotaryTables tables)
    {
        long t = tokens, width = projection.size(-1), b = projection.numel() / (width * t);
        long tableRows = tables.Cos.numel() / headDim;
        if (tableRows != t && tableRows != b * t)
        {
            throw new ArgumentException($"Rotary tables of {tableRows} rows serve neither {t} positions nor {b} × {t} rows.", nameof(tables));
        }

        if (projection.device_type != DeviceType.CUDA)
        {
            using var scope = NewDisposeScope();
            var cos = tables.Cos.view(tableRows == t ? 1 : b, t, 1, headDim);
            var sin = tables.Sin.view(tableRows == t ? 1 : b, t, 1, headDim);
            var rotated = projection.view(b, t, width / headDim, headDim).narrow(2, 0, heads);
            var xf = rotated.to(ScalarType.Float32);
            long half = headDim / 2;
            var swapped = cat([-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)], -1);
            rotated.copy_((xf * cos) + (swapped * sin));
            return;
        }

        if (!projection.is_contiguous() || !tables.Cos.is_contiguous() || !tables.Sin.is_contiguous()
            || tables.Cos.dtype != ScalarType.Float32 || tables.Sin.dtype != ScalarType.Float32)
        {
            throw new ArgumentException("The rotary kernel reads a contiguous projection and contiguous float32 tables.", nameof(projection));
        }

        var args = new RotaryArgs
        {
            X = CudaRuntime.DataPointer(projection), Cos = CudaRuntime.DataPointer(tables.Cos), Sin = CudaRuntime.DataPointer(tables.Sin),
            Tokens = t, TableRows = tableRows, RowStride = width, HeadDim = headDim, Type = TypeCode(projection.dtype),
        };
        Launch("vidkv_rotary", projection, ((uint)(b * t), (uint)heads, 1), (uint)(headDim / 2), ref args);
    }

    /// <summary>silu(gate) · up of <paramref name="gateUp"/> [..., 2 · I] (gate first): [..., I].</summary>
    public static Tensor SiluMul(Tensor gateUp)
    {
        long inter = gateUp.size(-1) / 2;
        if (gateUp.device_type != DeviceType.CUDA)
        {
            using var scope = NewDisposeScope();
            var gate = nn.functional.silu(gateUp.narrow(-1, 0, inter));
            return gate.mul(gateUp.narrow(-1, inter, inter)).MoveToOuterDisposeScope();
        }

        var input = gateUp.is_contiguous() ? gateUp : gateUp.contiguous();
        var shape = input.shape.ToArray();
        shape[^1] = inter;
        var output = empty(shape, input.dtype, input.device);
        long rows = input.numel() / (2 * inter);
        var args = new SwigluArgs { GateUp = CudaRuntime.DataPointer(input), Y = CudaRuntime.DataPointer(output), Rows = rows, Inter = inter, Type = TypeCode(input.dtype) };
        long blocks = Math.Clamp(((rows * inter) + 255) / 256, 1, 4096);
        Launch("vidkv_silu_mul", input, ((uint)blocks, 1, 1), 256, ref args);
        return output;
    }

    private static int TypeCode(ScalarType type) => type switch
    {
        ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        _ => throw new ArgumentException($"The layer kernels take float32, float16 or bfloat16, not {type}."),
    };

    private static void Launch<T>(string kernel, Tensor on, (uint X, uint Y, uint Z) grid, uint threads, ref T args)
        where T : unmanaged
    {
        int device = Math.Max(0, on.device_index);
        var functions = Functions(device) ?? throw new InvalidOperationException($"The CUDA layer kernels are unavailable: {_why}");
        CudaRuntime.Launch(functions[kernel], device, grid, threads, 0, ref args);
    }

    private static IReadOnlyDictionary<string, IntPtr>? Functions(int device) => Compiled.GetOrAdd(device, d => new(() =>
    {
        if (!CudaRuntime.IsAvailable)
        {
            _why = CudaRuntime.Description;
            return null;
        }

        try
        {
            var functions = CudaRuntime.Compile(LayerKernelSource.Text, "vidkv_layers.cu", d, ["vidkv_rms_norm", "vidkv_rotary", "vidkv_silu_mul"]);
            _why = "compiled";
            return functions;
        }
        catch (InvalidOperationException ex)
        {
            _why = ex.Message;
            Console.Error.WriteLine($"VidKV: the CUDA layer kernels did not compile; the TorchSharp operations run instead. {ex.Message}");
            return null;
        }
    })).Value;

    [StructLayout(LayoutKind.Sequential)]
    private struct NormArgs
    {
        public IntPtr X, Weight, Y;
        public long Dim;
        public float Eps;
        public int Type;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RotaryArgs
    {
        public IntPtr X, Cos, Sin;
        public long Tokens, TableRows, RowStride, HeadDim;
        public int Type;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SwigluArgs
    {
        public IntPtr GateUp, Y;
        public long Rows, Inter;
        public int Type;
    }
}
