// Q4_0 dequantize helper (Metal).  Block: f16 d | u8 qs[16]; 18 bytes, 32 weights.
// Weight j (0..15) is the low nibble of qs[j], weight j+16 its high nibble; y = (q - 8) * d.
#ifndef GGUFC_METAL_FORMAT_Q4_0
#define GGUFC_METAL_FORMAT_Q4_0

namespace ggufc {

struct Q4_0 {
    enum { BLOCK_WEIGHTS = 32, BLOCK_BYTES = 18, PARTS = 1, ZERO_POINT = 8, QS_OFFSET = 2 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        (void)part;
        const float d = load_f16(block);
        device const uchar* qs = block + QS_OFFSET;
        for (int j = 0; j < 16; ++j) {
            w[j] = float(int(qs[j] & 0xF) - ZERO_POINT) * d;
            w[j + 16] = float(int(qs[j] >> 4) - ZERO_POINT) * d;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q4_0
