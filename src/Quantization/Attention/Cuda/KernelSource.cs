namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// CUDA C++ of the fused decode attention (compiled at run time by NVRTC; see <see cref="CudaFusedAttention"/>). Three
/// kernels, each instantiated for NQ = 1, 2, 4, 8, 16 and 32 query rows (the rows of one KV head: its query heads times
/// the query tokens, padded with zero rows):
/// <list type="bullet">
/// <item><c>vidkv_prep_NQ</c>: the query rows in a source's channel order, times the softmax scale: for a quantized block
/// its outlier channels then the weights of its 1-bit components (the query's transform, a [De, comps] matrix); for the
/// full-precision residual the query itself. Grid: batch item × KV head.</item>
/// <item><c>vidkv_attend_NQ</c>: one run of <c>chunks</c> × TPS tokens per thread block, a chunk of TPS tokens at a
/// time with an online softmax: scores from the packed key codes (or raw residual keys), one warp per query row for the
/// running max, exp(s - max) and the sum, then Σ p·v over the packed value codes (or raw residual values). Writes the
/// run's max, sum and Σ p·v. Grid: (run, batch item × KV head); THREADS threads.</item>
/// <item><c>vidkv_merge</c>: the log-sum-exp merge of every run's state into the output.</item>
/// </list>
/// Code levels are decoded arithmetically: digit j of a byte in base R (R = 2^bits by shift and mask, or 3 for trits by
/// exact multiply-shifts), times mult, plus offset. A key channel's level, scale and zero point fold into one
/// multiply-add with the pair (scale·mult, offset·scale + zero) staged per key group; a value thread finds its
/// channel's byte and digit once per call. Query rows and probabilities are stored [channel or token, NQ] so that a
/// thread reads four rows at once.
/// </summary>
internal static class KernelSource
{
    /// <summary>Tokens per thread block of the attend kernel.</summary>
    public const int TokensPerRun = 256;

    /// <summary>Threads per block of every kernel.</summary>
    public const int Threads = 256;

    /// <summary>The query-row counts the kernels are instantiated for.</summary>
    public static readonly int[] RowCounts = [1, 2, 4, 8, 16, 32];

    public const string Text = """
typedef unsigned char u8;
typedef long long i64;

#define THREADS 256
#define TPS 256
#define NEG_INF __int_as_float(0xff800000)

struct Src {
    const u8* codes;     // packed [BH, rows, rowBytes]; or, raw (rowBytes == 0): values [BH, rows, channels] of rawType
    const void* scale;   // per channel: [BH, rows / G, channels]; per token: [BH, rows, channels / G]; or null
    const void* zero;    // same layout as scale, or null
    i64 rows, rowBytes, per, radix, mult, offset, channels, metaType, perToken;
};

struct Params {
    const float* qb;     // [BH, NQ, C] from the prep kernel
    float* outM;         // [BH, runs, nq]
    float* outL;         // [BH, runs, nq]
    float* outAcc;       // [BH, runs, nq, dv]
    const i64* map;      // [B, tokens]: value row (>= 0 rest, -(j + 1) protected j), or null: the token's own row
    Src kOut, kEasy, vRest, vProt;
    i64 tokens, start, causal, causalBase, tq, nq, C, dOut, dv, G, hkv, run0, runs, chunks, metaGroups, valueStride;
};

struct Prep {
    const void* q;       // [BH, nq, D] of qType
    float* qb;           // [BH, NQ, C]
    const i64* outIdx;   // [dOut] outlier channels, or null
    const i64* easyIdx;  // [De] 1-bit channels, or null
    const float* w;      // [De, comps] the transform's weights, or null for the identity
    i64 nq, D, dOut, De, comps, C, qType;
    float scale;
};

struct Merge {
    const float* m; const float* l; const float* acc;  // [BH, runs, nq], [BH, runs, nq], [BH, runs, nq, dv]
    float* out;                                        // [BH, nq, dv]
    i64 bh, runs, nq, dv;
};

__device__ __forceinline__ float meta(const void* p, i64 i, i64 type) {
    if (type == 0) return ((const float*)p)[i];
    unsigned short h = ((const unsigned short*)p)[i];
    if (type == 1) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
    return __uint_as_float(((unsigned int)h) << 16);
}

// Digits of packed bytes: radix 2^k by shift and mask; radix 3 by exact multiply-shifts, valid for bytes (x < 256):
// floor(x / 3) = (x·171) >> 9 and floor(x / 3^j) = (x·ceil(2^16 / 3^j)) >> 16.
struct Digit { unsigned int mul, shift, mask, three; };

__device__ __forceinline__ Digit digitAt(i64 radix, int j) {
    Digit d;
    d.three = radix == 3 ? 1u : 0u;
    if (d.three) {
        d.mul = j == 0 ? 65536u : j == 1 ? 21846u : j == 2 ? 7282u : j == 3 ? 2428u : 810u;
        d.shift = 16u; d.mask = 0u;
    } else {
        const unsigned int bits = radix == 2 ? 1u : radix == 4 ? 2u : radix == 16 ? 4u : 8u;
        d.mul = 1u; d.shift = bits * (unsigned int)j; d.mask = (unsigned int)radix - 1u;
    }
    return d;
}

__device__ __forceinline__ unsigned int digitOf(const Digit& d, unsigned int b) {
    const unsigned int x = (b * d.mul) >> d.shift;
    return d.three ? x - 3u * ((x * 171u) >> 9) : x & d.mask;
}

// acc[q] += x[q]·a for the NQ query rows (x 16-byte aligned when NQ is a multiple of 4).
template <int NQ>
__device__ __forceinline__ void axpy(const float* x, float a, float* acc) {
    if constexpr (NQ % 4 == 0) {
        const float4* x4 = (const float4*)x;
#pragma unroll
        for (int i = 0; i < NQ / 4; i++) {
            const float4 v = x4[i];
            acc[4 * i] = fmaf(v.x, a, acc[4 * i]);
            acc[4 * i + 1] = fmaf(v.y, a, acc[4 * i + 1]);
            acc[4 * i + 2] = fmaf(v.z, a, acc[4 * i + 2]);
            acc[4 * i + 3] = fmaf(v.w, a, acc[4 * i + 3]);
        }
    } else {
#pragma unroll
        for (int q = 0; q < NQ; q++) acc[q] = fmaf(x[q], a, acc[q]);
    }
}

// Score contributions of a raw residual key (global memory) with the query rows transposed, qT [C, NQ].
template <int NQ>
__device__ __forceinline__ void rawDot(const Src& s, const float* qT, i64 bh, i64 pos, float* acc) {
    const i64 base = (bh * s.rows + pos) * s.channels;
    for (int c = 0; c < (int)s.channels; c++) axpy<NQ>(qT + c * NQ, meta(s.codes, base + c, s.metaType), acc);
}

// A value of the raw residual: [BH, rows, dv] of metaType.
__device__ __forceinline__ float rawValue(const Src& s, i64 bh, i64 r, int d, i64 dv) {
    return meta(s.codes, (bh * s.rows + r) * dv + d, s.metaType);
}

// Score contributions of one source's n channels for a token whose packed row is in shared memory; sz holds each
// channel's (scale·mult, offset·scale + zero) for the token's group, so a key is digit·sz.x + sz.y.
template <int NQ>
__device__ __forceinline__ void keyDot(const u8* row, int n, int per, unsigned int three, unsigned int bits, unsigned int mask, const float2* sz, const float* qT, float* acc) {
    int c = 0;
    for (int byteIndex = 0; c < n; byteIndex++) {
        unsigned int x = row[byteIndex];
        for (int j = 0; j < per && c < n; j++, c++) {
            unsigned int digit;
            if (three) { const unsigned int next = (x * 171u) >> 9; digit = x - 3u * next; x = next; }
            else { digit = x & mask; x >>= bits; }
            const float2 m = sz[c];
            axpy<NQ>(qT + c * NQ, fmaf((float)digit, m.x, m.y), acc);
        }
    }
}

// Copies a source's rows t0.. (len of them) to shared memory, and for groups g0..g0+ng-1 each channel's
// (scale·mult, offset·scale + zero).
__device__ __forceinline__ void stageKeys(const Src& s, i64 bh, i64 t0, int len, i64 groups, i64 g0, int ng, int C, int off, u8* codes, float2* sz) {
    const u8* src = s.codes + (bh * s.rows + t0) * s.rowBytes;
    const int bytes = len * (int)s.rowBytes;
    for (int i = threadIdx.x; i < bytes; i += THREADS) codes[i] = src[i];
    const int n = (int)s.channels;
    const float mult = (float)s.mult, offset = (float)s.offset;
    for (int i = threadIdx.x; i < ng * n; i += THREADS) {
        const int g = i / n, c = i % n;
        const i64 m = (bh * groups + g0 + g) * s.channels + c;
        const float scale = meta(s.scale, m, s.metaType);
        const float zero = s.zero ? meta(s.zero, m, s.metaType) : 0.f;
        sz[g * C + off + c] = make_float2(scale * mult, fmaf(offset, scale, zero));
    }
}

// A scaled value: level·scale (+ zero) with the source's metadata per channel or per token group.
__device__ __forceinline__ float scaleValue(const Src& s, float level, i64 bh, i64 r, int d, i64 G, i64 dv) {
    const i64 mi = s.perToken ? (bh * s.rows + r) * (dv / G) + d / G : (bh * (s.rows / G) + r / G) * dv + d;
    float v = level * meta(s.scale, mi, s.metaType);
    if (s.zero) v += meta(s.zero, mi, s.metaType);
    return v;
}

// Where a thread's value channel lies in a source's packed rows, and how its level is decoded.
struct ValueCode { int byteIndex; Digit digit; float mult, offset; };

__device__ __forceinline__ ValueCode valueCode(const Src& s, int d) {
    ValueCode v;
    const int per = s.per > 0 ? (int)s.per : 1;
    v.byteIndex = d / per;
    v.digit = digitAt(s.radix, d % per);
    v.mult = (float)s.mult; v.offset = (float)s.offset;
    return v;
}

template <int NQ>
__device__ void prep(const Prep& p) {
    extern __shared__ float qe[];  // [nq, De]: the query's 1-bit channels
    const i64 bh = blockIdx.x;
    const int nq = (int)p.nq, D = (int)p.D, De = (int)p.De, C = (int)p.C, dOut = (int)p.dOut;
    const i64 q0 = bh * nq * D;
    for (int i = threadIdx.x; i < nq * De; i += THREADS) qe[i] = meta(p.q, q0 + (i / De) * D + p.easyIdx[i % De], p.qType);
    __syncthreads();
    float* out = p.qb + bh * NQ * C;
    for (int i = threadIdx.x; i < NQ * C; i += THREADS) {
        const int r = i / C, c = i % C;
        float v = 0.f;
        if (r < nq) {
            if (!p.outIdx && !p.easyIdx) v = meta(p.q, q0 + r * D + c, p.qType);
            else if (c < dOut) v = meta(p.q, q0 + r * D + p.outIdx[c], p.qType);
            else if (!p.w) v = qe[r * De + (c - dOut)];
            else {
                const int e = c - dOut, comps = (int)p.comps;
                for (int j = 0; j < De; j++) v += qe[r * De + j] * p.w[j * comps + e];
            }
            v *= p.scale;
        }
        out[i] = v;
    }
}

// Offsets (in floats, each 16-byte aligned) of the attend kernel's shared arrays; the host mirrors this layout.
__device__ __forceinline__ i64 align4(i64 f) { return (f + 3) & ~(i64)3; }

template <int NQ>
__device__ void attend(const Params& p) {
    extern __shared__ float4 sharedRaw[];
    float* shared = (float*)sharedRaw;
    const int C = (int)p.C, nq = (int)p.nq, dv = (int)p.dv;
    const int lanes = THREADS / dv;  // threads per value channel
    float* qT = shared;                                        // [C, NQ] query rows, transposed
    float* sc = qT + align4(NQ * C);                           // [TPS, NQ] scores, then probabilities
    float* rowM = sc + NQ * TPS;                               // [NQ] running max
    float* rowL = rowM + NQ;                                   // [NQ] running sum
    float* corr = rowL + NQ;                                   // [NQ] this chunk's rescaling of what came before
    float* partial = rowM + align4(3 * NQ);                    // [THREADS / dv, NQ, dv] when dv < THREADS
    float2* sz = (float2*)(partial + align4(lanes > 1 ? lanes * NQ * dv : 0));  // [metaGroups, C] key (scale, zero)
    i64* vRow = (i64*)((float*)sz + align4(2 * p.metaGroups * C));                  // [TPS] value row of each token
    u8* vSrc = (u8*)(vRow + TPS);                                                    // [TPS] 0: rest, 1: protected
    u8* vCodes = vSrc + TPS;                                                         // [TPS, valueStride] packed value rows
    u8* kOutCodes = vCodes + TPS * p.valueStride;                                    // [TPS, kOut.rowBytes]
    u8* kEasyCodes = kOutCodes + TPS * p.kOut.rowBytes;                              // [TPS, kEasy.rowBytes]
    const i64 bh = blockIdx.y;
    const int run = blockIdx.x, tid = threadIdx.x;

    for (int i = tid; i < NQ * C; i += THREADS) qT[(i % C) * NQ + i / C] = p.qb[bh * NQ * C + i];
    if (tid < NQ) { rowM[tid] = NEG_INF; rowL[tid] = 0.f; }

    // Value channels: thread tid takes channel d0 and every lanes-th token of a chunk (dv <= THREADS is checked by the host).
    const int d0 = tid % dv, part = tid / dv;
    const bool valueThread = part < lanes;
    float acc[NQ];
#pragma unroll
    for (int q = 0; q < NQ; q++) acc[q] = 0.f;

    const i64 groups = p.tokens / p.G;
    const bool raw = p.kOut.codes && p.kOut.rowBytes == 0;
    const i64 b = bh / p.hkv;
    const int warp = tid >> 5, lane = tid & 31;
    const ValueCode restCode = valueCode(p.vRest, d0);
    const ValueCode protCode = p.vProt.codes ? valueCode(p.vProt, d0) : restCode;
    const bool restScaled = p.vRest.scale != 0, protScaled = p.vProt.scale != 0;
    const bool contiguousValues = !p.map && p.valueStride == p.vRest.rowBytes;
    const int outPer = (int)p.kOut.per, easyPer = (int)p.kEasy.per;
    const unsigned int outThree = p.kOut.radix == 3, easyThree = p.kEasy.radix == 3;
    const unsigned int outMask = outThree ? 0u : (unsigned int)p.kOut.radix - 1u, easyMask = easyThree ? 0u : (unsigned int)p.kEasy.radix - 1u;
    const unsigned int outBits = outPer > 0 ? 8u / (unsigned int)outPer : 0u, easyBits = easyPer > 0 ? 8u / (unsigned int)easyPer : 0u;
    for (int chunk = 0; chunk < (int)p.chunks; chunk++) {
        const i64 t0 = ((i64)run * p.chunks + chunk) * TPS;
        if (t0 >= p.tokens) break;
        const int len = (int)min((i64)TPS, p.tokens - t0);
        __syncthreads();

        // Stage the chunk's packed keys and their groups' metadata, and the packed value rows, in shared memory: coalesced
        // loads by all threads at once instead of a chain of dependent loads per token.
        const i64 g0 = t0 / p.G;
        if (!raw) {
            const int ng = (int)((t0 + len - 1) / p.G - g0 + 1);
            if (p.kOut.codes) stageKeys(p.kOut, bh, t0, len, groups, g0, ng, C, 0, kOutCodes, sz);
            if (p.kEasy.codes) stageKeys(p.kEasy, bh, t0, len, groups, g0, ng, C, (int)p.dOut, kEasyCodes, sz);
            for (int t = tid; t < len; t += THREADS) {
                const i64 pos = t0 + t;
                i64 row = pos;
                u8 src = 0;
                if (p.map) {
                    const i64 m = p.map[b * p.tokens + pos];
                    row = m >= 0 ? m : -m - 1;
                    src = m >= 0 ? 0 : 1;
                }
                vRow[t] = row;
                vSrc[t] = src;
            }
            const int stride = (int)p.valueStride;
            if (contiguousValues) {
                // The token's own rows, one after another: one contiguous copy.
                const u8* src = p.vRest.codes + (bh * p.vRest.rows + t0) * stride;
                for (int i = tid; i < len * stride; i += THREADS) vCodes[i] = src[i];
            } else {
                __syncthreads();
                for (int i = tid; i < len * stride; i += THREADS) {
                    const int t = i / stride, j = i % stride;
                    if (vSrc[t]) { if (j < (int)p.vProt.rowBytes) vCodes[i] = p.vProt.codes[(bh * p.vProt.rows + vRow[t]) * p.vProt.rowBytes + j]; }
                    else if (j < (int)p.vRest.rowBytes) vCodes[i] = p.vRest.codes[(bh * p.vRest.rows + vRow[t]) * p.vRest.rowBytes + j];
                }
            }
            __syncthreads();
        }

        for (int t = tid; t < len; t += THREADS) {
            float k[NQ];
#pragma unroll
            for (int q = 0; q < NQ; q++) k[q] = 0.f;
            const i64 pos = t0 + t;
            if (raw) rawDot<NQ>(p.kOut, qT, bh, pos, k);
            else {
                const float2* g = sz + (pos / p.G - g0) * C;
                if (p.kOut.codes) keyDot<NQ>(kOutCodes + t * p.kOut.rowBytes, (int)p.kOut.channels, outPer, outThree, outBits, outMask, g, qT, k);
                if (p.kEasy.codes) keyDot<NQ>(kEasyCodes + t * p.kEasy.rowBytes, (int)p.kEasy.channels, easyPer, easyThree, easyBits, easyMask, g + p.dOut, qT + p.dOut * NQ, k);
            }
            const i64 absolute = p.start + pos;
#pragma unroll
            for (int q = 0; q < NQ; q++) {
                float s = k[q];
                if (q >= nq || (p.causal && absolute > p.causalBase + (q % p.tq))) s = NEG_INF;
                sc[t * NQ + q] = s;
            }
        }
        __syncthreads();

        for (int q = warp; q < NQ; q += THREADS / 32) {
            if (q >= nq) { if (lane == 0) corr[q] = 0.f; continue; }
            float m = rowM[q];
            for (int t = lane; t < len; t += 32) m = fmaxf(m, sc[t * NQ + q]);
            for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            float l = 0.f;
            for (int t = lane; t < len; t += 32) {
                const float e = m == NEG_INF ? 0.f : expf(sc[t * NQ + q] - m);
                sc[t * NQ + q] = e;
                l += e;
            }
            for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
            if (lane == 0) {
                const float c = rowM[q] == NEG_INF ? 0.f : expf(rowM[q] - m);
                corr[q] = c;
                rowL[q] = rowL[q] * c + l;
                rowM[q] = m;
            }
        }
        for (int t = tid; t < len && nq < NQ; t += THREADS) {
            for (int q = nq; q < NQ; q++) sc[t * NQ + q] = 0.f;
        }
        __syncthreads();

        if (valueThread) {
#pragma unroll
            for (int q = 0; q < NQ; q++) acc[q] *= corr[q];
            if (raw) {
                for (int t = part; t < len; t += lanes) axpy<NQ>(sc + t * NQ, rawValue(p.vRest, bh, t0 + t, d0, p.dv), acc);
            } else {
                const int stride = (int)p.valueStride;
                if (!p.map && !restScaled) {
                    // The presets' common case: every token's own row, bare levels.
                    const u8* codes = vCodes + restCode.byteIndex;
                    for (int t = part; t < len; t += lanes) {
                        axpy<NQ>(sc + t * NQ, fmaf((float)digitOf(restCode.digit, codes[t * stride]), restCode.mult, restCode.offset), acc);
                    }
                } else {
                    for (int t = part; t < len; t += lanes) {
                        float v;
                        if (vSrc[t]) {
                            v = fmaf((float)digitOf(protCode.digit, vCodes[t * stride + protCode.byteIndex]), protCode.mult, protCode.offset);
                            if (protScaled) v = scaleValue(p.vProt, v, bh, vRow[t], d0, p.G, p.dv);
                        } else {
                            v = fmaf((float)digitOf(restCode.digit, vCodes[t * stride + restCode.byteIndex]), restCode.mult, restCode.offset);
                            if (restScaled) v = scaleValue(p.vRest, v, bh, vRow[t], d0, p.G, p.dv);
                        }
                        axpy<NQ>(sc + t * NQ, v, acc);
                    }
                }
            }
        }
    }
    __syncthreads();

    const i64 slot = bh * p.runs + p.run0 + run;
    if (lanes == 1) {
        if (valueThread) {
#pragma unroll
            for (int q = 0; q < NQ; q++) if (q < nq) p.outAcc[(slot * nq + q) * dv + d0] = acc[q];
        }
    } else {
        if (valueThread) {
#pragma unroll
            for (int q = 0; q < NQ; q++) partial[(part * NQ + q) * dv + d0] = acc[q];
        }
        __syncthreads();
        for (int i = tid; i < nq * dv; i += THREADS) {
            const int q = i / dv, d = i % dv;
            float s = 0.f;
            for (int k = 0; k < lanes; k++) s += partial[(k * NQ + q) * dv + d];
            p.outAcc[(slot * nq + q) * dv + d] = s;
        }
    }
    if (tid < nq) {
        p.outM[slot * nq + tid] = rowM[tid];
        p.outL[slot * nq + tid] = rowL[tid];
    }
}

#define INSTANTIATE(N) \
extern "C" __global__ void __launch_bounds__(THREADS) vidkv_prep_##N(const Prep p) { prep<N>(p); } \
extern "C" __global__ void __launch_bounds__(THREADS) vidkv_attend_##N(const Params p) { attend<N>(p); }
INSTANTIATE(1)
INSTANTIATE(2)
INSTANTIATE(4)
INSTANTIATE(8)
INSTANTIATE(16)
INSTANTIATE(32)

extern "C" __global__ void __launch_bounds__(THREADS) vidkv_merge(const Merge p) {
    const i64 i = (i64)blockIdx.x * THREADS + threadIdx.x;  // over [BH, nq, dv]
    if (i >= p.bh * p.nq * p.dv) return;
    const i64 d = i % p.dv, q = (i / p.dv) % p.nq, bh = i / (p.dv * p.nq);
    float mx = NEG_INF;
    for (i64 s = 0; s < p.runs; s++) mx = fmaxf(mx, p.m[(bh * p.runs + s) * p.nq + q]);
    float num = 0.f, den = 0.f;
    for (i64 s = 0; s < p.runs; s++) {
        const i64 r = (bh * p.runs + s) * p.nq + q;
        const float m = p.m[r];
        if (m == NEG_INF) continue;
        const float w = expf(m - mx);
        den += w * p.l[r];
        num += w * p.acc[r * p.dv + d];
    }
    p.out[i] = num / den;
}
""";
}
