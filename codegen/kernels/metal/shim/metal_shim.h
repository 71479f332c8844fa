// A host-C++ model of the few Metal Shading Language features the ggufc Metal kernels use,
// so that `g++ -std=c++17 -fsyntax-only` can parse and type-check every generated Metal
// source on machines without a Metal compiler (see tests/codegen/test_metal_syntax.py).
//
// It checks C++ syntax, names, types and template instantiation within this model; it
// cannot check Metal's own rules (address spaces, attribute and buffer-index validity,
// threadgroup memory limits, which simdgroup matrix types a GPU family supports) nor run
// anything.  Address-space qualifiers expand to nothing, attributes are ignored.
#ifndef GGUFC_METAL_SHIM_H
#define GGUFC_METAL_SHIM_H

#include <cmath>
#include <cstdint>
#include <cstring>

#define kernel
#define device
#define threadgroup
#define thread
#define constant
// the prelude's spelling of [[threadgroup(index)]] (the attribute would expand the macro above)
#define GGUFC_THREADGROUP_ARGUMENT(index)

namespace metal {

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef std::uint64_t ulong;

// 16-bit floats: two bytes with conversions from and to float (declared only: nothing runs).
struct half {
    std::uint16_t bits;
    half() = default;
    half(float value);
    operator float() const;
};
struct bfloat {
    std::uint16_t bits;
    bfloat() = default;
    bfloat(float value);
    operator float() const;
};

struct uint2 {
    uint x, y;
};
struct uint3 {
    uint x, y, z;
};
struct ulong2 {
    ulong x, y;
    ulong2(ulong a, ulong b) : x(a), y(b) {}
};

template <typename To, typename From>
To as_type(From from) {
    static_assert(sizeof(To) == sizeof(From), "as_type needs types of equal size");
    To to;
    std::memcpy(&to, &from, sizeof(To));
    return to;
}

template <typename T>
T min(T a, T b) {
    return a < b ? a : b;
}
template <typename T>
T max(T a, T b) {
    return a < b ? b : a;
}
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float exp(float x) { return std::exp(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
namespace precise {
inline float tanh(float x) { return std::tanh(x); }
}  // namespace precise

float simd_sum(float value);
float simd_max(float value);

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2 };
void threadgroup_barrier(mem_flags flags);

template <typename T, int Rows, int Cols>
struct simdgroup_matrix {
    T elements[Rows * Cols / 32 + 1];
};
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;

template <typename T, int Rows, int Cols>
simdgroup_matrix<T, Rows, Cols> make_filled_simdgroup_matrix(T value);

template <typename T, typename U, int Rows, int Cols>
void simdgroup_load(simdgroup_matrix<T, Rows, Cols>& matrix, const U* source, ulong elements_per_row,
                    ulong2 origin = ulong2(0, 0), bool transpose = false);

template <typename T, typename U, int Rows, int Cols>
void simdgroup_store(const simdgroup_matrix<T, Rows, Cols>& matrix, U* destination,
                     ulong elements_per_row, ulong2 origin = ulong2(0, 0), bool transpose = false);

template <typename D, typename A, typename B, typename C, int Rows, int Cols>
void simdgroup_multiply_accumulate(simdgroup_matrix<D, Rows, Cols>& d,
                                   const simdgroup_matrix<A, Rows, Cols>& a,
                                   const simdgroup_matrix<B, Rows, Cols>& b,
                                   const simdgroup_matrix<C, Rows, Cols>& c);

}  // namespace metal

#endif  // GGUFC_METAL_SHIM_H
