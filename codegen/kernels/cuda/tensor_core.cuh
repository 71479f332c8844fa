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
    asm volatile({% raw %}"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"{% endraw %}
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
        {% raw %}"{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"{% endraw %}
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&d)[4], const u32 (&a)[4],
                                                   const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        {% raw %}"{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"{% endraw %}
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
