namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// CUDA C++ of the single-launch fused decode attention on tensor cores (compiled at run time by NVRTC; see
/// <see cref="CudaFusedAttention"/>), for caches whose keys are b-bit codes per channel (b = 1, 2, 4, 8; channel counts
/// multiples of 16), whose values are bare levels per channel (ternary without a scale, packed in base 3) and whose
/// groups are multiples of 32 tokens, with at most 8 query rows per KV head. One kernel, <c>vidkv_mma</c>, instantiated
/// per outlier bit width and key metadata type, and for a cache's geometry (<see cref="Name(int, int, Geometry, bool)"/>; a launch
/// compiles the instantiations it needs; <see cref="Name(int, int, bool)"/> reads the geometry at run time):
/// <list type="bullet">
/// <item>Grid (split, batch item × KV head, sequence). One launch serves up to <see cref="MaxSequences"/> caches of any
/// lengths (a batched decode step): the launch's parameters carry, per sequence, its cache's plan on the device (block
/// descriptions, splits, merge counters, run states; made when its block list changes), its residual and its row of the
/// query and the output. A split is a run of 32-token units of one quantized block (the host plans the splits once per
/// block list and batch size class, enough for the cache's share of the GPU), or a 32-token chunk of the full-precision
/// residual; blocks past a shorter sequence's splits return at once.</item>
/// <item>Prologue: the query rows times softmax scale · log2(e), put in the block's channel order (outlier channels,
/// then the 1-bit components through the [De, comps] transform), within each 16-channel k-step in slot order where
/// codes are read as digit pairs (1- and 2-bit codes: see slotOf). The first unit's copies are already in flight.</item>
/// <item>Scores as S^T = digits · q' on tensor cores (mma.m16n8k16, fp16 in, fp32 accumulate): the key digits are exact
/// in fp16 and q' = q·mult·scale of the group is split into fp16 hi + lo parts (two products, about 22 bits of q');
/// Σ q·(offset·scale + zero) is added per group as a bias. 1-bit keys with float16 metadata, reconstructed as 0 or the
/// scale (the instantiations named ..._1a): the scale goes on the A side instead (bit ? scale : 0, exact) and their B
/// = q·mult (hi + lo) is made once per block. Online softmax in the fragments (exp2); the causal mask only in units it
/// can touch, the output's rescale only when a row's maximum moved.</item>
/// <item>Σ p·digit on tensor cores: a lane's rows of the A operand are the digits of its own 4 value bytes (10 tiles of 16
/// channel slots: tile 2k + b holds digit k of bytes 4g + 2b and 4g + 2b + 1), so each byte pair of two tokens, divided
/// by 3 in the fp16 halves of one word (an fma and two adds per digit pair), gives fragment registers as they are; the
/// probabilities' fragments transposed in registers (movmatrix), hi + lo parts again.</item>
/// <item>Warps merge in shared memory; each split writes (max, sum, Σ p·v) to a workspace allocated once per cache. Splits
/// merge in groups of 16: the last split of a group to finish (an atomic counter per group, reset by that split) merges
/// the group's states into its first state, and the last group of a KV head merges the groups' states into the output,
/// so that no block reads more than 16 states (one group: the splits' states go straight to the output).</item>
/// </list>
/// </summary>
internal static class MmaKernelSource
{
    /// <summary>Threads per block.</summary>
    public const int Threads = 128;

    /// <summary>Query rows per KV head the kernel handles (the MMA's N).</summary>
    public const int Rows = 8;

    /// <summary>Tokens per unit of work (one metadata group at most).</summary>
    public const int UnitTokens = 32;

    /// <summary>Largest value channel count (8 tiles of 16).</summary>
    public const int MaxValueChannels = 128;

    /// <summary>Sequences one launch serves (the kernel's parameters carry one entry of 80 bytes each, within CUDA's 4 KiB).</summary>
    public const int MaxSequences = 48;

    /// <summary>Bytes of the block's work area (the kernel's WORK): the gathered 1-bit query channels in the prologue (at
    /// most 8 rows x 128 channels of float32, 4 KiB), the 4 warps' Σ p·digit after the main loop (8 rows x 128 channels of
    /// float32 each, 16 KiB). Its size is still the one of the per-warp decoded-value areas it replaced (4 x 6,240 bytes),
    /// as the kernel's GPU runs were made with it.</summary>
    public const int WorkAreaBytes = 24960;

    /// <summary>Outlier bit widths the kernel is instantiated for.</summary>
    public static readonly int[] OutlierBits = [2, 4, 8];

    /// <summary>Key metadata types the kernel is instantiated for (0 float32, 1 float16, 2 bfloat16).</summary>
    public static readonly int[] MetadataTypes = [0, 1, 2];

    /// <summary>
    /// The kernel's name for keys with <paramref name="outlierBits"/>-bit outlier codes and metadata of
    /// <paramref name="metadataType"/>; <paramref name="scaledBits"/>: the 1-bit keys' scale goes on the tensor cores' A side
    /// (suffix <c>a</c>; float16 metadata, 1-bit codes reconstructed as 0 or the scale without a zero point, at most as
    /// many 1-bit components as query channels, 2-bit outliers: with 4- or 8-bit ones the instantiation reading the
    /// geometry at run time spills a register on sm_80), so that their B operand is made once per block rather than per group.
    /// </summary>
    public static string Name(int outlierBits, int metadataType, bool scaledBits = false)
    {
        if (scaledBits && (metadataType != 1 || outlierBits != 2))
        {
            throw new ArgumentOutOfRangeException(nameof(scaledBits), scaledBits, $"1-bit keys scaled on the A side need float16 metadata (type 1, here {metadataType}) and 2-bit outliers (here {outlierBits}).");
        }

        return $"vidkv_mma_{outlierBits}_5_{metadataType}{(scaledBits ? "a" : "")}";
    }

    /// <summary>Every instantiation that reads the geometry at run time: each outlier bit width and metadata type, and the
    /// one with 1-bit keys scaled on the A side (2-bit outliers, float16 metadata).</summary>
    public static IEnumerable<string> GenericNames
        => OutlierBits.SelectMany(b => MetadataTypes.Select(t => Name(b, t))).Append(Name(2, 1, scaledBits: true));

    /// <summary>
    /// The name of the instantiation specialized for one cache geometry: outlier and 1-bit key channels, their packed row
    /// bytes, value row bytes and value channels as compile-time constants (the k-step and value loops unroll fully).
    /// </summary>
    public static string Name(int outlierBits, int metadataType, Geometry geometry, bool scaledBits = false)
        => $"{Name(outlierBits, metadataType, scaledBits)}_{geometry.OutlierChannels}_{geometry.EasyChannels}_{geometry.OutlierRowBytes}_{geometry.EasyRowBytes}_{geometry.ValueRowBytes}_{geometry.ValueChannels}";

    /// <summary>
    /// The source with the instantiations of <paramref name="names"/> (from <see cref="Name(int, int, bool)"/> or
    /// <see cref="Name(int, int, Geometry, bool)"/>): a launch compiles only the ones its caches need.
    /// </summary>
    public static string Source(IEnumerable<string> names)
        => Layout + Text + "\n" + string.Concat(names.Select(n => n.Split('_') switch
        {
            [_, _, var ob, var per, var mt] when Numbers(ob, per, Type(mt)) => $"INSTANTIATE({ob}, {per}, {Type(mt)}, {Scaled(mt)})\n",
            [_, _, var ob, var per, var mt, var cho, var che, var rbo, var rbe, var vrb, var dv] when Numbers(ob, per, Type(mt), cho, che, rbo, rbe, vrb, dv)
                => $"INSTANTIATE_GEOMETRY({ob}, {per}, {Type(mt)}, {Scaled(mt)}, {cho}, {che}, {rbo}, {rbe}, {vrb}, {dv})\n",
            _ => throw new ArgumentException($"'{n}' is not a tensor-core kernel name (vidkv_mma_<outlier bits>_5_<metadata type>, the type 1a for float16 with 1-bit keys scaled on the A side, optionally followed by _<outlier channels>_<1-bit channels>_<outlier row bytes>_<1-bit row bytes>_<value row bytes>_<value channels>).", nameof(names)),
        }));

    // The name's metadata field: a type (0, 1, 2), or 1a (float16, 1-bit keys scaled on the A side; the macro's ES and
    // name suffix).
    private static string Type(string field) => field == "1a" ? "1" : field;

    private static string Scaled(string field) => field == "1a" ? "1, a" : "0, ";

    private static bool Numbers(params string[] fields) => fields.All(x => int.TryParse(x, out _));

    /// <summary>The name of the instantiation that reads the geometry at run time, for any name of <see cref="Name(int, int, Geometry, bool)"/>.</summary>
    public static string GenericName(string name) => string.Join('_', name.Split('_').Take(5));

    /// <summary>A cache's geometry as a specialized instantiation fixes it (see <see cref="Name(int, int, Geometry, bool)"/>).</summary>
    public readonly record struct Geometry(int OutlierChannels, int EasyChannels, int OutlierRowBytes, int EasyRowBytes, int ValueRowBytes, int ValueChannels);

    // The work area's size as the host lays out shared memory (SharedBytes): one definition for both sides.
    private static readonly string Layout = $"#define WORK {WorkAreaBytes}\n";

    public const string Text = """
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define WARPS 4
#define THREADS 128
#define ROWS 8
#define NEG_INF __int_as_float(0xff800000)
#define VT 10                      // value tiles: 5 digits x 2 byte pairs of a lane's 4 value bytes

struct KSrc { const u8* codes; const void* scale; const void* zero; i64 rowBytes, bits, channels; float mult, offset; };

struct Block {
    KSrc k[2];                 // outlier channels, 1-bit components (channels 0 when absent)
    const u8* vCodes;          // [BH, tokens, vRowBytes]
    const i64* outIdx;         // [dOut] or null
    const i64* easyIdx;        // [De] or null
    const float* w;            // [De, comps] or null: the components are the easy channels themselves
    i64 vRowBytes, dOut, De, comps, start, tokens, G;  // the key metadata type is the instantiation's MT
    float vMult, vOffset;
};

struct Split { i64 block, unit0, units; };

// One sequence of a launch (blockIdx.z): its cache's plan on the device (made when the cache's block list changes), its
// residual now, and its row of the query and the output. Read from the parameters where used: values loaded from memory
// would stay in registers through the main loop, which needs all of them.
struct Seq {
    const Block* blocks;
    const Split* splits;
    int* counters;             // [BH], zero between calls
    float* states;             // [BH, splits, ROWS, 2 + dv]: max, sum, then Σ p·v per row
    const void* rk;            // residual keys [BH, rStride, D] (the first rLen tokens of each head), or null
    const void* rv;            // residual values [BH, rStride, dv]
    i64 qSplits, rStart, rLen; // splits of the quantized blocks; tokens before the residual; residual tokens
    int row;                   // the sequence's row of the query and the output
    int rStride;               // tokens between the residual's heads (rLen, or the capacity of the buffer it is kept in)
};

#define MAX_SEQS 48

struct Params {
    float* out;                // [rows, BH, nq, dv]
    const void* q;             // [rows, BH, nq, D]
    i64 qType, rType, nq, tq, causal, D, dv, C, nSeqs;
    // A warp's staging buffer for one 32-token unit (bytes, 16-byte aligned offsets): outlier codes, 1-bit codes,
    // value codes, then outlier scale and zero, 1-bit scale and zero of the unit's group.
    int stage, offKO, offKE, offV, offSO, offZO, offSE, offZE;
    float scale;               // softmax scale · log2(e)
    int pad2;
    unsigned long long* timeline;  // [blocks][TL_SLOTS] or null: read only where VIDKV_TIMELINE is defined (see TL)
    Seq seqs[MAX_SEQS];
};

// A diagnostic build (VIDKV_TIMELINE defined; `vidkv-bench timeline`): thread 0 of each block notes the global timer and
// its SM's cycle counter when the block reaches event k (0 entry, 1 copy table, 2 query gathered, 3 transform, 4 main
// loop, 5 state stored, 6 group counter, 7 group merged, 8 head counter, 9 exit) in shared memory (two registers at each
// event, so that the kernel around it keeps its registers), and at exit writes them, its block index and SM to timeline.
// Without the define TL is nothing and the kernel is the one measured.
#define TL_EVENTS 10
#define TL_SLOTS (2 * TL_EVENTS + 2)
#ifdef VIDKV_TIMELINE
__shared__ unsigned long long tlNotes[2 * TL_EVENTS];

template <int K>
__device__ __forceinline__ void timelineNote(const Params& p) {
    if (threadIdx.x != 0 || !p.timeline) return;
    unsigned long long g, c;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g));
    asm volatile("mov.u64 %0, %%clock64;" : "=l"(c));
    if (K == 0) for (int i = 0; i < 2 * TL_EVENTS; i++) tlNotes[i] = 0;
    tlNotes[2 * K] = g;
    tlNotes[2 * K + 1] = c;
    if (K == TL_EVENTS - 1) {
        u32 sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        unsigned long long* e = p.timeline + (((i64)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * TL_SLOTS;
        for (int i = 0; i < 2 * TL_EVENTS; i++) e[i] = tlNotes[i];
        e[2 * TL_EVENTS] = blockIdx.x | ((unsigned long long)blockIdx.y << 20) | ((unsigned long long)blockIdx.z << 40);
        e[2 * TL_EVENTS + 1] = sm;
    }
}
#define TL(k) timelineNote<k>(p)
#else
#define TL(k) do { } while (0)
#endif

// Element i of a float32 (T = 0), float16 (1) or bfloat16 (2) array.
template <int T>
__device__ __forceinline__ float ldT(const void* p, i64 i) {
    if (T == 0) return ((const float*)p)[i];
    const unsigned short h = ((const unsigned short*)p)[i];
    if (T == 1) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
    return __uint_as_float(((u32)h) << 16);
}

// The same with the type known at run time.
__device__ __forceinline__ float ld(const void* p, i64 i, i64 type) {
    return type == 0 ? ldT<0>(p, i) : type == 1 ? ldT<1>(p, i) : ldT<2>(p, i);
}

__device__ __forceinline__ u32 pack2(float a, float b) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
    return r;
}

__device__ __forceinline__ float2 unpack2(u32 h) {
    float a, b;
    asm("{ .reg .f16 lo, hi; mov.b32 {lo, hi}, %2; cvt.f32.f16 %0, lo; cvt.f32.f16 %1, hi; }" : "=f"(a), "=f"(b) : "r"(h));
    return make_float2(a, b);
}

// fp16 pair (hi) and the pair of what hi misses (lo): a ≈ hi + lo to about 22 bits.
__device__ __forceinline__ void split2(float a, float b, u32& hi, u32& lo) {
    hi = pack2(a, b);
    const float2 h = unpack2(hi);
    lo = pack2(a - h.x, b - h.y);
}

// Two b-bit digits (low digit first) as an exact fp16 pair: (1024 + d) has d in its mantissa, minus 1024.
__device__ __forceinline__ u32 digits2(u32 field, u32 bits) {
    const u32 mask = (1u << bits) - 1u;
    u32 x = (field & mask) | ((field >> bits & mask) << 16) | 0x64006400u;
    u32 r;
    asm("sub.f16x2 %0, %1, %2;" : "=r"(r) : "r"(x), "r"(0x64006400u));
    return r;
}

// The 2b-bit field of a packed row at bit offset x (a multiple of 2b).
__device__ __forceinline__ u32 field(const u8* row, u32 x, u32 bits) {
    if (bits == 8) return (u32)*(const u16*)(row + (x >> 3));
    return (u32)row[x >> 3] >> (x & 7u);
}

__device__ __forceinline__ void mma(float* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ u32 transpose8x8(u32 a) {
    u32 r;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(a));
    return r;
}

__device__ __forceinline__ float2 ld2(const void* p, i64 i, i64 type) {
    if (type == 0) return *(const float2*)((const float*)p + i);
    const u32 w = *(const u32*)((const unsigned short*)p + i);
    if (type == 1) return unpack2(w);
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

__device__ __forceinline__ i64 align4(i64 f) { return (f + 3) & ~(i64)3; }

__device__ __forceinline__ void cpAsync16(u32 dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(dst), "l"(src));
}

// fp16 pair arithmetic (round to nearest): a · b + c, and a + b.
__device__ __forceinline__ u32 hfma2(u32 a, u32 b, u32 c) {
    u32 r;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

__device__ __forceinline__ u32 hadd2(u32 a, u32 b) {
    u32 r;
    asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

// Two tokens' value bytes (bytes 0 and 2 of v; the other bytes are ignored) in the fp16 halves of one word, as the start
// of their division by 3 (see the main loop's value products): t = 1024 + x (the byte put into 1024's mantissa), x.
__device__ __forceinline__ void tritStart(u32 v, u32& t, u32& x) {
    t = (v & 0x00ff00ffu) | 0x64006400u;
    x = hadd2(t, 0xE400E400u);
}

// Digit k of both bytes (k = 0 to 3; digit 4 is x after four steps) as an exact fp16 pair: t becomes 1025 + floor(x / 3),
// x becomes floor(x / 3).
__device__ __forceinline__ u32 tritDigit(u32& t, u32& x, int k) {
    const u32 third = 0x35553555u, minus3 = 0xC200C200u, minus1025 = 0xE401E401u;
    t = hfma2(t, third, k == 0 ? 0x61576157u : 0x61566156u);  // 1025 + x / 3 (683.5, then 683)
    const u32 q = hadd2(t, minus1025);
    const u32 d = hfma2(q, minus3, x);
    x = q;
    return d;
}

// A 32-bit word of shared memory at a 32-bit shared address (4-byte aligned).
__device__ __forceinline__ u32 lds32(u32 addr) {
    u32 r;
    asm volatile("ld.shared.b32 %0, [%1];" : "=r"(r) : "r"(addr));
    return r;
}

// Two metadata values (channels c, c + 1) from a staged array of type MT (0 float32, 1 float16, 2 bfloat16).
template <int MT>
__device__ __forceinline__ float2 sm2(const u8* base, int c) {
    if (MT == 0) return *(const float2*)(base + 4 * c);
    const u32 w = *(const u32*)(base + 2 * c);
    if (MT == 1) return unpack2(w);
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

// Channels (c, c + 8), (c + 4, c + 12) of a k-step with c = 16 kk + t: the metadata of the slots a lane's fragments hold
// where digits are read as pairs (j, j + 8) (see slotOf).
template <int MT>
__device__ __forceinline__ void smPairs(const u8* base, int c, float2& m0, float2& m1) {
    m0 = make_float2(ldT<MT>(base, c), ldT<MT>(base, c + 8));
    m1 = make_float2(ldT<MT>(base, c + 4), ldT<MT>(base, c + 12));
}

// Two digits of a packed word as an exact fp16 pair, one in each half: the bits under mask (0x00010001 for 1-bit codes,
// 0x00030003 for 2-bit ones) put into 1024's mantissa, minus 1024.
__device__ __forceinline__ u32 digitPair(u32 x, u32 mask) {
    u32 r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(x), "r"(mask), "r"(0x64006400u));  // (x & mask) | magic
    asm("sub.f16x2 %0, %1, %2;" : "=r"(r) : "r"(r), "r"(0x64006400u));
    return r;
}

// A 1-bit code pair's A value with the scale on the A side: y holds the two codes' bits at bits 7 and 15, s the two
// channels' float16 scales; prmt spreads bit 7 over the low half and bit 15 over the high half (sign replication), the
// mask keeps each scale or makes it 0.
__device__ __forceinline__ u32 bitScale(u32 y, u32 s) {
    u32 m;
    asm("prmt.b32 %0, %1, 0, 0x9988;" : "=r"(m) : "r"(y));
    return m & s;
}

// The slot of channel c (in its k-step of 16 channels) for codes read as digit pairs (j, j + 8): a lane with t = lane % 4
// holds slots 2t, 2t + 1 (channels t, t + 8) and 2t + 8, 2t + 9 (channels t + 4, t + 12) of every k-step, where one
// shift and one mask give each pair. The query is laid out in slot order, so the products see the channels they pair.
__device__ __forceinline__ int slotOf(int c) {
    const int j = c & 15, r = j & 7;
    return (c & ~15) | ((r >> 2) << 3) | ((r & 3) << 1) | (j >> 3);
}

// The query rows of this block's KV head times the softmax scale into qe [ROWS][D] (rows past nq zero): every load of a
// thread issued before its stores, so the rows cost one trip to memory.
template <int T>
__device__ __forceinline__ void loadQueryRows(const Params& p, i64 base, float* qe, int D, int nq, int tid) {
    for (int i0 = 0; i0 < ROWS * D; i0 += 8 * THREADS) {
        float v[8];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = i0 + k * THREADS + tid, r = i / D;
            v[k] = i < ROWS * D && r < nq ? ldT<T>(p.q, base + i) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = i0 + k * THREADS + tid;
            if (i < ROWS * D) qe[i] = v[k] * p.scale;
        }
    }
}

__device__ __forceinline__ void loadQuery(const Params& p, i64 base, float* qe, int D, int nq, int tid) {
    if (p.qType == 0) loadQueryRows<0>(p, base, qe, D, nq, tid);
    else if (p.qType == 1) loadQueryRows<1>(p, base, qe, D, nq, tid);
    else loadQueryRows<2>(p, base, qe, D, nq, tid);
}

// The query rows of this block's KV head times the softmax scale, gathered in the block's channel order: outlier
// channel c (in slot order for 2-bit codes) into qs [ROWS][QS], 1-bit channel j into qg [ROWS][De]; rows past nq zero.
// A thread's loads are all issued before its stores.
template <int T, int OB>
__device__ __forceinline__ void gatherQuery(const Params& p, i64 base, float* qs, int QS, float* qg, const Block& bk, int dOut, int De, int D, int nq, int tid) {
    for (int c = tid; c < dOut + De; c += THREADS) {
        const bool outlier = c < dOut;
        const int src = outlier ? (int)bk.outIdx[c] : (int)bk.easyIdx[c - dOut];
        float v[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) v[r] = r < nq ? ldT<T>(p.q, base + r * D + src) : 0.f;
        if (outlier) {
            const int dst = OB == 2 ? slotOf(c) : c;
#pragma unroll
            for (int r = 0; r < ROWS; r++) qs[r * QS + dst] = v[r] * p.scale;
        } else {
#pragma unroll
            for (int r = 0; r < ROWS; r++) qg[r * De + c - dOut] = v[r] * p.scale;
        }
    }
}

// Merges n run states (max, sum, Σ p·v per row; ss floats apart from first): into dst (unnormalized, as one state; dst
// may be first) or, where dst is null, into out [nq][dv] divided by the sum. Weights in wts [ROWS][n] (shared), the
// rows' maxima and sums in red [2][ROWS] (shared). 16 threads a row read the maxima and sums; then a thread sums 4
// consecutive channels of rows rq and rq + 4 (16-byte loads, 16 states in flight; row rq + 4 only where it is a query row
// or a state is written). The two loops are kept apart: one loop with row rq + 4 under a condition costs the specialized
// kernel's main loop 120 more instructions and a register (`vidkv-bench kernels`).
__device__ __forceinline__ void mergeStates(const float* first, i64 ss, int n, int dv, int nq, float* dst, float* out, float* wts, float* red) {
    const int tid = threadIdx.x;
    {
        const int r = tid >> 4, j = tid & 15;
        float mx = NEG_INF;
        for (int s = j; s < n; s += 16) mx = fmaxf(mx, __ldcg(first + s * ss + r));
        for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float den = 0.f;
        for (int s = j; s < n; s += 16) {
            const float m = __ldcg(first + s * ss + r);
            const float f = m == NEG_INF ? 0.f : exp2f(m - mx);
            wts[r * n + s] = f;
            den = fmaf(f, __ldcg(first + s * ss + ROWS + r), den);
        }
        for (int o = 8; o > 0; o >>= 1) den += __shfl_xor_sync(0xffffffffu, den, o);
        if (j == 0) { red[r] = mx; red[ROWS + r] = den; }
    }
    __syncthreads();
    const int c4 = 4 * (tid & 31), rq = tid >> 5;
    const bool two = dst || rq + 4 < nq;
    for (int cb = c4; cb < dv; cb += 128) {
        float4 n0 = make_float4(0.f, 0.f, 0.f, 0.f), n1 = n0;
        const float* a0 = first + 2 * ROWS + rq * dv + cb;
        const float* a1 = a0 + 4 * dv;
        if (two) {
#pragma unroll 16
            for (int s = 0; s < n; s++) {
                const float4 x = __ldcg((const float4*)(a0 + s * ss));
                const float4 y = __ldcg((const float4*)(a1 + s * ss));
                const float f = wts[rq * n + s], h = wts[(rq + 4) * n + s];
                n0.x = fmaf(f, x.x, n0.x); n0.y = fmaf(f, x.y, n0.y); n0.z = fmaf(f, x.z, n0.z); n0.w = fmaf(f, x.w, n0.w);
                n1.x = fmaf(h, y.x, n1.x); n1.y = fmaf(h, y.y, n1.y); n1.z = fmaf(h, y.z, n1.z); n1.w = fmaf(h, y.w, n1.w);
            }
        } else {
#pragma unroll 16
            for (int s = 0; s < n; s++) {
                const float4 x = __ldcg((const float4*)(a0 + s * ss));
                const float f = wts[rq * n + s];
                n0.x = fmaf(f, x.x, n0.x); n0.y = fmaf(f, x.y, n0.y); n0.z = fmaf(f, x.z, n0.z); n0.w = fmaf(f, x.w, n0.w);
            }
        }
        if (dst) {
            *(float4*)(dst + 2 * ROWS + rq * dv + cb) = n0;
            *(float4*)(dst + 2 * ROWS + (rq + 4) * dv + cb) = n1;
        } else {
            if (rq < nq) {
                const float v = 1.f / red[ROWS + rq];
                *(float4*)(out + rq * dv + cb) = make_float4(n0.x * v, n0.y * v, n0.z * v, n0.w * v);
            }
            if (rq + 4 < nq) {
                const float v = 1.f / red[ROWS + rq + 4];
                *(float4*)(out + (rq + 4) * dv + cb) = make_float4(n1.x * v, n1.y * v, n1.z * v, n1.w * v);
            }
        }
    }
    if (dst) {
        __syncthreads();  // every maximum and sum of first was read (pass one) before dst's are written
        if (tid < 2 * ROWS) dst[tid] = red[tid];
    }
}

// GEO: RunTime reads the cache's geometry at run time (any cache the kernel fits); a Geometry<> holds one cache's as
// compile-time constants (a specialized instantiation), so that the k-step and value loops unroll fully and their index
// arithmetic folds. Channel and row-byte counts: outlier and 1-bit key channels, their packed row bytes, value row bytes,
// value channels.
template <int CHO_, int CHE_, int RBO_, int RBE_, int VRB_, int DV_>
struct Geometry { static const bool FIXED = true; static const int CHO = CHO_, CHE = CHE_, RBO = RBO_, RBE = RBE_, VRB = VRB_, DV = DV_; };
struct RunTime { static const bool FIXED = false; static const int CHO = 0, CHE = 0, RBO = 0, RBE = 0, VRB = 0, DV = 0; };

template <int OB, int VPER, int MT, int ES, typename GEO>
__device__ __forceinline__ void mmaBody(const Params& p) {
    static_assert(!ES || MT == 1, "1-bit keys scaled on the A side need float16 metadata");
    extern __shared__ float4 smem4[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const Seq& sq = p.seqs[blockIdx.z];
    const int split = blockIdx.x;
    if (split >= sq.qSplits + (sq.rLen + 31) / 32) return;  // past a shorter sequence's splits
    TL(0);
    const i64 bh = blockIdx.y;                                // batch item x KV head within the cache
    const int C = (int)p.C, D = (int)p.D, dv = GEO::FIXED ? GEO::DV : (int)p.dv, nq = (int)p.nq, QS = C + 8;
    float* qs = (float*)smem4;                           // [ROWS][C + 8] query in the block's channel order
    float* qe = qs + align4(max(ROWS * QS, ROWS * 32));                  // [ROWS][D] scaled query rows
    u8* work = (u8*)(qe + align4(ROWS * D));             // [WORK] bytes: the prologue's 1-bit channels, then the warps' Σ p·digit
    float* red = (float*)(work + WORK);                  // [2][WARPS][ROWS]
    u8* stageBase = (u8*)(red + 2 * WARPS * ROWS);       // [WARPS][2][stage] staged units (16-byte aligned), then the copy table
    float* scratch = (float*)work;                       // [WARPS][ROWS][dv] after the main loop (fits: dv <= 128)
    __shared__ int isLast;

    const i64 qBase = (sq.row * (i64)gridDim.y + bh) * nq * D;  // this KV head's query rows

    float* myM = red;                 // [WARPS][ROWS]
    float* myL = red + WARPS * ROWS;  // [WARPS][ROWS]

    if (split >= sq.qSplits) {
        // A 32-token chunk of the full-precision residual, plain float32 arithmetic.
        loadQuery(p, qBase, qe, D, nq, tid);
        __syncthreads();
        float* sc = qs;  // [ROWS][32]
        const i64 t0 = (i64)(split - sq.qSplits) * 32;
        const int tk = tid & 31, rp = tid >> 5;
        const i64 pos = t0 + tk, rLen = sq.rLen, causalBase = sq.rStart + rLen - p.tq;
        float s0 = 0.f, s1 = 0.f;
        if (pos < rLen) {
            const i64 base = (bh * (i64)sq.rStride + pos) * D;
            for (int c = 0; c < D; c++) {
                const float k = ld(sq.rk, base + c, p.rType);
                s0 = fmaf(k, qe[(2 * rp) * D + c], s0);
                s1 = fmaf(k, qe[(2 * rp + 1) * D + c], s1);
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = 2 * rp + h;
            const bool masked = pos >= rLen || r >= nq || (p.causal && sq.rStart + pos > causalBase + (r % p.tq));
            sc[r * 32 + tk] = masked ? NEG_INF : (h ? s1 : s0);
        }
        __syncthreads();
        for (int r = warp; r < ROWS; r += WARPS) {
            const float v = sc[r * 32 + lane];
            float m = v;
            for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            const float e = m == NEG_INF ? 0.f : exp2f(v - m);
            float l = e;
            for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
            sc[r * 32 + lane] = e;
            if (lane == 0) { myM[r] = m; myL[r] = l; }
        }
        __syncthreads();
        float* st = sq.states + (bh * (sq.qSplits + (rLen + 31) / 32) + split) * ROWS * (2 + dv);
        for (int i = tid; i < ROWS * dv; i += THREADS) {
            const int r = i / dv, c = i % dv;
            float a = 0.f;
            for (int k = 0; k < 32 && t0 + k < rLen; k++) a = fmaf(sc[r * 32 + k], ld(sq.rv, (bh * (i64)sq.rStride + t0 + k) * dv + c, p.rType), a);
            st[ROWS * 2 + r * dv + c] = a;
        }
        if (tid < ROWS) { st[tid] = myM[tid]; st[ROWS + tid] = myL[tid]; }
        TL(4);
    } else {
        const Split sp = sq.splits[split];
        const Block& bk = sq.blocks[sp.block];
        const i64 dOut = bk.dOut, comps = bk.comps, De = bk.De;
        const int vRB = GEO::FIXED ? GEO::VRB : (int)bk.vRowBytes;
        u8* stage0 = stageBase + warp * 2 * p.stage;
        const u32 stageS = (u32)__cvta_generic_to_shared(stage0);
        const int groups = (int)(bk.tokens / bk.G);
        const int chO = GEO::FIXED ? GEO::CHO : (int)bk.k[0].channels, chE = GEO::FIXED ? GEO::CHE : (int)bk.k[1].channels;
        const int rbO = GEO::FIXED ? GEO::RBO : (int)bk.k[0].rowBytes, rbE = GEO::FIXED ? GEO::RBE : (int)bk.k[1].rowBytes;
        const int ms = MT == 0 ? 4 : 2;
        // Outlier codes are asymmetric (code · scale + zero: the host describes them with mult 1 and offset 0), so their
        // q' is q · scale and their bias Σ q · zero, with no products by 1 or 0 in the k-steps.
        const float multE = bk.k[1].mult, offE = bk.k[1].offset;
        const bool zeroO = bk.k[0].zero != 0, zeroE = bk.k[1].zero != 0;
        const i64 rowBase = bh * bk.tokens;
        const int unitsPerGroup = (int)(bk.G / 32);  // a 32-bit division per unit, none where G = 32

        // What a unit stages, as one table of 16-byte copies for the block (made once; its copies' sources at unit or
        // group 0 and their strides): the codes of the unit's tokens (outlier, 1-bit, value rows; stride per unit) and its
        // group's metadata (outlier scale and zero, 1-bit scale and zero; stride per group). A unit's copies are then a
        // few table reads and cp.asyncs a lane, with none of the block description's loads and 64-bit products per unit.
        uint4* copies = (uint4*)(stageBase + WARPS * 2 * p.stage);  // [chunks]: source (2 words), destination, stride | per group << 31
        int chunks = 0;
        {
            const u8* src[7] = {
                chO ? bk.k[0].codes + rowBase * rbO : 0, chO ? (const u8*)bk.k[0].scale + bh * groups * chO * ms : 0,
                chO && zeroO ? (const u8*)bk.k[0].zero + bh * groups * chO * ms : 0,
                chE ? bk.k[1].codes + rowBase * rbE : 0, chE ? (const u8*)bk.k[1].scale + bh * groups * chE * ms : 0,
                chE && zeroE ? (const u8*)bk.k[1].zero + bh * groups * chE * ms : 0, bk.vCodes + rowBase * vRB};
            const int bytes[7] = {32 * rbO, chO * ms, chO * ms, 32 * rbE, chE * ms, chE * ms, 32 * vRB};
            const int dst[7] = {p.offKO, p.offSO, p.offZO, p.offKE, p.offSE, p.offZE, p.offV};
#pragma unroll
            for (int i = 0; i < 7; i++) {
                if (!src[i]) continue;
                const u32 stride = (u32)bytes[i] | ((i == 1 || i == 2 || i == 4 || i == 5) ? 0x80000000u : 0u);
                for (int c = tid; c < bytes[i] / 16; c += THREADS) {
                    const unsigned long long a = (unsigned long long)(src[i] + 16 * c);
                    copies[chunks + c] = make_uint4((u32)a, (u32)(a >> 32), (u32)(dst[i] + 16 * c), stride);
                }
                chunks += bytes[i] / 16;
            }
        }
        __syncthreads();
        TL(1);

        // Stage a unit's packed codes and its group's metadata (cp.async, one group of copies per unit).
        auto issue = [&](i64 u, int buf) {
            const int unit = (int)(sp.unit0 + u);
            const int grp = unitsPerGroup == 1 ? unit : unit / unitsPerGroup;
            const u32 d = stageS + buf * p.stage;
#pragma unroll 1
            for (int c = lane; c < chunks; c += 32) {
                const uint4 e = copies[c];
                const u8* from = (const u8*)(((unsigned long long)e.y << 32) | e.x);
                cpAsync16(d + e.z, from + (unsigned long long)(u32)((int)e.w < 0 ? grp : unit) * (e.w & 0x7FFFFFFFu));
            }
            asm volatile("cp.async.commit_group;");
        };

        // The first unit's copies and the channel indices are in flight while the query rows load. The rows are read
        // straight from the query in the block's channel order (times the softmax scale, rows past nq zero): outlier
        // channels into qs, the 1-bit channels into qg, ahead of the transform.
        if (warp < sp.units) issue(warp, 0);
        float* qg = (float*)work;  // [ROWS][De] (De <= 128: at most 4 KiB)
        if (p.qType == 0) gatherQuery<0, OB>(p, qBase, qs, QS, qg, bk, (int)dOut, (int)De, D, nq, tid);
        else if (p.qType == 1) gatherQuery<1, OB>(p, qBase, qs, QS, qg, bk, (int)dOut, (int)De, D, nq, tid);
        else gatherQuery<2, OB>(p, qBase, qs, QS, qg, bk, (int)dOut, (int)De, D, nq, tid);
        __syncthreads();
        TL(2);
        // The 1-bit components through the transform: a thread per component and half of the rows (4 rows), the rows'
        // channels read 4 at a time (one broadcast 16-byte read a row) where De allows; each sum in channel order.
        for (int i = tid; i < 2 * comps; i += THREADS) {
            const int half = i >= comps, e = half ? i - (int)comps : i;
            const float* qr = qg + 4 * half * De;
            float a[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = 0.f;
            if (!bk.w) {
#pragma unroll
                for (int r = 0; r < 4; r++) a[r] = qr[r * De + e];
            } else if ((De & 3) == 0) {
#pragma unroll 4
                for (int j = 0; j < (int)De; j += 4) {
                    const float w0 = __ldg(bk.w + j * comps + e), w1 = __ldg(bk.w + (j + 1) * comps + e);
                    const float w2 = __ldg(bk.w + (j + 2) * comps + e), w3 = __ldg(bk.w + (j + 3) * comps + e);
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        const float4 x = *(const float4*)(qr + r * De + j);
                        a[r] = fmaf(x.x, w0, a[r]);
                        a[r] = fmaf(x.y, w1, a[r]);
                        a[r] = fmaf(x.z, w2, a[r]);
                        a[r] = fmaf(x.w, w3, a[r]);
                    }
                }
            } else {
#pragma unroll 4
                for (int j = 0; j < (int)De; j++) {
                    const float w = __ldg(bk.w + j * comps + e);
#pragma unroll
                    for (int r = 0; r < 4; r++) a[r] = fmaf(qr[r * De + j], w, a[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < 4; r++) qs[(4 * half + r) * QS + dOut + slotOf(e)] = a[r];
        }
        __syncthreads();
        // ES: the 1-bit k-steps' B fragments, q · mult as fp16 hi + lo parts, made once per block into the scaled query
        // rows' place (qe: only the residual's splits use those rows; chE <= D, so they fit): lane l of k-step kk at
        // bq[4 (32 kk + l)].
        u32* bq = (u32*)qe;
        if (ES) {
            for (int i = tid; i < chE / 16 * 32; i += THREADS) {
                const float* q = qs + ((i & 31) >> 2) * QS + chO + 16 * (i >> 5) + 2 * (i & 3);
                u32 h0, l0, h1, l1;
                split2(q[0] * multE, q[1] * multE, h0, l0);
                split2(q[8] * multE, q[9] * multE, h1, l1);
                *(uint4*)(bq + 4 * i) = make_uint4(h0, h1, l0, l1);
            }
            __syncthreads();
        }
        TL(3);

        // Σ p·digit in VT tiles of 16 channel slots (see the value products): tile m = 2k + b, row g holds digit k of
        // value byte 4g + 2b, row g + 8 digit k of byte 4g + 2b + 1.
        float acc[VT][4];
#pragma unroll
        for (int m = 0; m < VT; m++) { acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.f; }
        float mrow[2] = {NEG_INF, NEG_INF}, lrow[2] = {0.f, 0.f};
        int buf = 0;
        for (i64 u = warp; u < sp.units; u += WARPS, buf ^= 1) {
            if (u + WARPS < sp.units) { issue(u + WARPS, buf ^ 1); asm volatile("cp.async.wait_group 1;"); }
            else asm volatile("cp.async.wait_group 0;");
            __syncwarp();
            const u8* st = stage0 + buf * p.stage;
            const i64 tok0 = (sp.unit0 + u) * 32;
            // Scores of the hi and lo parts in separate accumulators (independent chains of products).
            float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
            float sl[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
            float bias = 0.f;
            // Outlier channels: OB-bit codes.
            {
                const u8* rows = st + p.offKO + g * rbO;
                const u8* sc = st + p.offSO;
                const u8* zc = st + p.offZO;
#pragma unroll (GEO::FIXED ? (GEO::CHO >= 16 ? GEO::CHO / 16 : 1) : OB == 2 ? 2 : 1)
                for (int kk = 0; kk < chO / 16; kk++) {
                    const int c0 = 16 * kk + 2 * t, c1 = c0 + 8;
                    const float2 q0 = *(const float2*)(qs + g * QS + c0);
                    const float2 q1 = *(const float2*)(qs + g * QS + c1);
                    float2 s0, s1, z0 = make_float2(0.f, 0.f), z1 = z0;
                    if (OB == 2) {
                        smPairs<MT>(sc, 16 * kk + t, s0, s1);
                        if (zeroO) smPairs<MT>(zc, 16 * kk + t, z0, z1);
                    } else {
                        s0 = sm2<MT>(sc, c0); s1 = sm2<MT>(sc, c1);
                        if (zeroO) { z0 = sm2<MT>(zc, c0); z1 = sm2<MT>(zc, c1); }
                    }
                    u32 bh0, bl0, bh1, bl1;
                    split2(q0.x * s0.x, q0.y * s0.y, bh0, bl0);
                    split2(q1.x * s1.x, q1.y * s1.y, bh1, bl1);
                    bias = fmaf(q0.x, z0.x, bias);
                    bias = fmaf(q0.y, z0.y, bias);
                    bias = fmaf(q1.x, z1.x, bias);
                    bias = fmaf(q1.y, z1.y, bias);
                    u32 a[4][2];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u8* row = rows + i * 8 * rbO;
                        if (OB == 2) {
                            // Slots 2t, 2t + 1 hold channels t, t + 8; slots 2t + 8, 2t + 9 channels t + 4, t + 12.
                            const u32 w = *(const u32*)(row + 4 * kk);
                            a[i][0] = digitPair(w >> (2 * t), 0x00030003u);
                            a[i][1] = digitPair(w >> (2 * t + 8), 0x00030003u);
                        } else if (OB == 8) {
                            a[i][0] = digits2(*(const u16*)(row + c0), 8);
                            a[i][1] = digits2(*(const u16*)(row + c1), 8);
                        } else {
                            a[i][0] = digits2((u32)row[(c0 * OB) >> 3] >> ((c0 * OB) & 7), OB);
                            a[i][1] = digits2((u32)row[(c1 * OB) >> 3] >> ((c1 * OB) & 7), OB);
                        }
                    }
                    mma(s[0], a[0][0], a[1][0], a[0][1], a[1][1], bh0, bh1);
                    mma(sl[0], a[0][0], a[1][0], a[0][1], a[1][1], bl0, bl1);
                    mma(s[1], a[2][0], a[3][0], a[2][1], a[3][1], bh0, bh1);
                    mma(sl[1], a[2][0], a[3][0], a[2][1], a[3][1], bl0, bl1);
                }
            }
            // 1-bit components.
            if (ES) {
                // The scale on the A side (float16 metadata, no offset, no zero point): a code's A value is its
                // channel's scale where the bit is set, else 0 (exact), times the block's B = q · mult. A lane's bits
                // for channels (t, t + 8) are shifted to bits 7 and 15, and prmt spreads each one's sign over a half.
                const u8* rows = st + p.offKE + g * rbE;
                const unsigned short* sc = (const unsigned short*)(st + p.offSE) + t;
                const u32 sh0 = 7 - t, sh1 = 3 - t;
#pragma unroll (GEO::FIXED ? (GEO::CHE >= 16 ? GEO::CHE / 16 : 1) : 2)
                for (int kk = 0; kk < chE / 16; kk++) {
                    const uint4 b = *(const uint4*)(bq + 4 * (32 * kk + lane));
                    const u32 s0 = __byte_perm(sc[16 * kk], sc[16 * kk + 8], 0x5410), s1 = __byte_perm(sc[16 * kk + 4], sc[16 * kk + 12], 0x5410);
                    u32 a[4][2];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u32 w = *(const unsigned short*)(rows + i * 8 * rbE + 2 * kk);
                        a[i][0] = bitScale(w << sh0, s0);
                        a[i][1] = bitScale(w << sh1, s1);
                    }
                    mma(s[0], a[0][0], a[1][0], a[0][1], a[1][1], b.x, b.y);
                    mma(sl[0], a[0][0], a[1][0], a[0][1], a[1][1], b.z, b.w);
                    mma(s[1], a[2][0], a[3][0], a[2][1], a[3][1], b.x, b.y);
                    mma(sl[1], a[2][0], a[3][0], a[2][1], a[3][1], b.z, b.w);
                }
            } else {
                const u8* rows = st + p.offKE + g * rbE;
                const u8* sc = st + p.offSE;
                const u8* zc = st + p.offZE;
#pragma unroll (GEO::FIXED ? (GEO::CHE >= 16 ? GEO::CHE / 16 : 1) : 2)
                for (int kk = 0; kk < chE / 16; kk++) {
                    const int c0 = 16 * kk + 2 * t, c1 = c0 + 8;
                    const float2 q0 = *(const float2*)(qs + g * QS + chO + c0);
                    const float2 q1 = *(const float2*)(qs + g * QS + chO + c1);
                    float2 s0, s1, z0 = make_float2(0.f, 0.f), z1 = z0;
                    smPairs<MT>(sc, 16 * kk + t, s0, s1);
                    if (zeroE) smPairs<MT>(zc, 16 * kk + t, z0, z1);
                    u32 bh0, bl0, bh1, bl1;
                    split2(q0.x * multE * s0.x, q0.y * multE * s0.y, bh0, bl0);
                    split2(q1.x * multE * s1.x, q1.y * multE * s1.y, bh1, bl1);
                    bias = fmaf(q0.x, fmaf(offE, s0.x, z0.x), bias);
                    bias = fmaf(q0.y, fmaf(offE, s0.y, z0.y), bias);
                    bias = fmaf(q1.x, fmaf(offE, s1.x, z1.x), bias);
                    bias = fmaf(q1.y, fmaf(offE, s1.y, z1.y), bias);
                    u32 a[4][2];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        // The 16 channels' bits as [bits 0-7, 0, bits 8-15, 0]: channel j < 8 at bit j, j + 8 at bit 16 + j.
                        const u32 x = __byte_perm((u32)*(const u16*)(rows + i * 8 * rbE + 2 * kk), 0u, 0x4140);
                        a[i][0] = digitPair(x >> t, 0x00010001u);
                        a[i][1] = digitPair(x >> (t + 4), 0x00010001u);
                    }
                    mma(s[0], a[0][0], a[1][0], a[0][1], a[1][1], bh0, bh1);
                    mma(sl[0], a[0][0], a[1][0], a[0][1], a[1][1], bl0, bl1);
                    mma(s[1], a[2][0], a[3][0], a[2][1], a[3][1], bh0, bh1);
                    mma(sl[1], a[2][0], a[3][0], a[2][1], a[3][1], bl0, bl1);
                }
            }
            bias += __shfl_xor_sync(0xffffffffu, bias, 1);
            bias += __shfl_xor_sync(0xffffffffu, bias, 2);
            const float biasA = __shfl_sync(0xffffffffu, bias, (2 * t) * 4);
            const float biasB = __shfl_sync(0xffffffffu, bias, (2 * t + 1) * 4);

            // Mask and online softmax per query row (columns 2t and 2t + 1 of the fragments). A unit needs the mask only
            // where the first query row's causal limit falls before its last token; elsewhere no token is masked for any
            // row (rows past nq have zero queries: finite scores, and their outputs are never written).
            const i64 abs0 = bk.start + tok0 + g;
            if (p.causal && bk.start + tok0 + 31 > sq.rStart + sq.rLen - p.tq) {
#pragma unroll
                for (int h = 0; h < 2; h++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int r = 2 * t + (e & 1);
                        const i64 pos = abs0 + 16 * h + 8 * (e >> 1);
                        const bool masked = r >= nq || pos > sq.rStart + sq.rLen - p.tq + (r % p.tq);
                        s[h][e] = masked ? NEG_INF : s[h][e] + sl[h][e] + ((e & 1) ? biasB : biasA);
                    }
                }
            } else {
#pragma unroll
                for (int h = 0; h < 2; h++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) s[h][e] += sl[h][e] + ((e & 1) ? biasB : biasA);
                }
            }
            float corr[2];
#pragma unroll
            for (int cc = 0; cc < 2; cc++) {
                float mx = fmaxf(fmaxf(s[0][cc], s[0][cc + 2]), fmaxf(s[1][cc], s[1][cc + 2]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
                const float mNew = fmaxf(mrow[cc], mx);
                corr[cc] = mNew == NEG_INF ? 1.f : exp2f(mrow[cc] - mNew);
                float sum = 0.f;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    s[h][cc] = mNew == NEG_INF ? 0.f : exp2f(s[h][cc] - mNew);
                    s[h][cc + 2] = mNew == NEG_INF ? 0.f : exp2f(s[h][cc + 2] - mNew);
                    sum += s[h][cc] + s[h][cc + 2];
                }
                lrow[cc] = fmaf(lrow[cc], corr[cc], sum);
                mrow[cc] = mNew;
            }
            if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {  // most units leave every row's max as it was
#pragma unroll
                for (int m = 0; m < VT; m++) {
                    acc[m][0] *= corr[0]; acc[m][1] *= corr[1]; acc[m][2] *= corr[0]; acc[m][3] *= corr[1];
                }
            }

#pragma unroll
            for (int h = 0; h < 2; h++) {
                // Probabilities as B fragments of P^T (tokens x rows): the score fragments transposed in registers.
                u32 h0, l0, h1, l1;
                split2(s[h][0], s[h][1], h0, l0);
                split2(s[h][2], s[h][3], h1, l1);
                const u32 ph0 = transpose8x8(h0), ph1 = transpose8x8(h1), pl0 = transpose8x8(l0), pl1 = transpose8x8(l1);

                // The 16 tokens' value bytes decoded straight into A fragments (channel slots x tokens): a lane's rows g
                // and g + 8 of every tile are the digits of its value bytes 4g .. 4g + 3 (tile 2k + b: digit k of bytes
                // 4g + 2b and 4g + 2b + 1), its columns the tokens 2t, 2t + 1, 2t + 8, 2t + 9 of the half, so that each
                // decoded digit pair is a fragment register as it is (no shared-memory round trip). Four chains (two
                // bytes x two token pairs) a step, one tile's fragment a step; each chain holds two tokens' bytes in the
                // fp16 halves of one word and divides both by 3 at once (tritStart, tritDigit), with no table lookups and
                // no integer-to-fp16 conversion per digit: with T = 1025 + x (x = the byte's value over 3^k),
                // T' = round(T · fp16(1/3) + 683) = 1025 + floor(x / 3) (one fma: T · (1/3) + 683 = 1025 + (x - 1) / 3,
                // whose fraction is 0 or ±1/3; fp16(1/3) is 8.1e-5 low, which moves it by at most 0.11, and from 1024 on
                // the fp16 grid is the integers), then x' = T' - 1025 and the digit x - 3x', all exact. The first step
                // starts from 1024 + x (the byte put into 1024's mantissa) with 683.5 for 683 (1025 - 1025 / 3 rounded to
                // the fp16 grid). Every byte 0 to 242 gives its 5 digits (checked exhaustively). Raw digit patterns
                // (d · 2^-24, fp16 subnormals, without the subtraction) were tried: the tensor cores' sums then differ
                // in the last bits.
                // Bytes past a row (4g + s >= vRB) are the next row's or padding: their digits land in rows of channels
                // 5 (4g + s) + k >= dv, which no MMA row mixes with others' and the state never reads.
                {
                    const u32 vS = stageS + buf * p.stage + p.offV + 4 * g + (u32)((16 * h + 2 * t) * vRB);
                    // Tokens 2t and 2t + 8 (even rows; 4-byte aligned where vRB is even) as one word each; tokens 2t + 1
                    // and 2t + 9 as words wo[pr][0] (bytes 0, 1 of the lane's 4) and wo[pr][1] (bytes 2, 3), at
                    // positions 2 + s and s - 2 where the odd rows sit 2 bytes off (VOFF 2), else one word.
                    constexpr int VOFF = GEO::FIXED && GEO::VRB % 2 == 0 ? GEO::VRB % 4 : -1;
                    u32 we[2], wo[2][2];
#pragma unroll
                    for (int pr = 0; pr < 2; pr++) {
                        const u32 ae = vS + (u32)(8 * pr * vRB), ao = ae + (u32)vRB;
                        if (VOFF == 0) { we[pr] = lds32(ae); wo[pr][0] = wo[pr][1] = lds32(ao); }
                        else if (VOFF == 2) { we[pr] = lds32(ae); wo[pr][0] = lds32(ao - 2); wo[pr][1] = lds32(ao + 2); }
                        else {
                            we[pr] = __funnelshift_r(lds32(ae & ~3u), lds32((ae & ~3u) + 4), 8 * (ae & 3u));
                            wo[pr][0] = wo[pr][1] = __funnelshift_r(lds32(ao & ~3u), lds32((ao & ~3u) + 4), 8 * (ao & 3u));
                        }
                    }
#pragma unroll
                    for (int b = 0; b < 2; b++) {
                        u32 tt[4], xx[4];
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            // Chain c: byte sl = 2b + (c & 1) of the token pair c >> 1, first token in the low half.
                            const int sl = 2 * b + (c & 1), so = VOFF == 2 ? (sl < 2 ? sl + 2 : sl - 2) : sl;
                            const u32 v = __byte_perm(we[c >> 1], wo[c >> 1][VOFF == 2 && sl >= 2], sl | ((4 + so) << 8));
                            tritStart(v, tt[c], xx[c]);
                        }
#pragma unroll
                        for (int k = 0; k < 5; k++) {
                            u32 a[4];
#pragma unroll
                            for (int c = 0; c < 4; c++) a[c] = k < 4 ? tritDigit(tt[c], xx[c], k) : xx[c];
                            mma(acc[2 * k + b], a[0], a[1], a[2], a[3], ph0, ph1);
                            mma(acc[2 * k + b], a[0], a[1], a[2], a[3], pl0, pl1);
                        }
                    }
                }
            }
        }

        // Each warp's state to shared memory, then one state per split.
#pragma unroll
        for (int cc = 0; cc < 2; cc++) {
            float l = lrow[cc];
            l += __shfl_xor_sync(0xffffffffu, l, 4);
            l += __shfl_xor_sync(0xffffffffu, l, 8);
            l += __shfl_xor_sync(0xffffffffu, l, 16);
            lrow[cc] = l;
        }
        __syncthreads();  // every warp is done with its staged values: scratch reuses them
        TL(4);
        if (g == 0) {
            myM[warp * ROWS + 2 * t] = mrow[0]; myM[warp * ROWS + 2 * t + 1] = mrow[1];
            myL[warp * ROWS + 2 * t] = lrow[0]; myL[warp * ROWS + 2 * t + 1] = lrow[1];
        }
        float* ws = scratch + warp * ROWS * dv;
#pragma unroll
        for (int m = 0; m < VT; m++) {
            const int c0 = 5 * (4 * g + 2 * (m & 1)) + (m >> 1), c1 = c0 + 5;  // rows g and g + 8 of tile m
            if (c0 < dv) { ws[(2 * t) * dv + c0] = acc[m][0]; ws[(2 * t + 1) * dv + c0] = acc[m][1]; }
            if (c1 < dv) { ws[(2 * t) * dv + c1] = acc[m][2]; ws[(2 * t + 1) * dv + c1] = acc[m][3]; }
        }
        __syncthreads();
        float* st = sq.states + (bh * (sq.qSplits + (sq.rLen + 31) / 32) + split) * ROWS * (2 + dv);
        for (int i = tid; i < ROWS * dv; i += THREADS) {
            const int r = i / dv, c = i % dv;
            float mx = NEG_INF;
            for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, myM[w * ROWS + r]);
            float a = 0.f, l = 0.f;
            if (mx != NEG_INF) {
                for (int w = 0; w < WARPS; w++) {
                    const float f = exp2f(myM[w * ROWS + r] - mx);
                    a = fmaf(f, scratch[(w * ROWS + r) * dv + c], a);
                    l = fmaf(f, myL[w * ROWS + r], l);
                }
            }
            // Σ p·(digit·mult + offset) = mult·Σ p·digit + offset·Σ p.
            st[ROWS * 2 + r * dv + c] = fmaf(bk.vMult, a, bk.vOffset * l);
            if (c == 0) { st[r] = mx; st[ROWS + r] = l; }
        }
    }

    // Splits merge in groups of 16: the last split of a group to finish merges the group's states into its first state's
    // place, the last group of this KV head to finish merges the groups' states into the output. (Counters: [BH] per
    // KV head, then [BH][groups]; each is reset by the block that finds it full.)
    const i64 nSplits = sq.qSplits + (sq.rLen + 31) / 32;
    const i64 bq = sq.row * (i64)gridDim.y + bh;  // the query's and the output's batch item x KV head
    const int stride = ROWS * (2 + dv), S = (int)nSplits, nG = (S + 15) / 16, grp = split / 16;
    float* base = sq.states + bh * nSplits * stride;
    float* wts = (float*)stageBase;  // [ROWS][16 or groups] each state's weight exp2(m_s - max)
    // One loop so that the merge is compiled once. Level 0 (more than one group): this split's group; level 1: the
    // groups' states (or, with one group, the splits') into the output.
    for (int level = nG > 1 ? 0 : 1; level < 2; level++) {
        const bool top = level == 1;
        int* c = top ? sq.counters + bh : sq.counters + gridDim.y + bh * nG + grp;
        const int n = top ? (nG > 1 ? nG : S) : min(16, S - 16 * grp);
        float* first = top ? base : base + (i64)16 * grp * stride;
        __threadfence();
        __syncthreads();
        if (!top || nG == 1) TL(5);
        if (tid == 0) {
            isLast = atomicAdd(c, 1) == n - 1;
            if (isLast) *c = 0;
        }
        __syncthreads();
        if (top) TL(8); else TL(6);
        if (!isLast) { TL(9); return; }
        __threadfence();
        mergeStates(first, (i64)(top && nG > 1 ? 16 : 1) * stride, n, dv, nq, top ? 0 : first, p.out + bq * nq * dv, wts, red);
        if (!top) TL(7);
    }
    TL(9);
}

// ES 1 (name suffix a after the metadata type): 1-bit keys scaled on the A side (see the main loop).
#define INSTANTIATE(OB, VPER, MT, ES, SUF) \
extern "C" __global__ void __launch_bounds__(THREADS, 4) vidkv_mma_##OB##_##VPER##_##MT##SUF(const Params p) { mmaBody<OB, VPER, MT, ES, RunTime>(p); }

#define INSTANTIATE_GEOMETRY(OB, VPER, MT, ES, SUF, CHO, CHE, RBO, RBE, VRB, DV) \
extern "C" __global__ void __launch_bounds__(THREADS, 4) vidkv_mma_##OB##_##VPER##_##MT##SUF##_##CHO##_##CHE##_##RBO##_##RBE##_##VRB##_##DV(const Params p) \
{ mmaBody<OB, VPER, MT, ES, Geometry<CHO, CHE, RBO, RBE, VRB, DV> >(p); }
""";
}
