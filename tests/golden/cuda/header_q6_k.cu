// ggufc CUDA prelude: scalar types, activation conversions, warp reduction and the aligned
// loads every kernel kind uses.  Included once per translation unit (guarded), so several
// generated sources can be concatenated into one file for compile checks.
#ifndef GGUFC_CUDA_PRELUDE
#define GGUFC_CUDA_PRELUDE

#include <cuda_fp16.h>
#include <cuda_bf16.h>

namespace ggufc {

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

constexpr int WARP_SIZE = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;
// Every format is decoded in parts of this many consecutive weights (one thread's work).
constexpr int PART_WEIGHTS = 32;

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(FULL_MASK, value, offset);
    }
    return value;
}

// The warp's sums of four values a lane (acc[r]: the lane's share of row r) in 6 shuffles
// where 4 warp_sums take 20: the warp's halves trade two rows, its quarters one, then each
// lane's one row is summed over its 8 lanes.  Lanes 8r .. 8r + 7 get row r's sum.
constexpr int SUMMED_ROWS = 4;
__device__ __forceinline__ float warp_sum_rows(const float (&acc)[SUMMED_ROWS]) {
    const bool upper_half = (threadIdx.x & 16) != 0;
    const float keep0 = upper_half ? acc[2] : acc[0];
    const float keep1 = upper_half ? acc[3] : acc[1];
    const float give0 = upper_half ? acc[0] : acc[2];
    const float give1 = upper_half ? acc[1] : acc[3];
    const float pair0 = keep0 + __shfl_xor_sync(FULL_MASK, give0, 16);
    const float pair1 = keep1 + __shfl_xor_sync(FULL_MASK, give1, 16);
    const bool upper_quarter = (threadIdx.x & 8) != 0;
    float value = (upper_quarter ? pair1 : pair0) + __shfl_xor_sync(FULL_MASK, upper_quarter ? pair0 : pair1, 8);
#pragma unroll
    for (int offset = 4; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(FULL_MASK, value, offset);
    }
    return value;
}

// Programmatic dependent launch (sm_90 and later; no-ops before).  On such a device the
// launcher (runtime_schema.cuda_launcher) lets a ggufc kernel start while the kernel before it
// in the stream is still running: its blocks are scheduled during that kernel's last wave and
// its first weight loads overlap that kernel's tail instead of following its launch gap.
// Every ggufc CUDA kernel therefore
//   * calls allow_dependent_launch(), so the kernel after it may start early too: at its
//     start where it is short or fills its waves, after its weight loads where it may leave
//     slots free for long (the M = 1 matvecs: the staged one decides by its grid at run time,
//     grid_fills_its_waves), never where it runs in clusters (the next kernel's waiting
//     clusters slowed it);
//   * calls wait_for_previous_kernels() before it reads anything but weight blocks (program
//     constants, which no kernel writes) and before it writes anything: the wait returns once
//     every kernel before it has finished and its writes are visible;
//   * declares only its weight blocks `const __restrict__`.  Through such a pointer the
//     compiler loads read-only (ld.global.nc), and ptxas moves those loads above the wait
//     (the split-K matvec's activations were read before the previous kernel wrote them,
//     session 17); the other inputs are plain `const` pointers, loaded coherently.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_previous_kernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Whether this grid fills its waves of ``blocks_per_sm`` blocks an SM: more than one wave, or
// one with at most a tenth of its slots empty.  Such a kernel lets the next one start
// at once (its blocks then take the slots this grid's last wave leaves as it drains); one
// leaving many slots free lets it start only after its weight loads, since the next kernel's
// early blocks take those free slots unevenly and hold them (M = 1 matvecs, session 18).
// %nsmid is the SM count on the GPUs measured (NVIDIA H100: 132).
__device__ __forceinline__ bool grid_fills_its_waves(unsigned blocks_per_sm) {
    unsigned sms;
    asm("mov.u32 %0, %%nsmid;" : "=r"(sms));
    const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
    return blocks * 10u >= sms * blocks_per_sm * 9u;
}

// Both at a kernel's start: for kernels with nothing to load before their inputs.
__device__ __forceinline__ void begin_dependent_kernel() {
    allow_dependent_launch();
    wait_for_previous_kernels();
}

// Block fields sit at even offsets of blocks of even size (Q4_0 is 18 bytes, Q6_K 210), so
// 2-byte loads are the widest that are aligned for every block of those formats.
__device__ __forceinline__ u16 load_u16(const u8* p) {
    return *reinterpret_cast<const u16*>(p);
}

__device__ __forceinline__ float load_f16(const u8* p) {
    return __half2float(__ushort_as_half(load_u16(p)));
}

// Copies 2*count bytes from a 2-byte aligned address into registers.
template <int COUNT>
__device__ __forceinline__ void load_u16s(const u8* p, u16 (&out)[COUNT]) {
#pragma unroll
    for (int i = 0; i < COUNT; ++i) {
        out[i] = load_u16(p + 2 * i);
    }
}

// Copies 16*count bytes from a 16-byte aligned address into registers (one 16-byte load each).
template <int COUNT>
__device__ __forceinline__ void load_u128s(const u8* p, uint4 (&out)[COUNT]) {
#pragma unroll
    for (int i = 0; i < COUNT; ++i) {
        out[i] = reinterpret_cast<const uint4*>(p)[i];
    }
}

// Exact float of a small unsigned integer q (< 2^23) minus ``zero_point`` without the slow
// integer-to-float instruction: OR-ing q into the mantissa of 2^23 gives the float 2^23 + q.
constexpr u32 FLOAT_2POW23_BITS = 0x4B000000u;
constexpr float FLOAT_2POW23 = 8388608.0f;

__device__ __forceinline__ float small_uint_to_float(u32 q, int zero_point) {
    return __uint_as_float(FLOAT_2POW23_BITS | q) - (FLOAT_2POW23 + static_cast<float>(zero_point));
}

// A 16-byte load of weights that are read once: it bypasses L1 so that the activations, which
// every row rereads, stay cached there (streaming weights through L1 evicts them, and the
// activation rereads then run at L2 bandwidth).
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// word i (bytes 4i..4i+3) of two 16-byte loads
__device__ __forceinline__ u32 word_of(const uint4 (&words)[2], int i) {
    const u32 word[8] = {words[0].x, words[0].y, words[0].z, words[0].w,
                         words[1].x, words[1].y, words[1].z, words[1].w};
    return word[i];
}

// word i (bytes 4i..4i+3) of 2-byte loads
__device__ __forceinline__ u32 word_of(const u16* halves, int i) {
    return __byte_perm(halves[2 * i], halves[2 * i + 1], 0x5410u);
}

__device__ __forceinline__ u8 byte_of(const uint4 (&words)[2], int index) {
    return static_cast<u8>(word_of(words, index / 4) >> (8 * (index % 4)));
}

__device__ __forceinline__ u8 byte_of(const u16* halves, int index) {
    return static_cast<u8>(halves[index / 2] >> (8 * (index % 2)));
}

// ---- cp.async: global -> shared copies that hold no registers while in flight -----------
// 16 bytes from a 16-byte aligned global address, bypassing L1 (.cg), or THROUGH_L1 (.ca:
// where the blocks of an SM copy the same lines, a line one block brought may serve another).
template <bool THROUGH_L1 = false>
__device__ __forceinline__ void cp_async_16(void* shared, const void* global) {
    const u32 address = static_cast<u32>(__cvta_generic_to_shared(shared));
    if constexpr (THROUGH_L1) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global)
                     : "memory");
    } else {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global)
                     : "memory");
    }
}

// The same where only ``bytes`` (0..16) of the 16 lie inside the source: the rest of the 16
// shared bytes are zero-filled.
__device__ __forceinline__ void cp_async_16_fill(void* shared, const void* global, int bytes) {
    const u32 address = static_cast<u32>(__cvta_generic_to_shared(shared));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most PENDING of this thread's commit groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

// ---- tensor-core decode: weights as pairs of small integers ---------------------------
// The tensor-core matvec reads a part (32 weights) as 32-bit words from shared memory and
// turns them into 16 "integer pairs": pair j holds weights 2j and 2j+1 as unsigned integers
// (the format's value plus its ZERO_POINT) in bits 0..15 and 16..31.  OR-ing the exponent of
// 1024.0 into both halves gives the half2 (1024 + q0, 1024 + q1) exactly (q < 1024), so one
// half2 subtraction yields the exact integers (see half_pair_of_ints).

// N 32-bit words of the bytes at a 2-byte aligned address p: N aligned 4-byte loads joined by
// funnel shifts, the last half word of an address 2 mod 4 by a 2-byte load.  Nothing past
// p + 4N is read (the embedding reads blocks in global memory, where the last block of a table
// may end its allocation); at an address 2 mod 4 the 2 bytes before p are, in p's aligned
// 4-byte word (so inside any 16-byte aligned tensor or staged chunk that holds p).
template <int N>
__device__ __forceinline__ void load_words(const u8* p, u32 (&words)[N]) {
    const size_t address = reinterpret_cast<size_t>(p);
    const u32* aligned = reinterpret_cast<const u32*>(address & ~static_cast<size_t>(3));
    const u32 shift = static_cast<u32>(address & 2u) * 8u;
    u32 previous = aligned[0];
#pragma unroll
    for (int i = 0; i + 1 < N; ++i) {
        const u32 next = aligned[i + 1];
        words[i] = __funnelshift_r(previous, next, shift);
        previous = next;
    }
    // p + 4N - 2 holds the last 2 bytes wanted, at either offset
    const u32 tail = load_u16(p + 4 * N - 2);
    words[N - 1] = shift != 0u ? __funnelshift_r(previous, tail, shift) : previous;
}

// load_words from the aligned 16-byte words holding the bytes (2 or 3 loads for 8 words,
// against load_words' 9), each word picked out of them by selects and a funnel shift.  Only
// 16-byte granules holding a byte of p .. p + 4N - 1 are read, but each whole: the first
// starts inside any 16-byte aligned tensor holding p, the last may end up to 14 bytes past
// p + 4N, which the caller must know inside the tensor (Q6_K's spans end 18 bytes before its
// block does).  For kernels bound by the load instructions they issue (the embedding gather:
// Q6_K 79.6 -> 83.5% of copy bandwidth on an H100).
template <int N>
__device__ __forceinline__ void load_words_wide(const u8* p, u32 (&words)[N]) {
    constexpr int GRANULE = 16;
    constexpr int WORDS_A_GRANULE = GRANULE / 4;
    // p 2 bytes short of a granule's end is the worst case
    constexpr int MAX_GRANULES = (GRANULE - 2 + 4 * N - 1) / GRANULE + 1;
    static_assert(MAX_GRANULES * WORDS_A_GRANULE >= N + WORDS_A_GRANULE, "room to pick from");
    const size_t address = reinterpret_cast<size_t>(p);
    const uint4* granules = reinterpret_cast<const uint4*>(address & ~static_cast<size_t>(GRANULE - 1));
    const int offset = static_cast<int>(address & (GRANULE - 1));
    u32 w[MAX_GRANULES * WORDS_A_GRANULE];
#pragma unroll
    for (int i = 0; i < MAX_GRANULES; ++i) {
        // a granule past the last byte wanted is not read (its words are never picked)
        const uint4 g = GRANULE * i < offset + 4 * N ? granules[i] : make_uint4(0u, 0u, 0u, 0u);
        w[WORDS_A_GRANULE * i] = g.x;
        w[WORDS_A_GRANULE * i + 1] = g.y;
        w[WORDS_A_GRANULE * i + 2] = g.z;
        w[WORDS_A_GRANULE * i + 3] = g.w;
    }
    const int first = offset / 4;  // the word holding p, 0..3
    const u32 shift = static_cast<u32>(offset & 2) * 8u;
    u32 previous = 0;
#pragma unroll
    for (int j = 0; j <= N; ++j) {
        const u32 low_pair = (first & 1) ? w[j + 1] : w[j];
        const u32 high_pair = (first & 1) ? w[j + 3] : w[j + 2];
        const u32 current = (first & 2) ? high_pair : low_pair;  // w[j + first]
        if (j > 0) {
            words[j - 1] = __funnelshift_r(previous, current, shift);
        }
        previous = current;
    }
}

// load_words, or with WIDE load_words_wide
template <bool WIDE, int N>
__device__ __forceinline__ void load_words_by(const u8* p, u32 (&words)[N]) {
    if constexpr (WIDE) {
        load_words_wide(p, words);
    } else {
        load_words(p, words);
    }
}

// Bytes 2*(j%2) and 2*(j%2)+1 of ``word`` in the low byte of each 16-bit half (``j``: the pair
// index; a word holds pairs 2*(j/2) and 2*(j/2)+1).
// (enumerators, unlike constexpr variables, may go unused in a translation unit under -Werror)
enum : u32 {
    PAIR_SELECT_LOW = 0x4140u,   // bytes 0, 1
    PAIR_SELECT_HIGH = 0x4342u,  // bytes 2, 3
    NIBBLE_PAIR_MASK = 0x000F000Fu,
    HALF2_1024_BITS = 0x64006400u,  // (1024.0, 1024.0) as half2
};
__device__ __forceinline__ u32 byte_pair(u32 word, int j) {
    return __byte_perm(word, 0u, (j % 2) ? static_cast<u32>(PAIR_SELECT_HIGH)
                                         : static_cast<u32>(PAIR_SELECT_LOW));
}

// (q0 - zero_point, q1 - zero_point) as exact half2 from an integer pair.
template <int ZERO_POINT>
__device__ __forceinline__ __half2 half_pair_of_ints(u32 pair) {
    static_assert(0 <= ZERO_POINT && ZERO_POINT < 1024, "1024 + ZERO_POINT is exact in f16");
    // 1024 + z has the bits 0x6400 + z (f16 steps by 1 in [1024, 2048))
    constexpr u32 ZERO_BITS = (0x6400u + ZERO_POINT) * 0x10001u;
    const u32 biased = pair | static_cast<u32>(HALF2_1024_BITS);
    const u32 zero = ZERO_BITS;
    return __hsub2(*reinterpret_cast<const __half2*>(&biased),
                   *reinterpret_cast<const __half2*>(&zero));
}

__device__ __forceinline__ u32 half2_bits(__half2 h) { return *reinterpret_cast<const u32*>(&h); }
__device__ __forceinline__ __half2 half2_of_bits(u32 bits) { return *reinterpret_cast<const __half2*>(&bits); }
__device__ __forceinline__ u32 bfloat2_bits(__nv_bfloat162 h) { return *reinterpret_cast<const u32*>(&h); }
__device__ __forceinline__ __nv_bfloat162 bfloat2_of_bits(u32 bits) {
    return *reinterpret_cast<const __nv_bfloat162*>(&bits);
}

// 16 bytes at a 16-byte aligned address through the read-only path (L1 cached: the matvec_mma
// lanes of a row read 16 bytes of each 32, the neighbouring load the other 16)
__device__ __forceinline__ uint4 load_u128_readonly(const u8* p) {
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// ---- activation dtypes: float32 accumulate, loads of 8 consecutive activations ----------

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// 8 activations from a 16-byte aligned address (32 bytes for float32).
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

__device__ __forceinline__ void load8(const __half* p, float (&v)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __half2* pairs = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(pairs[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&v)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}

// A part decodes to exact small-integer values v[32] and, per half of 16 weights, an affine
// map to the weights: w[j] = scale[j / 16] * v[j] - offset[j / 16].  Kernels that reduce
// apply it once per half (scale * sum(v x) - offset * sum(x)), not once per weight.
constexpr int HALF_PART = PART_WEIGHTS / 2;

struct PartAffine {
    float scale[2];
    float offset[2];
};

__device__ __forceinline__ PartAffine make_affine(float scale_lo, float scale_hi, float offset_lo,
                                                  float offset_hi) {
    PartAffine affine;
    affine.scale[0] = scale_lo;
    affine.scale[1] = scale_hi;
    affine.offset[0] = offset_lo;
    affine.offset[1] = offset_hi;
    return affine;
}

__device__ __forceinline__ void apply_affine(const PartAffine& affine, float (&w)[PART_WEIGHTS]) {
#pragma unroll
    for (int j = 0; j < PART_WEIGHTS; ++j) {
        w[j] = affine.scale[j / HALF_PART] * w[j] - affine.offset[j / HALF_PART];
    }
}

// ---- biased values: a quant as a float in one instruction --------------------------------
// A quant q (< 2^FIELD_BITS, FIELD_BITS <= 7) shifted to the top of bits 16..22 of the float
// 0.5 (whose bit 23 is clear) by a PRMT is exactly v = 0.5 + q / 2^(FIELD_BITS + 1): one
// instruction a weight where the exact integer would cost a mask, an or and a subtraction.
// The reducing kernels (matvec) take the quants this way and fold the bias into the part's
// affine map: w = s * q - o = (2^(F+1) s) * v - (o + 2^F s)  (see biased_affine).
// The dot product of biased values carries 0.5 * sum(x), which the map's offset cancels; the
// float32 rounding of that term costs ~2^-24 * 0.5 / |q / 2^(F+1) - 1/4| relative per weight.
// FIELD_BITS picks where the quant sits:
// * 7 (BIASED_BYTE_FIELD: the quant byte as it is, v = 0.5 + q / 256): no shift.  The signal
//   is a few percent of the bias: 2.6-3.1e-6 relative error in a float32 result on random
//   data, against ~1e-7 with exact values; far below a 16-bit output's rounding, so 16-bit
//   activations take this (one instruction a word less than the next).
// * the format's QUANT_BITS (the quant at the top of the mantissa): the signal is a third to a
//   half of the bias: 5-8e-7, so float32 activations take this (H100, session 10: float32
//   4096x14336 Q4_K 36.3 -> 34.4 us, Q6_K 41.7 -> 34.2, Q5_K 49.4 -> 35.6 against exact values).
// Formats decode 4 quant bytes of a 32-bit word at a time (PartDecode picks FIELD_BITS).
enum : u32 {
    BIASED_FLOAT_BITS = 0x3F000000u,  // 0.5f
    BIASED_SELECT = 0x7044u,          // byte 0 of x into byte 2; 0x3F into byte 3; zeros
    LOW_NIBBLES = 0x0F0F0F0Fu,        // bits 0..3 of each byte
    HIGH_NIBBLES = 0xF0F0F0F0u,       // bits 4..7 of each byte
    LOW_TWO_BITS = 0x03030303u,
    LOW_BITS = 0x01010101u,
    SPREAD_MULTIPLIER = 0x00204081u,  // 1 + 2^7 + 2^14 + 2^21
};
constexpr int BIASED_BYTE_FIELD = 7;  // bits 16..22 of the float: below bit 23, the exponent's

// biased values in a FIELD_BITS-bit field: q = SCALE * v - ZERO
template <int FIELD_BITS>
struct BiasedField {
    static_assert(FIELD_BITS >= 1 && FIELD_BITS <= BIASED_BYTE_FIELD, "a field below bit 23");
    static constexpr int SHIFT = BIASED_BYTE_FIELD - FIELD_BITS;  // within each byte
    static constexpr float SCALE = static_cast<float>(1 << (FIELD_BITS + 1));
    static constexpr float ZERO = static_cast<float>(1 << FIELD_BITS);
};

// byte ``index`` of ``bytes`` (< 128) as the biased float 0.5 + byte / 256
__device__ __forceinline__ float biased_float(u32 bytes, int index) {
    return __uint_as_float(__byte_perm(bytes, static_cast<u32>(BIASED_FLOAT_BITS),
                                       static_cast<u32>(BIASED_SELECT) | (static_cast<u32>(index) << 8)));
}

// the 4 quants (< 2^FIELD_BITS) in the low bits of the bytes of ``quants`` as biased floats
// v[0..3] of a FIELD_BITS field (the shift keeps each below bit 7, so no byte overflows; the
// compiler folds it into the caller's own shift and mask where it can)
template <int FIELD_BITS>
__device__ __forceinline__ void biased_floats(u32 quants, float* v) {
    const u32 bytes = quants << BiasedField<FIELD_BITS>::SHIFT;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[i] = biased_float(bytes, i);
    }
}

// the affine map of biased values of a FIELD_BITS field from that of the exact quants
// (w = scale * q - offset)
template <int FIELD_BITS>
__device__ __forceinline__ PartAffine biased_affine(float scale_lo, float scale_hi,
                                                    float offset_lo, float offset_hi) {
    using Field = BiasedField<FIELD_BITS>;
    return make_affine(Field::SCALE * scale_lo, Field::SCALE * scale_hi,
                       fmaf(Field::ZERO, scale_lo, offset_lo), fmaf(Field::ZERO, scale_hi, offset_hi));
}

// bits 0..3 of ``bits`` into bit 0 of bytes 0..3 (bit b moves up 7b places)
__device__ __forceinline__ u32 spread_bits(u32 bits) {
    return (bits * static_cast<u32>(SPREAD_MULTIPLIER)) & static_cast<u32>(LOW_BITS);
}

// sum_j w[j] * x[j] of one part from its values and affine map; x: 32 activations at a
// 16-byte aligned address.  WITH_OFFSET: the format has offsets (else they are zero).  x is
// read 8 at a time between the FMAs, not all 32 first as load_part_activations does: the
// batched kernel calls this per activation row, and holding 32 more floats a call cost it up
// to 27 registers more or 8 bytes of spills (nvcc 13, sm_90).
template <bool WITH_OFFSET, typename T>
__device__ __forceinline__ float affine_dot(const float (&v)[PART_WEIGHTS], const PartAffine& affine,
                                            const T* x) {
    float dot[2] = {};
    float sum[2] = {};
#pragma unroll
    for (int chunk = 0; chunk < PART_WEIGHTS / 8; ++chunk) {
        float xv[8];
        load8(x + 8 * chunk, xv);
        const int half_index = chunk / 2;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            dot[half_index] = fmaf(v[8 * chunk + j], xv[j], dot[half_index]);
            if constexpr (WITH_OFFSET) {
                sum[half_index] += xv[j];
            }
        }
    }
    float total = affine.scale[0] * dot[0] + affine.scale[1] * dot[1];
    if constexpr (WITH_OFFSET) {
        total -= affine.offset[0] * sum[0] + affine.offset[1] * sum[1];
    }
    return total;
}

// ---- integer dot products: 16-bit activations as int16, quants as bytes (dp2a) ----------
// The matvecs of 16-bit activations turn each part's 32 activations into int16 once (a lane
// reuses them for all its rows) and sum q * x of each row's part with dp2a, two products an
// instruction, with the quants left as the bytes a mask gives (a high nibble stays where it is,
// 16 q, and the power of two goes into the scale).  Against the biased float values (one PRMT
// and one FFMA a weight) a 4-bit word of 4 weights costs one LOP3 and two dp2a: the M = 1
// K-quant and Q4_0 kernels were bound by that decode (H100, session 20: Q4_K 4096x14336 16.6 ->
// 14.8 us, Q4_0 14336x4096 16.5 -> 15.2).
// x ~= unit * xi with a power-of-two unit: the part's largest |x| maps into [2^13, 2^14), so
// every xi fits int16 and a sum of 32 products with bytes (<= 255) fits int32.  The rounding
// error, half a unit, is 2^-14 of the part's largest |x| (f16 x carries 11 bits, bf16 8):
// 16-bit results came out as close to the float64 reference as with float decoding (2.1e-4,
// the output's own rounding).  Non-finite x still gives a non-finite result: an integer_dot
// with a zero point or offset subtracts a multiple of the part's float sums of x; for the
// others (no sums of x) int16_part<true> finds the largest |x| by its bits, where NaN and
// infinity are the largest, and makes the unit NaN.  float32 x keeps the float decode (its
// error bound is 2e-6).
struct Int16Part {
    static constexpr int TOP_EXPONENT = 13;  // the largest |x| of a part scales into [2^13, 2^14)
    static constexpr u32 FLOAT_EXPONENT_BIAS = 127;
    static constexpr int FLOAT_MANTISSA_BITS = 23;
    // 2^-24, the smallest 16-bit x, as a float exponent field: an all-zero part scales by this
    static constexpr u32 MIN_EXPONENT = FLOAT_EXPONENT_BIAS - 24;
    static constexpr u32 NON_FINITE_EXPONENT = 0xFFu;
    static constexpr u32 MAGNITUDE_BITS = 0x7FFFFFFFu;
    static constexpr u32 QUIET_NAN = 0x7FC00000u;
    static constexpr float ROUNDING_MAGIC = 12582912.0f;  // 1.5 * 2^23: v + it has round(v) in its low bits

    u32 pairs[PART_WEIGHTS / 2];  // xi of weights 2j, 2j + 1 as the low, high halves of pair j
    float unit;                  // x = unit * xi
};

// The unit of a part whose largest |x| has the bits ``largest`` (a power of two putting it
// in [2^13, 2^14)), and in ``inverse`` its inverse; PROPAGATE_NAN: NaN for a non-finite largest
template <bool PROPAGATE_NAN>
__device__ __forceinline__ float int16_unit(u32 largest, float& inverse) {
    using P = Int16Part;
    const u32 exponent = max(largest >> P::FLOAT_MANTISSA_BITS, P::MIN_EXPONENT);
    // 2^(TOP - (exponent - BIAS)) and its inverse, as exponent fields
    const u32 to_int = 2 * P::FLOAT_EXPONENT_BIAS + P::TOP_EXPONENT - exponent;
    const u32 to_unit = exponent - P::TOP_EXPONENT;
    inverse = __uint_as_float(to_int << P::FLOAT_MANTISSA_BITS);
    return PROPAGATE_NAN && exponent == P::NON_FINITE_EXPONENT ? __uint_as_float(P::QUIET_NAN)
                                                                : __uint_as_float(to_unit << P::FLOAT_MANTISSA_BITS);
}

// x * inverse rounded to int16, two at a time: pair j of ``pairs`` holds xv[2j], xv[2j + 1]
template <int COUNT>
__device__ __forceinline__ void int16_pairs(const float (&xv)[COUNT], float inverse, u32 (&pairs)[COUNT / 2]) {
#pragma unroll
    for (int j = 0; j < COUNT / 2; ++j) {
        const u32 low = __float_as_uint(fmaf(xv[2 * j], inverse, Int16Part::ROUNDING_MAGIC));
        const u32 high = __float_as_uint(fmaf(xv[2 * j + 1], inverse, Int16Part::ROUNDING_MAGIC));
        pairs[j] = __byte_perm(low, high, 0x5410u);  // the low halves: two int16
    }
}

// PROPAGATE_NAN: a non-finite x makes the unit NaN (for an integer_dot that takes no sums of
// x); else fmaxf passes over a NaN, one instruction an activation instead of two
template <bool PROPAGATE_NAN = false>
__device__ __forceinline__ Int16Part int16_part(const float (&xv)[PART_WEIGHTS]) {
    using P = Int16Part;
    u32 largest = 0;  // the bits of the largest |x|: non-negative floats order as their bits
#pragma unroll
    for (int j = 0; j < PART_WEIGHTS; ++j) {
        if constexpr (PROPAGATE_NAN) {
            largest = max(largest, __float_as_uint(xv[j]) & P::MAGNITUDE_BITS);
        } else {
            largest = __float_as_uint(fmaxf(__uint_as_float(largest), fabsf(xv[j])));
        }
    }
    float inverse;
    Int16Part x;
    x.unit = int16_unit<PROPAGATE_NAN>(largest, inverse);
    int16_pairs(xv, inverse, x.pairs);
    return x;
}

// Half a part's activations as int16 (matvec_lanes.cu), the other half held by the
// neighbouring lane (lane ^ 1, which calls this too): the unit is the whole part's, so the
// two lanes' integer sums are in the same unit.  A NaN is passed over (the formats that take
// it subtract float sums of x, which carry it).
struct Int16Half {
    u32 pairs[HALF_PART / 2];
    float unit;
};

__device__ __forceinline__ Int16Half int16_half_part(const float (&xv)[HALF_PART]) {
    u32 largest = 0;
#pragma unroll
    for (int j = 0; j < HALF_PART; ++j) {
        largest = __float_as_uint(fmaxf(__uint_as_float(largest), fabsf(xv[j])));
    }
    largest = max(largest, __shfl_xor_sync(FULL_MASK, largest, 1));
    float inverse;
    Int16Half x;
    x.unit = int16_unit<false>(largest, inverse);
    int16_pairs(xv, inverse, x.pairs);
    return x;
}

// The activations a lane's 16 quant bytes of a 4-bit K-quant block multiply (matvec_lanes.cu):
// the same 16 weights of a low-nibble sub-block and of the high-nibble one after it, x[0..15]
// and x[PART_WEIGHTS ..  + 15] from ``x``, as int16 in their sub-blocks' units
// (int16_half_part: the other halves are the neighbouring lane's) and their float sums (what
// the sub-blocks' offsets multiply).  A lane ``present`` false (past its row's last block)
// reads nothing and takes zeros, but still joins the unit's shuffle.
struct NibbleHalves {
    Int16Half low;
    Int16Half high;
    float low_sum;
    float high_sum;
};

template <typename T>
__device__ __forceinline__ NibbleHalves load_nibble_halves(const T* x, bool present) {
    float low[HALF_PART];
    float high[HALF_PART];
#pragma unroll
    for (int j = 0; j < HALF_PART; j += 8) {
        if (present) {
            load8(x + j, *reinterpret_cast<float (*)[8]>(low + j));
            load8(x + PART_WEIGHTS + j, *reinterpret_cast<float (*)[8]>(high + j));
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                low[j + i] = 0.0f;
                high[j + i] = 0.0f;
            }
        }
    }
    NibbleHalves halves;
    halves.low_sum = 0.0f;
    halves.high_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < HALF_PART; ++j) {
        halves.low_sum += low[j];
        halves.high_sum += high[j];
    }
    halves.low = int16_half_part(low);
    halves.high = int16_half_part(high);
    return halves;
}

// sum + the products of the int16 pair ``x`` with bytes 0, 1 (dp2a_low) or 2, 3 (dp2a_high)
// of ``quants``, unsigned (or SIGNED)
template <bool SIGNED = false>
__device__ __forceinline__ int dp2a_low(u32 x, u32 quants, int sum) {
    int out;
    if constexpr (SIGNED) {
        asm("dp2a.lo.s32.s32 %0, %1, %2, %3;" : "=r"(out) : "r"(x), "r"(quants), "r"(sum));
    } else {
        asm("dp2a.lo.s32.u32 %0, %1, %2, %3;" : "=r"(out) : "r"(x), "r"(quants), "r"(sum));
    }
    return out;
}

template <bool SIGNED = false>
__device__ __forceinline__ int dp2a_high(u32 x, u32 quants, int sum) {
    int out;
    if constexpr (SIGNED) {
        asm("dp2a.hi.s32.s32 %0, %1, %2, %3;" : "=r"(out) : "r"(x), "r"(quants), "r"(sum));
    } else {
        asm("dp2a.hi.s32.u32 %0, %1, %2, %3;" : "=r"(out) : "r"(x), "r"(quants), "r"(sum));
    }
    return out;
}

// sum + the products of weights 4i..4i+3 of a part (or half part: Int16Half), as the 4 bytes
// of ``quants`` (unsigned or SIGNED), with x
template <bool SIGNED = false, typename Int16Form>
__device__ __forceinline__ int dot_word(const Int16Form& x, int i, u32 quants, int sum) {
    return dp2a_high<SIGNED>(x.pairs[2 * i + 1], quants, dp2a_low<SIGNED>(x.pairs[2 * i], quants, sum));
}

// How the reducing kernels decode a part of Format for activations of type T: biased values
// where the format has them (in the byte field for 16-bit T, at the top of the mantissa for
// float32: see "biased values"), else the exact values.  NEEDS_X_SUM: the affine map has
// offsets, so the kernel must take sum(x) of each half part.  INTEGER_X (16-bit T, formats
// with Format::integer_dot; the emitter's choice): the kernel takes each part's activations
// as int16 too (int16_part), and part_dot sums through Format::integer_dot instead.
template <typename FormatType, typename T, bool INTEGER = false>
struct PartDecode {
    static_assert(!INTEGER || sizeof(T) == 2, "int16 activations from 16-bit ones only");
    using Format = FormatType;
    static constexpr bool INTEGER_X = INTEGER;
    static constexpr bool BIASED = Format::BIASED;
    static constexpr int FIELD_BITS = sizeof(T) == sizeof(float) ? Format::QUANT_BITS : BIASED_BYTE_FIELD;
    static constexpr bool NEEDS_X_SUM = Format::HAS_OFFSET || BIASED;

    template <typename Raw>
    __device__ static __forceinline__ void values(const Raw& raw, int part,
                                                  float (&v)[PART_WEIGHTS], PartAffine& affine) {
        if constexpr (BIASED) {
            Format::template decode_biased<FIELD_BITS>(raw, part, v, affine);
        } else {
            Format::decode_values(raw, part, v, affine);
        }
    }

    // INTEGER_X: a part's activations as int16 (int16_part; without sums of x to carry a NaN
    // the unit carries it)
    __device__ static __forceinline__ Int16Part int16_activations(const float (&xv)[PART_WEIGHTS]) {
        return int16_part<!NEEDS_X_SUM>(xv);
    }
};

// With WITH_SUM the sums of a part's two halves of activations (what an affine map's offsets
// multiply), else zeros.
template <bool WITH_SUM>
__device__ __forceinline__ void sum_part_halves(const float (&xv)[PART_WEIGHTS], float (&x_sum)[2]) {
    x_sum[0] = 0.0f;
    x_sum[1] = 0.0f;
    if constexpr (WITH_SUM) {
#pragma unroll
        for (int j = 0; j < PART_WEIGHTS; ++j) {
            x_sum[j / HALF_PART] += xv[j];
        }
        // summed here, once: without this the compiler sinks the 32 additions into each
        // row's (conditional) block of the caller and repeats them there
        asm volatile("" : "+f"(x_sum[0]), "+f"(x_sum[1]));
    }
}

// The 32 activations of a part (16-byte aligned) as floats, and with WITH_SUM the sums of
// its two halves (what an affine map's offsets multiply); the matvecs load them once for
// all the rows they reuse them for.
template <bool WITH_SUM, typename T>
__device__ __forceinline__ void load_part_activations(const T* x, float (&xv)[PART_WEIGHTS],
                                                      float (&x_sum)[2]) {
#pragma unroll
    for (int j = 0; j < PART_WEIGHTS; j += 8) {
        load8(x + j, *reinterpret_cast<float (*)[8]>(xv + j));
    }
    sum_part_halves<WITH_SUM>(xv, x_sum);
}

// The activations of a warp's 32 consecutive parts, lane l taking part l's, staged through
// shared memory.  Each lane reading its own part straight from global memory touches 32
// cache lines per load instruction (one per lane), and L1 serves each line separately:
// for float32 x that was the matvecs' limit (H100: float32 Q4_0 4096x14336 32.3 us, 20.0
// with every lane loading the same part).  Here the warp loads the parts' words coalesced
// (4 lines an instruction) into a stage of one row of WORDS_PER_PART 16-byte words a part,
// its columns XOR-swizzled so that both the coalesced stores and each lane's reads of its
// own row hit 8 distinct 16-byte bank groups per 8 lanes (no bank conflicts).
template <typename T>
struct PartActivationStage {
    static constexpr int WORDS_PER_PART = PART_WEIGHTS * static_cast<int>(sizeof(T)) / 16;
    static constexpr int WORDS = WARP_SIZE * WORDS_PER_PART;
    static constexpr int VALUES_PER_WORD = 16 / static_cast<int>(sizeof(T));
    // parts sharing one 128-byte row of the 8 bank groups
    static constexpr int PARTS_PER_BANK_ROW = 8 / WORDS_PER_PART;
    static_assert(WORDS_PER_PART * PARTS_PER_BANK_ROW == 8, "a part's words tile the banks");

    __device__ static __forceinline__ int slot(int part, int column) {
        return part * WORDS_PER_PART + (column ^ ((part / PARTS_PER_BANK_ROW) % WORDS_PER_PART));
    }
};

// Lane l's part-l activations of the warp's parts at x (16-byte aligned), of which the first
// ``parts`` exist (the rest are not read, their lanes' values are undefined), and with
// WITH_SUM the sums of each part's two halves, as load_part_activations.  ``stage``: the
// warp's PartActivationStage<T>::WORDS words of shared memory.  Every lane of the warp calls it.
template <bool WITH_SUM, typename T>
__device__ __forceinline__ void stage_part_activations(const T* x, int parts, uint4* stage,
                                                       int lane, float (&xv)[PART_WEIGHTS],
                                                       float (&x_sum)[2]) {
    using Stage = PartActivationStage<T>;
    const uint4* words = reinterpret_cast<const uint4*>(x);
    __syncwarp();  // every lane is done reading the previous parts
#pragma unroll
    for (int i = 0; i < Stage::WORDS_PER_PART; ++i) {
        const int word = lane + i * WARP_SIZE;
        const int part = word / Stage::WORDS_PER_PART;
        if (part < parts) {
            stage[Stage::slot(part, word % Stage::WORDS_PER_PART)] = words[word];
        }
    }
    __syncwarp();
#pragma unroll
    for (int column = 0; column < Stage::WORDS_PER_PART; ++column) {
        const uint4 raw = stage[Stage::slot(lane, column)];
        const T* values = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < Stage::VALUES_PER_WORD; ++j) {
            xv[column * Stage::VALUES_PER_WORD + j] = to_float(values[j]);
        }
    }
    sum_part_halves<WITH_SUM>(xv, x_sum);
}

// sum_j w[j] * x[j] of one part from its values and affine map and activations loaded by
// load_part_activations (x_sum zero where the map has no offsets)
__device__ __forceinline__ float affine_dot_loaded(const float (&v)[PART_WEIGHTS],
                                                   const PartAffine& affine,
                                                   const float (&xv)[PART_WEIGHTS],
                                                   const float (&x_sum)[2]) {
    float dot[2] = {};
#pragma unroll
    for (int j = 0; j < PART_WEIGHTS; ++j) {
        dot[j / HALF_PART] = fmaf(v[j], xv[j], dot[j / HALF_PART]);
    }
    return affine.scale[0] * dot[0] + affine.scale[1] * dot[1] -
           (affine.offset[0] * x_sum[0] + affine.offset[1] * x_sum[1]);
}

// sum_j w[j] * x[j] of one part of a row (raw: Format::load) and the lane's activations of
// it: from their int16 form (x_int: int16_part) where Decode::INTEGER_X, else from the decoded
// values and the floats (xv, x_sum: load_part_activations)
template <typename Decode, typename Raw>
__device__ __forceinline__ float part_dot(const Raw& raw, int part, const float (&xv)[PART_WEIGHTS],
                                          const float (&x_sum)[2], const Int16Part& x_int) {
    if constexpr (Decode::INTEGER_X) {
        return Decode::Format::integer_dot(raw, part, x_int, x_sum);
    } else {
        float v[PART_WEIGHTS];
        PartAffine affine;
        Decode::values(raw, part, v, affine);
        return affine_dot_loaded(v, affine, xv, x_sum);
    }
}

// Dot product of one decoded part (32 weights) with 32 activations at a 16-byte aligned address.
template <typename T>
__device__ __forceinline__ float dot_part(const float (&w)[PART_WEIGHTS], const T* x) {
    float sum = 0.0f;
#pragma unroll
    for (int chunk = 0; chunk < PART_WEIGHTS / 8; ++chunk) {
        float v[8];
        load8(x + 8 * chunk, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            sum = fmaf(w[8 * chunk + j], v[j], sum);
        }
    }
    return sum;
}

// 8 float values stored as 8 consecutive T (16-byte aligned for 2-byte T, 32 for float).
__device__ __forceinline__ void store8(float* p, const float* v) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

__device__ __forceinline__ void store8(__half* p, const float* v) {
    uint4 raw;
    __half2* pairs = reinterpret_cast<__half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        pairs[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
    }
    *reinterpret_cast<uint4*>(p) = raw;
}

__device__ __forceinline__ void store8(__nv_bfloat16* p, const float* v) {
    uint4 raw;
    __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        pairs[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    }
    *reinterpret_cast<uint4*>(p) = raw;
}

}  // namespace ggufc

#endif  // GGUFC_CUDA_PRELUDE

// Tensor-core operand helpers (CUDA), shared by every format's staged decode (the
// ``tc::Staged<FORMAT>`` struct at the end of each formats/<format>.cuh) and by the 16-bit
// matmul (matmul.cu), which copies raw GGUF blocks into shared memory asynchronously and has
// each format decode them straight into mma.sync / wgmma fragments.
//
// A K step of the matmul covers 64 weights of each weight row: two parts of 32, one per warp
// K group.  For each format the raw bytes a step needs are one or two byte ranges of the row
// ("segments"); each is copied as the 16-byte aligned chunks that cover it, so a segment on
// any 2-byte boundary (Q4_0, Q5_0, Q8_0, Q6_K blocks are 18, 22, 34, 210 bytes) lands in
// shared memory at the same offset mod 16 as in global memory (its "misalignment").  K-quant
// scales are decoded once per (row, part) from a separately staged header into a table.
//
// Fragment layout (mma.sync m16n8k16, B operand, column n = lane / 4, pair = lane % 4): the
// lane holds b[s][0] = weights (16s + 2*pair, +1) and b[s][1] = weights (16s + 2*pair + 8, +9)
// of its row's part, K sub-step s = 0, 1.  So a lane reads bytes 2*pair + 8i (+1), i = 0..3,
// of each 32-byte run of per-weight bytes, or of the 16 bytes of a 4-bit block (Q4_0, Q5_0).
// Integers become 16-bit floats without conversion instructions: OR-ing q into the mantissa
// of BASE (1024 for f16, 128 for bf16; BASE + q is exact for q < BASE) gives BASE + q, and
// one exact subtraction leaves q - zero_point; one more fused op applies the scale.
#ifndef GGUFC_CUDA_TENSOR_CORE
#define GGUFC_CUDA_TENSOR_CORE

namespace ggufc {
namespace tc {

constexpr int CHUNK_BYTES = 16;

// The 16-byte chunks that cover ``bytes`` starting on any 2-byte boundary (on a 16-byte one
// where ``aligned``): what a row slot of the matmul's stages holds for a segment.
__host__ __device__ constexpr int covering_chunks(int bytes, bool aligned) {
    return bytes == 0 ? 0 : (bytes + (aligned ? 0 : CHUNK_BYTES - 2) + CHUNK_BYTES - 1) / CHUNK_BYTES;
}

__device__ __forceinline__ u32 shared_address(const void* p) {
    return static_cast<u32>(__cvta_generic_to_shared(p));
}

// ldmatrix.x4: four 8x8 16-bit matrices; lane l gives the address of row l % 8 of matrix
// l / 8 and receives elements (l / 4, 2 * (l % 4) .. +1) of each.
__device__ __forceinline__ void load_matrix_x4(u32 (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
}

// Three-input bitwise functions in one LOP3 (in C++ the compiler spends one LOP3 per
// immediate operand): LUT 0xEA is (a & b) | c, 0x6A is (a & b) ^ c.
template <u32 LUT, u32 B, u32 C>
__device__ __forceinline__ u32 lop3(u32 a) {
    u32 d;
    asm("lop3.b32 %0, %1, %2, %3, %4;\n" : "=r"(d) : "r"(a), "n"(B), "n"(C), "n"(LUT));
    return d;
}
template <u32 LUT, u32 B>
__device__ __forceinline__ u32 lop3(u32 a, u32 c) {
    u32 d;
    asm("lop3.b32 %0, %1, %2, %3, %4;\n" : "=r"(d) : "r"(a), "n"(B), "r"(c), "n"(LUT));
    return d;
}
template <u32 LUT>
__device__ __forceinline__ u32 lop3(u32 a, u32 b, u32 c) {
    u32 d;
    asm("lop3.b32 %0, %1, %2, %3, %4;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c), "n"(LUT));
    return d;
}
// (enumerators, unlike constexpr variables, may go unused in a translation unit under -Werror)
enum : u32 { AND_OR = 0xEA, AND_XOR = 0x6A };
// (a & MASK) | BITS
template <u32 MASK, u32 BITS>
__device__ __forceinline__ u32 and_or(u32 a) { return lop3<AND_OR, MASK, BITS>(a); }
// (a & MASK) | bits
template <u32 MASK>
__device__ __forceinline__ u32 and_or(u32 a, u32 bits) { return lop3<AND_OR, MASK>(a, bits); }
// (a & mask) | bits
__device__ __forceinline__ u32 and_or(u32 a, u32 mask, u32 bits) {
    return lop3<AND_OR>(a, mask, bits);
}

__device__ __forceinline__ u32 load_shared_u16(const u8* p) {
    return *reinterpret_cast<const u16*>(p);
}

// Bits of the 16-bit float (f16: 10 mantissa bits, bf16: 7) of the integer v; v must be
// exactly representable (true of every constant here).
template <int MANTISSA_BITS, int EXPONENT_BIAS>
__host__ __device__ constexpr u32 small_int_bits(int v) {
    const u32 sign = v < 0 ? 0x8000u : 0u;
    const u32 magnitude = static_cast<u32>(v < 0 ? -v : v);
    if (magnitude == 0) {
        return sign;
    }
    int exponent = 0;
    while ((magnitude >> (exponent + 1)) != 0) {
        ++exponent;
    }
    const u32 fraction = magnitude - (1u << exponent);
    const u32 mantissa = exponent <= MANTISSA_BITS ? fraction << (MANTISSA_BITS - exponent)
                                                   : fraction >> (exponent - MANTISSA_BITS);
    return sign | (static_cast<u32>(exponent + EXPONENT_BIAS) << MANTISSA_BITS) | mantissa;
}

__host__ __device__ constexpr u32 both_halves(u32 bits) { return bits | (bits << 16); }

// Two 16-bit floats in one register (the low half is the lower K index), f16 or bf16.
template <typename T>
struct Pair;

template <>
struct Pair<__half> {
    static constexpr int BASE = 1024;
    __host__ __device__ static constexpr u32 constant(int v) {
        return both_halves(small_int_bits<10, 15>(v));
    }
    __device__ static __forceinline__ u32 fma(u32 a, u32 b, u32 c) {
        u32 d;
        asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
        return d;
    }
    // both halves = the f16 whose bits are ``bits``
    __device__ static __forceinline__ u32 splat_f16(u32 bits) { return bits * 0x10001u; }
    __device__ static __forceinline__ u32 pack(float lo, float hi) {
        const __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const u32*>(&v);
    }
};

template <>
struct Pair<__nv_bfloat16> {
    static constexpr int BASE = 128;
    __host__ __device__ static constexpr u32 constant(int v) {
        return both_halves(small_int_bits<7, 127>(v));
    }
    __device__ static __forceinline__ u32 fma(u32 a, u32 b, u32 c) {
        u32 d;
        asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
        return d;
    }
    __device__ static __forceinline__ u32 splat_f16(u32 bits) {
        return pack(__half2float(__ushort_as_half(static_cast<u16>(bits))),
                    __half2float(__ushort_as_half(static_cast<u16>(bits))));
    }
    __device__ static __forceinline__ u32 pack(float lo, float hi) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const u32*>(&v);
    }
};

// Arithmetic on pairs.  ``magic`` is a pair of BASE + q built by OR-ing q into BASE's bits.
template <typename T>
struct PairMath {
    static constexpr u32 ONE = Pair<T>::constant(1);
    static constexpr u32 NEGATIVE_ZERO = 0x80008000u;
    static constexpr u32 MAGIC = Pair<T>::constant(Pair<T>::BASE);
    // x - V (exact where x and the result are small integers)
    template <int V>
    __device__ static __forceinline__ u32 minus(u32 x) {
        return Pair<T>::fma(x, ONE, Pair<T>::constant(-V));
    }
    // q - ZERO_POINT from BASE + q
    template <int ZERO_POINT>
    __device__ static __forceinline__ u32 unbias(u32 magic) {
        return minus<Pair<T>::BASE + ZERO_POINT>(magic);
    }
    __device__ static __forceinline__ u32 mul(u32 a, u32 b) {
        return Pair<T>::fma(a, b, NEGATIVE_ZERO);
    }
};

// Every pair of a fragment times a pair of scales (the 32-weight formats' fragment: their
// values, then the block's scale).
template <typename T>
__device__ __forceinline__ void scale_pairs(u32 (&b)[2][2], u32 scale) {
#pragma unroll
    for (int s = 0; s < 2; ++s) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            b[s][h] = PairMath<T>::mul(b[s][h], scale);
        }
    }
}

// What the 32-weight formats' staged decodes share (each derives from it): a block carries
// its scale d in its first 2 bytes, and in the staged mma matvec (matvec_mma_staged.cu) a K
// group of a step is one block, given unscaled (Format::block_values) with d as its one scale.
template <typename Format>
struct BlockScaled {
    // the block's scale d (f16 bits)
    __device__ static __forceinline__ u32 scale_bits(const u8* block) { return load_shared_u16(block); }

    static constexpr int SCALES_A_PART = 1;
    static constexpr bool HAS_OFFSETS = false;
    static constexpr bool VALUES_FROM_HEAD = false;
    template <typename T>
    __device__ static __forceinline__ void values(const u8* body, const u8*, int k_group, int pair, int,
                                                  u32 (&v)[2][2]) {
        Format::template block_values<T>(body + k_group * Format::BLOCK_BYTES, pair, v);
    }
    __device__ static __forceinline__ void scales(const u8* body, const u8*, int k_group, int,
                                                  float (&scale)[SCALES_A_PART]) {
        const u32 bits = scale_bits(body + k_group * Format::BLOCK_BYTES);
        scale[0] = __half2float(__ushort_as_half(static_cast<u16>(bits)));
    }
};

// The pair of 4-bit fields of bytes 0 and 2 of w (bits 4h..4h+3 of each) as BASE_H + q.
// f16 reads the high nibble in place against 64.0, whose mantissa step is 1/16; bf16 has
// too few mantissa bits for that and shifts instead.
template <typename T>
struct Nibbles;

template <>
struct Nibbles<__half> {
    static constexpr int BASE_LOW = 1024;
    static constexpr int BASE_HIGH = 64;
    __device__ static __forceinline__ u32 low(u32 w) { return and_or<0x000F000Fu, 0x64006400u>(w); }
    __device__ static __forceinline__ u32 high(u32 w) {
        return and_or<0x00F000F0u, 0x54005400u>(w);
    }
};

template <>
struct Nibbles<__nv_bfloat16> {
    static constexpr int BASE_LOW = 128;
    static constexpr int BASE_HIGH = 128;
    __device__ static __forceinline__ u32 low(u32 w) { return and_or<0x000F000Fu, 0x43004300u>(w); }
    __device__ static __forceinline__ u32 high(u32 w) {
        return and_or<0x000F000Fu, 0x43004300u>(w >> 4);
    }
};

// The nibble of bytes 0 and 2 of w selected by a warp-uniform ``high`` (0 or 1) as q - 0,
// for formats whose K group picks the nibble (Q4_K): the mask, magic and base are chosen
// once per warp.
template <typename T>
struct NibbleSelect;

template <>
struct NibbleSelect<__half> {
    u32 mask;
    u32 magic;
    u32 unbias;
    __device__ explicit NibbleSelect(int high)
        : mask(high ? 0x00F000F0u : 0x000F000Fu),
          magic(high ? 0x54005400u : 0x64006400u),
          unbias(high ? Pair<__half>::constant(-Nibbles<__half>::BASE_HIGH)
                      : Pair<__half>::constant(-Nibbles<__half>::BASE_LOW)) {}
    __device__ __forceinline__ u32 values(u32 w) const {
        return Pair<__half>::fma(and_or(w, mask, magic), PairMath<__half>::ONE, unbias);
    }
};

template <>
struct NibbleSelect<__nv_bfloat16> {
    int shift;
    __device__ explicit NibbleSelect(int high) : shift(4 * high) {}
    __device__ __forceinline__ u32 values(u32 w) const {
        return PairMath<__nv_bfloat16>::unbias<0>(and_or<0x000F000Fu, 0x43004300u>(w >> shift));
    }
};

// Values of 4 + EXTRA bits, q = nibble | extra << 4: the nibble (low or high) of bytes 0 and 2
// of w (``first``) or 1 and 3 (``second``), the EXTRA bits from bit ``bit`` of the same bytes
// of h, returned as q - ZERO_POINT.  The choices are uniform over a warp and step, so masks
// and shifts are set up once.  f16 reads a high nibble in place (see Nibbles) and moves the
// extra bits above it, by ``shift`` = bit + 4 - 4 * high_nibble for bytes 1 and 3;
// MAX_F16_SHIFT bounds it (at most 8 saves a shift for bytes 0 and 2).
template <typename T, int EXTRA, int MAX_F16_SHIFT, int ZERO_POINT>
struct WideNibbles;

template <int EXTRA, int MAX_F16_SHIFT, int ZERO_POINT>
struct WideNibbles<__half, EXTRA, MAX_F16_SHIFT, ZERO_POINT> {
    static constexpr u32 EXTRA_LOW = (1u << EXTRA) - 1;
    static constexpr bool LEFT_ONLY = MAX_F16_SHIFT <= 8;
    u32 nibble_mask;
    u32 magic;
    u32 extra_mask;
    u32 unbias;
    int shift;
    __device__ WideNibbles(int high_nibble, int bit)
        : nibble_mask(high_nibble ? 0x00F000F0u : 0x000F000Fu),
          magic(high_nibble ? 0x54005400u : 0x64006400u),
          extra_mask(EXTRA_LOW * (high_nibble ? 0x01000100u : 0x00100010u)),
          unbias(Pair<__half>::constant(-(Nibbles<__half>::BASE_LOW + ZERO_POINT))),
          shift(bit + 4 - 4 * high_nibble) {
        if (high_nibble) {
            unbias = Pair<__half>::constant(-(Nibbles<__half>::BASE_HIGH + ZERO_POINT));
        }
    }
    __device__ __forceinline__ u32 values(u32 nibbles, u32 extras) const {
        const u32 magic_bits = and_or(extras, extra_mask, and_or(nibbles, nibble_mask, magic));
        return Pair<__half>::fma(magic_bits, PairMath<__half>::ONE, unbias);
    }
    __device__ __forceinline__ u32 first(u32 w, u32 h) const {
        return values(w, LEFT_ONLY ? h << (8 - shift) : (h << 8) >> shift);
    }
    __device__ __forceinline__ u32 second(u32 w, u32 h) const {
        return values(w >> 8, h >> shift);
    }
};

template <int EXTRA, int MAX_F16_SHIFT, int ZERO_POINT>
struct WideNibbles<__nv_bfloat16, EXTRA, MAX_F16_SHIFT, ZERO_POINT> {
    static constexpr u32 EXTRA_MASK = ((1u << EXTRA) - 1) * 0x00100010u;
    int nibble_shift;
    int shift;  // from the extra bits of bytes 1, 3 to bit 4
    __device__ WideNibbles(int high_nibble, int bit)
        : nibble_shift(4 * high_nibble), shift(bit + 4) {}
    __device__ __forceinline__ u32 values(u32 nibbles, u32 extras) const {
        const u32 magic_bits = and_or<EXTRA_MASK>(
            extras, and_or<0x000F000Fu, PairMath<__nv_bfloat16>::MAGIC>(nibbles));
        return PairMath<__nv_bfloat16>::template unbias<ZERO_POINT>(magic_bits);
    }
    __device__ __forceinline__ u32 first(u32 w, u32 h) const {
        return values(w >> nibble_shift, (h << 8) >> shift);
    }
    __device__ __forceinline__ u32 second(u32 w, u32 h) const {
        return values(w >> (nibble_shift + 8), h >> shift);
    }
};

// Bytes 2*pair + 8i and +1 (i = 0..3) of a 32-byte run as two words: w01 holds the bytes
// of i = 0 at bits 0-7 / 16-23 and of i = 1 at bits 8-15 / 24-31, w23 those of i = 2, 3.
struct ByteQuad {
    u32 w01;
    u32 w23;
};

__device__ __forceinline__ ByteQuad load_byte_quad(const u8* run, int pair) {
    const u8* p = run + 2 * pair;
    ByteQuad quad;
    quad.w01 = __byte_perm(load_shared_u16(p), load_shared_u16(p + 8), 0x5140);
    quad.w23 = __byte_perm(load_shared_u16(p + 16), load_shared_u16(p + 24), 0x5140);
    return quad;
}

// The two halves of a table word as pairs: {lo, lo} and {hi, hi}.
__device__ __forceinline__ u32 low_pair(u32 word) { return __byte_perm(word, 0u, 0x1010); }
__device__ __forceinline__ u32 high_pair(u32 word) { return __byte_perm(word, 0u, 0x3232); }

// mma.sync m16n8k16, float32 accumulators: d += a (16x16, row-major) * b (16x8, column-major).
template <typename T>
__device__ __forceinline__ void mma(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]);

template <>
__device__ __forceinline__ void mma<__half>(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&d)[4], const u32 (&a)[4],
                                                   const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Each format's staged decode (formats/<format>.cuh: tc::Staged<FORMAT>) defines
//   UNIT_STEPS, UNIT_BYTES  its copy unit: the whole blocks, UNIT_BYTES contiguous bytes of a
//                         row, that UNIT_STEPS K steps read (the matmul copies a group of whole
//                         units at a time, scales included)
//   HEADER_BYTES          bytes of a step's scales (K-quants), 0 where the quants carry them
//   SKIP_UNREAD_CHUNKS    the copies leave out a chunk past the group's bytes (per format)
//   ALIGNED               units start on 16-byte boundaries wherever a row does
//   body_start(s, step), header_start(step)   row offsets of a step's segments s = 0, 1 and
//                         of its scales
//   prepare<T>(header, part) -> table word (K-quants)
//   fragment<T>(body, body_1, table word, k_group, pair, step, b)
// where ``body`` / ``body_1`` / ``header`` point at the step's segments and scales in the
// row's staged group and ``step`` is the K step.  The staged mma matvec
// (matvec_mma_staged.cu) takes the same pairs unscaled and the scales apart, in float32:
//   SCALES_A_PART         scales of a K group's 32 weights (1: Q4_0, Q5_0, Q8_0, Q4_K, Q5_K;
//                         2: Q6_K)
//   HAS_OFFSETS           the weights are d * sc * q - dmin * m (Q4_K, Q5_K), and then:
//   Head                  what a row keeps of its block's head for the block's steps
//                         (Head::of(header, pair)), which scales, min_pair and offset_scale
//                         read, and values where VALUES_FROM_HEAD (Q5_K: its lane's qh bytes,
//                         values<T>(head, body_1, k_group, pair, step, v))
//   values<T>(body, body_1, k_group, pair, step, v)   fragment's pairs as exact q - zero point
//   scales(body, header, k_group, step, scale)        the K group's scales, in weight order
//                         (scales(head, k_group, step, scale) where HAS_OFFSETS)
//   min_pair<T>(head, k_group, step)   the K group's m as a pair of T (HAS_OFFSETS)
//   offset_scale(head)    -dmin, the factor of a block's sums of m * x (HAS_OFFSETS)

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_TENSOR_CORE

// Q6_K dequantize helper (CUDA).  Block (210 bytes, 256 weights): u8 ql[128] | u8 qh[64] |
// i8 scales[16] | f16 d.  Part p (weights 32p..32p+31) is half h = p/4, quarter t = p%4:
// weight l has nibble (ql[64h + 32*(t%2) + l] >> 4*(t/2)) & 15 and top bits
// (qh[32h + l] >> 2t) & 3; y = (d * scales[2p + l/16]) * (q - 32).  Blocks are 210 bytes,
// so only 2-byte loads are aligned.  ``load`` only issues loads; ``decode_values`` (exact
// quants) and ``decode_biased`` (biased ones, for the reducing kernels; prelude) do the
// arithmetic (see PartAffine).
#ifndef GGUFC_CUDA_FORMAT_Q6_K
#define GGUFC_CUDA_FORMAT_Q6_K

namespace ggufc {

struct Q6_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 210;
    static constexpr bool HAS_OFFSET = false;
    static constexpr int PARTS = 8;
    static constexpr int QH_OFFSET = 128;
    static constexpr int SCALES_OFFSET = 192;
    static constexpr int D_OFFSET = 208;
    static constexpr int ZERO_POINT = 32;
    // decode_biased gives biased values (prelude); kernels then always need sum(x)
    static constexpr bool BIASED = true;
    static constexpr int QUANT_BITS = 6;  // bits of a quant (the biased field of float32 x)
    static constexpr int SUB_BLOCK_WEIGHTS = 16;

    struct Raw {
        u16 ql[16];
        u16 qh[16];
        u16 scales;  // the two i8 scales of the part's sub-blocks
        u16 d;
    };

    __device__ static __forceinline__ Raw load(const u8* block, int part) {
        const int half_index = part / 4;
        const int quarter = part % 4;
        Raw raw;
        load_u16s<16>(block + 64 * half_index + PART_WEIGHTS * (quarter % 2), raw.ql);
        load_u16s<16>(block + QH_OFFSET + PART_WEIGHTS * half_index, raw.qh);
        raw.scales = load_u16(block + SCALES_OFFSET + 2 * part);
        raw.d = load_u16(block + D_OFFSET);
        return raw;
    }

    // d * the scales of the part's two sub-blocks
    __device__ static __forceinline__ void sub_block_scales(const Raw& raw, float& scale_lo, float& scale_hi) {
        const float d = __half2float(__ushort_as_half(raw.d));
        scale_lo = d * static_cast<float>(static_cast<i8>(raw.scales & 0xFF));
        scale_hi = d * static_cast<float>(static_cast<i8>(raw.scales >> 8));
    }

    // the quants of weights 4i..4i+3 of the part, a byte each: word i of its ql and qh bytes
    __device__ static __forceinline__ u32 quant_bytes(const Raw& raw, int part, int i) {
        const int quarter = part % 4;
        const u32 low = (word_of(raw.ql, i) >> (4 * (quarter / 2))) & LOW_NIBBLES;
        const u32 top = (word_of(raw.qh, i) >> (2 * quarter)) & LOW_TWO_BITS;
        return low | (top << 4);
    }

    __device__ static __forceinline__ void decode_values(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        const int quarter = part % 4;
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        affine = make_affine(scale_lo, scale_hi, 0.0f, 0.0f);
        const int nibble_shift = 4 * (quarter / 2);
        const int top_shift = 2 * quarter;
#pragma unroll
        for (int l = 0; l < PART_WEIGHTS; ++l) {
            const u32 q = ((static_cast<u32>(byte_of(raw.ql, l)) >> nibble_shift) & 0xFu) |
                          (((static_cast<u32>(byte_of(raw.qh, l)) >> top_shift) & 3u) << 4);
            v[l] = small_uint_to_float(q, ZERO_POINT);
        }
    }

    template <int FIELD_BITS>
    __device__ static __forceinline__ void decode_biased(const Raw& raw, int part,
                                                         float (&v)[PART_WEIGHTS],
                                                         PartAffine& affine) {
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        affine = biased_affine<FIELD_BITS>(scale_lo, scale_hi, ZERO_POINT * scale_lo, ZERO_POINT * scale_hi);
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            biased_floats<FIELD_BITS>(quant_bytes(raw, part, i), v + 4 * i);
        }
    }

    // int16 activations (prelude: "integer dot products"): a sum a sub-block
    __device__ static __forceinline__ float integer_dot(const Raw& raw, int part, const Int16Part& x,
                                                       const float (&x_sum)[2]) {
        float scale_lo;
        float scale_hi;
        sub_block_scales(raw, scale_lo, scale_hi);
        int sums[2] = {0, 0};
#pragma unroll
        for (int i = 0; i < PART_WEIGHTS / 4; ++i) {
            int& sum = sums[i / (SUB_BLOCK_WEIGHTS / 4)];
            sum = dot_word(x, i, quant_bytes(raw, part, i), sum);
        }
        return x.unit * (scale_lo * __int2float_rn(sums[0]) + scale_hi * __int2float_rn(sums[1])) -
               ZERO_POINT * (scale_lo * x_sum[0] + scale_hi * x_sum[1]);
    }

    __device__ static __forceinline__ void decode(const Raw& raw, int part,
                                                  float (&w)[PART_WEIGHTS]) {
        PartAffine affine;
        decode_values(raw, part, w, affine);
        apply_affine(affine, w);
    }

    // ---- tensor-core decode (prelude: "weights as pairs of small integers") ----
    // pair j = weights 2j, 2j+1 of the part, each its value + PAIR_ZERO_POINT.
    // part p + PART_PARTNER_OFFSET reads the same quant bytes as part p (the other nibble)
    static constexpr int PART_PARTNER_OFFSET = 2;
    static constexpr int PAIR_ZERO_POINT = ZERO_POINT;
    struct PartWords {
        u32 ql[8];
        u32 qh[8];
        u32 scales;
        u32 d;
    };

    // WIDE: the spans by load_words_wide (prelude), whose whole 16-byte granules stay inside
    // the block: ql and qh end by byte 192
    template <bool WIDE = false>
    __device__ static __forceinline__ PartWords load_part_words(const u8* block, int part) {
        const int half_index = part / 4;
        const int quarter = part % 4;
        PartWords words;
        load_words_by<WIDE>(block + 64 * half_index + PART_WEIGHTS * (quarter % 2), words.ql);
        load_words_by<WIDE>(block + QH_OFFSET + PART_WEIGHTS * half_index, words.qh);
        words.scales = load_u16(block + SCALES_OFFSET + 2 * part);
        words.d = load_u16(block + D_OFFSET);
        return words;
    }

    __device__ static __forceinline__ void integer_pairs(const PartWords& words, int part,
                                                         u32 (&pairs)[16], PartAffine& affine) {
        const int quarter = part % 4;
        const float d = __half2float(__ushort_as_half(static_cast<u16>(words.d)));
        const float scale_lo = d * static_cast<float>(static_cast<i8>(words.scales & 0xFFu));
        const float scale_hi = d * static_cast<float>(static_cast<i8>(words.scales >> 8));
        affine = make_affine(scale_lo, scale_hi, 0.0f, 0.0f);
        const int nibble_shift = 4 * (quarter / 2);
        const int top_shift = 2 * quarter;
        constexpr u32 TWO_BIT_PAIR_MASK = 0x00030003u;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 low = (byte_pair(words.ql[j / 2], j) >> nibble_shift) & NIBBLE_PAIR_MASK;
            const u32 top = (byte_pair(words.qh[j / 2], j) >> top_shift) & TWO_BIT_PAIR_MASK;
            pairs[j] = low | (top << 4);
        }
    }
};

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

namespace ggufc {
namespace tc {

// Step s is parts p = 2q + g (q = s % 4, g the K group) of super-block s / 4: half h = q / 2,
// quarter t = 2(q % 2) + g.  Weight l: nibble 4(q % 2) of ql[64h + 32g + l], bits 2t, 2t+1 of
// qh[32h + l]; scale d * scales[2p + l / 16].  Body: ql[64h .. 64h+63] then qh[32h .. +31];
// header: scales and d (block bytes 192 .. 209).  210-byte blocks start on any 2-byte boundary.
struct StagedQ6_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 210;
    static constexpr int QH_OFFSET = 128;
    static constexpr int SCALES_OFFSET = 192;
    static constexpr int D_FROM_SCALES = 16;
    static constexpr int ZERO_POINT = 32;
    static constexpr bool ALIGNED = false;
    // bytes of a step's scales (header_start: a K-quant block's), 0 where the quants carry them
    static constexpr int HEADER_BYTES = 18;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    // the copies' unit: the contiguous bytes of a row that UNIT_STEPS steps read (the
    // matmul copies a whole number of units at a time, its scales included)
    static constexpr int UNIT_STEPS = 4;
    static constexpr int UNIT_BYTES = BLOCK_BYTES;

    __device__ static __forceinline__ int block_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int segment, int step) {
        const int half_index = (step & 3) >> 1;
        return block_start(step) + (segment == 0 ? 64 * half_index : QH_OFFSET + 32 * half_index);
    }
    __device__ static __forceinline__ int header_start(int step) {
        return block_start(step) + SCALES_OFFSET;
    }

    // {d * scales[2 part], d * scales[2 part + 1]}
    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* scales, int part) {
        const u32 pair_bits = load_shared_u16(scales + 2 * part);
        const float d = __half2float(__ushort_as_half(
            static_cast<u16>(load_shared_u16(scales + D_FROM_SCALES))));
        const float low = static_cast<float>(static_cast<i8>(pair_bits & 0xFFu));
        const float high = static_cast<float>(static_cast<i8>(pair_bits >> 8));
        return Pair<T>::pack(d * low, d * high);
    }

    // The quants of K group ``k_group`` of a step at the lane's k slots as exact pairs of
    // q - ZERO_POINT (fragment's layout, unscaled)
    template <typename T>
    __device__ static __forceinline__ void values(const u8* body, const u8* body_1, int k_group,
                                                  int pair, int step, u32 (&v)[2][2]) {
        const int odd_quarter_pair = step & 1;  // q % 2: the high nibbles of ql
        // bits 2t, t = 2(q % 2) + g, nibble q % 2: the f16 shift 2g + 4 is at most 6
        const WideNibbles<T, 2, 6, ZERO_POINT> nibbles(odd_quarter_pair,
                                                       2 * (2 * odd_quarter_pair + k_group));
        const ByteQuad ql = load_byte_quad(body + 32 * k_group, pair);
        const ByteQuad qh = load_byte_quad(body_1, pair);
        v[0][0] = nibbles.first(ql.w01, qh.w01);
        v[0][1] = nibbles.second(ql.w01, qh.w01);
        v[1][0] = nibbles.first(ql.w23, qh.w23);
        v[1][1] = nibbles.second(ql.w23, qh.w23);
    }

    // values scaled by the table's pairs: written out rather than through values, which
    // would reorder the matmul's decode and scaling (its cubin changes; the measured order
    // is this one)
    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, const u8* body_1, u32 table,
                                                    int k_group, int pair, int step,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const int odd_quarter_pair = step & 1;
        const WideNibbles<T, 2, 6, ZERO_POINT> nibbles(odd_quarter_pair,
                                                       2 * (2 * odd_quarter_pair + k_group));
        const ByteQuad ql = load_byte_quad(body + 32 * k_group, pair);
        const ByteQuad qh = load_byte_quad(body_1, pair);
        const u32 scale_low = low_pair(table);    // weights 0..15 of the part
        const u32 scale_high = high_pair(table);  // weights 16..31
        b[0][0] = Math::mul(nibbles.first(ql.w01, qh.w01), scale_low);
        b[0][1] = Math::mul(nibbles.second(ql.w01, qh.w01), scale_low);
        b[1][0] = Math::mul(nibbles.first(ql.w23, qh.w23), scale_high);
        b[1][1] = Math::mul(nibbles.second(ql.w23, qh.w23), scale_high);
    }

    // The staged mma matvec's scales (matvec_mma_staged.cu): d * scales[2 part + h] of part
    // 2 (step % 4) + k_group, in float32, one for each half h of its 32 weights
    static constexpr int SCALES_A_PART = 2;
    static constexpr bool HAS_OFFSETS = false;
    static constexpr bool VALUES_FROM_HEAD = false;
    __device__ static __forceinline__ void scales(const u8*, const u8* header, int k_group, int step,
                                                  float (&scale)[SCALES_A_PART]) {
        const int part = 2 * (step & 3) + k_group;
        const u32 pair_bits = load_shared_u16(header + 2 * part);
        const float d = __half2float(__ushort_as_half(static_cast<u16>(load_shared_u16(header + D_FROM_SCALES))));
        scale[0] = d * static_cast<float>(static_cast<i8>(pair_bits & 0xFFu));
        scale[1] = d * static_cast<float>(static_cast<i8>(pair_bits >> 8));
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_FORMAT_Q6_K
