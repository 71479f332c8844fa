// ggufc RMSNorm: out[r, :] = residual[r, :] + x[r, :] * rsqrt(mean_i x[r, i]^2 + eps) * w for each row r of
// 640 floats (ggufc.rms_norm_add_norm of float32 over the last dim).
// Then normed[r, :] = out[r, :] * rsqrt(mean_i out[r, i]^2 + next_eps) * next_weight.
//
// A simdgroup a row, 4 rows a threadgroup of 128 threads (threadgroups ceil(R / 4)): the
// lanes read the row (lane l takes elements l, l + 32, ...), simd_sum gives the sum of
// squares, then each lane writes its elements scaled; as the CUDA kernel.
// Template constants: dim D, a weight of D floats, a residual added, a next weight.  Arguments: rows R, eps, next_eps.
namespace ggufc_rms_norm_add_norm_d640_f32_impl {
enum : int {
    THREADS = 128,
    ROWS_PER_GROUP = THREADS / ggufc::SIMD_WIDTH,
    DIM = 640,
    STEPS = (DIM + ggufc::SIMD_WIDTH - 1) / ggufc::SIMD_WIDTH,  // elements a lane
};
}  // namespace ggufc_rms_norm_add_norm_d640_f32_impl

kernel void ggufc_rms_norm_add_norm_d640_f32(
    device const float* x [[buffer(0)]],
    device const float* weight [[buffer(1)]],
    device const float* residual [[buffer(2)]],
    device const float* next_weight [[buffer(3)]],
    device float* out [[buffer(4)]],
    device float* normed [[buffer(5)]],
    constant long& rows [[buffer(6)]],
    constant float& eps [[buffer(7)]],
    constant float& next_eps [[buffer(8)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
    using namespace ggufc_rms_norm_add_norm_d640_f32_impl;
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
            out_row[d] = residual[row * DIM + d] + x_row[d] * scale * weight[d];
        }
    }
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
}
