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

    // int16 activations (prelude: "integer dot products"): the quants as the signed bytes
    // they are; with no sums of x, NaN x reaches the result through the unit (PartDecode)
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int /*part*/, const Int16Part& x,
                                                       const float (&)[2]) {
        int sum = 0;
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            sum = dot_word<true>(x, i, word_of(raw.qs, i), sum);
        }
        return __half2float(__ushort_as_half(raw.d)) * x.unit * __int2float_rn(sum);
    }

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


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// int8 bytes 0 and 2 of w as a pair of exact values.
template <typename T>
__device__ __forceinline__ u32 signed_byte_pair(u32 w);

// f16: flipping the sign bit gives q + 128, read against 1024 then unbiased by 1152
template <>
__device__ __forceinline__ u32 signed_byte_pair<__half>(u32 w) {
    return PairMath<__half>::unbias<128>(lop3<AND_XOR, 0x00FF00FFu, 0x64806480u>(w));
}

// bf16 holds BASE + q exactly only for q < 128: the low 7 bits are read against 128 and the
// sign bit picks the bias, 128 (q = low bits) or 256 (q = low bits - 128)
template <>
__device__ __forceinline__ u32 signed_byte_pair<__nv_bfloat16>(u32 w) {
    const u32 low = and_or<0x007F007Fu, 0x43004300u>(w);   // 128 + (q & 127)
    const u32 bias = and_or<0x00800080u, 0x43004300u>(w);  // 128, or 256 if q < 0
    return Pair<__nv_bfloat16>::fma(bias, Pair<__nv_bfloat16>::constant(-1), low);
}

// A step is blocks 2*step and 2*step + 1: 68 bytes.
struct StagedQ8_0 : BlockScaled<StagedQ8_0> {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 34;
    static constexpr bool ALIGNED = false;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 0;
    // the chunk past a group's bytes is left uncopied (measured with per-step copies, H100,
    // M = 512: 11% less time; Q4_0 / Q5_0 took 7% more, Q6_K the same; not re-measured since)
    static constexpr bool SKIP_UNREAD_CHUNKS = true;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time)
    static constexpr int UNIT_STEPS = 1;
    static constexpr int UNIT_BYTES = 2 * BLOCK_BYTES;

    __device__ static __forceinline__ int body_start(int, int step) { return step * 2 * BLOCK_BYTES; }
    __device__ static __forceinline__ int header_start(int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8*, int) { return 0; }

    // the block's quants at the lane's k slots as exact pairs (the layout of fragment, unscaled)
    template <typename T>
    __device__ static __forceinline__ void block_values(const u8* block, int pair, u32 (&v)[2][2]) {
        const ByteQuad quad = load_byte_quad(block + 2, pair);
        v[0][0] = signed_byte_pair<T>(quad.w01);
        v[0][1] = signed_byte_pair<T>(quad.w01 >> 8);
        v[1][0] = signed_byte_pair<T>(quad.w23);
        v[1][1] = signed_byte_pair<T>(quad.w23 >> 8);
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

#endif  // GGUFC_CUDA_FORMAT_Q8_0
