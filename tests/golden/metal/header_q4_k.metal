// ggufc Metal prelude: byte-field helpers and the 8-value activation loads and stores every
// kernel kind uses.  Include-guarded so generated sources can share one translation unit.
#ifndef GGUFC_METAL_PRELUDE
#define GGUFC_METAL_PRELUDE

#include <metal_stdlib>
using namespace metal;

// [[threadgroup(index)]], the attribute of a kernel's threadgroup-memory argument, spelled
// through a macro: in the syntax-check shim `threadgroup` is a macro of its own (an address
// space expanding to nothing), and the shim defines this one first, as nothing.
#ifndef GGUFC_THREADGROUP_ARGUMENT
#define GGUFC_THREADGROUP_ARGUMENT(index) [[threadgroup(index)]]
#endif

namespace ggufc {

enum {
    SIMD_WIDTH = 32,
    // every format is decoded in parts of this many consecutive weights (one thread's work)
    PART_WEIGHTS = 32,
    CHUNK = 8,
};

// Block fields are read byte-wise: blocks of Q4_0 (18 bytes) or Q6_K (210) leave wider
// fields unaligned, and the weights stream through the cache either way.
inline float load_f16(device const uchar* p) {
    return float(as_type<half>(ushort(ushort(p[0]) | (ushort(p[1]) << 8))));
}

template <typename T>
inline float dot_part(thread const float* w, device const T* x) {
    float sum = 0.0f;
    for (int j = 0; j < PART_WEIGHTS; ++j) {
        sum = fma(w[j], float(x[j]), sum);
    }
    return sum;
}

template <typename T>
inline void load_chunk(device const T* src, thread float* v) {
    for (int j = 0; j < CHUNK; ++j) {
        v[j] = float(src[j]);
    }
}

template <typename T>
inline void store_chunk(threadgroup T* dst, thread const float* v) {
    for (int j = 0; j < CHUNK; ++j) {
        dst[j] = T(v[j]);
    }
}

}  // namespace ggufc

#endif  // GGUFC_METAL_PRELUDE

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
