// ggufc matvec, split-K geometry: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for
// Q5_0 weights, __nv_bfloat16 activations, float32 accumulation (the M = 1 kernel of the
// formats in emitter.MATVEC_SPLIT_K_FORMATS).
//
// One block of 128 threads per 4 weight rows (grid.x = ceil(N / 4), grid.y = M).
// Thread t decodes parts t, t + 128, t + 256, ... of each of the block's rows,
// loading their bytes straight from global memory (no staging: the 18- and 22-byte blocks of
// these formats are only 2-byte aligned, and reading them back from a staged copy costs
// shared-memory bank conflicts that the L1-cached loads here do not), and reuses each part's
// 32 activations for the 4 rows.  Partial sums meet in shared memory at the end.
// Quants are biased values (prelude: PartDecode), so sum(x) is taken for every part.
// With STAGE_X (float32 activations: emitter.MATVEC_STAGED_X_DTYPES) each warp first copies its
// 32 parts' activations to shared memory, coalesced (prelude: stage_part_activations).
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (any sizes with K a
// multiple of the block weights), has_bias (0: bias is not read).
namespace ggufc_matvec_split_k_q5_0_bf16_impl {
using act_t = __nv_bfloat16;
using Format = ggufc::Q5_0;
// INTEGER_X (16-bit activations of emitter.MATVEC_INTEGER_X_FORMATS): each thread takes its part's
// activations as int16 too, and sums every row's part by dp2a (prelude: "integer dot products")
constexpr bool INTEGER_X = true;
using Decode = ggufc::PartDecode<Format, act_t, INTEGER_X>;  // biased values or int16 x (prelude)
using ggufc::i64;
constexpr int THREADS = 128;
constexpr int WARPS = THREADS / ggufc::WARP_SIZE;
constexpr int ROWS = 4;
// activations staged through shared memory by each warp (prelude: stage_part_activations)
constexpr bool STAGE_X = false;
using XStage = ggufc::PartActivationStage<act_t>;
}  // namespace ggufc_matvec_split_k_q5_0_bf16_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_matvec_split_k_q5_0_bf16(
    const ggufc_matvec_split_k_q5_0_bf16_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_split_k_q5_0_bf16_impl::act_t* bias, ggufc_matvec_split_k_q5_0_bf16_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matvec_split_k_q5_0_bf16_impl;
    __shared__ float partial[WARPS][ROWS];
    __shared__ uint4 x_stage[STAGE_X ? WARPS : 1][STAGE_X ? XStage::WORDS : 1];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 n0 = static_cast<i64>(blockIdx.x) * ROWS;
    const int rows = static_cast<int>(N - n0 < ROWS ? N - n0 : ROWS);
    const i64 m = blockIdx.y;
    const int parts_per_row = static_cast<int>(K / ggufc::PART_WEIGHTS);
    const i64 row_bytes = static_cast<i64>(K / Format::BLOCK_WEIGHTS) * Format::BLOCK_BYTES;
    const act_t* xm = x + m * K;
    const ggufc::u8* first_row = blocks + n0 * row_bytes;

    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        acc[r] = 0.0f;
    }
    // with STAGE_X a warp's lanes run the loop together (its x stage is shared), those past
    // the row's last part without a part
    const int loop_parts = STAGE_X ? (parts_per_row + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE * ggufc::WARP_SIZE
                                   : parts_per_row;
    for (int p = static_cast<int>(threadIdx.x); p < loop_parts; p += THREADS) {
        const bool has_part = !STAGE_X || p < parts_per_row;
        const int part = p % Format::PARTS;
        const i64 block_offset = static_cast<i64>(p / Format::PARTS) * Format::BLOCK_BYTES;
        typename Format::Raw raw[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            if (has_part && r < rows) {
                raw[r] = Format::load(first_row + r * row_bytes + block_offset, part);
            }
        }
        // this part's weights are on their way: x waits for the kernels before (prelude:
        // programmatic dependent launch; at once after the first part)
        ggufc::wait_for_previous_kernels();
        float xv[ggufc::PART_WEIGHTS];
        float x_sum[2];
        if constexpr (STAGE_X) {
            const int first = p - lane;  // the warp's first part
            ggufc::stage_part_activations<Decode::NEEDS_X_SUM>(
                xm + static_cast<i64>(first) * ggufc::PART_WEIGHTS,
                min(ggufc::WARP_SIZE, parts_per_row - first), x_stage[warp], lane, xv, x_sum);
        } else {
            ggufc::load_part_activations<Decode::NEEDS_X_SUM>(
                xm + static_cast<i64>(p) * ggufc::PART_WEIGHTS, xv, x_sum);
        }
        if (!has_part) {
            continue;
        }
        ggufc::Int16Part x_int;
        if constexpr (INTEGER_X) {
            x_int = Decode::int16_activations(xv);
        }
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            if (r < rows) {
                acc[r] += ggufc::part_dot<Decode>(raw[r], part, xv, x_sum, x_int);
            }
        }
    }
    // the weights are all read: the next kernel may start (prelude: programmatic dependent
    // launch; as late as the staged matvec's, matvec.cu)
    ggufc::allow_dependent_launch();
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        const float total = ggufc::warp_sum(acc[r]);
        if (lane == 0) {
            partial[warp][r] = total;
        }
    }
    __syncthreads();
    if (warp == 0) {
        // lane 0, the writer, took part 0 and so has waited for the kernels before
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const float total = ggufc::warp_sum(lane < WARPS ? partial[lane][r] : 0.0f);
            if (lane == 0 && r < rows) {
                const float b = has_bias ? ggufc::to_float(bias[n0 + r]) : 0.0f;
                out[m * N + n0 + r] = ggufc::from_float<act_t>(total + b);
            }
        }
    }
}
