// ggufc matvec: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q5_K weights,
// float activations, float32 accumulation; one activation row per block row
// (grid.y = M; the M = 1 kernel).
//
// 4 warps per 4 weight rows, warp w of a group taking chunks w, w + 4, ... of them
// (partial sums meet in shared memory, one barrier a group), and 8 such row groups in turn
// (32 rows per block, grid.x = ceil(N / 32)): the next group's first chunk loads
// during this group's last, and where a warp takes one chunk of each row its part of x stays in
// registers from group to group.  A warp
// streams its rows in chunks of 32 parts (whole blocks): the lanes copy each row's chunk with
// coalesced 16-byte loads (bypassing L1) into the warp's shared buffer while the previous
// chunk is decoded; lane l then decodes part l of every row and reuses its 32 activations,
// held in registers, for all 4 rows.  Activation reads through L1 (every warp rereads x)
// were the limit with one row per warp.
// With STAGE_X (float32 activations: emitter.MATVEC_STAGED_X_DTYPES) the warp copies a chunk's
// activations to shared memory, coalesced, and lane l reads part l's from there (prelude:
// stage_part_activations) instead of from L1 one cache line a lane.
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (any sizes with K a
// multiple of the block weights), has_bias (0: bias is not read).
namespace ggufc_matvec_quad_stream_g8_q5_k_f32_impl {
using act_t = float;
using Format = ggufc::Q5_K;
// INTEGER_X (16-bit activations of emitter.MATVEC_INTEGER_X_FORMATS): each lane takes its part's
// activations as int16 too, and sums every row's part by dp2a (prelude: "integer dot products")
constexpr bool INTEGER_X = false;
using Decode = ggufc::PartDecode<Format, act_t, INTEGER_X>;  // biased values or int16 x (prelude)
using ggufc::i64;
constexpr int WARPS_PER_BLOCK = 4;
constexpr int ROWS_PER_WARP = 4;
constexpr int GROUP_WARPS = 4;  // warps sharing the same rows
constexpr int ROW_GROUPS = WARPS_PER_BLOCK / GROUP_WARPS;
static_assert(WARPS_PER_BLOCK % GROUP_WARPS == 0, "whole row groups");
// row groups a warp takes one after the other (the streamed geometry)
constexpr int STREAM_GROUPS = 8;
// blocks an SM a wave of this kernel is counted at (prelude: grid_fills_its_waves); 0: the
// next kernel starts only after this one's weight loads, whatever the grid
constexpr unsigned WAVE_BLOCKS_PER_SM = 4;
constexpr int CHUNK_PARTS = ggufc::WARP_SIZE;  // one part per lane per chunk
constexpr int CHUNK_BLOCKS = CHUNK_PARTS / Format::PARTS;
constexpr int CHUNK_BYTES = CHUNK_BLOCKS * Format::BLOCK_BYTES;
constexpr int WORD_BYTES = 16;
// a chunk is copied from its start rounded down to 16 bytes: up to one more word
constexpr int WORDS_PER_LANE = (CHUNK_BYTES / WORD_BYTES + 2 + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;
constexpr int STAGE_WORDS = WORDS_PER_LANE * ggufc::WARP_SIZE;
static_assert(CHUNK_PARTS % Format::PARTS == 0, "a chunk holds whole blocks");
// blocks of whole 16-byte words: every row and chunk starts as far into a word as the tensor
constexpr bool ALIGNED_ROWS = Format::BLOCK_BYTES % WORD_BYTES == 0;
// activations staged through shared memory by each warp (prelude: stage_part_activations)
constexpr bool STAGE_X = true;
using XStage = ggufc::PartActivationStage<act_t>;
}  // namespace ggufc_matvec_quad_stream_g8_q5_k_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_matvec_quad_stream_g8_q5_k_f32(
    const ggufc_matvec_quad_stream_g8_q5_k_f32_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_quad_stream_g8_q5_k_f32_impl::act_t* bias, ggufc_matvec_quad_stream_g8_q5_k_f32_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matvec_quad_stream_g8_q5_k_f32_impl;
    __shared__ uint4 stage_all[WARPS_PER_BLOCK][ROWS_PER_WARP][STAGE_WORDS];
    __shared__ uint4 x_stage[STAGE_X ? WARPS_PER_BLOCK : 1][STAGE_X ? XStage::WORDS : 1];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int slice = warp % GROUP_WARPS;
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
    // bytes from the 16-byte boundary below the tensor's start to it
    const int tensor_lead = static_cast<int>(reinterpret_cast<size_t>(blocks) % WORD_BYTES);

    // the 16-byte words of chunk c of each row of the group at ``first`` (``count`` rows),
    // from the word holding the chunk's first byte; words past a row's end are not read
    uint4 words[ROWS_PER_WARP][WORDS_PER_LANE];
    const int row_length = static_cast<int>(row_bytes);
    auto load_chunk = [&](i64 first, int count, int c) {
        if constexpr (ALIGNED_ROWS) {
            // every row's chunk starts tensor_lead bytes into a word: offsets within a row
            // are ints, the bound one compare a word, and the row pointer steps by row_bytes
            // (Q4_K / Q5_K 3-8% faster than the general copy below, H100, session 16)
            const ggufc::u8* row = blocks + first * row_bytes - tensor_lead;
            const int chunk_start = c * CHUNK_BYTES;
            // bytes of the chunk from this lane's first word on
            const int limit = tensor_lead + min(CHUNK_BYTES, row_length - chunk_start) - lane * WORD_BYTES;
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                if (r < count) {
                    const uint4* word = reinterpret_cast<const uint4*>(row + chunk_start) + lane;
#pragma unroll
                    for (int i = 0; i < WORDS_PER_LANE; ++i) {
                        if (i * ggufc::WARP_SIZE * WORD_BYTES < limit) {
                            words[r][i] = ggufc::load_streaming(word + i * ggufc::WARP_SIZE);
                        }
                    }
                }
                row += row_bytes;
            }
        } else {
            // rows start anywhere in a word: bounds by pointer (this form measured faster for
            // Q8_0 / Q6_K than the integer offsets above)
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                if (r < count) {
                    const ggufc::u8* row = blocks + (first + r) * row_bytes;
                    const ggufc::u8* start = row + static_cast<i64>(c) * CHUNK_BYTES;
                    const ggufc::u8* end = row + min(static_cast<i64>(c + 1) * CHUNK_BYTES, row_bytes);
                    const uint4* base = reinterpret_cast<const uint4*>(
                        reinterpret_cast<size_t>(start) & ~static_cast<size_t>(WORD_BYTES - 1));
#pragma unroll
                    for (int i = 0; i < WORDS_PER_LANE; ++i) {
                        const uint4* word = base + lane + i * ggufc::WARP_SIZE;
                        if (reinterpret_cast<const ggufc::u8*>(word) < end) {
                            words[r][i] = ggufc::load_streaming(word);
                        }
                    }
                }
            }
        }
    };

    // chunk 0 always exists: with one warp a row group the test is left out (it cost float32
    // Q4_0 ten registers and a block an SM)
    if (GROUP_WARPS == 1 || slice < chunks) {
        load_chunk(n0, rows, slice);
    }
    // a grid that fills its waves lets the next kernel start now, one that leaves slots free
    // after its weight loads (prelude: programmatic dependent launch; at the start there, Q8_0
    // 5376x21504, 336 blocks on 528 slots, took 62 us instead of 50, session 17)
    const bool fills_waves = WAVE_BLOCKS_PER_SM > 0 && ggufc::grid_fills_its_waves(WAVE_BLOCKS_PER_SM);
    if (fills_waves) {
        ggufc::allow_dependent_launch();
    }
    // the first weights are on their way: now x (and out) wait for the kernels before
    // (prelude: programmatic dependent launch)
    ggufc::wait_for_previous_kernels();
    // a part's activations, kept from one row group to the next when a warp takes one chunk of each
    float xv[ggufc::PART_WEIGHTS];
    float x_sum[2];
    ggufc::Int16Part x_int;  // INTEGER_X: xv as int16
    for (int g = 0; g < STREAM_GROUPS; ++g) {
        const i64 next_n0 = group_row(g + 1);
        // warps sharing row groups all go on to the next group or all stop (the barrier below):
        // whether the block's first row group of it has rows
        const i64 next_first = GROUP_WARPS > 1 ? group_row(g + 1) - (warp / GROUP_WARPS) * ROWS_PER_WARP : next_n0;
        const bool has_next = g + 1 < STREAM_GROUPS && next_first < N;
        float acc[ROWS_PER_WARP];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) {
            acc[r] = 0.0f;
        }
        for (int c = slice; c < chunks; c += GROUP_WARPS) {
            __syncwarp();  // every lane is done decoding the previous chunk
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
#pragma unroll
                for (int i = 0; i < WORDS_PER_LANE; ++i) {
                    stage_all[warp][r][lane + i * ggufc::WARP_SIZE] = words[r][i];
                }
            }
            __syncwarp();
            // in flight while this chunk is decoded
            if (c + GROUP_WARPS < chunks) {
                load_chunk(n0, rows, c + GROUP_WARPS);
            } else if (has_next) {
                load_chunk(next_n0, rows_from(next_n0), slice);
            }
            const int chunk_parts = min(CHUNK_BLOCKS, blocks_per_row - c * CHUNK_BLOCKS) * Format::PARTS;
            // each group's chunk of this warp is the same part of x when a warp takes one chunk
            const bool x_loaded = g > 0 && (GROUP_WARPS == 1 ? chunks == 1 : chunks <= GROUP_WARPS);
            if constexpr (STAGE_X) {
                if (!x_loaded) {
                    ggufc::stage_part_activations<Decode::NEEDS_X_SUM>(
                        xm + static_cast<i64>(c) * CHUNK_PARTS * ggufc::PART_WEIGHTS, chunk_parts,
                        x_stage[warp], lane, xv, x_sum);
                }
            }
            if (lane < chunk_parts) {
                if (!STAGE_X && !x_loaded) {
                    const i64 k0 = (static_cast<i64>(c) * CHUNK_PARTS + lane) * ggufc::PART_WEIGHTS;
                    ggufc::load_part_activations<Decode::NEEDS_X_SUM>(xm + k0, xv, x_sum);
                }
                if (INTEGER_X && !x_loaded) {
                    x_int = Decode::int16_activations(xv);
                }
                const int part = lane % Format::PARTS;
                // byte offset of the chunk in the stage: its start's address modulo 16
                const size_t delta = reinterpret_cast<size_t>(blocks + static_cast<i64>(c) * CHUNK_BYTES) &
                                     (WORD_BYTES - 1);
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
                    if (r < rows) {
                        const size_t row_delta =
                            ALIGNED_ROWS ? static_cast<size_t>(tensor_lead)
                                         : (delta + static_cast<size_t>((n0 + r) * row_bytes)) & (WORD_BYTES - 1);
                        const ggufc::u8* chunk =
                            reinterpret_cast<const ggufc::u8*>(stage_all[warp][r]) + row_delta;
                        acc[r] += ggufc::part_dot<Decode>(
                            Format::load(chunk + (lane / Format::PARTS) * Format::BLOCK_BYTES, part), part,
                            xv, x_sum, x_int);
                    }
                }
            }
        }
        if (!has_next && !fills_waves) {
            ggufc::allow_dependent_launch();  // the weights are all read
        }
        if constexpr (GROUP_WARPS > 1) {
            // streamed, groups alternate between two buffers: one barrier a group suffices
            constexpr int BUFFERS = STREAM_GROUPS > 1 ? 2 : 1;
            __shared__ float partial[BUFFERS][WARPS_PER_BLOCK][ROWS_PER_WARP];
            float(&sums)[WARPS_PER_BLOCK][ROWS_PER_WARP] = partial[g % BUFFERS];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                const float total = ggufc::warp_sum(acc[r]);
                if (lane == 0) {
                    sums[warp][r] = total;
                }
            }
            __syncthreads();
            // lane r of the row group's first warp sums row r
            const bool writes = slice == 0 && lane < rows;
            if (STREAM_GROUPS == 1 && !writes) {
                return;
            }
            if (writes) {
                float total = 0.0f;
#pragma unroll
                for (int s = 0; s < GROUP_WARPS; ++s) {
                    total += sums[warp + s][lane];
                }
                const float b = has_bias ? ggufc::to_float(bias[n0 + lane]) : 0.0f;
                out[m * N + n0 + lane] = ggufc::from_float<act_t>(total + b);
            }
        } else {
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                if (r < rows) {
                    const float total = ggufc::warp_sum(acc[r]);
                    if (lane == 0) {
                        const float b = has_bias ? ggufc::to_float(bias[n0 + r]) : 0.0f;
                        out[m * N + n0 + r] = ggufc::from_float<act_t>(total + b);
                    }
                }
            }
        }
        if (!has_next) {
            break;
        }
        n0 = next_n0;
        rows = rows_from(n0);
    }  // row groups
}
