// Q6_K dequantize helper (CUDA).  Block (210 bytes, 256 weights): u8 ql[128] | u8 qh[64] |
// i8 scales[16] | f16 d.  Part p (weights 32p..32p+31) is half h = p/4, quarter t = p%4:
// weight l has nibble (ql[64h + 32*(t%2) + l] >> 4*(t/2)) & 15 and top bits
// (qh[32h + l] >> 2t) & 3; y = (d * scales[2p + l/16]) * (q - 32).  Blocks are 210 bytes,
// so only 2-byte loads are aligned.  ``load`` only issues loads; ``decode_values`` (exact
// quants) and ``decode_biased`` (biased ones, for the reducing kernels; prelude) do the
// arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q6_K
#define GGUFC_CUDA_FORMAT_Q6_K

namespace ggufc {

struct Q6_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 210;
    static constexpr bool HAS_OFFSET = false;
    static constexpr int PARTS = 8;
    static constexpr int QH_OFFSET = 128;
    static constexpr int SCALES_OFFSET = 192;
    static constexpr int D_OFFSET = 208;
    static constexpr int ZERO_POINT = 32;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 6;  // bits of a quant (the biased field of float32 x)
    static constexpr int SUB_BLOCK_WEIGHTS = 16;

    struct Raw {
        u16 ql[16];
        u16 qh[16];
        u16 scales;  // the two i8 scales of the part's sub-blocks
        u16 d;
    };

    __device__ static __forceinline__ Raw load(const u8* block, int part) {
        const int half_index = part / 4;
        const int quarter = part % 4;
        Raw raw;
        load_u16s<16>(block + 64 * half_index + PART_WEIGHTS * (quarter % 2), raw.ql);
        load_u16s<16>(block + QH_OFFSET + PART_WEIGHTS * half_index, raw.qh);
        raw.scales = load_u16(block + SCALES_OFFSET + 2 * part);
        raw.d = load_u16(block + D_OFFSET);
        return raw;
    }

    // d * the scales of the part's two sub-blocks
    __device__ static __forceinline__ void sub_block_scales(const Raw& raw, float& scale_lo, float& scale_hi) {
        const float d = __half2float(__ushort_as_half(raw.d));
        scale_lo = d * static_cast<float>(static_cast<i8>(raw.scales & 0xFF));
        scale_hi = d * static_cast<float>(static_cast<i8>(raw.scales >> 8));
    }

    // the quants of weights 4i..4i+3 of the part, a byte each: word i of its ql and qh bytes
    __device__ static __forceinline__ u32 quant_bytes(const Raw& raw, int part, int i) {
        const int quarter = part % 4;
        const u32 low = (word_of(raw.ql, i) >> (4 * (quarter / 2))) & LOW_NIBBLES;
        const u32 top = (word_of(raw.qh, i) >> (2 * quarter)) & LOW_TWO_BITS;
        return low | (top << 4);
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const int quarter = part % 4;
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        affine = make_affine(scale_lo, scale_hi, 0.0f, 0.0f);
        const int nibble_shift = 4 * (quarter / 2);
        const int top_shift = 2 * quarter;
#pragma unroll
        for (int l = 0; l < PART_WEIGHTS; ++l) {
            const u32 q = ((static_cast<u32>(byte_of(raw.ql, l)) >> nibble_shift) & 0xFu) |
                          (((static_cast<u32>(byte_of(raw.qh, l)) >> top_shift) & 3u) << 4);
            v[l] = small_uint_to_float(q, ZERO_POINT);
        }
    }

    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        affine = biased_affine<FIELD_BITS>(scale_lo, scale_hi, ZERO_POINT * scale_lo, ZERO_POINT * scale_hi);
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            biased_floats<FIELD_BITS>(quant_bytes(raw, part, i), v + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products"): a sum a sub-block
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int part, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        int sums[2] = {0, 0};
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            int& sum = sums[i / (SUB_BLOCK_WEIGHTS / 4)];
            sum = dot_word(x, i, quant_bytes(raw, part, i), sum);
        }
        return x.unit * (scale_lo * __int2float_rn(sums[0]) + scale_hi * __int2float_rn(sums[1])) -
               ZERO_POINT * (scale_lo * x_sum[0] + scale_hi * x_sum[1]);
    }

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }

    // ---- tensor-core decode (prelude: "weights as pairs of small integers") ----
    // pair j = weights 2j, 2j+1 of the part, each its value + PAIR_ZERO_POINT.
    // part p + PART_PARTNER_OFFSET reads the same quant bytes as part p (the other nibble)
    static constexpr int PART_PARTNER_OFFSET = 2;
    static constexpr int PAIR_ZERO_POINT = ZERO_POINT;
    struct PartWords {
        u32 ql[8];
        u32 qh[8];
        u32 scales;
        u32 d;
    };

    // WIDE: the spans by load_words_wide (prelude), whose whole 16-byte granules stay inside
    // the block: ql and qh end by byte 192
    template <bool WIDE = false>
    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int part) {
        const int half_index = part / 4;
        const int quarter = part % 4;
        PartWords words;
        load_words_by<WIDE>(block + 64 * half_index + PART_WEIGHTS * (quarter % 2), words.ql);
        load_words_by<WIDE>(block + QH_OFFSET + PART_WEIGHTS * half_index, words.qh);
        words.scales = load_u16(block + SCALES_OFFSET + 2 * part);
        words.d = load_u16(block + D_OFFSET);
        return words;
    }

    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int part,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        const int quarter = part % 4;
        const float d = __half2float(__ushort_as_half(static_cast<u16>(words.d)));
        const float scale_lo = d * static_cast<float>(static_cast<i8>(words.scales & 0xFFu));
        const float scale_hi = d * static_cast<float>(static_cast<i8>(words.scales >> 8));
        affine = make_affine(scale_lo, scale_hi, 0.0f, 0.0f);
        const int nibble_shift = 4 * (quarter / 2);
        const int top_shift = 2 * quarter;
        constexpr u32 TWO_BIT_PAIR_MASK = 0x00030003u;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 low = (byte_pair(words.ql[j / 2], j) >> nibble_shift) & NIBBLE_PAIR_MASK;
            const u32 top = (byte_pair(words.qh[j / 2], j) >> top_shift) & TWO_BIT_PAIR_MASK;
            pairs[j] = low | (top << 4);
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// Step s is parts p = 2q + g (q = s % 4, g the K group) of super-block s / 4: half h = q / 2,
// quarter t = 2(q % 2) + g.  Weight l: nibble 4(q % 2) of ql[64h + 32g + l], bits 2t, 2t+1 of
// qh[32h + l]; scale d * scales[2p + l / 16].  Body: ql[64h .. 64h+63] then qh[32h .. +31];
// header: scales and d (block bytes 192 .. 209).  210-byte blocks start on any 2-byte boundary.
struct StagedQ6_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 210;
    static constexpr int QH_OFFSET = 128;
    static constexpr int SCALES_OFFSET = 192;
    static constexpr int D_FROM_SCALES = 16;
    static constexpr int ZERO_POINT = 32;
    static constexpr bool ALIGNED = false;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 18;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time, its scales included)
    static constexpr int UNIT_STEPS = 4;
    static constexpr int UNIT_BYTES = BLOCK_BYTES;

    __device__ static __forceinline__ int block_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int segment, int step) {
        const int half_index = (step & 3) >> 1;
        return block_start(step) + (segment == 0 ? 64 * half_index : QH_OFFSET + 32 * half_index);
    }
    __device__ static __forceinline__ int header_start(int step) {
        return block_start(step) + SCALES_OFFSET;
    }

    // {d * scales[2 part], d * scales[2 part + 1]}
    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* scales, int part) {
        const u32 pair_bits = load_shared_u16(scales + 2 * part);
        const float d = __half2float(__ushort_as_half(
            static_cast<u16>(load_shared_u16(scales + D_FROM_SCALES))));
        const float low = static_cast<float>(static_cast<i8>(pair_bits & 0xFFu));
        const float high = static_cast<float>(static_cast<i8>(pair_bits >> 8));
        return Pair<T>::pack(d * low, d * high);
    }

    // The quants of K group ``k_group`` of a step at the lane's k slots as exact pairs of
    // q - ZERO_POINT (fragment's layout, unscaled)
    template <typename T>
    __device__ static __forceinline__ void values(const u8* body, const u8* body_1, int k_group,
                                                  int pair, int step, u32 (&v)[2][2]) {
        const int odd_quarter_pair = step & 1;  // q % 2: the high nibbles of ql
        // bits 2t, t = 2(q % 2) + g, nibble q % 2: the f16 shift 2g + 4 is at most 6
        const WideNibbles<T, 2, 6, ZERO_POINT> nibbles(odd_quarter_pair,
                                                       2 * (2 * odd_quarter_pair + k_group));
        const ByteQuad ql = load_byte_quad(body + 32 * k_group, pair);
        const ByteQuad qh = load_byte_quad(body_1, pair);
        v[0][0] = nibbles.first(ql.w01, qh.w01);
        v[0][1] = nibbles.second(ql.w01, qh.w01);
        v[1][0] = nibbles.first(ql.w23, qh.w23);
        v[1][1] = nibbles.second(ql.w23, qh.w23);
    }

    // values scaled by the table's pairs: written out rather than through values, which
    // would reorder the matmul's decode and scaling (its cubin changes; the measured order
    // is this one)
    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8* body_1, u32 table,
                                                    int k_group, int pair, int step,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const int odd_quarter_pair = step & 1;
        const WideNibbles<T, 2, 6, ZERO_POINT> nibbles(odd_quarter_pair,
                                                       2 * (2 * odd_quarter_pair + k_group));
        const ByteQuad ql = load_byte_quad(body + 32 * k_group, pair);
        const ByteQuad qh = load_byte_quad(body_1, pair);
        const u32 scale_low = low_pair(table);    // weights 0..15 of the part
        const u32 scale_high = high_pair(table);  // weights 16..31
        b[0][0] = Math::mul(nibbles.first(ql.w01, qh.w01), scale_low);
        b[0][1] = Math::mul(nibbles.second(ql.w01, qh.w01), scale_low);
        b[1][0] = Math::mul(nibbles.first(ql.w23, qh.w23), scale_high);
        b[1][1] = Math::mul(nibbles.second(ql.w23, qh.w23), scale_high);
    }

    // The staged mma matvec's scales (matvec_mma_staged.cu): d * scales[2 part + h] of part
    // 2 (step % 4) + k_group, in float32, one for each half h of its 32 weights
    static constexpr int SCALES_A_PART = 2;
    static constexpr bool HAS_OFFSETS = false;
    static constexpr bool VALUES_FROM_HEAD = false;
    __device__ static __forceinline__ void scales(const u8*, const u8* header, int k_group, int step,
                                                  float (&scale)[SCALES_A_PART]) {
        const int part = 2 * (step & 3) + k_group;
        const u32 pair_bits = load_shared_u16(header + 2 * part);
        const float d = __half2float(__ushort_as_half(static_cast<u16>(load_shared_u16(header + D_FROM_SCALES))));
        scale[0] = d * static_cast<float>(static_cast<i8>(pair_bits & 0xFFu));
        scale[1] = d * static_cast<float>(static_cast<i8>(pair_bits >> 8));
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q6_K
