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
