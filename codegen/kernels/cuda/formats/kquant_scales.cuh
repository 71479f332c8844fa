// 6-bit scale/min unpacking shared by the Q4_K and Q5_K helpers (CUDA).
// scales[12]: bytes 0..3 sc[0..3] | sc[4..7] bits 4-5 in bits 6-7; bytes 4..7 m[0..3] |
// m[4..7] bits 4-5 in bits 6-7; bytes 8..11 sc[4..7] bits 0-3 | m[4..7] bits 0-3 << 4.
#ifndef GGUFC_CUDA_KQUANT_SCALES
#define GGUFC_CUDA_KQUANT_SCALES

namespace ggufc {

constexpr int KQUANT_SCALES_OFFSET = 4;
constexpr u32 SIX_BITS = 0x3Fu;

// The raw bytes sub-block s's scale and min come from, plus the f16 d and dmin.
struct KquantScaleBytes {
    u16 d;
    u16 dmin;
    u8 first;   // s < 4: sc byte s;      else byte s + 4 (low nibbles of sc, m)
    u8 second;  // s < 4: m byte s + 4;   else byte s - 4 (top bits of sc)
    u8 third;   // s >= 4: byte s (top bits of m); unused for s < 4
};

__device__ __forceinline__ KquantScaleBytes load_kquant_scales(const u8* block, int s) {
    const u8* packed = block + KQUANT_SCALES_OFFSET;
    KquantScaleBytes raw;
    raw.d = load_u16(block);
    raw.dmin = load_u16(block + 2);
    raw.first = packed[s < 4 ? s : s + 4];
    raw.second = packed[s < 4 ? s + 4 : s - 4];
    raw.third = packed[s];
    return raw;
}

// Sub-block ``s`` scale (d * sc[s]) and offset (dmin * m[s]).
__device__ __forceinline__ void kquant_scale_min(const KquantScaleBytes& raw, int s, float& scale,
                                                 float& offset) {
    // both forms, then a select: the lanes of a warp decode sub-blocks on both sides of 4, so
    // a branch would run both sides one after the other anyway, with a reconvergence
    const u32 first = raw.first;
    const u32 second = raw.second;
    const u32 third = raw.third;
    const bool low = s < 4;
    const u32 sc = low ? first & SIX_BITS : (first & 0xFu) | ((second >> 6) << 4);
    const u32 m = low ? second & SIX_BITS : (first >> 4) | ((third >> 6) << 4);
    scale = __half2float(__ushort_as_half(raw.d)) * small_uint_to_float(sc, 0);
    offset = __half2float(__ushort_as_half(raw.dmin)) * small_uint_to_float(m, 0);
}

}  // namespace ggufc


// ---- the 16-bit matmul's staged decode (matmul.cu; the contract: tensor_core.cuh) ----

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

#endif  // GGUFC_CUDA_KQUANT_SCALES
