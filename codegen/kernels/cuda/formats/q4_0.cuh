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

#endif  // GGUFC_CUDA_FORMAT_Q4_0
