// ggufc rotary embedding (rotate-half) after an RMSNorm: y = x * rsqrt(mean_i x_i^2 + eps),
// then out[r, d] = y[r, d] * cos[m, d] + y[r, (d + D/2) % D] * sin[m, d] with m = r % M, for the
// R rows of 128 floats of x [..., M, D] (cos, sin: [M, D]): a model's per-head q / k norm and its RoPE.
//
// A warp a row, 4 rows a block of 128 threads (grid.x = ceil(R / 4)): lane l holds elements
// l + 32 i of the row, so with D/2 a multiple of 32 the partner of its element i is its own
// element i +- D/64: the norm's sum is one warp sum and the rotation needs no exchange.
// Template constants: dim D.  Kernel arguments: rows R, tokens M, eps.
namespace ggufc_rotary_rms_norm_unweighted_d128_f32_impl {
using ggufc::i64;
constexpr int THREADS = 128;
constexpr int ROWS_PER_BLOCK = THREADS / ggufc::WARP_SIZE;
constexpr int DIM = 128;
constexpr int STEPS = DIM / ggufc::WARP_SIZE;  // elements a lane
constexpr int HALF_STEPS = STEPS / 2;  // a lane's element i pairs with its i +- HALF_STEPS
static_assert(DIM % (2 * ggufc::WARP_SIZE) == 0, "a lane holds both elements of each pair");

}  // namespace ggufc_rotary_rms_norm_unweighted_d128_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_rotary_rms_norm_unweighted_d128_f32(
    const float* x, const float* cos_table,
    const float* sin_table, float* __restrict__ out,
    ggufc::i64 rows, ggufc::i64 tokens, float eps) {
    using namespace ggufc_rotary_rms_norm_unweighted_d128_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 row = static_cast<i64>(blockIdx.x) * ROWS_PER_BLOCK +
                    static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    if (row >= rows) {
        return;  // the whole warp: no shuffle below misses a lane
    }
    const float* x_row = x + row * DIM;
    const i64 table_row = (row % tokens) * DIM;
    float values[STEPS];
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        values[i] = x_row[lane + i * ggufc::WARP_SIZE];
        squares = fmaf(values[i], values[i], squares);
    }
    const float scale = rsqrtf(ggufc::warp_sum(squares) / static_cast<float>(DIM) + eps);
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        // the norm's output as aten.rms_norm rounds it: (x * scale)
        values[i] = values[i] * scale;
    }
    float* out_row = out + row * DIM;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        const float partner = values[i < HALF_STEPS ? i + HALF_STEPS : i - HALF_STEPS];
        out_row[d] = fmaf(partner, sin_table[table_row + d], values[i] * cos_table[table_row + d]);
    }
}
