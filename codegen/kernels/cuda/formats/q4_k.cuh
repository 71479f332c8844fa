// Q4_K dequantize helper (CUDA).  Block (144 bytes, 256 weights): f16 d | f16 dmin | u8
// scales[12] | u8 qs[128].  Part p (weights 32p..32p+31) is sub-block p: the low nibbles (p
// even) or high nibbles (p odd) of qs[32*(p/2) .. +31]; y = (d*sc[p]) * q - dmin*m[p]. 144 is a
// multiple of 16 and qs starts at byte 16, so with a 16-byte aligned tensor each part's quants
// are two aligned 16-byte loads.  ``load`` only issues loads; ``decode_values`` (exact quants)
// and ``decode_biased`` (biased ones, for the reducing kernels; prelude) do the arithmetic (see
// PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q4_K
#define GGUFC_CUDA_FORMAT_Q4_K

namespace ggufc {

struct Q4_K : KquantMmaSpan {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 144;
    static constexpr bool HAS_OFFSET = true;
    static constexpr int PARTS = 8;
    static constexpr int QS_OFFSET = 16;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 4;  // bits of a quant (the biased field of float32 x)

    struct Raw {
        KquantScaleBytes scales;
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
        return load_kquant_with_head<Q4_K>(block, part);
    }

    // the part's quant bytes (its partner part's too: the other nibble), without the scales
    __device__ static __forceinline__ void load_quants(const u8* block, int part, Raw& raw) {
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
            v[j] = small_uint_to_float((static_cast<u32>(byte_of(raw.qs, j)) >> shift) & 0xFu, 0);
        }
    }

    // word i of the part's 32 quant bytes: weights 4i..4i+3
    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        float scale;
        float offset;
        kquant_scale_min(raw.scales, part, scale, offset);
        affine = biased_affine<FIELD_BITS>(scale, scale, offset, offset);
        const int shift = 4 * (part % 2);
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            biased_floats<FIELD_BITS>((word_of(raw.qs, i) >> shift) & LOW_NIBBLES, v + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products"): a high-nibble part's quants masked
    // in place (16 q), the power of two taken out of the sum after it
    static constexpr float HIGH_NIBBLE_UNIT = 1.0f / 16;
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int part, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        float scale;
        float offset;
        kquant_scale_min(raw.scales, part, scale, offset);
        const bool high = part % 2 != 0;
        const u32 mask = high ? HIGH_NIBBLES : LOW_NIBBLES;
        int sum = 0;
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            sum = dot_word(x, i, word_of(raw.qs, i) & mask, sum);
        }
        const float unit = high ? x.unit * HIGH_NIBBLE_UNIT : x.unit;
        return scale * unit * __int2float_rn(sum) - offset * (x_sum[0] + x_sum[1]);
    }

    // ---- a lane's own 16 quant bytes (matvec_lanes.cu) ----
    // Lane word w (0..7) of a block is qs bytes 16w .. 16w + 15: weights 16 (w % 2) .. + 15 of
    // sub-block 2 (w / 2) in the low nibbles and of sub-block 2 (w / 2) + 1 in the high.  The
    // lane loads them and the block's 16-byte head (d, dmin, scales) straight into registers.
    static constexpr int LANE_WORDS = 8;
    struct LaneWords {
        uint4 head;
        uint4 qs;
    };

    __device__ static __forceinline__ LaneWords load_lane_words(const u8* block, int word) {
        LaneWords words;
        words.head = load_streaming(reinterpret_cast<const uint4*>(block));
        words.qs = load_streaming(reinterpret_cast<const uint4*>(block + QS_OFFSET) + word);
        return words;
    }

    // the first activation lane word ``word`` multiplies, of a block whose first is block_x
    template <typename T>
    __device__ static __forceinline__ const T* lane_x(const T* block_x, int word) {
        return block_x + 2 * PART_WEIGHTS * (word / 2) + HALF_PART * (word % 2);
    }

    __device__ static __forceinline__ float lane_dot(const LaneWords& words, int word, const NibbleHalves& x) {
        const int low_part = 2 * (word / 2);
        float low_scale;
        float low_offset;
        float high_scale;
        float high_offset;
        kquant_scale_min(kquant_scales_of_head(words.head, low_part), low_part, low_scale, low_offset);
        kquant_scale_min(kquant_scales_of_head(words.head, low_part + 1), low_part + 1, high_scale, high_offset);
        const u32 qs[4] = {words.qs.x, words.qs.y, words.qs.z, words.qs.w};
        int low = 0;
        int high = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            low = dot_word(x.low, i, qs[i] & LOW_NIBBLES, low);
            high = dot_word(x.high, i, qs[i] & HIGH_NIBBLES, high);
        }
        return low_scale * x.low.unit * __int2float_rn(low) - low_offset * x.low_sum +
               high_scale * (x.high.unit * HIGH_NIBBLE_UNIT) * __int2float_rn(high) - high_offset * x.high_sum;
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
    static constexpr int PART_PARTNER_OFFSET = 1;
    static constexpr int PAIR_ZERO_POINT = 0;
    struct PartWords {
        KquantScaleBytes scales;
        u32 qs[8];
    };

    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int part) {
        PartWords words;
        words.scales = load_kquant_scales(block, part);
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
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            pairs[j] = (byte_pair(words.qs[j / 2], j) >> shift) & NIBBLE_PAIR_MASK;
        }
    }

    // ---- weights as the A operand of mma.sync (matvec_mma.cu) ----
    // Lane (g, t) holds qs span t of a block of each of its rows (KquantMmaSpan,
    // KquantMmaScales).  Word i of the span is four weights of each side; mma (i, side) takes
    // from it the pair of bytes 0, 2 (k slots 2t, 2t + 1 of the lane) and of bytes 1, 3
    // (slots 2t + 8, 2t + 9).
    struct MmaRow {
        uint4 head;   // f16 d | f16 dmin | scales[12]
        uint4 qs[2];  // qs span t
    };

    __device__ static __forceinline__ MmaRow load_mma_row(const u8* block, int t) {
        MmaRow row;
        row.head = load_u128_readonly(block);
        row.qs[0] = load_u128_readonly(block + QS_OFFSET + 32 * t);
        row.qs[1] = load_u128_readonly(block + QS_OFFSET + 32 * t + 16);
        return row;
    }

    // the A registers of mma (i, side), a set a part (KquantMmaScales): rows g, g + 8 at
    // bytes 0, 2, then at bytes 1, 3
    template <typename T>
    __device__ static __forceinline__ void mma_a(const MmaRow (&rows)[2], const MmaScales<T> (&s)[2], int,
                                                 int i, int side, u32 (&a)[MmaScales<T>::PARTS][4]) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const u32 word = span_word(rows[r].qs, i);
            u32 low;
            u32 upper;
            if constexpr (MmaScales<T>::BFLOAT) {
                const u32 nibbles = side == 0 ? word : word >> 4;
                low = (nibbles & NIBBLE_PAIR_MASK) | MMA_BFLOAT_MAGIC;
                upper = ((nibbles >> 8) & NIBBLE_PAIR_MASK) | MMA_BFLOAT_MAGIC;
            } else {
                const u32 mask = side == 0 ? NIBBLE_PAIR_MASK : NIBBLE_PAIR_MASK << 4;
                low = (word & mask) | MMA_HALF_MAGIC;
                upper = ((word >> 8) & mask) | MMA_HALF_MAGIC;
            }
            kquant_mma_row(low, upper, side, s[r], r, a);
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// Step s is parts 2q, 2q+1 (q = s % 4) of super-block s / 4: the low / high nibbles of
// qs[32q .. 32q+31] (block bytes 16 + 32q ..).  144-byte blocks keep everything aligned.
struct StagedQ4_K : KquantStagedScales {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 144;
    static constexpr int QS_OFFSET = 16;
    static constexpr bool ALIGNED = true;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 16;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time, its scales included)
    static constexpr int UNIT_STEPS = 4;
    static constexpr int UNIT_BYTES = BLOCK_BYTES;

    __device__ static __forceinline__ int block_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int, int step) {
        return block_start(step) + QS_OFFSET + 32 * (step & 3);
    }
    __device__ static __forceinline__ int header_start(int step) { return block_start(step); }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* header, int part) {
        return kquant_scale_table_word<T>(header, part);
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8*, u32 table, int k_group,
                                                    int pair, int, u32 (&b)[2][2]) {
        const NibbleSelect<T> nibbles(k_group);
        const u32 scale = low_pair(table);
        const u32 offset = high_pair(table);
        const ByteQuad quad = load_byte_quad(body, pair);
        b[0][0] = Pair<T>::fma(nibbles.values(quad.w01), scale, offset);
        b[0][1] = Pair<T>::fma(nibbles.values(quad.w01 >> 8), scale, offset);
        b[1][0] = Pair<T>::fma(nibbles.values(quad.w23), scale, offset);
        b[1][1] = Pair<T>::fma(nibbles.values(quad.w23 >> 8), scale, offset);
    }

    // The staged mma matvec's decode (matvec_mma_staged.cu): the K group's quants as exact
    // pairs of q (fragment's layout, unscaled); its scales and offsets: KquantStagedScales
    template <typename T>
    __device__ static __forceinline__ void values(const u8* body, const u8*, int k_group, int pair, int,
                                                  u32 (&v)[2][2]) {
        const NibbleSelect<T> nibbles(k_group);
        const ByteQuad quad = load_byte_quad(body, pair);
        v[0][0] = nibbles.values(quad.w01);
        v[0][1] = nibbles.values(quad.w01 >> 8);
        v[1][0] = nibbles.values(quad.w23);
        v[1][1] = nibbles.values(quad.w23 >> 8);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q4_K
