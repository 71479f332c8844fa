// ggufc RMSNorm: out[r, :] = x[r, :] * rsqrt(mean_i x[r, i]^2 + eps) * w for each row r of
// 640 floats (aten.rms_norm of float32 over the last dim).
//
// A warp a row, 4 rows a block of 128 threads (grid.x = ceil(R / 4)): the lanes read the
// row coalesced (lane l takes elements l, l + 32, ...), a warp sum gives the sum of squares,
// then each lane writes its elements scaled.  No shared memory and no block barrier: a decode
// step's norms are one to a few rows, so a row's latency is the kernel's.
// Template constants: dim D, a weight of D floats.  Kernel arguments: rows R, eps.
namespace ggufc_rms_norm_d640_f32_impl {
using ggufc::i64;
constexpr int THREADS = 128;
constexpr int ROWS_PER_BLOCK = THREADS / ggufc::WARP_SIZE;
constexpr int DIM = 640;
constexpr int STEPS = (DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // elements a lane
// a lane keeps its elements in registers when it has few; else it reads them again (from L1)
constexpr bool KEEP = STEPS <= 32;
constexpr int KEPT = KEEP ? STEPS : 1;

}  // namespace ggufc_rms_norm_d640_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_rms_norm_d640_f32(
    const float* x, const float* weight, float* __restrict__ out,
    ggufc::i64 rows, float eps) {
    using namespace ggufc_rms_norm_d640_f32_impl;
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
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            const float value = x_row[d];
            if constexpr (KEEP) {
                kept[i] = value;
                kept_weight[i] = weight[d];  // in flight with x, not after the sum
            }
            squares = fmaf(value, value, squares);
        }
    }
    const float scale = rsqrtf(ggufc::warp_sum(squares) / static_cast<float>(DIM) + eps);
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            float value;
            float w;
            if constexpr (KEEP) {
                value = kept[i];
                w = kept_weight[i];
            } else {
                value = x_row[d];
                w = weight[d];
            }
            out_row[d] = value * scale * w;
        }
    }
}
