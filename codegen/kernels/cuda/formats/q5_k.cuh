// Q5_K dequantize helper (CUDA).  Block (176 bytes, 256 weights): f16 d | f16 dmin | u8
// scales[12] | u8 qh[32] | u8 qs[128].  Part p is sub-block p: nibbles as in Q4_K, bit 4 of
// weight l is bit p of qh[l]; y = (d*sc[p]) * q - dmin*m[p].  176 is a multiple of 16 and qh,
// qs start at bytes 16 and 48: all loads are aligned 16-byte loads.  ``load`` only issues
// loads; ``decode_values`` (exact quants) and ``decode_biased`` (biased ones, for the reducing
// kernels; prelude) do the arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q5_K
#define GGUFC_CUDA_FORMAT_Q5_K

namespace ggufc {

struct Q5_K : KquantMmaSpan {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 176;
    static constexpr bool HAS_OFFSET = true;
    static constexpr int PARTS = 8;
    static constexpr int QH_OFFSET = 16;
    static constexpr int QS_OFFSET = 48;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 5;  // bits of a quant (the biased field of float32 x)

    struct Raw {
        KquantScaleBytes scales;
        uint4 qh[2];
        uint4 qs[2];
    };

    __device__ static __forceinline__ Raw load(const u8* block, int part) {
        Raw raw;
        raw.scales = load_kquant_scales(block, part);
        load_quants(block, part, raw);
        return raw;
    }

    // ``load`` with the head as one 16-byte load (kquant_scales.cuh)
    __device__ static __forceinline__ Raw load_with_head(const u8* block, int part) {
        return load_kquant_with_head<Q5_K>(block, part);
    }

    // the part's quant bytes (its partner part's too: the other nibble), without the scales
    __device__ static __forceinline__ void load_quants(const u8* block, int part, Raw& raw) {
        load_u128s<2>(block + QH_OFFSET, raw.qh);
        load_u128s<2>(block + QS_OFFSET + PART_WEIGHTS * (part / 2), raw.qs);
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        float scale;
        float offset;
        kquant_scale_min(raw.scales, part, scale, offset);
        affine = make_affine(scale, scale, offset, offset);
        const int shift = 4 * (part % 2);
#pragma unroll
        for (int j = 0; j < PART_WEIGHTS; ++j) {
            const u32 q = ((static_cast<u32>(byte_of(raw.qs, j)) >> shift) & 0xFu) |
                          (((static_cast<u32>(byte_of(raw.qh, j)) >> part) & 1u) << 4);
            v[j] = small_uint_to_float(q, 0);
        }
    }

    // the quants of weights 4i..4i+3 of the part, a byte each: word i of its nibbles and of
    // its top bits
    __device__ static __forceinline__ u32 quant_bytes(const Raw& raw, int part, int i) {
        const u32 low = (word_of(raw.qs, i) >> (4 * (part % 2))) & LOW_NIBBLES;
        const u32 top = (word_of(raw.qh, i) >> part) & LOW_BITS;
        return low | (top << 4);
    }

    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        float scale;
        float offset;
        kquant_scale_min(raw.scales, part, scale, offset);
        affine = biased_affine<FIELD_BITS>(scale, scale, offset, offset);
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            biased_floats<FIELD_BITS>(quant_bytes(raw, part, i), v + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products")
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int part, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        float scale;
        float offset;
        kquant_scale_min(raw.scales, part, scale, offset);
        int sum = 0;
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            sum = dot_word(x, i, quant_bytes(raw, part, i), sum);
        }
        return scale * x.unit * __int2float_rn(sum) - offset * (x_sum[0] + x_sum[1]);
    }

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }

    // ---- weights as the A operand of mma.sync (matvec_mma.cu) ----
    // As Q4_K's, with bit 4 of weight l of sub-block s in bit s of qh[l]: lane t's side 0 bit
    // is bit 2t, side 1's bit 2t + 1, of the same byte l as the nibble.  Each goes where the
    // nibble's magic mantissa takes it (KquantMmaScales): float16 bit 4 of a low pair (1024 +
    // q) and bit 8 of a high one (1024 + 16 q), bfloat16 bit 4 of both (128 + q), q <= 31.
    struct MmaRow {
        uint4 head;   // f16 d | f16 dmin | scales[12]
        uint4 qh[2];  // every lane: the high bits of bytes l = 0..31 of each span
        uint4 qs[2];  // qs span t
    };

    __device__ static __forceinline__ MmaRow load_mma_row(const u8* block, int t) {
        MmaRow row;
        row.head = load_u128_readonly(block);
        row.qh[0] = load_u128_readonly(block + QH_OFFSET);
        row.qh[1] = load_u128_readonly(block + QH_OFFSET + 16);
        row.qs[0] = load_u128_readonly(block + QS_OFFSET + 32 * t);
        row.qs[1] = load_u128_readonly(block + QS_OFFSET + 32 * t + 16);
        return row;
    }

    // the A registers of mma (i, side), a set a part (KquantMmaScales): rows g, g + 8 at
    // bytes 0, 2, then at bytes 1, 3
    template <typename T>
    __device__ static __forceinline__ void mma_a(const MmaRow (&rows)[2], const MmaScales<T> (&s)[2], int t,
                                                 int i, int side, u32 (&a)[MmaScales<T>::PARTS][4]) {
        // the bits of bytes 0, 2 at bit 0 of each half (side 0; side 1: bit 1)
        constexpr u32 BITS = 0x00010001u;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const u32 word = span_word(rows[r].qs, i);
            const u32 high = span_word(rows[r].qh, i) >> (2 * t);
            u32 low;
            u32 upper;
            if constexpr (MmaScales<T>::BFLOAT) {
                // every quant as 128 + q: the high nibble shifted down, each fifth bit to bit 4
                const u32 nibbles = side == 0 ? word : word >> 4;
                const u32 low_bits = side == 0 ? (high << 4) & (BITS << 4) : (high << 3) & (BITS << 4);
                const u32 upper_bits = side == 0 ? (high >> 4) & (BITS << 4) : (high >> 5) & (BITS << 4);
                low = (nibbles & NIBBLE_PAIR_MASK) | low_bits | MMA_BFLOAT_MAGIC;
                upper = ((nibbles >> 8) & NIBBLE_PAIR_MASK) | upper_bits | MMA_BFLOAT_MAGIC;
            } else {
                // side 0: bit 0 (bytes 0, 2) or 8 (1, 3) to bit 4; side 1: bit 1 or 9 to bit 8
                const u32 mask = side == 0 ? NIBBLE_PAIR_MASK : NIBBLE_PAIR_MASK << 4;
                const u32 low_bits = side == 0 ? (high << 4) & (BITS << 4) : (high << 7) & (BITS << 8);
                const u32 upper_bits = side == 0 ? (high >> 4) & (BITS << 4) : (high >> 1) & (BITS << 8);
                low = (word & mask) | low_bits | MMA_HALF_MAGIC;
                upper = ((word >> 8) & mask) | upper_bits | MMA_HALF_MAGIC;
            }
            kquant_mma_row(low, upper, side, s[r], r, a);
        }
    }

    // ---- tensor-core decode (prelude: "weights as pairs of small integers") ----
    // pair j = weights 2j, 2j+1 of the part, each its value + PAIR_ZERO_POINT.
    // part p + PART_PARTNER_OFFSET reads the same quant bytes as part p (the other nibble)
    static constexpr int PART_PARTNER_OFFSET = 1;
    static constexpr int PAIR_ZERO_POINT = 0;
    struct PartWords {
        KquantScaleBytes scales;
        u32 qh[8];
        u32 qs[8];
    };

    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int part) {
        PartWords words;
        words.scales = load_kquant_scales(block, part);
        load_words<8>(block + QH_OFFSET, words.qh);
        load_words<8>(block + QS_OFFSET + PART_WEIGHTS * (part / 2), words.qs);
        return words;
    }

    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int part,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        float scale;
        float offset;
        kquant_scale_min(words.scales, part, scale, offset);
        affine = make_affine(scale, scale, offset, offset);
        const int shift = 4 * (part % 2);
        constexpr u32 BIT_PAIR_MASK = 0x00010001u;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 low = (byte_pair(words.qs[j / 2], j) >> shift) & NIBBLE_PAIR_MASK;
            const u32 top = (byte_pair(words.qh[j / 2], j) >> part) & BIT_PAIR_MASK;
            pairs[j] = low | (top << 4);
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// Step s is parts 2q, 2q+1 (q = s % 4) of super-block s / 4: nibbles of qs[32q ..] (block
// bytes 48 + 32q ..) as in Q4_K, fifth bit = bit (2q + k group) of qh[0..31] (bytes 16..47).
struct StagedQ5_K : KquantStagedScales {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 176;
    static constexpr int QH_OFFSET = 16;
    static constexpr int QS_OFFSET = 48;
    static constexpr bool ALIGNED = true;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 16;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time, its scales included)
    static constexpr int UNIT_STEPS = 4;
    static constexpr int UNIT_BYTES = BLOCK_BYTES;

    __device__ static __forceinline__ int block_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int segment, int step) {
        return block_start(step) + (segment == 0 ? QH_OFFSET : QS_OFFSET + 32 * (step & 3));
    }
    __device__ static __forceinline__ int header_start(int step) { return block_start(step); }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* header, int part) {
        return kquant_scale_table_word<T>(header, part);
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8* body_1, u32 table, int k_group,
                                                    int pair, int step, u32 (&b)[2][2]) {
        const u32 scale = low_pair(table);
        const u32 offset = high_pair(table);
        // bit 2q + g, nibble g: the f16 shift 2q + 4 - 3g is at most 10
        const WideNibbles<T, 1, 10, 0> values(k_group, 2 * (step & 3) + k_group);
        const ByteQuad qh = load_byte_quad(body, pair);
        const ByteQuad qs = load_byte_quad(body_1, pair);
        b[0][0] = Pair<T>::fma(values.first(qs.w01, qh.w01), scale, offset);
        b[0][1] = Pair<T>::fma(values.second(qs.w01, qh.w01), scale, offset);
        b[1][0] = Pair<T>::fma(values.first(qs.w23, qh.w23), scale, offset);
        b[1][1] = Pair<T>::fma(values.second(qs.w23, qh.w23), scale, offset);
    }

    // The staged mma matvec's decode (matvec_mma_staged.cu): the K group's quants as exact
    // pairs of q (fragment's layout, unscaled); its scales and offsets: KquantStagedScales.
    // Every part of a block takes its fifth bits from the same 8 qh bytes of a lane (bit part
    // of each), so they are read once a block, with the head (VALUES_FROM_HEAD)
    static constexpr bool VALUES_FROM_HEAD = true;
    struct Head : KquantHead {
        ByteQuad qh;  // the lane's qh bytes (load_byte_quad)
        __device__ static __forceinline__ Head of(const u8* header, int pair) {
            Head head;
            static_cast<KquantHead&>(head) = KquantHead::of(header, pair);
            head.qh = load_byte_quad(header + QH_OFFSET, pair);
            return head;
        }
    };
    template <typename T>
    __device__ static __forceinline__ void values(const Head& head, const u8* body_1, int k_group, int pair,
                                                  int step, u32 (&v)[2][2]) {
        const WideNibbles<T, 1, 10, 0> quants(k_group, 2 * (step & 3) + k_group);
        const ByteQuad qh = head.qh;
        const ByteQuad qs = load_byte_quad(body_1, pair);
        v[0][0] = quants.first(qs.w01, qh.w01);
        v[0][1] = quants.second(qs.w01, qh.w01);
        v[1][0] = quants.first(qs.w23, qh.w23);
        v[1][1] = quants.second(qs.w23, qh.w23);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q5_K
