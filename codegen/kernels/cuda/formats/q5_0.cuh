// Q5_0 dequantize helper (CUDA).  Block: f16 d | u8 qh[4] | u8 qs[16]; 22 bytes, 32 weights.
// Weight j (0..15): low nibble of qs[j] with bit j of qh as bit 4; weight j+16: high nibble
// with bit j+16 of qh.  y = (q - 16) * d.  One part per block; 2-byte loads are aligned.
// ``load`` only issues loads; ``decode_values`` does the arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q5_0
#define GGUFC_CUDA_FORMAT_Q5_0

namespace ggufc {

struct Q5_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 22;
    static constexpr bool HAS_OFFSET = false;
    static constexpr int PARTS = 1;
    static constexpr int ZERO_POINT = 16;

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

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }
};

}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q5_0
