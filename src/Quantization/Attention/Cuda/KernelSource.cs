namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// CUDA C++ of the fused decode attention over one quantized block (compiled at run time by NVRTC; see
/// <see cref="CudaFusedAttention"/>). Grid: (run of TokensPerSplit tokens, batch item × KV head); 128 threads.
/// Per run: the query rows (in the block's channel order) go to shared memory; each thread scores tokens from their
/// packed key codes; one warp per query row turns the scores into exp(s - max) and their sum; each thread then
/// accumulates value channels from their packed codes. The run's max, sum and Σ p·v are written for the merge.
/// </summary>
internal static class KernelSource
{
    public const string Text = """
typedef unsigned char u8;
typedef long long i64;

#define MAXQ 32
#define THREADS 128
#define NEG_INF __int_as_float(0xff800000)

struct Src {
    const u8* codes;     // [BH, rows, rowBytes]
    const float* table;  // [256, 8]: the levels of the codes in each byte value
    const void* scale;   // per channel: [BH, rows / G, channels]; per token: [BH, rows, channels / G]; or null
    const void* zero;    // same layout as scale, or null
    i64 rows, rowBytes, per, channels, metaType, perToken;
};

struct Params {
    const float* q;      // [BH, nq, C]: outlier channels, then the 1-bit components' weights; softmax scale applied
    float* outM;         // [BH, splits, nq]
    float* outL;         // [BH, splits, nq]
    float* outAcc;       // [BH, splits, nq, dv]
    const i64* map;      // [B, tokens]: value row (>= 0 rest, -(j + 1) protected j), or null: row = token
    Src kOut, kEasy, vRest, vProt;
    i64 tokens, start, causal, causalBase, tq, nq, C, dOut, dv, G, hkv, split0, splits, tps;
};

__device__ __forceinline__ float meta(const void* p, i64 i, i64 type) {
    if (type == 0) return ((const float*)p)[i];
    unsigned short h = ((const unsigned short*)p)[i];
    if (type == 1) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
    return __uint_as_float(((unsigned int)h) << 16);
}

__device__ __forceinline__ void keyDot(const Src& s, const float* qs, int C, int off, int nq, i64 bh, i64 pos, i64 groups, i64 G, float* acc) {
    const u8* row = s.codes + (bh * s.rows + pos) * s.rowBytes;
    const i64 mbase = (bh * groups + pos / G) * s.channels;
    const int per = (int)s.per, n = (int)s.channels;
    int c = 0;
    for (int byteIndex = 0; c < n; byteIndex++) {
        const float* levels = s.table + ((int)row[byteIndex] << 3);
        for (int j = 0; j < per && c < n; j++, c++) {
            float k = levels[j] * meta(s.scale, mbase + c, s.metaType);
            if (s.zero) k += meta(s.zero, mbase + c, s.metaType);
            const float* qc = qs + off + c;
#pragma unroll
            for (int q = 0; q < MAXQ; q++) if (q < nq) acc[q] += qc[q * C] * k;
        }
    }
}

__device__ __forceinline__ float valueAt(const Src& s, i64 bh, i64 r, int d, i64 G, i64 dv) {
    const u8* row = s.codes + (bh * s.rows + r) * s.rowBytes;
    const int per = (int)s.per;
    float level = s.table[((int)row[d / per] << 3) + d % per];
    if (!s.scale) return level;
    const i64 mi = s.perToken ? (bh * s.rows + r) * (dv / G) + d / G : (bh * (s.rows / G) + r / G) * dv + d;
    float v = level * meta(s.scale, mi, s.metaType);
    if (s.zero) v += meta(s.zero, mi, s.metaType);
    return v;
}

extern "C" __global__ void __launch_bounds__(THREADS) vidkv_block_attend(const Params p) {
    extern __shared__ float shared[];
    const int nq = (int)p.nq, C = (int)p.C, tps = (int)p.tps;
    float* qs = shared;
    float* sc = qs + nq * C;
    float* rowM = sc + nq * tps;
    float* rowL = rowM + nq;
    const i64 bh = blockIdx.y;
    const int split = blockIdx.x, tid = threadIdx.x;
    const i64 t0 = (i64)split * tps;
    const int len = (int)min((i64)tps, p.tokens - t0);

    for (int i = tid; i < nq * C; i += THREADS) qs[i] = p.q[bh * nq * C + i];
    __syncthreads();

    const i64 groups = p.tokens / p.G;
    for (int t = tid; t < len; t += THREADS) {
        float acc[MAXQ];
#pragma unroll
        for (int q = 0; q < MAXQ; q++) acc[q] = 0.f;
        const i64 pos = t0 + t;
        if (p.kOut.codes) keyDot(p.kOut, qs, C, 0, nq, bh, pos, groups, p.G, acc);
        if (p.kEasy.codes) keyDot(p.kEasy, qs, C, (int)p.dOut, nq, bh, pos, groups, p.G, acc);
        const i64 absolute = p.start + pos;
#pragma unroll
        for (int q = 0; q < MAXQ; q++) {
            if (q < nq) {
                float s = acc[q];
                if (p.causal && absolute > p.causalBase + (q % p.tq)) s = NEG_INF;
                sc[q * tps + t] = s;
            }
        }
    }
    __syncthreads();

    const int warp = tid >> 5, lane = tid & 31;
    for (int q = warp; q < nq; q += THREADS / 32) {
        float m = NEG_INF;
        for (int t = lane; t < len; t += 32) m = fmaxf(m, sc[q * tps + t]);
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        float l = 0.f;
        for (int t = lane; t < len; t += 32) {
            float e = m == NEG_INF ? 0.f : expf(sc[q * tps + t] - m);
            sc[q * tps + t] = e;
            l += e;
        }
        for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
        if (lane == 0) { rowM[q] = m; rowL[q] = l; }
    }
    __syncthreads();

    const i64 slot = bh * p.splits + p.split0 + split;
    const i64 b = bh / p.hkv;
    for (int d = tid; d < p.dv; d += THREADS) {
        float acc[MAXQ];
#pragma unroll
        for (int q = 0; q < MAXQ; q++) acc[q] = 0.f;
        for (int t = 0; t < len; t++) {
            const i64 pos = t0 + t;
            float v;
            if (p.map) {
                const i64 m = p.map[b * p.tokens + pos];
                v = m >= 0 ? valueAt(p.vRest, bh, m, d, p.G, p.dv) : valueAt(p.vProt, bh, -m - 1, d, p.G, p.dv);
            } else {
                v = valueAt(p.vRest, bh, pos, d, p.G, p.dv);
            }
#pragma unroll
            for (int q = 0; q < MAXQ; q++) if (q < nq) acc[q] += sc[q * tps + t] * v;
        }
#pragma unroll
        for (int q = 0; q < MAXQ; q++) if (q < nq) p.outAcc[(slot * nq + q) * p.dv + d] = acc[q];
    }
    if (tid < nq) {
        p.outM[slot * nq + tid] = rowM[tid];
        p.outL[slot * nq + tid] = rowL[tid];
    }
}
""";
}
