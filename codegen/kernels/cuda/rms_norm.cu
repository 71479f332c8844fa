// ggufc RMSNorm: out[r, :] = {% if residual %}residual[r, :] + {% endif %}x[r, :] * rsqrt(mean_i x[r, i]^2 + eps){% if weighted %} * w{% endif %} for each row r of
// {{ dim }} floats ({% if next_norm %}ggufc.rms_norm_add_norm{% elif residual %}ggufc.rms_norm_add{% else %}aten.rms_norm{% endif %} of float32 over the last dim).{% if next_norm %}
// Then normed[r, :] = out[r, :] * rsqrt(mean_i out[r, i]^2 + next_eps) * next_weight: the next
// block's pre-norm of the sum, from the same registers.{% endif %}
//
// A warp a row, {{ threads // 32 }} rows a block of {{ threads }} threads (grid.x = ceil(R / {{ threads // 32 }})): the lanes read the
// row coalesced (lane l takes elements l, l + 32, ...), a warp sum gives the sum of squares,
// then each lane writes its elements scaled.  No shared memory and no block barrier: a decode
// step's norms are one to a few rows, so a row's latency is the kernel's.
// Template constants: dim D{% if weighted %}, a weight of D floats{% endif %}{% if residual %}, a residual added (the
// sum rounded as residual + the normed value, as the two ops it replaces){% endif %}{% if next_norm %}, a next weight of D floats{% endif %}.  Kernel arguments: rows R, eps{% if next_norm %}, next_eps{% endif %}.
namespace {{ entry }}_impl {
using ggufc::i64;
constexpr int THREADS = {{ threads }};
constexpr int ROWS_PER_BLOCK = THREADS / ggufc::WARP_SIZE;
constexpr int DIM = {{ dim }};
constexpr int STEPS = (DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // elements a lane
// a lane keeps its elements in registers when it has few; else it reads them again (from L1)
constexpr bool KEEP = STEPS <= {{ max_kept_steps }};
constexpr int KEPT = KEEP ? STEPS : 1;

}  // namespace {{ entry }}_impl

extern "C" __global__ void __launch_bounds__({{ threads }}) {{ entry }}(
    const float* x,{% if weighted %} const float* weight,{% endif %}{% if residual %} const float* residual,{% endif %}{% if next_norm %}
    const float* next_weight,{% endif %} float* __restrict__ out,{% if next_norm %} float* __restrict__ normed,{% endif %}
    ggufc::i64 rows, float eps{% if next_norm %}, float next_eps{% endif %}) {
    using namespace {{ entry }}_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 row = static_cast<i64>(blockIdx.x) * ROWS_PER_BLOCK +
                    static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    if (row >= rows) {
        return;  // the whole warp: no shuffle below misses a lane
    }
    const float* x_row = x + row * DIM;
    float* out_row = out + row * DIM;
    float kept[KEPT];
{%- if weighted %}
    float kept_weight[KEPT];
{%- endif %}
{%- if residual %}
    const float* residual_row = residual + row * DIM;
    float kept_residual[KEPT];
{%- endif %}
{%- if next_norm %}
    float kept_next_weight[KEPT];
{%- endif %}
    float squares = 0.0f;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            const float value = x_row[d];
            if constexpr (KEEP) {
                kept[i] = value;
{%- if weighted %}
                kept_weight[i] = weight[d];  // in flight with x, not after the sum
{%- endif %}
{%- if residual %}
                kept_residual[i] = residual_row[d];
{%- endif %}
{%- if next_norm %}
                kept_next_weight[i] = next_weight[d];
{%- endif %}
            }
            squares = fmaf(value, value, squares);
        }
    }
    const float scale = rsqrtf(ggufc::warp_sum(squares) / static_cast<float>(DIM) + eps);
{%- if next_norm %}
    float next_squares = 0.0f;
{%- endif %}
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            float value;
{%- if weighted %}
            float w;
{%- endif %}
{%- if residual %}
            float r;
{%- endif %}
            if constexpr (KEEP) {
                value = kept[i];
{%- if weighted %}
                w = kept_weight[i];
{%- endif %}
{%- if residual %}
                r = kept_residual[i];
{%- endif %}
            } else {
                value = x_row[d];
{%- if weighted %}
                w = weight[d];
{%- endif %}
{%- if residual %}
                r = residual_row[d];
{%- endif %}
            }
{%- if next_norm %}
            const float total = r + value * scale * w;
            out_row[d] = total;
            if constexpr (KEEP) {
                kept[i] = total;
            }
            next_squares = fmaf(total, total, next_squares);
{%- else %}
            out_row[d] = {% if residual %}r + {% endif %}value * scale{% if weighted %} * w{% endif %};
{%- endif %}
        }
    }
{%- if next_norm %}
    // the next norm: of the sums this lane wrote (kept, or read back: the same thread's stores)
    const float next_scale = rsqrtf(ggufc::warp_sum(next_squares) / static_cast<float>(DIM) + next_eps);
    float* normed_row = normed + row * DIM;
#pragma unroll
    for (int i = 0; i < STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < DIM) {
            const float total = KEEP ? kept[i] : out_row[d];
            const float next_w = KEEP ? kept_next_weight[i] : next_weight[d];
            normed_row[d] = total * next_scale * next_w;
        }
    }
{%- endif %}
}
