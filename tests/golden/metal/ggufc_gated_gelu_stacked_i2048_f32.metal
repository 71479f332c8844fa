// ggufc gated GELU: out[r, j] = gelu_tanh(gate[r, j]) * up[r, j] for the R rows of 2048 floats;
// gate and up are the two halves of each row of x [..., 4096] (read in place).
//
// A thread an element, 256 a threadgroup (threadgroups ceil(R * I / 256)), as the CUDA kernel;
// precise::tanh (the fast-math tanh is less exact than the float32 reference).
// Template constant: inner width I.  Argument: rows R.
namespace ggufc_gated_gelu_stacked_i2048_f32_impl {
enum : int {
    THREADS = 256,
    INNER = 2048,
};
constant float SQRT_2_OVER_PI = 0.7978845608028654f;
constant float CUBIC = 0.044715f;  // aten.gelu's approximate="tanh"
}  // namespace ggufc_gated_gelu_stacked_i2048_f32_impl

kernel void ggufc_gated_gelu_stacked_i2048_f32(
    device const float* x [[buffer(0)]],
    device float* out [[buffer(1)]],
    constant long& rows [[buffer(2)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint t [[thread_index_in_threadgroup]]) {
    using namespace ggufc_gated_gelu_stacked_i2048_f32_impl;
    const long element = long(group.x) * THREADS + long(t);
    if (element >= rows * INNER) {
        return;
    }
    const long row = element / INNER;
    const int j = int(element % INNER);
    const float gate = x[row * (2 * INNER) + j];
    const float value = x[row * (2 * INNER) + INNER + j];
    const float inner = SQRT_2_OVER_PI * (gate + CUBIC * gate * gate * gate);
    out[element] = 0.5f * gate * (1.0f + precise::tanh(inner)) * value;
}
