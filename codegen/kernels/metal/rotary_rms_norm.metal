// ggufc rotary embedding (rotate-half) after an RMSNorm: y = x * rsqrt(mean_i x_i^2 + eps){% if weighted %} * w{% endif %},
// then out[r, d] = y[r, d] * cos[m, d] + y[r, (d + D/2) % D] * sin[m, d] with m = r % M, for the
// R rows of {{ dim }} floats of x [..., M, D] (cos, sin: [M, D]).
//
// A simdgroup a row, {{ threads // 32 }} rows a threadgroup of {{ threads }} threads, lane l holding elements l + 32 i; as
// the CUDA kernel.  Template constants: dim D{% if weighted %}, a weight of D floats{% endif %}.  Arguments: rows R, tokens M, eps.
namespace {{ entry }}_impl {
enum : int {
    THREADS = {{ threads }},
    ROWS_PER_GROUP = THREADS / ggufc::SIMD_WIDTH,
    DIM = {{ dim }},
    STEPS = DIM / ggufc::SIMD_WIDTH,
    HALF_STEPS = STEPS / 2,
};
}  // namespace {{ entry }}_impl

kernel void {{ entry }}(
    device const float* x [[buffer(0)]],
    device const float* cos_table [[buffer(1)]],
    device const float* sin_table [[buffer(2)]],
{%- if weighted %}
    device const float* weight [[buffer(3)]],
    device float* out [[buffer(4)]],
    constant long& rows [[buffer(5)]],
    constant long& tokens [[buffer(6)]],
    constant float& eps [[buffer(7)]],
{%- else %}
    device float* out [[buffer(3)]],
    constant long& rows [[buffer(4)]],
    constant long& tokens [[buffer(5)]],
    constant float& eps [[buffer(6)]],
{%- endif %}
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
    using namespace {{ entry }}_impl;
    const long row = long(group.x) * ROWS_PER_GROUP + long(sg);
    if (row >= rows) {
        return;
    }
    device const float* x_row = x + row * DIM;
    const long table_row = (row % tokens) * DIM;
    float values[STEPS];
    float squares = 0.0f;
    for (int i = 0; i < STEPS; ++i) {
        values[i] = x_row[int(lane) + i * ggufc::SIMD_WIDTH];
        squares = fma(values[i], values[i], squares);
    }
    const float scale = rsqrt(simd_sum(squares) / float(DIM) + eps);
    for (int i = 0; i < STEPS; ++i) {
        values[i] = values[i] * scale{% if weighted %} * weight[int(lane) + i * ggufc::SIMD_WIDTH]{% endif %};
    }
    device float* out_row = out + row * DIM;
    for (int i = 0; i < STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        const float partner = values[i < HALF_STEPS ? i + HALF_STEPS : i - HALF_STEPS];
        out_row[d] = fma(partner, sin_table[table_row + d], values[i] * cos_table[table_row + d]);
    }
}
