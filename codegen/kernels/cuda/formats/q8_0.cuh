// Q8_0 dequantize helper (CUDA).  Block: f16 d | i8 qs[32]; 34 bytes, 32 weights; y = qs * d.
// One part per block; blocks are 34 bytes, so 2-byte loads are the widest aligned ones.
// ``load`` only issues loads; ``decode_values`` does the arithmetic (see PartAffine).  No biased
// decode: 8-bit quants do not fit the biased float's 7-bit field (prelude).
#ifndef GGUFC_CUDA_FORMAT_Q8_0
#define GGUFC_CUDA_FORMAT_Q8_0

namespace ggufc {

struct Q8_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 34;
    static constexpr bool HAS_OFFSET = false;
    static constexpr bool BIASED = false;  // the reducing kernels take the exact values
    static constexpr int QUANT_BITS = 8;
    static constexpr int PARTS = 1;
    // flipping the sign bit maps int8 q to the unsigned q + 128
    static constexpr u32 SIGN_BIT = 0x80u;
    static constexpr int SIGNED_OFFSET = 128;

    struct Raw {
        u16 d;
        u16 qs[16];
    };

    __device__ static __forceinline__ Raw load(const u8* block, int /*part*/) {
        Raw raw;
        raw.d = load_u16(block);
        load_u16s<16>(block + 2, raw.qs);
        return raw;
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int /*part*/,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(raw.d));
        affine = make_affine(d, d, 0.0f, 0.0f);
#pragma unroll
        for (int j = 0; j < 32; ++j) {
            v[j] = small_uint_to_float(byte_of(raw.qs, j) ^ SIGN_BIT, SIGNED_OFFSET);
        }
    }

    // signed bytes do not fit the biased trick (bit 7 would reach the exponent): this returns
    // the exact values, and BIASED = false tells the kernels they need no sum(x)

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }

    // ---- tensor-core decode (prelude: "weights as pairs of small integers") ----
    // pair j = weights 2j, 2j+1 of the part, each its value + PAIR_ZERO_POINT.
    static constexpr int PAIR_ZERO_POINT = SIGNED_OFFSET;
    struct PartWords {
        u32 d;
        u32 qs[8];
    };

    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int /*part*/) {
        PartWords words;
        words.d = load_u16(block);
        load_words<8>(block + 2, words.qs);
        return words;
    }

    // flipping the sign bit of an int8 gives it + 128 as an unsigned byte
    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int /*part*/,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(static_cast<u16>(words.d)));
        affine = make_affine(d, d, 0.0f, 0.0f);
        constexpr u32 SIGN_BITS = (SIGN_BIT << 16) | SIGN_BIT;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            pairs[j] = byte_pair(words.qs[j / 2], j) ^ SIGN_BITS;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q8_0
