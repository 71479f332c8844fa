// ggufc matvec: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q4_K weights,
// __nv_bfloat16 activations, float32 accumulation; one activation row per block row
// (grid.y = M; the M = 1 kernel), each lane loading its own words of the weight blocks.
//
// 4 warps per 4 weight rows, warp w of a group taking chunks w, w + 4, ... of them,
// and 4 such row groups in turn (16 rows per block, grid.x = ceil(N / 16)).  A chunk is
// 32 lane words: Format::LANE_WORDS lanes a block (Q4_K: 8, each a 16-byte word of the
// quants, so 4 blocks, 1024 weights).  Lane l loads word l % LANE_WORDS of block
// l / LANE_WORDS of each of its rows, and that block's head (the scales; the lanes of a block
// share the load), with 16-byte loads (bypassing L1) straight into registers: where a warp
// has one chunk of each row (quad_stream's K) the next row group's while this one's are
// decoded; at other K (not lowered to it) each chunk is loaded, then decoded.  matvec.cu copies each
// chunk through shared memory first, so that a lane can take a whole part whatever the
// block's alignment; blocks of whole 16-byte words need no copy (H100, float16, Q4_K
// 14336x4096: 16.7 -> 14.7 us).  The lane's activations (the same 16 weights of two
// sub-blocks: load_nibble_halves) are taken as int16 once for all the rows of a chunk, and kept
// from row group to row group when a warp has one chunk of each row; each row's lane word is
// summed by dp2a (Format::lane_dot).  A row's partial sums meet by warp_sum_rows (the four
// rows in 6 shuffles), then in shared memory where warps share the rows.
// Registers bounded for 4 blocks an SM (__launch_bounds__).
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (any sizes with K a
// multiple of the block weights), has_bias (0: bias is not read).  The blocks must be 16-byte
// aligned (the runner's requirement of every tensor).
namespace ggufc_matvec_quad_stream_q4_k_bf16_impl {
using act_t = __nv_bfloat16;
using Format = ggufc::Q4_K;
using ggufc::i64;
constexpr int WARPS_PER_BLOCK = 4;
constexpr int ROWS_PER_WARP = 4;
constexpr int GROUP_WARPS = 4;  // warps sharing the same rows
constexpr int ROW_GROUPS = WARPS_PER_BLOCK / GROUP_WARPS;
static_assert(WARPS_PER_BLOCK % GROUP_WARPS == 0, "whole row groups");
static_assert(ROWS_PER_WARP == ggufc::SUMMED_ROWS, "the rows warp_sum_rows sums");
// row groups a warp takes one after the other
constexpr int STREAM_GROUPS = 4;
// blocks an SM a wave of this kernel is counted at (prelude: grid_fills_its_waves)
constexpr unsigned WAVE_BLOCKS_PER_SM = 4;
constexpr int CHUNK_BLOCKS = ggufc::WARP_SIZE / Format::LANE_WORDS;
static_assert(ggufc::WARP_SIZE % Format::LANE_WORDS == 0, "a chunk holds whole blocks");
static_assert(Format::BLOCK_BYTES % 16 == 0, "every block starts a 16-byte word");
// lanes summing one row's total (warp_sum_rows)
constexpr int ROW_LANES = ggufc::WARP_SIZE / ROWS_PER_WARP;
using Words = typename Format::LaneWords;
}  // namespace ggufc_matvec_quad_stream_q4_k_bf16_impl

extern "C" __global__ void __launch_bounds__(128, 4) ggufc_matvec_quad_stream_q4_k_bf16(
    const ggufc_matvec_quad_stream_q4_k_bf16_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_quad_stream_q4_k_bf16_impl::act_t* bias, ggufc_matvec_quad_stream_q4_k_bf16_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matvec_quad_stream_q4_k_bf16_impl;
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int slice = warp % GROUP_WARPS;
    const int word = lane % Format::LANE_WORDS;
    const int chunk_block = lane / Format::LANE_WORDS;  // the lane's block of a chunk
    // first row of the warp's row group g (g < STREAM_GROUPS); the block's warps take
    // neighbouring groups at the same time
    auto group_row = [&](int g) {
        // one row group a block: every warp shares it (ptxas cannot know warp < GROUP_WARPS)
        return ((static_cast<i64>(blockIdx.x) * STREAM_GROUPS + g) * ROW_GROUPS +
                (ROW_GROUPS == 1 ? 0 : warp / GROUP_WARPS)) *
               ROWS_PER_WARP;
    };
    // a row group past N (GROUP_WARPS > 1 only) has no rows but joins the barrier below
    auto rows_from = [&](i64 first) {
        return static_cast<int>(max(min(N - first, static_cast<i64>(ROWS_PER_WARP)), i64{0}));
    };
    i64 n0 = group_row(0);
    if constexpr (GROUP_WARPS == 1) {
        if (n0 >= N) {
            return;  // the whole warp leaves together: no shuffle below misses a lane
        }
    }
    int rows = rows_from(n0);
    const i64 m = blockIdx.y;
    const int blocks_per_row = static_cast<int>(K / Format::BLOCK_WEIGHTS);
    const i64 row_bytes = static_cast<i64>(blocks_per_row) * Format::BLOCK_BYTES;
    const int chunks = (blocks_per_row + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
    const act_t* xm = x + m * K;

    // the lane's words of ``count`` rows from the one holding ``block`` (a row_bytes step)
    auto load_rows = [&](const ggufc::u8* block, int count, Words (&words)[ROWS_PER_WARP]) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) {
            if (r < count) {
                words[r] = Format::load_lane_words(block, word);
            }
            block += row_bytes;
        }
    };
    // the lane's words of chunk c of each row of the group at ``first`` (``count`` rows); a
    // lane whose block is past the row's end loads nothing
    auto load_chunk = [&](i64 first, int count, int c, Words (&words)[ROWS_PER_WARP]) {
        const int block = c * CHUNK_BLOCKS + chunk_block;
        if (block < blocks_per_row) {
            load_rows(blocks + first * row_bytes + static_cast<i64>(block) * Format::BLOCK_BYTES, count, words);
        }
    };

    // the rows' partial sums of group g (rows from n0) -> out: lanes ROW_LANES r ..
    // ROW_LANES (r + 1) - 1 get row r's warp sum, then warps sharing rows meet in shared memory
    auto finish_group = [&](int g, i64 n0, int rows, const float (&acc)[ROWS_PER_WARP]) {
        const float total = ggufc::warp_sum_rows(acc);
        const int row = lane / ROW_LANES;
        const bool row_leader = lane % ROW_LANES == 0;
        if constexpr (GROUP_WARPS > 1) {
            // groups alternate between two buffers: one barrier a group suffices
            constexpr int BUFFERS = STREAM_GROUPS > 1 ? 2 : 1;
            __shared__ float partial[BUFFERS][WARPS_PER_BLOCK][ROWS_PER_WARP];
            float(&sums)[WARPS_PER_BLOCK][ROWS_PER_WARP] = partial[g % BUFFERS];
            if (row_leader) {
                sums[warp][row] = total;
            }
            __syncthreads();
            // lane r of the row group's first warp sums row r
            if (slice == 0 && lane < rows) {
                float sum = 0.0f;
#pragma unroll
                for (int s = 0; s < GROUP_WARPS; ++s) {
                    sum += sums[warp + s][lane];
                }
                const float b = has_bias ? ggufc::to_float(bias[n0 + lane]) : 0.0f;
                out[m * N + n0 + lane] = ggufc::from_float<act_t>(sum + b);
            }
        } else if (row_leader && row < rows) {
            const float b = has_bias ? ggufc::to_float(bias[n0 + row]) : 0.0f;
            out[m * N + n0 + row] = ggufc::from_float<act_t>(total + b);
        }
    };
    // the first row of the block's row group g + 1 where it has rows, else -1: warps sharing
    // row groups all go on to the next group or all stop (finish_group's barrier)
    auto next_group_row = [&](int g) {
        const i64 next_n0 = group_row(g + 1);
        const i64 next_first = ROW_GROUPS > 1 ? next_n0 - (warp / GROUP_WARPS) * ROWS_PER_WARP : next_n0;
        return g + 1 < STREAM_GROUPS && next_first < N ? next_n0 : i64{-1};
    };
    auto dot_rows = [&](const Words (&words)[ROWS_PER_WARP], int rows, const ggufc::NibbleHalves& x_halves,
                        float (&acc)[ROWS_PER_WARP]) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) {
            if (r < rows) {
                acc[r] += Format::lane_dot(words[r], word, x_halves);
            }
        }
    };
    auto x_of_chunk = [&](int c) {
        const int block = c * CHUNK_BLOCKS + chunk_block;
        return ggufc::load_nibble_halves(Format::lane_x(xm + static_cast<i64>(block) * Format::BLOCK_WEIGHTS, word),
                                         block < blocks_per_row);
    };

    Words current[ROWS_PER_WARP];
    if (slice < chunks) {
        load_chunk(n0, rows, slice, current);
    }
    // a grid that fills its waves lets the next kernel start now, one that leaves slots free
    // after its weight loads (prelude: programmatic dependent launch)
    const bool fills_waves = WAVE_BLOCKS_PER_SM > 0 && ggufc::grid_fills_its_waves(WAVE_BLOCKS_PER_SM);
    if (fills_waves) {
        ggufc::allow_dependent_launch();
    }
    // else the next kernel starts once the weights are all read (the last group's loads issued)
    auto after_group_loads = [&](bool has_next) {
        if (!has_next && !fills_waves) {
            ggufc::allow_dependent_launch();
        }
    };
    // the first weights are on their way: now x (and out) wait for the kernels before
    // (prelude: programmatic dependent launch)
    ggufc::wait_for_previous_kernels();
    if (chunks <= GROUP_WARPS) {
        // one chunk of each row a warp (quad_stream's K): its activations are the same for
        // every row group, the next group's words load while this one's are decoded.  Its own
        // path, the groups unrolled: through one loop over chunks and groups this K took 18.5
        // us where this path took 15.1 (Q4_K 14336x4096, H100; 14.7 since)
        const int block = slice * CHUNK_BLOCKS + chunk_block;
        const bool present = block < blocks_per_row;
        const ggufc::NibbleHalves x_halves = x_of_chunk(slice);
        // the lane's block of row 0 (its address taken once: 1-4% of the time, 8192-28672 rows)
        const ggufc::u8* lane_block = blocks + static_cast<i64>(block) * Format::BLOCK_BYTES;
#pragma unroll
        for (int g = 0; g < STREAM_GROUPS; ++g) {
            const i64 next_n0 = next_group_row(g);
            Words next[ROWS_PER_WARP];
            if (next_n0 >= 0 && present) {
                load_rows(lane_block + next_n0 * row_bytes, rows_from(next_n0), next);
            }
            float acc[ROWS_PER_WARP] = {};
            if (present) {
                dot_rows(current, rows, x_halves, acc);
            }
            after_group_loads(next_n0 >= 0);
            finish_group(g, n0, rows, acc);
            if (next_n0 < 0) {
                return;
            }
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                current[r] = next[r];
            }
            n0 = next_n0;
            rows = rows_from(n0);
        }
        return;
    }
    // several chunks of each row a warp (a K the lowering does not take this geometry for:
    // tests, benchmarks): each chunk loaded, then decoded, nothing in flight across (with the
    // next chunk loading during the decode the path above took 15.3 us instead of 15.1, before
    // its lane address was hoisted)
    for (int g = 0; g < STREAM_GROUPS; ++g) {
        const i64 next_n0 = next_group_row(g);
        float acc[ROWS_PER_WARP] = {};
        for (int c = slice; c < chunks; c += GROUP_WARPS) {
            if (c != slice || g > 0) {
                load_chunk(n0, rows, c, current);
            }
            const ggufc::NibbleHalves x_halves = x_of_chunk(c);
            if (c * CHUNK_BLOCKS + chunk_block < blocks_per_row) {
                dot_rows(current, rows, x_halves, acc);
            }
        }
        after_group_loads(next_n0 >= 0);
        finish_group(g, n0, rows, acc);
        if (next_n0 < 0) {
            return;
        }
        n0 = next_n0;
        rows = rows_from(n0);
    }
}