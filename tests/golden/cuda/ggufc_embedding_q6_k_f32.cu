// ggufc embedding: out[i, :] = dequantize(W[indices[i], :]) as float, Q6_K rows.
//
// One thread per (index, unit of THREAD_PARTS consecutive parts of one block): thread g decodes
// parts THREAD_PARTS g .. THREAD_PARTS g + THREAD_PARTS - 1 (numbered across the rows, K/32 a
// row) of the rows named by the indices; only those rows are read.  A thread's parts share the
// loads of their block's bytes, which the compiler merges (THREAD_PARTS 2 is Q5_K's, emitter
// EMBEDDING_THREAD_PARTS: a pair of its parts reads the same quant bytes, their two nibbles,
// and every part the same qh).  Thread
// g's values land at out[32 THREAD_PARTS g ..] (out is [M, K] and K a multiple of 32), so a
// warp's output is one contiguous run: each lane writes its parts into the warp's shared
// buffer, and the warp then stores the run with consecutive 16-byte stores (lane l the l-th,
// (l+32)-th, ... of them): whole sectors per store instruction instead of 16 bytes out of
// every 64 (the buffer rows are padded by 16 bytes so the lanes' 16-byte writes fall in
// distinct banks).
// grid.x = ceil(M * K / 32 / THREAD_PARTS / 128).  An index outside [0, N) yields a
// NaN row, so a bad index is visible in the output instead of reading out of bounds.
// Template constants: format, dtype, threads, thread_parts, wide_loads, gather (false for the
// dequantize kind).  Kernel arguments: M (indices), N, K; the dequantize kind's N, K.
namespace ggufc_embedding_q6_k_f32_impl {
using act_t = float;
using Format = ggufc::Q6_K;
constexpr int WARPS = 128 / ggufc::WARP_SIZE;
constexpr int STORE_BYTES = 16;
constexpr int VALUES_PER_STORE = STORE_BYTES / static_cast<int>(sizeof(act_t));
constexpr int THREAD_PARTS = 1;
// spans read by the 16-byte words holding them (emitter EMBEDDING_WIDE_LOAD_FORMATS)
constexpr bool WIDE_LOADS = true;
constexpr int PART_STORES = ggufc::PART_WEIGHTS / VALUES_PER_STORE;  // 16-byte pieces a part
constexpr int LANE_STORES = THREAD_PARTS * PART_STORES;              // 16-byte pieces a lane
constexpr int LANE_STRIDE = LANE_STORES + 1;  // in 16-byte units: one piece of padding
static_assert(128 % ggufc::WARP_SIZE == 0, "whole warps");
// a unit never straddles a block, nor (K being whole blocks) a row
static_assert(Format::PARTS % THREAD_PARTS == 0, "a thread's parts are of one block");
static_assert((Format::PARTS & (Format::PARTS - 1)) == 0, "parts a block: a power of two");

// The 32 values of part ``part`` of the block at ``block``.  Blocks whose size is a multiple of
// 16 bytes (Q4_K, Q5_K) are read by 16-byte loads only, their head (d, dmin, scales) too
// (Q5_K: 78.7 -> 79.9% of copy bandwidth on an H100); the others (2-byte aligned) as 32-bit
// words joined by funnel shifts rather than by 2-byte loads, the loads a warp issues being what
// bounds this kernel (Q6_K: 18 loads a part instead of 34, 9% less time on an H100; Q8_0
// 6-7%), and with WIDE_LOADS picked out of the 16-byte words holding them (Q6_K: 6 loads,
// 79.6 -> 83.5%).  Both give the exact values, then the part's affine map.
template <typename F>  // a template, so that only the branch of F's block size is compiled
__device__ __forceinline__ void decode_part(const ggufc::u8* block, int part,
                                            float (&w)[ggufc::PART_WEIGHTS]) {
    if constexpr (F::BLOCK_BYTES % 16 == 0) {
        F::decode(F::load_with_head(block, part), part, w);
    } else {
        ggufc::u32 pairs[ggufc::PART_WEIGHTS / 2];
        ggufc::PartAffine affine;
        typename F::PartWords words;
        if constexpr (WIDE_LOADS) {
            words = F::template load_part_words<true>(block, part);  // Q6_K's
        } else {
            words = F::load_part_words(block, part);
        }
        F::integer_pairs(words, part, pairs, affine);
#pragma unroll
        for (int j = 0; j < ggufc::PART_WEIGHTS / 2; ++j) {
            const float2 q =
                __half22float2(ggufc::half_pair_of_ints<F::PAIR_ZERO_POINT>(pairs[j]));
            w[2 * j] = q.x;
            w[2 * j + 1] = q.y;
        }
        ggufc::apply_affine(affine, w);
    }
}

// The values of a row named by an index outside [0, N): quiet NaNs
__device__ __forceinline__ void nan_part(float (&w)[ggufc::PART_WEIGHTS]) {
#pragma unroll
    for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
        w[j] = __int_as_float(0x7fc00000);
    }
}

// A part's 32 values into the lane's row of the warp's shared buffer, as act_t
__device__ __forceinline__ void store_part(act_t* row, const float (&w)[ggufc::PART_WEIGHTS]) {
#pragma unroll
    for (int piece = 0; piece < ggufc::PART_WEIGHTS / 8; ++piece) {
        ggufc::store8(row + 8 * piece, w + 8 * piece);
    }
}
}  // namespace ggufc_embedding_q6_k_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_embedding_q6_k_f32(
    const ggufc::u8* __restrict__ blocks, const ggufc::i64* indices,
    ggufc_embedding_q6_k_f32_impl::act_t* __restrict__ out, ggufc::i64 M, ggufc::i64 N, ggufc::i64 K) {
    using namespace ggufc_embedding_q6_k_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    using ggufc::i64;
    __shared__ uint4 staged[WARPS][ggufc::WARP_SIZE * LANE_STRIDE];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 units_per_row = K / (ggufc::PART_WEIGHTS * THREAD_PARTS);
    const i64 total_units = M * units_per_row;
    const i64 warp_first = static_cast<i64>(blockIdx.x) * 128 + warp * ggufc::WARP_SIZE;
    if (warp_first >= total_units) {
        return;  // the whole warp leaves: no lane of it is needed for the stores below
    }
    const i64 g = warp_first + lane;
    if (g < total_units) {
        const i64 i = g / units_per_row;
        const int first = static_cast<int>(g % units_per_row) * THREAD_PARTS;
        const i64 index = indices[i];
        const bool valid = index >= 0 && index < N;
        // the block's first part of the unit: a multiple of THREAD_PARTS the compiler can see
        // (PARTS is a power of two), so the parts' shared loads have provably equal addresses
        const int part = first & (Format::PARTS - 1);
        const i64 blocks_per_row = K / Format::BLOCK_WEIGHTS;
        const ggufc::u8* block = blocks + (index * blocks_per_row + first / Format::PARTS) *
                                              Format::BLOCK_BYTES;
        act_t* mine = reinterpret_cast<act_t*>(&staged[warp][lane * LANE_STRIDE]);
        if constexpr (THREAD_PARTS == 1) {
            float w[ggufc::PART_WEIGHTS];
            if (valid) {
                decode_part<Format>(block, part, w);
            } else {
                nan_part(w);
            }
            store_part(mine, w);
        } else if (valid) {
            // the parts in one branch, so the loads they share are merged (not all of them:
            // 7 16-byte loads for Q5_K's two parts, not 5), each stored once decoded: Q5_K
            // 80.0% of copy bandwidth with every part decoded first (95 registers), 82.2% so
            // (72), 80.8% with a branch a part as THREAD_PARTS 1 has (10 loads); THREAD_PARTS 1
            // in this form lost (Q6_K 83.5 -> 81.6%, Q8_0 83 -> 82%; H100, session 23)
#pragma unroll
            for (int t = 0; t < THREAD_PARTS; ++t) {
                float w[ggufc::PART_WEIGHTS];
                decode_part<Format>(block, part + t, w);
                store_part(mine + ggufc::PART_WEIGHTS * t, w);
            }
        } else {
            float w[ggufc::PART_WEIGHTS];
            nan_part(w);
#pragma unroll
            for (int t = 0; t < THREAD_PARTS; ++t) {
                store_part(mine + ggufc::PART_WEIGHTS * t, w);
            }
        }
    }
    __syncwarp();
    // the warp's run: units warp_first .. warp_first + 31 (fewer at the end), in 16-byte pieces
    const i64 units = min(static_cast<i64>(ggufc::WARP_SIZE), total_units - warp_first);
    uint4* run = reinterpret_cast<uint4*>(out + warp_first * THREAD_PARTS * ggufc::PART_WEIGHTS);
#pragma unroll
    for (int j = 0; j < LANE_STORES; ++j) {
        const int piece = lane + ggufc::WARP_SIZE * j;
        const int unit = piece / LANE_STORES;
        if (unit < units) {
            run[piece] = staged[warp][unit * LANE_STRIDE + piece % LANE_STORES];
        }
    }
}