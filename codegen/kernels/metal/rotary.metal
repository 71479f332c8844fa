// ggufc rotary embedding (rotate-half): out[r, d] = x[r, d] * cos[m, d] + x[r, (d + D/2) % D] *
// sin[m, d] with m = r % M, for the R rows of {{ dim }} floats of x [..., M, D] (cos, sin: [M, D]).
//
// A thread an element, {{ threads }} a threadgroup (threadgroups ceil(R * D / {{ threads }})), as the CUDA kernel.
// Template constant: dim D.  Arguments: rows R, tokens M.
namespace {{ entry }}_impl {
enum : int {
    THREADS = {{ threads }},
    DIM = {{ dim }},
    HALF = DIM / 2,
};
}  // namespace {{ entry }}_impl

kernel void {{ entry }}(
    device const float* x [[buffer(0)]],
    device const float* cos_table [[buffer(1)]],
    device const float* sin_table [[buffer(2)]],
    device float* out [[buffer(3)]],
    constant long& rows [[buffer(4)]],
    constant long& tokens [[buffer(5)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint t [[thread_index_in_threadgroup]]) {
    using namespace {{ entry }}_impl;
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
