// Q5_0 dequantize helper (Metal).  Block: f16 d | u8 qh[4] | u8 qs[16]; 22 bytes, 32 weights.
// Weight j (0..15): low nibble of qs[j] with bit j of qh as bit 4; weight j+16: high nibble
// with bit j+16 of qh.  y = (q - 16) * d.
#ifndef GGUFC_METAL_FORMAT_Q5_0
#define GGUFC_METAL_FORMAT_Q5_0

namespace ggufc {

struct Q5_0 {
    enum { BLOCK_WEIGHTS = 32, BLOCK_BYTES = 22, PARTS = 1, ZERO_POINT = 16, QH_OFFSET = 2,
           QS_OFFSET = 6 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        (void)part;
        const float d = load_f16(block);
        device const uchar* h = block + QH_OFFSET;
        const uint qh = uint(h[0]) | (uint(h[1]) << 8) | (uint(h[2]) << 16) | (uint(h[3]) << 24);
        device const uchar* qs = block + QS_OFFSET;
        for (int j = 0; j < 16; ++j) {
            const int low = int(qs[j] & 0xF) | int(((qh >> j) & 1u) << 4);
            const int high = int(qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
            w[j] = float(low - ZERO_POINT) * d;
            w[j + 16] = float(high - ZERO_POINT) * d;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q5_0
