// Tensor-core operands of the 16-bit matmul (matmul.cu): asynchronous staging of raw GGUF
// blocks into shared memory and their decoding, per format, straight into mma.sync B fragments.
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
#ifndef GGUFC_CUDA_MATMUL_OPERANDS
#define GGUFC_CUDA_MATMUL_OPERANDS

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

// Each staged format below defines
//   HEADER_BYTES, BODY_BYTES_0, BODY_BYTES_1   bytes of the segments a step reads (header:
//                         K-quant scales)
//   HEADER_CHUNKS, BODY_CHUNKS_0, BODY_CHUNKS_1  chunks per row and step that cover them
//   SKIP_UNREAD_CHUNKS    the copies leave out a chunk past its segment (measured per format)
//   ALIGNED               every segment starts on a 16-byte boundary (misalignment always 0)
//   row_start(step)       offset in the row whose misalignment (added to the row's) is every
//                         segment's in that step
//   body_start(s, step), header_start(step)   offsets of the segments in the row
//   prepare<T>(header, misalignment, part) -> table word (K-quants)
//   fragment<T>(body, misalignment, table word, k_group, pair, step, b)
// where ``body`` / ``header`` point at the row's staged chunks and ``step`` is the K step.

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_OPERANDS
{% if format == "Q4_0" %}
#ifndef GGUFC_CUDA_MATMUL_Q4_0
#define GGUFC_CUDA_MATMUL_Q4_0

namespace ggufc {
namespace tc {

// A step is blocks 2*step (K group 0) and 2*step + 1 (K group 1): 36 bytes.
struct StagedQ4_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 18;
    static constexpr int ZERO_POINT = 8;
    static constexpr bool ALIGNED = false;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 2 * BLOCK_BYTES;
    static constexpr int BODY_BYTES_1 = 0;
    static constexpr int HEADER_BYTES = 0;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return step * 2 * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int, int step) { return row_start(step); }
    __device__ static __forceinline__ int header_start(int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8*, int, int) { return 0; }

    // qs[j] holds weight j (low nibble) and weight j + 16 (high nibble)
    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int misalignment, u32,
                                                    int k_group, int pair, int,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const u8* block = body + misalignment + k_group * BLOCK_BYTES;
        const u32 scale = Pair<T>::splat_f16(load_shared_u16(block));
        const u8* qs = block + 2 + 2 * pair;
        // bytes qs[2p], qs[2p+8], qs[2p+1], qs[2p+9]
        const u32 w = __byte_perm(load_shared_u16(qs), load_shared_u16(qs + 8), 0x5140);
        const u32 w8 = w >> 8;
        using N = Nibbles<T>;
        constexpr int LOW = N::BASE_LOW + ZERO_POINT;
        constexpr int HIGH = N::BASE_HIGH + ZERO_POINT;
        b[0][0] = Math::mul(Math::template minus<LOW>(N::low(w)), scale);     // 2p, 2p+1
        b[0][1] = Math::mul(Math::template minus<LOW>(N::low(w8)), scale);    // 2p+8, 2p+9
        b[1][0] = Math::mul(Math::template minus<HIGH>(N::high(w)), scale);   // 2p+16, 2p+17
        b[1][1] = Math::mul(Math::template minus<HIGH>(N::high(w8)), scale);  // 2p+24, 2p+25
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q4_0
{% elif format == "Q5_0" %}
#ifndef GGUFC_CUDA_MATMUL_Q5_0
#define GGUFC_CUDA_MATMUL_Q5_0

namespace ggufc {
namespace tc {

// A step is blocks 2*step and 2*step + 1: 44 bytes.
struct StagedQ5_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 22;
    static constexpr int ZERO_POINT = 16;
    static constexpr bool ALIGNED = false;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 2 * BLOCK_BYTES;
    static constexpr int BODY_BYTES_1 = 0;
    static constexpr int HEADER_BYTES = 0;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return step * 2 * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int, int step) { return row_start(step); }
    __device__ static __forceinline__ int header_start(int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8*, int, int) { return 0; }

    // the 4-bit field at bits 0-3 / 16-19 of ``field`` with bits BIT, BIT + 1 of q as its
    // fifth bit (bit 4 / 20), against the magic
    template <typename T, int BIT>
    __device__ static __forceinline__ u32 five_bit_pair(u32 field, u32 q) {
        u32 low;
        u32 high;
        if constexpr (BIT <= 4) {
            low = q << (4 - BIT);
        } else {
            low = q >> (BIT - 4);
        }
        if constexpr (BIT + 1 <= 20) {
            high = q << (20 - BIT - 1);
        } else {
            high = q >> (BIT + 1 - 20);
        }
        const u32 magic = and_or<0x00000010u, PairMath<T>::MAGIC>(low);
        return and_or<0x000F000Fu>(field, and_or<0x00100000u>(high, magic));
    }

    // weight j (< 16): low nibble of qs[j], bit j of qh; weight j + 16: high nibble, bit j + 16
    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int misalignment, u32,
                                                    int k_group, int pair, int,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const u8* block = body + misalignment + k_group * BLOCK_BYTES;
        const u32 scale = Pair<T>::splat_f16(load_shared_u16(block));
        const u32 qh = (load_shared_u16(block + 2) | (load_shared_u16(block + 4) << 16)) >>
                       (2 * pair);
        const u8* qs = block + 6 + 2 * pair;
        const u32 w = __byte_perm(load_shared_u16(qs), load_shared_u16(qs + 8), 0x5140);
        const u32 magic[4] = {five_bit_pair<T, 0>(w, qh), five_bit_pair<T, 8>(w >> 8, qh),
                              five_bit_pair<T, 16>(w >> 4, qh), five_bit_pair<T, 24>(w >> 12, qh)};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            b[i / 2][i % 2] = Math::mul(Math::template unbias<ZERO_POINT>(magic[i]), scale);
        }
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q5_0
{% elif format == "Q8_0" %}
#ifndef GGUFC_CUDA_MATMUL_Q8_0
#define GGUFC_CUDA_MATMUL_Q8_0

namespace ggufc {
namespace tc {

// int8 bytes 0 and 2 of w as a pair of exact values.
template <typename T>
__device__ __forceinline__ u32 signed_byte_pair(u32 w);

// f16: flipping the sign bit gives q + 128, read against 1024 then unbiased by 1152
template <>
__device__ __forceinline__ u32 signed_byte_pair<__half>(u32 w) {
    return PairMath<__half>::unbias<128>(lop3<AND_XOR, 0x00FF00FFu, 0x64806480u>(w));
}

// bf16 holds BASE + q exactly only for q < 128: the low 7 bits are read against 128 and the
// sign bit picks the bias, 128 (q = low bits) or 256 (q = low bits - 128)
template <>
__device__ __forceinline__ u32 signed_byte_pair<__nv_bfloat16>(u32 w) {
    const u32 low = and_or<0x007F007Fu, 0x43004300u>(w);   // 128 + (q & 127)
    const u32 bias = and_or<0x00800080u, 0x43004300u>(w);  // 128, or 256 if q < 0
    return Pair<__nv_bfloat16>::fma(bias, Pair<__nv_bfloat16>::constant(-1), low);
}

// A step is blocks 2*step and 2*step + 1: 68 bytes.
struct StagedQ8_0 {
    static constexpr int BLOCK_WEIGHTS = 32;
    static constexpr int BLOCK_BYTES = 34;
    static constexpr bool ALIGNED = false;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 2 * BLOCK_BYTES;
    static constexpr int BODY_BYTES_1 = 0;
    static constexpr int HEADER_BYTES = 0;
    // the chunk past a segment is left uncopied (H100, M = 512: 11% less time; Q4_0 / Q5_0 took
    // 7% more, Q6_K the same)
    static constexpr bool SKIP_UNREAD_CHUNKS = true;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return step * 2 * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int, int step) { return row_start(step); }
    __device__ static __forceinline__ int header_start(int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8*, int, int) { return 0; }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int misalignment, u32,
                                                    int k_group, int pair, int,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const u8* block = body + misalignment + k_group * BLOCK_BYTES;
        const u32 scale = Pair<T>::splat_f16(load_shared_u16(block));
        const ByteQuad quad = load_byte_quad(block + 2, pair);
        b[0][0] = Math::mul(signed_byte_pair<T>(quad.w01), scale);
        b[0][1] = Math::mul(signed_byte_pair<T>(quad.w01 >> 8), scale);
        b[1][0] = Math::mul(signed_byte_pair<T>(quad.w23), scale);
        b[1][1] = Math::mul(signed_byte_pair<T>(quad.w23 >> 8), scale);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q8_0
{% elif format in ("Q4_K", "Q5_K") %}
#ifndef GGUFC_CUDA_MATMUL_KQUANT_SCALES
#define GGUFC_CUDA_MATMUL_KQUANT_SCALES

namespace ggufc {
namespace tc {

// {d * sc[part], -(dmin * m[part])} of a Q4_K / Q5_K super-block from its 16-byte header
// (f16 d, f16 dmin, the 12 bytes of 6-bit scales and mins; see formats/kquant_scales.cuh).
template <typename T>
__device__ __forceinline__ u32 kquant_scale_table_word(const u8* header, int part) {
    const uint4 h = *reinterpret_cast<const uint4*>(header);
    const int shift = 8 * (part % 4);
    const u32 first = (h.y >> shift) & 0xFFu;   // scales byte part % 4
    const u32 second = (h.z >> shift) & 0xFFu;  // scales byte part % 4 + 4
    const u32 third = (h.w >> shift) & 0xFFu;   // scales byte part % 4 + 8
    u32 sc;
    u32 m;
    if (part < 4) {
        sc = first & 0x3Fu;
        m = second & 0x3Fu;
    } else {
        sc = (third & 0xFu) | ((first >> 6) << 4);
        m = (third >> 4) | ((second >> 6) << 4);
    }
    const float d = __half2float(__ushort_as_half(static_cast<u16>(h.x & 0xFFFFu)));
    const float dmin = __half2float(__ushort_as_half(static_cast<u16>(h.x >> 16)));
    return Pair<T>::pack(d * static_cast<float>(sc), -(dmin * static_cast<float>(m)));
}

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_KQUANT_SCALES
{% if format == "Q4_K" %}
#ifndef GGUFC_CUDA_MATMUL_Q4_K
#define GGUFC_CUDA_MATMUL_Q4_K

namespace ggufc {
namespace tc {

// Step s is parts 2q, 2q+1 (q = s % 4) of super-block s / 4: the low / high nibbles of
// qs[32q .. 32q+31] (block bytes 16 + 32q ..).  144-byte blocks keep everything aligned.
struct StagedQ4_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 144;
    static constexpr int QS_OFFSET = 16;
    static constexpr bool ALIGNED = true;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 32;
    static constexpr int BODY_BYTES_1 = 0;
    static constexpr int HEADER_BYTES = 16;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int, int step) {
        return row_start(step) + QS_OFFSET + 32 * (step & 3);
    }
    __device__ static __forceinline__ int header_start(int step) { return row_start(step); }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* header, int, int part) {
        return kquant_scale_table_word<T>(header, part);
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int, u32 table, int k_group,
                                                    int pair, int, u32 (&b)[2][2]) {
        const NibbleSelect<T> nibbles(k_group);
        const u32 scale = low_pair(table);
        const u32 offset = high_pair(table);
        const ByteQuad quad = load_byte_quad(body, pair);
        b[0][0] = Pair<T>::fma(nibbles.values(quad.w01), scale, offset);
        b[0][1] = Pair<T>::fma(nibbles.values(quad.w01 >> 8), scale, offset);
        b[1][0] = Pair<T>::fma(nibbles.values(quad.w23), scale, offset);
        b[1][1] = Pair<T>::fma(nibbles.values(quad.w23 >> 8), scale, offset);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q4_K
{% else %}
#ifndef GGUFC_CUDA_MATMUL_Q5_K
#define GGUFC_CUDA_MATMUL_Q5_K

namespace ggufc {
namespace tc {

// Step s is parts 2q, 2q+1 (q = s % 4) of super-block s / 4: nibbles of qs[32q ..] (block
// bytes 48 + 32q ..) as in Q4_K, fifth bit = bit (2q + k group) of qh[0..31] (bytes 16..47).
struct StagedQ5_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 176;
    static constexpr int QH_OFFSET = 16;
    static constexpr int QS_OFFSET = 48;
    static constexpr bool ALIGNED = true;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 32;  // qh
    static constexpr int BODY_BYTES_1 = 32;  // the step's qs
    static constexpr int HEADER_BYTES = 16;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int segment, int step) {
        return row_start(step) + (segment == 0 ? QH_OFFSET : QS_OFFSET + 32 * (step & 3));
    }
    __device__ static __forceinline__ int header_start(int step) { return row_start(step); }

    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* header, int, int part) {
        return kquant_scale_table_word<T>(header, part);
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int, u32 table, int k_group,
                                                    int pair, int step, u32 (&b)[2][2]) {
        const u32 scale = low_pair(table);
        const u32 offset = high_pair(table);
        // bit 2q + g, nibble g: the f16 shift 2q + 4 - 3g is at most 10
        const WideNibbles<T, 1, 10, 0> values(k_group, 2 * (step & 3) + k_group);
        const ByteQuad qh = load_byte_quad(body, pair);
        const ByteQuad qs = load_byte_quad(body + BODY_CHUNKS_0 * CHUNK_BYTES, pair);
        b[0][0] = Pair<T>::fma(values.first(qs.w01, qh.w01), scale, offset);
        b[0][1] = Pair<T>::fma(values.second(qs.w01, qh.w01), scale, offset);
        b[1][0] = Pair<T>::fma(values.first(qs.w23, qh.w23), scale, offset);
        b[1][1] = Pair<T>::fma(values.second(qs.w23, qh.w23), scale, offset);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q5_K
{% endif %}
{% elif format == "Q6_K" %}
#ifndef GGUFC_CUDA_MATMUL_Q6_K
#define GGUFC_CUDA_MATMUL_Q6_K

namespace ggufc {
namespace tc {

// Step s is parts p = 2q + g (q = s % 4, g the K group) of super-block s / 4: half h = q / 2,
// quarter t = 2(q % 2) + g.  Weight l: nibble 4(q % 2) of ql[64h + 32g + l], bits 2t, 2t+1 of
// qh[32h + l]; scale d * scales[2p + l / 16].  Body: ql[64h .. 64h+63] then qh[32h .. +31];
// header: scales and d (block bytes 192 .. 209).  210-byte blocks: any 2-byte boundary, but
// 64h, 128 + 32h and 192 are multiples of 16, so one misalignment serves all three.
struct StagedQ6_K {
    static constexpr int BLOCK_WEIGHTS = 256;
    static constexpr int BLOCK_BYTES = 210;
    static constexpr int QH_OFFSET = 128;
    static constexpr int SCALES_OFFSET = 192;
    static constexpr int D_FROM_SCALES = 16;
    static constexpr int ZERO_POINT = 32;
    static constexpr bool ALIGNED = false;
    // bytes of the segments a step reads
    static constexpr int BODY_BYTES_0 = 64;  // ql
    static constexpr int BODY_BYTES_1 = 32;  // qh
    static constexpr int HEADER_BYTES = 18;
    static constexpr bool SKIP_UNREAD_CHUNKS = false;
    static constexpr int HEADER_CHUNKS = covering_chunks(HEADER_BYTES, ALIGNED);
    static constexpr int BODY_CHUNKS_0 = covering_chunks(BODY_BYTES_0, ALIGNED);
    static constexpr int BODY_CHUNKS_1 = covering_chunks(BODY_BYTES_1, ALIGNED);

    __device__ static __forceinline__ int row_start(int step) { return (step >> 2) * BLOCK_BYTES; }
    __device__ static __forceinline__ int body_start(int segment, int step) {
        const int half_index = (step & 3) >> 1;
        return row_start(step) + (segment == 0 ? 64 * half_index : QH_OFFSET + 32 * half_index);
    }
    __device__ static __forceinline__ int header_start(int step) {
        return row_start(step) + SCALES_OFFSET;
    }

    // {d * scales[2 part], d * scales[2 part + 1]}
    template <typename T>
    __device__ static __forceinline__ u32 prepare(const u8* header, int misalignment, int part) {
        const u8* scales = header + misalignment;
        const u32 pair_bits = load_shared_u16(scales + 2 * part);
        const float d = __half2float(__ushort_as_half(
            static_cast<u16>(load_shared_u16(scales + D_FROM_SCALES))));
        const float low = static_cast<float>(static_cast<i8>(pair_bits & 0xFFu));
        const float high = static_cast<float>(static_cast<i8>(pair_bits >> 8));
        return Pair<T>::pack(d * low, d * high);
    }

    template <typename T>
    __device__ static __forceinline__ void fragment(const u8* body, int misalignment, u32 table,
                                                    int k_group, int pair, int step,
                                                    u32 (&b)[2][2]) {
        using Math = PairMath<T>;
        const int odd_quarter_pair = step & 1;  // q % 2: the high nibbles of ql
        // bits 2t, t = 2(q % 2) + g, nibble q % 2: the f16 shift 2g + 4 is at most 6
        const WideNibbles<T, 2, 6, ZERO_POINT> values(odd_quarter_pair,
                                                      2 * (2 * odd_quarter_pair + k_group));
        const ByteQuad ql = load_byte_quad(body + misalignment + 32 * k_group, pair);
        const ByteQuad qh =
            load_byte_quad(body + BODY_CHUNKS_0 * CHUNK_BYTES + misalignment, pair);
        const u32 scale_low = low_pair(table);    // weights 0..15 of the part
        const u32 scale_high = high_pair(table);  // weights 16..31
        b[0][0] = Math::mul(values.first(ql.w01, qh.w01), scale_low);
        b[0][1] = Math::mul(values.second(ql.w01, qh.w01), scale_low);
        b[1][0] = Math::mul(values.first(ql.w23, qh.w23), scale_high);
        b[1][1] = Math::mul(values.second(ql.w23, qh.w23), scale_high);
    }
};

}  // namespace tc
}  // namespace ggufc

#endif  // GGUFC_CUDA_MATMUL_Q6_K
{% endif %}
