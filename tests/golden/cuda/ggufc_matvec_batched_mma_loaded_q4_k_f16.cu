// ggufc matvec_batched on tensor cores, the weights as the A operand: out[m, n] = sum_k x[m, k]
// * W[n, k] + bias[n] for Q4_K weights, __half activations, float32 accumulation.
// Any M, one read of the weights for each 8 activation rows (the lowering takes this
// loaded form up to M = 8, emitter.MATVEC_MMA_MAX_M, on rows of K up to
// emitter.MATVEC_MMA_LOADED_MAX_K; longer ones take matvec_mma_staged.cu).
//
// A block of 8 warps computes out[m0 .. m0+7][n0 .. n0+15] (grid = (ceil(N / 16), ceil(M / 8))):
// mma.sync m16n8k16 with A = 16 weight rows and B = x (activation row m0 + j as column j).
// The warps split K by super-blocks (warp w takes blocks w, w + 8, ...) and their sums meet in
// shared memory at the end.  Lane (g, t) = (lane / 4, lane % 4) loads its part of each block
// of rows n0 + g and n0 + g + 8 straight into registers (Format::load_mma_row; block j + 1
// once block j is decoded: with one block a warp its loads wait, and the SM's other warps
// cover them, as two a warp took registers and measured slower), makes the A pairs of mma
// (word, side) by one HFMA2 a pair and part (Format::mma_a: the scale folded in, exact; for
// bfloat16 in two parts: KquantMmaScales), and takes the
// activations at the same k slots of its column as B (the k order inside an mma is free as
// long as A and B agree), from the warp's copy of the block's activation rows in shared
// memory (STAGE_X).
// A second mma a (word, side) with A = the sub-block's offsets (Format::MmaScales) sums
// offset * x; per block out += d * C - dmin * C_offsets.  Rows past N or M contribute nothing.
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (a multiple of the
// block weights), has_bias; blocks 16-byte aligned.
namespace ggufc_matvec_batched_mma_loaded_q4_k_f16_impl {
using act_t = __half;
using Format = ggufc::Q4_K;
using ggufc::i64;
using ggufc::u32;
using ggufc::u8;
constexpr int WARPS = 8;
constexpr int TILE_N = 16;  // weight rows: the mma's M
constexpr int TILE_M = 8;  // activation rows: the mma's N
constexpr int LANE_GROUPS = 4;  // lanes sharing a row (t = lane % 4)
static_assert(TILE_N == 2 * ggufc::WARP_SIZE / LANE_GROUPS, "rows g and g + 8 of a lane");
static_assert(WARPS * ggufc::WARP_SIZE >= TILE_N * TILE_M, "a thread a result in the reduction");
using Scales = typename Format::template MmaScales<act_t>;
constexpr int A_PARTS = Scales::PARTS;  // A register sets a (word, side): see Format::mma_a
// the activations of a block staged in shared memory, a warp's own (see below)
constexpr bool STAGE_X = true;
constexpr int X_WORDS = Format::BLOCK_WEIGHTS * static_cast<int>(sizeof(act_t)) / 16;  // a row's
static_assert(!STAGE_X || X_WORDS == ggufc::WARP_SIZE, "a 16-byte word of a row a lane");

// 16-byte word ``word`` of staged row ``row``: XOR-swizzled within its 8 (128 bytes), so that
// the 8 lanes of a quarter warp storing consecutive words, and those reading words 8t + c of
// rows g and g + 1 (t = 0..3), fall in distinct bank groups
__device__ __forceinline__ int x_slot(int row, int word) {
    return word ^ (((word >> 3) + 4 * (row & 1)) & 7);
}

}  // namespace ggufc_matvec_batched_mma_loaded_q4_k_f16_impl

extern "C" __global__ void __launch_bounds__(256, 2) ggufc_matvec_batched_mma_loaded_q4_k_f16(
    const ggufc_matvec_batched_mma_loaded_q4_k_f16_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_batched_mma_loaded_q4_k_f16_impl::act_t* bias, ggufc_matvec_batched_mma_loaded_q4_k_f16_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matvec_batched_mma_loaded_q4_k_f16_impl;
    __shared__ float partial[WARPS][TILE_N][TILE_M];
    __shared__ uint4 x_stage[STAGE_X ? WARPS : 1][STAGE_X ? TILE_M : 1][STAGE_X ? X_WORDS : 1];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int g = lane / LANE_GROUPS;
    const int t = lane % LANE_GROUPS;
    const i64 n0 = static_cast<i64>(blockIdx.x) * TILE_N;
    const i64 m0 = static_cast<i64>(blockIdx.y) * TILE_M;
    const int blocks_per_row = static_cast<int>(K / Format::BLOCK_WEIGHTS);
    const i64 row_bytes = static_cast<i64>(blocks_per_row) * Format::BLOCK_BYTES;
    // rows past N read row N - 1 (their sums are not written)
    const u8* rows[2] = {blocks + min(n0 + g, N - 1) * row_bytes, blocks + min(n0 + g + 8, N - 1) * row_bytes};
    const int my_blocks = warp < blocks_per_row ? (blocks_per_row - warp + WARPS - 1) / WARPS : 0;
    // B column g: activation row m0 + g, zeros past M
    const bool has_x = m0 + g < M;
    const act_t* x_row = x + (has_x ? (m0 + g) * K : 0);

    auto load = [&](Format::MmaRow (&row)[2], int j) {
        const i64 offset = static_cast<i64>(warp + WARPS * j) * Format::BLOCK_BYTES;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            row[r] = Format::load_mma_row(rows[r] + offset, t);
        }
    };
    // STAGE_X: the warp copies block j's activation rows to its stage, coalesced (a row of 512
    // bytes an instruction), by cp.async issued with the block's weight loads; each lane then
    // reads its k slots from there.  Read straight from global memory, a load instruction
    // touches a cache line a lane at M = 8 (lane t's slots are 128 bytes apart in each row).
    auto stage = [&](int j) {
        if constexpr (STAGE_X) {
            const i64 offset = static_cast<i64>(warp + WARPS * j) * Format::BLOCK_WEIGHTS;
#pragma unroll
            for (int r = 0; r < TILE_M; ++r) {
                if (m0 + r < M) {  // warp-uniform
                    const act_t* source = x + (m0 + r) * K + offset + lane * (16 / static_cast<int>(sizeof(act_t)));
                    ggufc::cp_async_16(&x_stage[warp][r][x_slot(r, lane)], source);
                }
            }
            ggufc::cp_async_commit();
        }
    };
    float total[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    auto decode = [&](const Format::MmaRow (&row)[2], int j) {
        if constexpr (STAGE_X) {
            ggufc::cp_async_wait<0>();
            __syncwarp();
        }
        const act_t* x_block = x_row + static_cast<i64>(warp + WARPS * j) * Format::BLOCK_WEIGHTS;
        const Scales scales[2] = {Format::template mma_scales<act_t>(row[0], t),
                                  Format::template mma_scales<act_t>(row[1], t)};
        float sums[A_PARTS][4] = {};
        float offset_sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int side = 0; side < Format::MMA_SIDES; ++side) {
            // the side's activations at this lane's k slots: 4 per word, in word order
            uint4 xs[Format::MMA_WORDS / 2];
            const int first_word = Format::mma_x_offset(t, side) * static_cast<int>(sizeof(act_t)) / 16;
            const uint4* x_side = reinterpret_cast<const uint4*>(x_block + Format::mma_x_offset(t, side));
#pragma unroll
            for (int q = 0; q < Format::MMA_WORDS / 2; ++q) {
                if constexpr (STAGE_X) {
                    xs[q] = has_x ? x_stage[warp][g][x_slot(g, first_word + q)] : make_uint4(0u, 0u, 0u, 0u);
                } else {
                    xs[q] = has_x ? x_side[q] : make_uint4(0u, 0u, 0u, 0u);
                }
            }
            const u32 offsets[4] = {scales[0].offset_pair[side], scales[1].offset_pair[side],
                                    scales[0].offset_pair[side], scales[1].offset_pair[side]};
#pragma unroll
            for (int i = 0; i < Format::MMA_WORDS; ++i) {
                // rows g, g + 8 at k slots 2t, 2t + 1 (bytes 0, 2), then 2t + 8, 2t + 9 (1, 3)
                u32 a[A_PARTS][4];
                Format::template mma_a<act_t>(row, scales, t, i, side, a);
                // x at bytes 0, 2 and 1, 3 of the word's weights: halves (0, 2), (1, 3)
                const uint4 pair = xs[i / 2];
                const u32 first = i % 2 == 0 ? pair.x : pair.z;
                const u32 second = i % 2 == 0 ? pair.y : pair.w;
                const u32 b[2] = {__byte_perm(first, second, 0x5410u), __byte_perm(first, second, 0x7632u)};
#pragma unroll
                for (int p = 0; p < A_PARTS; ++p) {
                    ggufc::tc::mma<act_t>(sums[p], a[p], b);
                }
                ggufc::tc::mma<act_t>(offset_sums, offsets, b);
            }
        }
        // sums[0, 1]: row g, columns 2t, 2t + 1; sums[2, 3]: row g + 8
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            float sum = sums[0][c];
#pragma unroll
            for (int p = 1; p < A_PARTS; ++p) {
                sum += Scales::part_weight(p) * sums[p][c];
            }
            total[c] += scales[c / 2].d * sum - scales[c / 2].dmin * offset_sums[c];
        }
    };

    // the blocks a warp loads ahead: block j + 1 once block j is decoded
    Format::MmaRow in_flight[1][2];
#pragma unroll
    for (int p = 0; p < 1; ++p) {
        if (p < my_blocks) {
            load(in_flight[p], p);
        }
    }
    // the first weights are on their way: x (and out) wait for the kernels before (prelude:
    // programmatic dependent launch)
    ggufc::allow_dependent_launch();
    ggufc::wait_for_previous_kernels();
    if (my_blocks > 0) {
        stage(0);
    }
    for (int j0 = 0; j0 < my_blocks; j0 += 1) {
#pragma unroll
        for (int p = 0; p < 1; ++p) {
            const int j = j0 + p;
            if (j < my_blocks) {
                decode(in_flight[p], j);
                if (j + 1 < my_blocks) {
                    if constexpr (STAGE_X) {
                        __syncwarp();  // every lane has read block j's activations
                        stage(j + 1);
                    }
                    load(in_flight[p], j + 1);
                }
            }
        }
    }
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        partial[warp][g + 8 * (c / 2)][2 * t + c % 2] = total[c];
    }
    __syncthreads();
    const int e = static_cast<int>(threadIdx.x);
    if (e < TILE_N * TILE_M) {
        const int n = e / TILE_M;
        const int m = e % TILE_M;
        if (n0 + n < N && m0 + m < M) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w) {
                sum += partial[w][n][m];
            }
            if (has_bias) {
                sum += ggufc::to_float(bias[n0 + n]);
            }
            out[(m0 + m) * N + n0 + n] = ggufc::from_float<act_t>(sum);
        }
    }
}
