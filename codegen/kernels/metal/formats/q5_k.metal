// Q5_K dequantize helper (Metal).  Block (176 bytes, 256 weights): f16 d | f16 dmin |
// u8 scales[12] | u8 qh[32] | u8 qs[128].  Part p is sub-block p: nibbles as in Q4_K, bit 4
// of weight l is bit p of qh[l]; y = (d*sc[p]) * q - dmin*m[p].
#ifndef GGUFC_METAL_FORMAT_Q5_K
#define GGUFC_METAL_FORMAT_Q5_K

namespace ggufc {

struct Q5_K {
    enum { BLOCK_WEIGHTS = 256, BLOCK_BYTES = 176, PARTS = 8, QH_OFFSET = 16, QS_OFFSET = 48 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        float scale;
        float offset;
        kquant_scale_min(block, part, scale, offset);
        device const uchar* qh = block + QH_OFFSET;
        device const uchar* qs = block + QS_OFFSET + PART_WEIGHTS * (part / 2);
        const int shift = 4 * (part % 2);
        for (int j = 0; j < PART_WEIGHTS; ++j) {
            const int q = ((qs[j] >> shift) & 0xF) | (((qh[j] >> part) & 1) << 4);
            w[j] = scale * float(q) - offset;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q5_K
