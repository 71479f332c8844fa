// Q4_K dequantize helper (Metal).  Block (144 bytes, 256 weights): f16 d | f16 dmin |
// u8 scales[12] | u8 qs[128].  Part p (weights 32p..32p+31) is sub-block p: the low nibbles
// (p even) or high nibbles (p odd) of qs[32*(p/2) .. +31]; y = (d*sc[p]) * q - dmin*m[p].
#ifndef GGUFC_METAL_FORMAT_Q4_K
#define GGUFC_METAL_FORMAT_Q4_K

namespace ggufc {

struct Q4_K {
    enum { BLOCK_WEIGHTS = 256, BLOCK_BYTES = 144, PARTS = 8, QS_OFFSET = 16 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        float scale;
        float offset;
        kquant_scale_min(block, part, scale, offset);
        device const uchar* qs = block + QS_OFFSET + PART_WEIGHTS * (part / 2);
        const int shift = 4 * (part % 2);
        for (int j = 0; j < PART_WEIGHTS; ++j) {
            w[j] = scale * float((qs[j] >> shift) & 0xF) - offset;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q4_K
