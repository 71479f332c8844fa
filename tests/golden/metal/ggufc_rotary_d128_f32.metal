// ggufc rotary embedding (rotate-half): out[r, d] = x[r, d] * cos[m, d] + x[r, (d + D/2) % D] *
// sin[m, d] with m = r % M, for the R rows of 128 floats of x [..., M, D] (cos, sin: [M, D]).
//
// A thread an element, 256 a threadgroup (threadgroups ceil(R * D / 256)), as the CUDA kernel.
// Template constant: dim D.  Arguments: rows R, tokens M.
namespace ggufc_rotary_d128_f32_impl {
enum : int {
    THREADS = 256,
    DIM = 128,
    HALF = DIM / 2,
};
}  // namespace ggufc_rotary_d128_f32_impl

kernel void ggufc_rotary_d128_f32(
    device const float* x [[buffer(0)]],
    device const float* cos_table [[buffer(1)]],
    device const float* sin_table [[buffer(2)]],
    device float* out [[buffer(3)]],
    constant long& rows [[buffer(4)]],
    constant long& tokens [[buffer(5)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint t [[thread_index_in_threadgroup]]) {
    using namespace ggufc_rotary_d128_f32_impl;
    const long element = long(group.x) * THREADS + long(t);
    if (element >= rows * DIM) {
        return;
    }
    const long row = element / DIM;
    const int d = int(element % DIM);
    const long table = (row % tokens) * DIM + d;
    const int partner = d < HALF ? d + HALF : d - HALF;
    out[element] = fma(x[row * DIM + partner], sin_table[table], x[element] * cos_table[table]);
}
