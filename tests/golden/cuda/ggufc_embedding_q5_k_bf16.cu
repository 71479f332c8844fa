// ggufc embedding: out[i, :] = dequantize(W[indices[i], :]) as __nv_bfloat16, Q5_K rows.
//
// One thread per (index, part): thread g decodes part g % (K/32) of row indices[g / (K/32)];
// only the rows named by an index are read.  Thread g's 32 values land at out[32 g ..
// 32 g + 31] (out is [M, K] and K a multiple of 32), so a warp's output is one contiguous
// run: each lane writes its part into the warp's shared buffer, and the warp then stores
// the run with consecutive 16-byte stores (lane l the l-th, (l+32)-th, ... of them): whole
// sectors per store instruction instead of 16 bytes out of every 64 (the buffer rows are padded
// by 16 bytes so the lanes' 16-byte writes fall in distinct banks).
// grid.x = ceil(M * K / 32 / 128).  An index outside [0, N) yields a NaN row, so a
// bad index is visible in the output instead of reading out of bounds.
// Template constants: format, dtype, threads.  Kernel arguments: M (indices), N, K.
namespace ggufc_embedding_q5_k_bf16_impl {
using act_t = __nv_bfloat16;
using Format = ggufc::Q5_K;
constexpr int WARPS = 128 / ggufc::WARP_SIZE;
constexpr int STORE_BYTES = 16;
constexpr int VALUES_PER_STORE = STORE_BYTES / static_cast<int>(sizeof(act_t));
constexpr int PART_STORES = ggufc::PART_WEIGHTS / VALUES_PER_STORE;  // 16-byte pieces a part
constexpr int LANE_STRIDE = PART_STORES + 1;  // in 16-byte units: one piece of padding
static_assert(128 % ggufc::WARP_SIZE == 0, "whole warps");

// The 32 values of part ``part`` of the block at ``block``.  Blocks whose size is a multiple of
// 16 bytes (Q4_K, Q5_K) are read by their format's 16-byte loads; the others (2-byte aligned)
// as 32-bit words joined by funnel shifts rather than by 2-byte loads, the loads a warp issues
// being what bounds this kernel (Q6_K: 18 loads a part instead of 34, 9% less time on an H100;
// Q8_0 6-7%).  Both give the exact values, then the part's affine map.
__device__ __forceinline__ void decode_part(const ggufc::u8* block, int part,
                                            float (&w)[ggufc::PART_WEIGHTS]) {
    if constexpr (Format::BLOCK_BYTES % 16 == 0) {
        Format::decode(Format::load(block, part), part, w);
    } else {
        ggufc::u32 pairs[ggufc::PART_WEIGHTS / 2];
        ggufc::PartAffine affine;
        Format::integer_pairs(Format::load_part_words(block, part), part, pairs, affine);
#pragma unroll
        for (int j = 0; j < ggufc::PART_WEIGHTS / 2; ++j) {
            const float2 q =
                __half22float2(ggufc::half_pair_of_ints<Format::PAIR_ZERO_POINT>(pairs[j]));
            w[2 * j] = q.x;
            w[2 * j + 1] = q.y;
        }
        ggufc::apply_affine(affine, w);
    }
}
}  // namespace ggufc_embedding_q5_k_bf16_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_embedding_q5_k_bf16(
    const ggufc::u8* __restrict__ blocks, const ggufc::i64* indices,
    ggufc_embedding_q5_k_bf16_impl::act_t* __restrict__ out, ggufc::i64 M, ggufc::i64 N, ggufc::i64 K) {
    using namespace ggufc_embedding_q5_k_bf16_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    using ggufc::i64;
    __shared__ uint4 staged[WARPS][ggufc::WARP_SIZE * LANE_STRIDE];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 parts_per_row = K / ggufc::PART_WEIGHTS;
    const i64 total_parts = M * parts_per_row;
    const i64 warp_first = static_cast<i64>(blockIdx.x) * 128 + warp * ggufc::WARP_SIZE;
    if (warp_first >= total_parts) {
        return;  // the whole warp leaves: no lane of it is needed for the stores below
    }
    const i64 g = warp_first + lane;
    if (g < total_parts) {
        const i64 i = g / parts_per_row;
        const int p = static_cast<int>(g % parts_per_row);
        const i64 index = indices[i];
        float w[ggufc::PART_WEIGHTS];
        if (index >= 0 && index < N) {
            const i64 blocks_per_row = K / Format::BLOCK_WEIGHTS;
            const ggufc::u8* row = blocks + index * blocks_per_row * Format::BLOCK_BYTES;
            const int part = p % Format::PARTS;
            decode_part(row + (p / Format::PARTS) * Format::BLOCK_BYTES, part, w);
        } else {
#pragma unroll
            for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
                w[j] = __int_as_float(0x7fc00000);  // quiet NaN
            }
        }
        act_t* mine = reinterpret_cast<act_t*>(&staged[warp][lane * LANE_STRIDE]);
#pragma unroll
        for (int piece = 0; piece < ggufc::PART_WEIGHTS / 8; ++piece) {
            ggufc::store8(mine + 8 * piece, w + 8 * piece);
        }
    }
    __syncwarp();
    // the warp's run: parts warp_first .. warp_first + 31 (fewer at the end), in 16-byte pieces
    const i64 parts = min(static_cast<i64>(ggufc::WARP_SIZE), total_parts - warp_first);
    uint4* run = reinterpret_cast<uint4*>(out + warp_first * ggufc::PART_WEIGHTS);
#pragma unroll
    for (int j = 0; j < PART_STORES; ++j) {
        const int piece = lane + ggufc::WARP_SIZE * j;
        const int part = piece / PART_STORES;
        if (part < parts) {
            run[piece] = staged[warp][part * LANE_STRIDE + piece % PART_STORES];
        }
    }
}
