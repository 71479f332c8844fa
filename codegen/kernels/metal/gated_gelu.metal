// ggufc gated GELU: out[r, j] = gelu_tanh(gate[r, j]) * up[r, j] for the R rows of {{ inner }} floats;
{% if stacked %}// gate and up are the two halves of each row of x [..., {{ 2 * inner }}] (read in place).
{% else %}// gate = x and up are two tensors [..., {{ inner }}].
{% endif %}//
// A thread an element, {{ threads }} a threadgroup (threadgroups ceil(R * I / {{ threads }})), as the CUDA kernel;
// precise::tanh (the fast-math tanh is less exact than the float32 reference).
// Template constant: inner width I.  Argument: rows R.
namespace {{ entry }}_impl {
enum : int {
    THREADS = {{ threads }},
    INNER = {{ inner }},
};
constant float SQRT_2_OVER_PI = 0.7978845608028654f;
constant float CUBIC = 0.044715f;  // aten.gelu's approximate="tanh"
}  // namespace {{ entry }}_impl

kernel void {{ entry }}(
    device const float* x [[buffer(0)]],
{%- if stacked %}
    device float* out [[buffer(1)]],
    constant long& rows [[buffer(2)]],
{%- else %}
    device const float* up [[buffer(1)]],
    device float* out [[buffer(2)]],
    constant long& rows [[buffer(3)]],
{%- endif %}
    uint3 group [[threadgroup_position_in_grid]],
    uint t [[thread_index_in_threadgroup]]) {
    using namespace {{ entry }}_impl;
    const long element = long(group.x) * THREADS + long(t);
    if (element >= rows * INNER) {
        return;
    }
{%- if stacked %}
    const long row = element / INNER;
    const int j = int(element % INNER);
    const float gate = x[row * (2 * INNER) + j];
    const float value = x[row * (2 * INNER) + INNER + j];
{%- else %}
    const float gate = x[element];
    const float value = up[element];
{%- endif %}
    const float inner = SQRT_2_OVER_PI * (gate + CUBIC * gate * gate * gate);
    out[element] = 0.5f * gate * (1.0f + precise::tanh(inner)) * value;
}
