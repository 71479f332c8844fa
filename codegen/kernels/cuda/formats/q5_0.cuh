// Q5_0 dequantize helper (CUDA).  Block: f16 d | u8 qh[4] | u8 qs[16]; 22 bytes, 32 weights.
// Weight j (0..15): low nibble of qs[j] with bit j of qh as bit 4; weight j+16: high nibble
// with bit j+16 of qh.  y = (q - 16) * d.  One part per block; 2-byte loads are aligned.
// ``load`` only issues loads; ``decode_values`` (exact quants) and ``decode_biased`` (biased
// ones, for the reducing kernels; prelude) do the arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q5_0
#define GGUFC_CUDA_FORMAT_Q5_0

namespace ggufc {

struct Q5_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 22;
    static constexpr bool HAS_OFFSET = false;
    static constexpr int PARTS = 1;
    static constexpr int ZERO_POINT = 16;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 5;  // bits of a quant (the biased field of float32 x)

    struct Raw {
        u16 d;
        u16 qh[2];
        u16 qs[8];
    };

    __device__ static __forceinline__ Raw load(const u8* block, int /*part*/) {
        Raw raw;
        raw.d = load_u16(block);
        load_u16s<2>(block + 2, raw.qh);
        load_u16s<8>(block + 6, raw.qs);
        return raw;
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int /*part*/,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(raw.d));
        affine = make_affine(d, d, 0.0f, 0.0f);
        const u32 qh = static_cast<u32>(raw.qh[0]) | (static_cast<u32>(raw.qh[1]) << 16);
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 q = byte_of(raw.qs, j);
            const u32 low = (q & 0xFu) | (((qh >> j) & 1u) << 4);
            const u32 high = (q >> 4) | (((qh >> (j + 16)) & 1u) << 4);
            v[j] = small_uint_to_float(low, ZERO_POINT);
            v[j + 16] = small_uint_to_float(high, ZERO_POINT);
        }
    }

    // The quants of weights 4i..4i+3 (half 0: the low nibbles of word i of qs) or
    // 16+4i..16+4i+3 (half 1: its high nibbles), a byte each, their fifth bits from qh bits
    // 4i.. or 16+4i.. spread one to a byte
    __device__ static __forceinline__ u32 quant_bytes(const Raw& raw, u32 qh, int i, int half) {
        const u32 nibbles = (word_of(raw.qs, i) >> (4 * half)) & LOW_NIBBLES;
        return nibbles | (spread_bits((qh >> (16 * half + 4 * i)) & 0xFu) << 4);
    }

    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int /*part*/,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(raw.d));
        affine = biased_affine<FIELD_BITS>(d, d, ZERO_POINT * d, ZERO_POINT * d);
        const u32 qh = static_cast<u32>(raw.qh[0]) | (static_cast<u32>(raw.qh[1]) << 16);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 low = quant_bytes(raw, qh, i, 0);
            const u32 high = quant_bytes(raw, qh, i, 1);
            biased_floats<FIELD_BITS>(low, v + 4 * i);
            biased_floats<FIELD_BITS>(high, v + 16 + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products"): the quant bytes (0..31) of each
    // half, summed by dp2a
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int /*part*/, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        const u32 qh = static_cast<u32>(raw.qh[0]) | (static_cast<u32>(raw.qh[1]) << 16);
        int sum = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 low = quant_bytes(raw, qh, i, 0);
            const u32 high = quant_bytes(raw, qh, i, 1);
            sum = dot_word(x, i, low, sum);
            sum = dot_word(x, 4 + i, high, sum);
        }
        const float d = __half2float(__ushort_as_half(raw.d));
        return d * (x.unit * __int2float_rn(sum) - ZERO_POINT * (x_sum[0] + x_sum[1]));
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
        u32 qh;
        u32 qs[4];
    };

    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int /*part*/) {
        PartWords words;
        words.d = load_u16(block);
        u32 w[5];
        load_words<5>(block + 2, w);
        words.qh = w[0];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            words.qs[i] = w[i + 1];
        }
        return words;
    }

    // bit 4 of weights w, w+1 from bits w, w+1 of qh, into bit 4 of each 16-bit half
    __device__ static __forceinline__ u32 top_bits(u32 qh, int w) {
        const u32 bits = qh >> w;
        return ((bits & 1u) << 4) | ((bits & 2u) << 19);
    }

    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int /*part*/,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        const float d = __half2float(__ushort_as_half(static_cast<u16>(words.d)));
        affine = make_affine(d, d, 0.0f, 0.0f);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const u32 bytes = byte_pair(words.qs[j / 2], j);
            pairs[j] = (bytes & NIBBLE_PAIR_MASK) | top_bits(words.qh, 2 * j);
            pairs[j + 8] = ((bytes >> 4) & NIBBLE_PAIR_MASK) | top_bits(words.qh, 16 + 2 * j);
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// A step is blocks 2*step and 2*step + 1: 44 bytes.
struct StagedQ5_0 : BlockScaled<StagedQ5_0> {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 22;
    static constexpr int ZERO_POINT = 16;
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

    // The lane's quant bytes (0..31) of one nibble: the nibbles at bits 0-3 of each byte of
    // ``nibbles`` (weights 2p, 2p + 8, 2p + 1, 2p + 9 of a half of the block, p = pair), their
    // fifth bits at bits 0, 8, 1, 9 of ``qh_bits`` (qh's 16 bits of that half, from bit 2p).
    __device__ static __forceinline__ u32 quant_bytes(u32 nibbles, u32 qh_bits) {
        return (nibbles & LOW_NIBBLES) | ((qh_bits & 0x0101u) << 4) | ((qh_bits & 0x0202u) << 19);
    }

    // The block's quants at the lane's k slots as pairs of BASE + q (fragment's layout):
    // weight j (< 16) is the low nibble of qs[j] with bit j of qh, weight j + 16 the high
    // nibble with bit j + 16.  The quants are assembled a byte each, four at a time, and each
    // pair of bytes becomes a pair of BASE + q by one byte permute against the magic's high
    // byte (BASE's low byte is 0 and q < 32 fits it; v42: five logic ops and a shift a pair before).
    template <typename T>
    __device__ static __forceinline__ void magics(const u8* block, int pair, u32 (&magic)[4]) {
        const u32 qh_low = load_shared_u16(block + 2) >> (2 * pair);
        const u32 qh_high = load_shared_u16(block + 4) >> (2 * pair);
        const u8* qs = block + 6 + 2 * pair;
        // bytes qs[2p], qs[2p+8], qs[2p+1], qs[2p+9]
        const u32 w = __byte_perm(load_shared_u16(qs), load_shared_u16(qs + 8), 0x5140);
        const u32 low = quant_bytes(w, qh_low);        // weights 2p, 2p+8, 2p+1, 2p+9
        const u32 high = quant_bytes(w >> 4, qh_high);  // weights 16 on
        constexpr u32 MAGIC_BYTES = (PairMath<T>::MAGIC >> 8 & 0xFFu) * 0x01010101u;
        static_assert((PairMath<T>::MAGIC & 0xFFFFu) == (MAGIC_BYTES & 0xFF00u), "BASE: a high byte only");
        magic[0] = __byte_perm(low, MAGIC_BYTES, 0x4240);   // bytes 0, 2: 2p, 2p+1
        magic[1] = __byte_perm(low, MAGIC_BYTES, 0x4341);   // bytes 1, 3: 2p+8, 2p+9
        magic[2] = __byte_perm(high, MAGIC_BYTES, 0x4240);  // 2p+16, 2p+17
        magic[3] = __byte_perm(high, MAGIC_BYTES, 0x4341);  // 2p+24, 2p+25
    }
    // the same as exact pairs of q - ZERO_POINT (fragment unscaled)
    template <typename T>
    __device__ static __forceinline__ void block_values(const u8* block, int pair, u32 (&v)[2][2]) {
        u32 magic[4];
        magics<T>(block, pair, magic);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[i / 2][i % 2] = PairMath<T>::template unbias<ZERO_POINT>(magic[i]);
        }
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8*, u32,
                                                    int k_group, int pair, int,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const u8* block = body + k_group * BLOCK_BYTES;
        const u32 scale = Pair<T>::splat_f16(scale_bits(block));
        u32 magic[4];
        magics<T>(block, pair, magic);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            b[i / 2][i % 2] = Math::mul(Math::template unbias<ZERO_POINT>(magic[i]), scale);
        }
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q5_0
