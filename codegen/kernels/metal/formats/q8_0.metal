// Q8_0 dequantize helper (Metal).  Block: f16 d | i8 qs[32]; 34 bytes, 32 weights; y = qs * d.
#ifndef GGUFC_METAL_FORMAT_Q8_0
#define GGUFC_METAL_FORMAT_Q8_0

namespace ggufc {

struct Q8_0 {
    enum { BLOCK_WEIGHTS = 32, BLOCK_BYTES = 34, PARTS = 1, QS_OFFSET = 2 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        (void)part;
        const float d = load_f16(block);
        device const char* qs = reinterpret_cast<device const char*>(block + QS_OFFSET);
        for (int j = 0; j < PART_WEIGHTS; ++j) {
            w[j] = float(qs[j]) * d;
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q8_0
