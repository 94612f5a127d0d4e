namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// CUDA C++ of the decoder's element-wise layers at inference (compiled at run time by NVRTC; see <see cref="LayerKernels"/>),
/// each one launch where TorchSharp issues several operations:
/// <list type="bullet">
/// <item><c>vidkv_rms_norm</c>: Qwen2's RMSNorm of each row (float32 statistics, normalized row rounded to the input's type,
/// times the weight rounded again, as the TorchSharp layer computes it). Grid: rows; 256 threads.</item>
/// <item><c>vidkv_rotary</c>: rotate-half RoPE in place over the first heads of each row of a fused q/k/v projection
/// ([rows, heads, headDim]), with cos and sin in float32 and the products and sum rounded as separate float32 operations
/// (bit for bit what the TorchSharp layer's multiply, multiply, add gives). Grid: (rows, rotated heads); headDim / 2 threads.</item>
/// <item><c>vidkv_silu_mul</c>: SwiGLU's silu(gate) · up from a fused gate/up projection [rows, 2 · I], silu rounded to the
/// type before the product as the in-place TorchSharp pair does. Grid-stride.</item>
/// </list>
/// Element types: 0 float32, 1 float16, 2 bfloat16 (round to nearest even).
/// </summary>
internal static class LayerKernelSource
{
    /// <summary>Threads per block of the norm kernel.</summary>
    public const int NormThreads = 256;

    public const string Text = """
typedef unsigned short u16;
typedef long long i64;

__device__ __forceinline__ float ld(const void* p, i64 i, int type) {
    if (type == 0) return ((const float*)p)[i];
    u16 h = ((const u16*)p)[i];
    if (type == 1) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
    return __uint_as_float(((unsigned int)h) << 16);
}

__device__ __forceinline__ u16 to16(float f, int type) {
    if (type == 1) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}

// f rounded to the element type (and back to float).
__device__ __forceinline__ float rnd(float f, int type) {
    if (type == 0) return f;
    u16 h = to16(f, type);
    if (type == 1) { float r; asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h)); return r; }
    return __uint_as_float(((unsigned int)h) << 16);
}

__device__ __forceinline__ void st(void* p, i64 i, float f, int type) {
    if (type == 0) ((float*)p)[i] = f;
    else ((u16*)p)[i] = to16(f, type);
}

struct NormArgs { const void* x; const void* weight; void* y; i64 dim; float eps; int type; };

extern "C" __global__ void __launch_bounds__(256) vidkv_rms_norm(NormArgs a) {
    __shared__ float partial[8];
    i64 base = (i64)blockIdx.x * a.dim;
    float ss = 0.f;
    for (i64 i = threadIdx.x; i < a.dim; i += 256) {
        float v = ld(a.x, base + i, a.type);
        ss = fmaf(v, v, ss);
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < 8; w++) total += partial[w];
    float r = rsqrtf(total / (float)a.dim + a.eps);
    for (i64 i = threadIdx.x; i < a.dim; i += 256) {
        float n = rnd(__fmul_rn(ld(a.x, base + i, a.type), r), a.type);
        st(a.y, base + i, __fmul_rn(ld(a.weight, i, a.type), n), a.type);
    }
}

struct RotaryArgs { void* x; const float* cos; const float* sin; i64 tokens, tableRows, rowStride, headDim; int type; };

extern "C" __global__ void vidkv_rotary(RotaryArgs a) {
    i64 row = blockIdx.x;
    i64 half = a.headDim >> 1;
    i64 i = threadIdx.x;
    i64 t = a.tableRows == (i64)gridDim.x ? row : row % a.tokens;
    i64 at = row * a.rowStride + (i64)blockIdx.y * a.headDim + i;
    const float* c = a.cos + t * a.headDim;
    const float* s = a.sin + t * a.headDim;
    float x1 = ld(a.x, at, a.type), x2 = ld(a.x, at + half, a.type);
    float o1 = __fadd_rn(__fmul_rn(x1, c[i]), __fmul_rn(-x2, s[i]));
    float o2 = __fadd_rn(__fmul_rn(x2, c[i + half]), __fmul_rn(x1, s[i + half]));
    st(a.x, at, o1, a.type);
    st(a.x, at + half, o2, a.type);
}

struct SwigluArgs { const void* gateUp; void* y; i64 rows, inter; int type; };

extern "C" __global__ void vidkv_silu_mul(SwigluArgs a) {
    i64 n = a.rows * a.inter;
    for (i64 k = (i64)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (i64)gridDim.x * blockDim.x) {
        i64 r = k / a.inter, j = k - r * a.inter;
        float g = ld(a.gateUp, r * 2 * a.inter + j, a.type);
        float u = ld(a.gateUp, r * 2 * a.inter + a.inter + j, a.type);
        float s = rnd(g / (1.0f + expf(-g)), a.type);
        st(a.y, k, __fmul_rn(s, u), a.type);
    }
}
""";
}
