// 6-bit scale/min unpacking shared by the Q4_K and Q5_K helpers (Metal).
// scales[12]: bytes 0..3 sc[0..3] | sc[4..7] bits 4-5 in bits 6-7; bytes 4..7 m[0..3] |
// m[4..7] bits 4-5 in bits 6-7; bytes 8..11 sc[4..7] bits 0-3 | m[4..7] bits 0-3 << 4.
#ifndef GGUFC_METAL_KQUANT_SCALES
#define GGUFC_METAL_KQUANT_SCALES

namespace ggufc {

enum { KQUANT_SCALES_OFFSET = 4, SIX_BITS = 0x3F };

// Sub-block ``s`` scale (d * sc[s]) and offset (dmin * m[s]) of a Q4_K / Q5_K block.
inline void kquant_scale_min(device const uchar* block, int s, thread float& scale,
                             thread float& offset) {
    device const uchar* packed = block + KQUANT_SCALES_OFFSET;
    int sc;
    int m;
    if (s < 4) {
        sc = packed[s] & SIX_BITS;
        m = packed[s + 4] & SIX_BITS;
    } else {
        sc = (packed[s + 4] & 0xF) | ((packed[s - 4] >> 6) << 4);
        m = (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4);
    }
    scale = load_f16(block) * float(sc);
    offset = load_f16(block + 2) * float(m);
}

}  // namespace ggufc

#endif  // GGUFC_METAL_KQUANT_SCALES
