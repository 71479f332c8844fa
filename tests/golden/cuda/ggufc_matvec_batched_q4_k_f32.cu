// ggufc matvec_batched: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q4_K weights,
// float activations, float32 accumulation.
//
// One warp per weight row n (4 rows per block, grid.x = ceil(N / 4)).  The warp streams its
// row in chunks of CHUNK_PARTS parts (whole blocks): the lanes copy a chunk with coalesced
// 16-byte loads into the warp's shared buffer, then each lane decodes parts from there, while
// the loads of the next chunk are in flight.  Weight loads bypass L1, which keeps the
// activations that all rows reread.  (Reading block fields straight from global
// memory would take one narrow load per field and lane, since blocks of 18 or 210 bytes
// leave wider fields unaligned.)  Each decoded part is used for up to 8 activation rows
// (grid.y = ceil(M / 8)): the weights are read once for all of them.
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (any sizes with K a
// multiple of the block weights), has_bias (0: bias is not read).
namespace ggufc_matvec_batched_q4_k_f32_impl {
using act_t = float;
using Format = ggufc::Q4_K;
using Decode = ggufc::PartDecode<Format, act_t>;  // biased values (prelude)
using ggufc::i64;
constexpr int WARPS_PER_BLOCK = 4;
constexpr int MAX_ROWS = 8;
constexpr int CHUNK_PARTS = 2 * ggufc::WARP_SIZE;  // two parts per lane per chunk
constexpr int CHUNK_BLOCKS = CHUNK_PARTS / Format::PARTS;
constexpr int CHUNK_BYTES = CHUNK_BLOCKS * Format::BLOCK_BYTES;
constexpr int WORD_BYTES = 16;
// a chunk is copied from its start rounded down to 16 bytes: up to one more word
constexpr int WORDS_PER_LANE = (CHUNK_BYTES / WORD_BYTES + 2 + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;
constexpr int STAGE_WORDS = WORDS_PER_LANE * ggufc::WARP_SIZE;
static_assert(CHUNK_PARTS % Format::PARTS == 0, "a chunk holds whole blocks");
}  // namespace ggufc_matvec_batched_q4_k_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_matvec_batched_q4_k_f32(
    const ggufc_matvec_batched_q4_k_f32_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_batched_q4_k_f32_impl::act_t* bias, ggufc_matvec_batched_q4_k_f32_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matvec_batched_q4_k_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    __shared__ uint4 stage_all[WARPS_PER_BLOCK][STAGE_WORDS];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 n = static_cast<i64>(blockIdx.x) * WARPS_PER_BLOCK + warp;
    if (n >= N) {
        return;  // the whole warp leaves together: no shuffle below misses a lane
    }
    uint4* stage = stage_all[warp];
    const i64 m0 = static_cast<i64>(blockIdx.y) * MAX_ROWS;
    const int rows = static_cast<int>(M - m0 < MAX_ROWS ? M - m0 : MAX_ROWS);
    const int blocks_per_row = static_cast<int>(K / Format::BLOCK_WEIGHTS);
    const i64 row_bytes = static_cast<i64>(blocks_per_row) * Format::BLOCK_BYTES;
    const ggufc::u8* row = blocks + n * row_bytes;
    const int chunks = (blocks_per_row + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
    const act_t* xs = x + m0 * K;

    // the 16-byte words of chunk c; words past the row's end are not read
    uint4 words[WORDS_PER_LANE];
    auto load_chunk = [&](int c) {
        const ggufc::u8* start = row + static_cast<i64>(c) * CHUNK_BYTES;
        const ggufc::u8* end = row + min(static_cast<i64>(c + 1) * CHUNK_BYTES, row_bytes);
        const uint4* base = reinterpret_cast<const uint4*>(
            reinterpret_cast<size_t>(start) & ~static_cast<size_t>(WORD_BYTES - 1));
#pragma unroll
        for (int i = 0; i < WORDS_PER_LANE; ++i) {
            const uint4* word = base + lane + i * ggufc::WARP_SIZE;
            if (reinterpret_cast<const ggufc::u8*>(word) < end) {
                words[i] = ggufc::load_streaming(word);
            }
        }
    };

    float acc[MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MAX_ROWS; ++r) {
        acc[r] = 0.0f;
    }
    load_chunk(0);
    for (int c = 0; c < chunks; ++c) {
        __syncwarp();  // every lane is done decoding the previous chunk
#pragma unroll
        for (int i = 0; i < WORDS_PER_LANE; ++i) {
            stage[lane + i * ggufc::WARP_SIZE] = words[i];
        }
        __syncwarp();
        if (c + 1 < chunks) {
            load_chunk(c + 1);  // in flight while this chunk is decoded
        }
        // the chunk's bytes, at the same address modulo 16 as in global memory
        const ggufc::u8* chunk = reinterpret_cast<const ggufc::u8*>(stage) +
                                 (reinterpret_cast<size_t>(row + static_cast<i64>(c) * CHUNK_BYTES) &
                                  (WORD_BYTES - 1));
        const int chunk_parts = min(CHUNK_BLOCKS, blocks_per_row - c * CHUNK_BLOCKS) * Format::PARTS;
#pragma unroll
        for (int q = lane; q < CHUNK_PARTS; q += ggufc::WARP_SIZE) {
            if (q < chunk_parts) {
                float v[ggufc::PART_WEIGHTS];
                ggufc::PartAffine affine;
                const int part = q % Format::PARTS;
                Decode::values(Format::load(chunk + (q / Format::PARTS) * Format::BLOCK_BYTES, part),
                               part, v, affine);
                const i64 k0 = (static_cast<i64>(c) * CHUNK_PARTS + q) * ggufc::PART_WEIGHTS;
#pragma unroll
                for (int r = 0; r < MAX_ROWS; ++r) {
                    if (r < rows) {
                        acc[r] += ggufc::affine_dot<Decode::NEEDS_X_SUM>(v, affine, xs + r * K + k0);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < MAX_ROWS; ++r) {
        if (r < rows) {
            const float total = ggufc::warp_sum(acc[r]);
            if (lane == 0) {
                const float b = has_bias ? ggufc::to_float(bias[n]) : 0.0f;
                out[(m0 + r) * N + n] = ggufc::from_float<act_t>(total + b);
            }
        }
    }
}
