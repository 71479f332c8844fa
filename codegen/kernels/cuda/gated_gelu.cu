// ggufc gated GELU: out[r, j] = gelu_tanh(gate[r, j]) * up[r, j] for the R rows of {{ inner }} floats;
{% if stacked %}// gate and up are the two halves of each row of x [..., {{ 2 * inner }}] (read in place).
{% else %}// gate = x and up are two tensors [..., {{ inner }}].
{% endif %}//
// A thread an element, {{ threads }} a block (grid.x = ceil(R * I / {{ threads }})): a decode step's MLP is one row,
// so the kernel is one wave of loads and stores.  See ggufc.gated_gelu (compiler/ops.py).
// Template constant: inner width I.  Kernel argument: rows R.
namespace {{ entry }}_impl {
using ggufc::i64;
constexpr int THREADS = {{ threads }};
constexpr int INNER = {{ inner }};
constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float CUBIC = 0.044715f;  // aten.gelu's approximate="tanh"
}  // namespace {{ entry }}_impl

extern "C" __global__ void __launch_bounds__({{ threads }}) {{ entry }}(
    const float* x,{% if not stacked %} const float* up,{% endif %} float* __restrict__ out,
    ggufc::i64 rows) {
    using namespace {{ entry }}_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const i64 element = static_cast<i64>(blockIdx.x) * THREADS + threadIdx.x;
    if (element >= rows * INNER) {
        return;
    }
{%- if stacked %}
    const i64 row = element / INNER;
    const int j = static_cast<int>(element % INNER);
    const float gate = x[row * (2 * INNER) + j];
    const float value = x[row * (2 * INNER) + INNER + j];
{%- else %}
    const float gate = x[element];
    const float value = up[element];
{%- endif %}
    const float inner = SQRT_2_OVER_PI * (gate + CUBIC * gate * gate * gate);
    out[element] = 0.5f * gate * (1.0f + tanhf(inner)) * value;
}
