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

// Q6_K dequantize helper (Metal).  Block (210 bytes, 256 weights): u8 ql[128] | u8 qh[64] |
// i8 scales[16] | f16 d.  Part p (weights 32p..32p+31) is half h = p/4, quarter t = p%4:
// weight l has nibble (ql[64h + 32*(t%2) + l] >> 4*(t/2)) & 15 and top bits
// (qh[32h + l] >> 2t) & 3; y = (d * scales[2p + l/16]) * (q - 32).
#ifndef GGUFC_METAL_FORMAT_Q6_K
#define GGUFC_METAL_FORMAT_Q6_K

namespace ggufc {

struct Q6_K {
    enum { BLOCK_WEIGHTS = 256, BLOCK_BYTES = 210, PARTS = 8, QH_OFFSET = 128,
           SCALES_OFFSET = 192, D_OFFSET = 208, ZERO_POINT = 32, SUB_BLOCK_WEIGHTS = 16 };

    static inline void dequantize_part(device const uchar* block, int part, thread float* w) {
        const int half_index = part / 4;
        const int quarter = part % 4;
        device const uchar* ql = block + 64 * half_index + PART_WEIGHTS * (quarter % 2);
        device const uchar* qh = block + QH_OFFSET + PART_WEIGHTS * half_index;
        device const char* scales = reinterpret_cast<device const char*>(block + SCALES_OFFSET);
        const float d = load_f16(block + D_OFFSET);
        const float scale_lo = d * float(scales[2 * part]);
        const float scale_hi = d * float(scales[2 * part + 1]);
        const int nibble_shift = 4 * (quarter / 2);
        const int top_shift = 2 * quarter;
        for (int l = 0; l < PART_WEIGHTS; ++l) {
            const int q = ((ql[l] >> nibble_shift) & 0xF) | (((qh[l] >> top_shift) & 3) << 4);
            w[l] = (l < SUB_BLOCK_WEIGHTS ? scale_lo : scale_hi) * float(q - ZERO_POINT);
        }
    }
};

}  // namespace ggufc

#endif  // GGUFC_METAL_FORMAT_Q6_K
