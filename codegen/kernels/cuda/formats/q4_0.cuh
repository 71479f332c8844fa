// Q4_0 dequantize helper (CUDA).  Block: f16 d | u8 qs[16]; 18 bytes, 32 weights.
// Weight j (0..15) is the low nibble of qs[j], weight j+16 its high nibble; y = (q - 8) * d.
// One part per block.  Blocks are 18 bytes, so only 2-byte loads are aligned.
// ``load`` only issues loads (kernels call it a step ahead to overlap memory latency);
// ``decode_values`` (exact quants) and ``decode_biased`` (biased ones, for the reducing
// kernels; prelude) do the arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q4_0
#define GGUFC_CUDA_FORMAT_Q4_0

namespace ggufc {

struct Q4_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 18;
    static constexpr bool HAS_OFFSET = false;
    static constexpr int PARTS = 1;
    static constexpr int ZERO_POINT = 8;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 4;  // bits of a quant (the biased field of float32 x)

    struct Raw {
        u16 d;
        u16 qs[8];
    };

    __device__ static __forceinline__ Raw load(const u8* block, int /*part*/) {
        Raw raw;
        raw.d = load_u16(block);
        load_u16s<8>(block + 2, raw.qs);
        return raw;
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int /*part*/,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(raw.d));
        affine = make_affine(d, d, 0.0f, 0.0f);
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 q = byte_of(raw.qs, j);
            v[j] = small_uint_to_float(q & 0xFu, ZERO_POINT);
            v[j + 16] = small_uint_to_float(q >> 4, ZERO_POINT);
        }
    }

    // word i of qs: weights 4i..4i+3 in its low nibbles, 16+4i..16+4i+3 in its high ones
    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int /*part*/,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(raw.d));
        affine = biased_affine<FIELD_BITS>(d, d, ZERO_POINT * d, ZERO_POINT * d);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 word = word_of(raw.qs, i);
            biased_floats<FIELD_BITS>(word & LOW_NIBBLES, v + 4 * i);
            biased_floats<FIELD_BITS>((word >> 4) & LOW_NIBBLES, v + 16 + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products"): the high nibbles masked in place
    // (16 q), their power of two taken out of the sum after it
    static constexpr float HIGH_NIBBLE_UNIT = 1.0f / 16;
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int /*part*/, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        int low = 0;
        int high = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 word = word_of(raw.qs, i);
            low = dot_word(x, i, word & LOW_NIBBLES, low);
            high = dot_word(x, 4 + i, word & HIGH_NIBBLES, high);
        }
        const float d = __half2float(__ushort_as_half(raw.d));
        const float dot = __int2float_rn(low) + HIGH_NIBBLE_UNIT * __int2float_rn(high);
        return d * (x.unit * dot - ZERO_POINT * (x_sum[0] + x_sum[1]));
    }

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }

    // ---- tensor-core decode (prelude: "weights as pairs of small integers") ----
    // pair j = weights 2j, 2j+1 of the part, each its value + PAIR_ZERO_POINT.
    static constexpr int PAIR_ZERO_POINT = ZERO_POINT;
    struct PartWords {
        u32 d;
        u32 qs[4];
    };

    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int /*part*/) {
        PartWords words;
        words.d = load_u16(block);
        load_words<4>(block + 2, words.qs);
        return words;
    }

    // weights 0..15 are the low nibbles of qs[0..15], 16..31 the high ones
    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int /*part*/,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(static_cast<u16>(words.d)));
        affine = make_affine(d, d, 0.0f, 0.0f);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const u32 bytes = byte_pair(words.qs[j / 2], j);
            pairs[j] = bytes & NIBBLE_PAIR_MASK;
            pairs[j + 8] = (bytes >> 4) & NIBBLE_PAIR_MASK;
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// A step is blocks 2*step (K group 0) and 2*step + 1 (K group 1): 36 bytes.
struct StagedQ4_0 : BlockScaled<StagedQ4_0> {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 18;
    static constexpr int ZERO_POINT = 8;
    static constexpr bool ALIGNED = false;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 0;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time)
    static constexpr int UNIT_STEPS = 1;
    static constexpr int UNIT_BYTES = 2 * BLOCK_BYTES;

    __device__ static __forceinline__ int body_start(int, int step) { return step * 2 * BLOCK_BYTES; }
    __device__ static __forceinline__ int header_start(int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8*, int) { return 0; }

    // The block's quants at the lane's k slots as exact pairs of q - ZERO_POINT (the layout of
    // fragment, unscaled): qs[j] holds weight j (low nibble) and weight j + 16 (high nibble).
    template <typename T>
    __device__ static __forceinline__ void block_values(const u8* block, int pair, u32 (&v)[2][2]) {
        using Math = PairMath<T>;
        const u8* qs = block + 2 + 2 * pair;
        // bytes qs[2p], qs[2p+8], qs[2p+1], qs[2p+9]
        const u32 w = __byte_perm(load_shared_u16(qs), load_shared_u16(qs + 8), 0x5140);
        const u32 w8 = w >> 8;
        using N = Nibbles<T>;
        constexpr int LOW = N::BASE_LOW + ZERO_POINT;
        constexpr int HIGH = N::BASE_HIGH + ZERO_POINT;
        v[0][0] = Math::template minus<LOW>(N::low(w));     // 2p, 2p+1
        v[0][1] = Math::template minus<LOW>(N::low(w8));    // 2p+8, 2p+9
        v[1][0] = Math::template minus<HIGH>(N::high(w));   // 2p+16, 2p+17
        v[1][1] = Math::template minus<HIGH>(N::high(w8));  // 2p+24, 2p+25
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8*, u32,
                                                    int k_group, int pair, int,
                                                    u32 (&b)[2][2]) {
        const u8* block = body + k_group * BLOCK_BYTES;
        const u32 scale = Pair<T>::splat_f16(scale_bits(block));
        block_values<T>(block, pair, b);
        scale_pairs<T>(b, scale);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q4_0
