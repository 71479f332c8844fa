// ggufc RMSNorm: out[r, :] = {% if residual %}residual[r, :] + {% endif %}x[r, :] * rsqrt(mean_i x[r, i]^2 + eps){% if weighted %} * w{% endif %} for each row r of
// {{ dim }} floats ({% if residual %}ggufc.rms_norm_add{% else %}aten.rms_norm{% endif %} of float32 over the last dim).
//
// A simdgroup a row, {{ threads // 32 }} rows a threadgroup of {{ threads }} threads (threadgroups ceil(R / {{ threads // 32 }})): the
// lanes read the row (lane l takes elements l, l + 32, ...), simd_sum gives the sum of
// squares, then each lane writes its elements scaled; as the CUDA kernel.
// Template constants: dim D{% if weighted %}, a weight of D floats{% endif %}{% if residual %}, a residual added{% endif %}.  Arguments: rows R, eps.
{%- set buffers = ["x"] + (["weight"] if weighted else []) + (["residual"] if residual else []) %}
namespace {{ entry }}_impl {
enum : int {
    THREADS = {{ threads }},
    ROWS_PER_GROUP = THREADS / ggufc::SIMD_WIDTH,
    DIM = {{ dim }},
    STEPS = (DIM + ggufc::SIMD_WIDTH - 1) / ggufc::SIMD_WIDTH,  // elements a lane
};
}  // namespace {{ entry }}_impl

kernel void {{ entry }}(
{%- for name in buffers %}
    device const float* {{ name }} [[buffer({{ loop.index0 }})]],
{%- endfor %}
    device float* out [[buffer({{ buffers | length }})]],
    constant long& rows [[buffer({{ buffers | length + 1 }})]],
    constant float& eps [[buffer({{ buffers | length + 2 }})]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
    using namespace {{ entry }}_impl;
    const long row = long(group.x) * ROWS_PER_GROUP + long(sg);
    if (row >= rows) {
        return;
    }
    device const float* x_row = x + row * DIM;
    device float* out_row = out + row * DIM;
    float squares = 0.0f;
    for (int i = 0; i < STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        if (d < DIM) {
            squares = fma(x_row[d], x_row[d], squares);
        }
    }
    const float scale = rsqrt(simd_sum(squares) / float(DIM) + eps);
    for (int i = 0; i < STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        if (d < DIM) {
            out_row[d] = {% if residual %}residual[row * DIM + d] + {% endif %}x_row[d] * scale{% if weighted %} * weight[d]{% endif %};
        }
    }
}
