// ggufc RMSNorm: out[r, :] = residual[r, :] + x[r, :] * rsqrt(mean_i x[r, i]^2 + eps) * w for each row r of
// 2048 floats (ggufc.rms_norm_add_norm of float32 over the last dim).
// Then normed[r, :] = out[r, :] * rsqrt(mean_i out[r, i]^2 + next_eps) * next_weight: the next
// block's pre-norm of the sum, from the same registers.
//
// A warp a row, 4 rows a block of 128 threads (grid.x = ceil(R / 4)): the lanes read the
// row coalesced (lane l takes elements l, l + 32, ...), a warp sum gives the sum of squares,
// then each lane writes its elements scaled.  No shared memory and no block barrier: a decode
// step's norms are one to a few rows, so a row's latency is the kernel's.
// Template constants: dim D, a weight of D floats, a residual added (the
// sum rounded as residual + the normed value, as the two ops it replaces), a next weight of D floats.  Kernel arguments: rows R, eps, next_eps.
namespace ggufc_rms_norm_add_norm_d2048_f32_impl {
using ggufc::i64;
constexpr int THREADS = 128;
constexpr int ROWS_PER_BLOCK = THREADS / ggufc::WARP_SIZE;
constexpr int DIM = 2048;
constexpr int STEPS = (DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // elements a lane
// a lane keeps its elements in registers when it has few; else it reads them again (from L1)
constexpr bool KEEP = STEPS <= 32;
constexpr int KEPT = KEEP ? STEPS : 1;

}  // namespace ggufc_rms_norm_add_norm_d2048_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_rms_norm_add_norm_d2048_f32(
    const float* x, const float* weight, const float* residual,
    const float* next_weight, float* __restrict__ out, float* __restrict__ normed,
    ggufc::i64 rows, float eps, float next_eps) {
    using namespace ggufc_rms_norm_add_norm_d2048_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 row = static_cast<i64>(blockIdx.x) * ROWS_PER_BLOCK +
                    static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    if (row >= rows) {
        return;  // the whole warp: no shuffle below misses a lane
    }
    const float* x_row = x + row * DIM;
    float* out_row = out + row * DIM;
    float kept[KEPT];
    float kept_weight[KEPT];
    const float* residual_row = residual + row * DIM;
    float kept_residual[KEPT];
    float kept_next_weight[KEPT];
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            const float value = x_row[d];
            if constexpr (KEEP) {
                kept[i] = value;
                kept_weight[i] = weight[d];  // in flight with x, not after the sum
                kept_residual[i] = residual_row[d];
                kept_next_weight[i] = next_weight[d];
            }
            squares = fmaf(value, value, squares);
        }
    }
    const float scale = rsqrtf(ggufc::warp_sum(squares) / static_cast<float>(DIM) + eps);
    float next_squares = 0.0f;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            float value;
            float w;
            float r;
            if constexpr (KEEP) {
                value = kept[i];
                w = kept_weight[i];
                r = kept_residual[i];
            } else {
                value = x_row[d];
                w = weight[d];
                r = residual_row[d];
            }
            const float total = r + value * scale * w;
            out_row[d] = total;
            if constexpr (KEEP) {
                kept[i] = total;
            }
            next_squares = fmaf(total, total, next_squares);
        }
    }
    // the next norm: of the sums this lane wrote (kept, or read back: the same thread's stores)
    const float next_scale = rsqrtf(ggufc::warp_sum(next_squares) / static_cast<float>(DIM) + next_eps);
    float* normed_row = normed + row * DIM;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            const float total = KEEP ? kept[i] : out_row[d];
            const float next_w = KEEP ? kept_next_weight[i] : next_weight[d];
            normed_row[d] = total * next_scale * next_w;
        }
    }
}
