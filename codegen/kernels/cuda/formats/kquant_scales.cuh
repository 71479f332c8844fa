// 6-bit scale/min unpacking shared by the Q4_K and Q5_K helpers (CUDA).
// scales[12]: bytes 0..3 sc[0..3] | sc[4..7] bits 4-5 in bits 6-7; bytes 4..7 m[0..3] |
// m[4..7] bits 4-5 in bits 6-7; bytes 8..11 sc[4..7] bits 0-3 | m[4..7] bits 0-3 << 4.
#ifndef GGUFC_CUDA_KQUANT_SCALES
#define GGUFC_CUDA_KQUANT_SCALES

namespace ggufc {

constexpr int KQUANT_SCALES_OFFSET = 4;
constexpr u32 SIX_BITS = 0x3Fu;

// The raw bytes sub-block s's scale and min come from, plus the f16 d and dmin.
struct KquantScaleBytes {
    u16 d;
    u16 dmin;
    u8 first;   // s < 4: sc byte s;      else byte s + 4 (low nibbles of sc, m)
    u8 second;  // s < 4: m byte s + 4;   else byte s - 4 (top bits of sc)
    u8 third;   // s >= 4: byte s (top bits of m); unused for s < 4
};

__device__ __forceinline__ KquantScaleBytes load_kquant_scales(const u8* block, int s) {
    const u8* packed = block + KQUANT_SCALES_OFFSET;
    KquantScaleBytes raw;
    raw.d = load_u16(block);
    raw.dmin = load_u16(block + 2);
    raw.first = packed[s < 4 ? s : s + 4];
    raw.second = packed[s < 4 ? s + 4 : s - 4];
    raw.third = packed[s];
    return raw;
}

// The same from a block's first 16 bytes loaded as one word (matvec_lanes.cu, and the
// embedding gather through load_kquant_with_head): d | dmin in .x, scales[0..3] in .y, [4..7]
// in .z, [8..11] in .w, so sub-block s's bytes are byte s % 4 of .y, .z and .w.
__device__ __forceinline__ KquantScaleBytes kquant_scales_of_head(const uint4& head, int s) {
    const int shift = 8 * (s % 4);
    const u32 byte0 = (head.y >> shift) & 0xFFu;  // scales[s % 4]
    const u32 byte4 = (head.z >> shift) & 0xFFu;  // scales[s % 4 + 4]
    const u32 byte8 = (head.w >> shift) & 0xFFu;  // scales[s % 4 + 8]
    const bool low = s < 4;
    KquantScaleBytes raw;
    raw.d = static_cast<u16>(head.x);
    raw.dmin = static_cast<u16>(head.x >> 16);
    raw.first = static_cast<u8>(low ? byte0 : byte8);
    raw.second = static_cast<u8>(low ? byte4 : byte0);
    raw.third = static_cast<u8>(byte4);
    return raw;
}

// ``F::load`` (F: Q4_K or Q5_K) with the head (d, dmin, scales) as one 16-byte load instead of
// five narrow ones: for kernels bound by the loads they issue (the embedding gather).
template <typename F>
__device__ __forceinline__ typename F::Raw load_kquant_with_head(const u8* block, int part) {
    typename F::Raw raw;
    raw.scales = kquant_scales_of_head(*reinterpret_cast<const uint4*>(block), part);
    F::load_quants(block, part, raw);
    return raw;
}

// Sub-block ``s`` scale (d * sc[s]) and offset (dmin * m[s]).
__device__ __forceinline__ void kquant_scale_min(const KquantScaleBytes& raw, int s, float& scale,
                                                 float& offset) {
    // both forms, then a select: the lanes of a warp decode sub-blocks on both sides of 4, so
    // a branch would run both sides one after the other anyway, with a reconvergence
    const u32 first = raw.first;
    const u32 second = raw.second;
    const u32 third = raw.third;
    const bool low = s < 4;
    const u32 sc = low ? first & SIX_BITS : (first & 0xFu) | ((second >> 6) << 4);
    const u32 m = low ? second & SIX_BITS : (first >> 4) | ((third >> 6) << 4);
    scale = __half2float(__ushort_as_half(raw.d)) * small_uint_to_float(sc, 0);
    offset = __half2float(__ushort_as_half(raw.dmin)) * small_uint_to_float(m, 0);
}

// ---- the mma matvec's scales (matvec_mma.cu) ----
// Lane (g, t) holds qs span t of a block: sub-block 2t in the low nibbles (side 0), 2t + 1 in
// the high (side 1).  Its A pairs are built from the quants OR-ed into a 16-bit float whose
// mantissa steps by 1 (1024.0 in f16, 128.0 in bf16), one fused multiply-add a pair:
// * float16: A = sc * q, exact (sc <= 63, q <= 31: <= 1953 < 2048), one A a pair (PARTS 1);
//   a low-nibble quant as 1024 + q, a high one as 1024 + 16 q (not shifted down):
//   A = biased * mul[side][0] + add[side][0].
// * bfloat16 (8-bit mantissa): sc * q is not exact, so sc = 8 sc_hi + sc_lo and the A pairs
//   are q * sc_lo and q * sc_hi (<= 7 * 31 = 217, exact), two mmas a pair (PARTS 2, the second
//   weighing part_weight 8); every quant as 128 + q (a high nibble shifted down first).
// offset_pair: (m, m) of the side's sub-block, the A of the offsets' mma; d and dmin apply
// once a block.
template <typename T>
struct KquantMmaScales;

template <>
struct KquantMmaScales<__half> {
    static constexpr int PARTS = 1;
    static constexpr bool BFLOAT = false;
    __device__ static constexpr float part_weight(int) { return 1.0f; }
    __half2 mul[2][PARTS];
    __half2 add[2][PARTS];
    u32 offset_pair[2];
    float d;
    float dmin;
};

template <>
struct KquantMmaScales<__nv_bfloat16> {
    static constexpr int PARTS = 2;
    static constexpr bool BFLOAT = true;
    // the weight of part p's products in a block's sum: sc = 8 sc_hi + sc_lo
    __device__ static constexpr float part_weight(int p) { return p == 0 ? 1.0f : 8.0f; }
    __nv_bfloat162 mul[2][PARTS];
    __nv_bfloat162 add[2][PARTS];
    u32 offset_pair[2];
    float d;
    float dmin;
};

// The constants of the scale fold, from tc::Pair's (formats here come after tensor_core.cuh)
constexpr u32 MMA_HALF_MAGIC = tc::PairMath<__half>::MAGIC;                 // (1024, 1024)
constexpr u32 MMA_BFLOAT_MAGIC = tc::PairMath<__nv_bfloat16>::MAGIC;        // (128, 128)
constexpr u32 MMA_HALF_SIXTEENTH = 0x2C002C00u;                            // (1/16, 1/16)

// byte ``index`` (< 128) of ``bytes`` as the exact pair (b, b): the byte and the magic's high
// byte twice (BASE + b), less BASE
__device__ __forceinline__ __half2 half_pair_of_byte(u32 bytes, int index) {
    const u32 selector = 0x4040u | (static_cast<u32>(index) * 0x0101u);
    return __hsub2(half2_of_bits(__byte_perm(bytes, MMA_HALF_MAGIC >> 8 & 0xFFu, selector)),
                   half2_of_bits(MMA_HALF_MAGIC));
}

__device__ __forceinline__ __nv_bfloat162 bfloat_pair_of_byte(u32 bytes, int index) {
    const u32 selector = 0x4040u | (static_cast<u32>(index) * 0x0101u);
    return __hsub2(bfloat2_of_bits(__byte_perm(bytes, MMA_BFLOAT_MAGIC >> 8 & 0xFFu, selector)),
                   bfloat2_of_bits(MMA_BFLOAT_MAGIC));
}

// The sub-block scales (sc, byte 0: side 0, byte 1: side 1) and offsets of lane t's span.
struct KquantMmaBytes {
    u32 sc;
    u32 m;
};

__device__ __forceinline__ KquantMmaBytes kquant_mma_bytes(const uint4& head, int t) {
    // sub-blocks 2t, 2t + 1 are bytes 0, 1 of each scales word shifted by 16 (t odd)
    const int shift = 16 * (t & 1);
    const u32 low_sc = head.y >> shift;  // sc[0..3] | top bits of sc[4..7]
    const u32 low_m = head.z >> shift;   // m[0..3] | top bits of m[4..7]
    const u32 high = head.w >> shift;    // sc[4..7] low nibbles | m[4..7] << 4
    const bool upper = t >= 2;           // sub-blocks 4..7
    KquantMmaBytes b;
    b.sc = upper ? (high & 0x0F0Fu) | ((low_sc >> 2) & 0x3030u) : low_sc & 0x3F3Fu;
    b.m = upper ? ((high >> 4) & 0x0F0Fu) | ((low_m >> 2) & 0x3030u) : low_m & 0x3F3Fu;
    return b;
}

template <typename T>
__device__ __forceinline__ KquantMmaScales<T> kquant_mma_scales(const uint4& head, int t);

template <>
__device__ __forceinline__ KquantMmaScales<__half> kquant_mma_scales<__half>(const uint4& head, int t) {
    const KquantMmaBytes bytes = kquant_mma_bytes(head, t);
    KquantMmaScales<__half> s;
    const __half2 sc_low = half_pair_of_byte(bytes.sc, 0);
    const __half2 sc_high = half_pair_of_byte(bytes.sc, 1);
    // sc * (1024 + q) - 1024 sc; (sc / 16) * (1024 + 16 q) - 64 sc
    s.mul[0][0] = sc_low;
    s.add[0][0] = __hmul2(sc_low, half2_of_bits(tc::Pair<__half>::constant(-1024)));
    s.mul[1][0] = __hmul2(sc_high, half2_of_bits(MMA_HALF_SIXTEENTH));
    s.add[1][0] = __hmul2(sc_high, half2_of_bits(tc::Pair<__half>::constant(-64)));
    s.offset_pair[0] = half2_bits(half_pair_of_byte(bytes.m, 0));
    s.offset_pair[1] = half2_bits(half_pair_of_byte(bytes.m, 1));
    s.d = __half2float(__ushort_as_half(static_cast<u16>(head.x & 0xFFFFu)));
    s.dmin = __half2float(__ushort_as_half(static_cast<u16>(head.x >> 16)));
    return s;
}

template <>
__device__ __forceinline__ KquantMmaScales<__nv_bfloat16> kquant_mma_scales<__nv_bfloat16>(
    const uint4& head, int t) {
    const KquantMmaBytes bytes = kquant_mma_bytes(head, t);
    KquantMmaScales<__nv_bfloat16> s;
    const u32 parts[2] = {bytes.sc & 0x0707u, (bytes.sc >> 3) & 0x0707u};  // sc_lo, sc_hi (bytes 0, 1)
#pragma unroll
    for (int side = 0; side < 2; ++side) {
#pragma unroll
        for (int p = 0; p < 2; ++p) {
            const __nv_bfloat162 v = bfloat_pair_of_byte(parts[p], side);
            // v * (128 + q) - 128 v
            s.mul[side][p] = v;
            s.add[side][p] = __hmul2(v, bfloat2_of_bits(tc::Pair<__nv_bfloat16>::constant(-128)));
        }
        s.offset_pair[side] = bfloat2_bits(bfloat_pair_of_byte(bytes.m, side));
    }
    s.d = __half2float(__ushort_as_half(static_cast<u16>(head.x & 0xFFFFu)));
    s.dmin = __half2float(__ushort_as_half(static_cast<u16>(head.x >> 16)));
    return s;
}

// The A registers of a lane's biased pair (quants OR-ed into the type's unit-step float) of
// ``side``: one a part.
__device__ __forceinline__ void kquant_mma_pair(u32 biased, int side, const KquantMmaScales<__half>& s,
                                                u32 (&a)[1]) {
    a[0] = half2_bits(__hfma2(half2_of_bits(biased), s.mul[side][0], s.add[side][0]));
}

__device__ __forceinline__ void kquant_mma_pair(u32 biased, int side,
                                                const KquantMmaScales<__nv_bfloat16>& s, u32 (&a)[2]) {
#pragma unroll
    for (int p = 0; p < 2; ++p) {
        a[p] = bfloat2_bits(__hfma2(bfloat2_of_bits(biased), s.mul[side][p], s.add[side][p]));
    }
}

// The A registers of a lane's row r (0: g, 1: g + 8) in mma (i, side) of every part: its biased
// pairs of bytes 0, 2 (``low``, k slots 2t, 2t + 1) and of bytes 1, 3 (``upper``, 2t + 8, 2t + 9).
template <typename T>
__device__ __forceinline__ void kquant_mma_row(u32 low, u32 upper, int side, const KquantMmaScales<T>& s,
                                               int r, u32 (&a)[KquantMmaScales<T>::PARTS][4]) {
    constexpr int PARTS = KquantMmaScales<T>::PARTS;
    u32 low_parts[PARTS];
    u32 upper_parts[PARTS];
    kquant_mma_pair(low, side, s, low_parts);
    kquant_mma_pair(upper, side, s, upper_parts);
#pragma unroll
    for (int p = 0; p < PARTS; ++p) {
        a[p][r] = low_parts[p];
        a[p][r + 2] = upper_parts[p];
    }
}

// What the Q4_K and Q5_K helpers share for the mma matvec (their structs derive from it): a
// lane's span of 8 words, two sides, the activations of side s of span t at 64 t + 32 s of the
// block, the scales from the row's header.
struct KquantMmaSpan {
    static constexpr int MMA_WORDS = 8;
    static constexpr int MMA_SIDES = 2;
    template <typename T>
    using MmaScales = KquantMmaScales<T>;

    __device__ static __forceinline__ int mma_x_offset(int t, int side) { return 64 * t + 32 * side; }

    template <typename T, typename Row>
    __device__ static __forceinline__ MmaScales<T> mma_scales(const Row& row, int t) {
        return kquant_mma_scales<T>(row.head, t);
    }
};

// word i of a lane's 32-byte span
__device__ __forceinline__ u32 span_word(const uint4 (&span)[2], int i) {
    const uint4 v = span[i / 4];
    return (i % 4 == 0) ? v.x : (i % 4 == 1) ? v.y : (i % 4 == 2) ? v.z : v.w;
}

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// {d * sc[part], -(dmin * m[part])} of a Q4_K / Q5_K super-block from its 16-byte header
// (f16 d, f16 dmin, the 12 bytes of 6-bit scales and mins; see formats/kquant_scales.cuh).
template <typename T>
__device__ __forceinline__ u32 kquant_scale_table_word(const u8* header, int part) {
    const uint4 h = *reinterpret_cast<const uint4*>(header);
    const int shift = 8 * (part % 4);
    const u32 first = (h.y >> shift) & 0xFFu;   // scales byte part % 4
    const u32 second = (h.z >> shift) & 0xFFu;  // scales byte part % 4 + 4
    const u32 third = (h.w >> shift) & 0xFFu;   // scales byte part % 4 + 8
    u32 sc;
    u32 m;
    if (part < 4) {
        sc = first & 0x3Fu;
        m = second & 0x3Fu;
    } else {
        sc = (third & 0xFu) | ((first >> 6) << 4);
        m = (third >> 4) | ((second >> 6) << 4);
    }
    const float d = __half2float(__ushort_as_half(static_cast<u16>(h.x & 0xFFFFu)));
    const float dmin = __half2float(__ushort_as_half(static_cast<u16>(h.x >> 16)));
    return Pair<T>::pack(d * static_cast<float>(sc), -(dmin * static_cast<float>(m)));
}

// The head of a Q4_K / Q5_K super-block (f16 d, f16 dmin, the 12 bytes of 6-bit scales and
// mins) as the staged mma matvec (matvec_mma_staged.cu) keeps it for the block's 4 K steps:
// the scales and mins one a byte, d in float32 with -2^23 d, and -dmin.  A part's d * sc is
// one byte permute (sc into the mantissa of 2^23: the float 2^23 + sc) and one fused
// multiply-add, (2^23 + sc) * d - 2^23 d rounded once: exactly float32 d * sc.  Its m is a
// pair of exact small integers (BASE + m by a byte permute, then - BASE), an mma's A.
struct KquantHead {
    u32 scales[2];  // sc[0..3], sc[4..7]
    u32 mins[2];    // m[0..3], m[4..7]
    float d;
    float d_bias;  // -2^23 d
    float minus_dmin;

    __device__ static __forceinline__ KquantHead of(const u8* header, int /* the lane's pair */) {
        constexpr u32 LOW_SIX_BITS = 0x3F3F3F3Fu;
        constexpr u32 NIBBLES = 0x0F0F0F0Fu;
        constexpr u32 TOP_TWO_AT_FOUR = 0x30303030u;  // bits 6-7 of each byte, shifted down by 2
        const uint4 h = *reinterpret_cast<const uint4*>(header);
        KquantHead head;
        head.scales[0] = h.y & LOW_SIX_BITS;
        head.mins[0] = h.z & LOW_SIX_BITS;
        head.scales[1] = (h.w & NIBBLES) | ((h.y >> 2) & TOP_TWO_AT_FOUR);
        head.mins[1] = ((h.w >> 4) & NIBBLES) | ((h.z >> 2) & TOP_TWO_AT_FOUR);
        head.d = __half2float(__ushort_as_half(static_cast<u16>(h.x & 0xFFFFu)));
        head.d_bias = -FLOAT_2POW23 * head.d;
        head.minus_dmin = -__half2float(__ushort_as_half(static_cast<u16>(h.x >> 16)));
        return head;
    }

    // d * sc[part]
    __device__ __forceinline__ float scale(int part) const {
        // bytes {byte part % 4 of the word, 0, 0, 0x4B}: the float 2^23 + sc
        const u32 select = 0x7440u | static_cast<u32>(part % 4);
        return fmaf(__uint_as_float(__byte_perm(scales[part / 4], FLOAT_2POW23_BITS, select)), d, d_bias);
    }

    // (m[part], m[part]) as a pair of T
    template <typename T>
    __device__ __forceinline__ u32 min_pair(int part) const {
        // bytes {m, BASE's high byte, m, BASE's high byte}: BASE + m in each half
        const u32 select = 0x7050u | static_cast<u32>(part % 4) * 0x0101u;
        return PairMath<T>::template unbias<0>(__byte_perm(mins[part / 4], PairMath<T>::MAGIC, select));
    }
};

// The staged mma matvec's scales of Q4_K and Q5_K (tc::StagedQ4_K, tc::StagedQ5_K; the
// contract: tensor_core.cuh): a K group's sub-block d * sc as its one scale, and its m as pairs
// whose sums times x the matvec scales by -dmin a block (HAS_OFFSETS), from the block's head
// read once for its 4 steps (KquantHead)
struct KquantStagedScales {
    static constexpr int SCALES_A_PART = 1;
    static constexpr bool HAS_OFFSETS = true;
    static constexpr bool VALUES_FROM_HEAD = false;
    using Head = KquantHead;
    __device__ static __forceinline__ void scales(const Head& head, int k_group, int step,
                                                  float (&scale)[SCALES_A_PART]) {
        scale[0] = head.scale(2 * (step & 3) + k_group);
    }
    template <typename T>
    __device__ static __forceinline__ u32 min_pair(const Head& head, int k_group, int step) {
        return head.template min_pair<T>(2 * (step & 3) + k_group);
    }
    __device__ static __forceinline__ float offset_scale(const Head& head) { return head.minus_dmin; }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_KQUANT_SCALES
