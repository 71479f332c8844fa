// ggufc RMSNorm: out[r, :] = {% if residual %}residual[r, :] + {% endif %}x[r, :] * rsqrt(mean_i x[r, i]^2 + eps){% if weighted %} * w{% endif %} for each row r of
// {{ dim }} floats ({% if next_norm %}ggufc.rms_norm_add_norm{% elif residual %}ggufc.rms_norm_add{% else %}aten.rms_norm{% endif %} of float32 over the last dim).{% if next_norm %}
// Then normed[r, :] = out[r, :] * rsqrt(mean_i out[r, i]^2 + next_eps) * next_weight.{% endif %}
//
// A simdgroup a row, {{ threads // 32 }} rows a threadgroup of {{ threads }} threads (threadgroups ceil(R / {{ threads // 32 }})): the
// lanes read the row (lane l takes elements l, l + 32, ...), simd_sum gives the sum of
// squares, then each lane writes its elements scaled; as the CUDA kernel.
// Template constants: dim D{% if weighted %}, a weight of D floats{% endif %}{% if residual %}, a residual added{% endif %}{% if next_norm %}, a next weight{% endif %}.  Arguments: rows R, eps{% if next_norm %}, next_eps{% endif %}.
{%- set buffers = ["x"] + (["weight"] if weighted else []) + (["residual"] if residual else []) + (["next_weight"] if next_norm else []) %}
{%- set outputs = ["out"] + (["normed"] if next_norm else []) %}
{%- set scalars = [("long", "rows"), ("float", "eps")] + ([("float", "next_eps")] if next_norm else []) %}
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
{%- for name in outputs %}
    device float* {{ name }} [[buffer({{ buffers | length + loop.index0 }})]],
{%- endfor %}
{%- for type, name in scalars %}
    constant {{ type }}& {{ name }} [[buffer({{ buffers | length + outputs | length + loop.index0 }})]],
{%- endfor %}
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
{%- if next_norm %}
    float next_squares = 0.0f;
    for (int i = 0; i < STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        if (d < DIM) {
            next_squares = fma(out_row[d], out_row[d], next_squares);
        }
    }
    const float next_scale = rsqrt(simd_sum(next_squares) / float(DIM) + next_eps);
    device float* normed_row = normed + row * DIM;
    for (int i = 0; i < STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        if (d < DIM) {
            normed_row[d] = out_row[d] * next_scale * next_weight[d];
        }
    }
{%- endif %}
}
