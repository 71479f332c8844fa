// Q5_K dequantize helper (CUDA).  Block (176 bytes, 256 weights): f16 d | f16 dmin |
// u8 scales[12] | u8 qh[32] | u8 qs[128].  Part p is sub-block p: nibbles as in Q4_K, bit 4
// of weight l is bit p of qh[l]; y = (d*sc[p]) * q - dmin*m[p].  176 is a multiple of 16 and
// qh, qs start at bytes 16 and 48: all loads are aligned 16-byte loads.  ``load`` only issues
// loads; ``decode_values`` does the arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q5_K
#define GGUFC_CUDA_FORMAT_Q5_K

namespace ggufc {

struct Q5_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 176;
    static constexpr bool HAS_OFFSET = true;
    static constexpr int PARTS = 8;
    static constexpr int QH_OFFSET = 16;
    static constexpr int QS_OFFSET = 48;

    struct Raw {
        KquantScaleBytes scales;
        uint4 qh[2];
        uint4 qs[2];
    };

    __device__ static __forceinline__ Raw load(const u8* block, int part) {
        Raw raw;
        raw.scales = load_kquant_scales(block, part);
        load_u128s<2>(block + QH_OFFSET, raw.qh);
        load_u128s<2>(block + QS_OFFSET + PART_WEIGHTS * (part / 2), raw.qs);
        return raw;
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

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }
};

}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q5_K
