// ggufc gated GELU: out[r, j] = gelu_tanh(gate[r, j]) * up[r, j] for the R rows of 2048 floats;
// gate and up are the two halves of each row of x [..., 4096] (read in place).
//
// A thread an element, 256 a block (grid.x = ceil(R * I / 256)): a decode step's MLP is one row,
// so the kernel is one wave of loads and stores.  See ggufc.gated_gelu (compiler/ops.py).
// Template constant: inner width I.  Kernel argument: rows R.
namespace ggufc_gated_gelu_stacked_i2048_f32_impl {
using ggufc::i64;
constexpr int THREADS = 256;
constexpr int INNER = 2048;
constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float CUBIC = 0.044715f;  // aten.gelu's approximate="tanh"
}  // namespace ggufc_gated_gelu_stacked_i2048_f32_impl

extern "C" __global__ void __launch_bounds__(256) ggufc_gated_gelu_stacked_i2048_f32(
    const float* x, float* __restrict__ out,
    ggufc::i64 rows) {
    using namespace ggufc_gated_gelu_stacked_i2048_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const i64 element = static_cast<i64>(blockIdx.x) * THREADS + threadIdx.x;
    if (element >= rows * INNER) {
        return;
    }
    const i64 row = element / INNER;
    const int j = static_cast<int>(element % INNER);
    const float gate = x[row * (2 * INNER) + j];
    const float value = x[row * (2 * INNER) + INNER + j];
    const float inner = SQRT_2_OVER_PI * (gate + CUBIC * gate * gate * gate);
    out[element] = 0.5f * gate * (1.0f + tanhf(inner)) * value;
}
