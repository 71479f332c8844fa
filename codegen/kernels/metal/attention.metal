// ggufc attention: out[b, r, :] = sum_j p_j v[b, j, :] with p = softmax_j(scale * q[b, r, :] .
// k[b, j, :]) over the keys j that visible[r % M, j] lets row r see (the others get weight 0
// and are never read); float32 throughout.  See ggufc.attention (compiler/ops.py).
//
// Threadgroups ({{ splits }}, R, B), the CUDA kernel's grid, whose {{ splits }} blocks of a row form a
// cluster that splits its keys; Metal has no clusters, so threadgroup 0 of query row r and key
// head b takes every key and the others return.  The simdgroups take keys sg,
// sg + {{ threads // 32 }}, ... (lanes split the dot product over the {{ head_dim }} dims); the row's scores
// sit in threadgroup memory (its first S floats; the host sets it at index 0); a
// threadgroup-wide max and sum turn them into weights; then thread t sums output dims t,
// t + {{ threads }}, ... over the keys with a weight.  A row that sees no key gives NaN.
// Template constants: head_dim D, value_dim Dv.  Arguments: rows R, tokens M, keys S, scale.
namespace {{ entry }}_impl {
enum : int {
    THREADS = {{ threads }},
    SIMDGROUPS = THREADS / ggufc::SIMD_WIDTH,
    HEAD_DIM = {{ head_dim }},
    VALUE_DIM = {{ value_dim }},
    DOT_STEPS = (HEAD_DIM + ggufc::SIMD_WIDTH - 1) / ggufc::SIMD_WIDTH,  // q dims a lane
    VALUE_STEPS = (VALUE_DIM + THREADS - 1) / THREADS,  // output dims a thread
};
}  // namespace {{ entry }}_impl

kernel void {{ entry }}(
    device const float* q [[buffer(0)]],
    device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]],
    device const bool* visible [[buffer(3)]],
    device float* out [[buffer(4)]],
    constant long& rows [[buffer(5)]],
    constant long& tokens [[buffer(6)]],
    constant long& keys [[buffer(7)]],
    constant float& scale [[buffer(8)]],
    threadgroup float* weights GGUFC_THREADGROUP_ARGUMENT(0),
    uint3 group [[threadgroup_position_in_grid]],
    uint t [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
    using namespace {{ entry }}_impl;
    threadgroup float scratch[SIMDGROUPS];
    if (group.x != 0) {
        return;
    }
    const long r = long(group.y);
    const long b = long(group.z);
    device const float* q_row = q + (b * rows + r) * HEAD_DIM;
    device const float* k_head = k + b * keys * HEAD_DIM;
    device const float* v_head = v + b * keys * VALUE_DIM;
    device const bool* seen = visible + (r % tokens) * keys;

    float q_part[DOT_STEPS];
    for (int i = 0; i < DOT_STEPS; ++i) {
        const int d = int(lane) + i * ggufc::SIMD_WIDTH;
        q_part[i] = d < HEAD_DIM ? q_row[d] : 0.0f;
    }
    for (long j = long(sg); j < keys; j += SIMDGROUPS) {
        float score = -INFINITY;
        if (seen[j]) {
            device const float* k_row = k_head + j * HEAD_DIM;
            float dot = 0.0f;
            for (int i = 0; i < DOT_STEPS; ++i) {
                const int d = int(lane) + i * ggufc::SIMD_WIDTH;
                if (d < HEAD_DIM) {
                    dot = fma(q_part[i], k_row[d], dot);
                }
            }
            score = simd_sum(dot) * scale;
        }
        if (lane == 0) {
            weights[j] = score;
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float largest = -INFINITY;
    for (long j = long(t); j < keys; j += THREADS) {
        largest = max(largest, weights[j]);
    }
    largest = ggufc::threadgroup_max(largest, scratch, sg, lane, SIMDGROUPS);
    float total = 0.0f;
    for (long j = long(t); j < keys; j += THREADS) {
        // masked keys weigh 0 (also when no key is seen: largest is -inf then)
        const float p = weights[j] == -INFINITY ? 0.0f : exp(weights[j] - largest);
        weights[j] = p;
        total += p;
    }
    total = ggufc::threadgroup_sum(total, scratch, sg, lane, SIMDGROUPS);
    const float inverse = 1.0f / total;  // no key seen: 0 * inf below gives NaN
    for (int step = 0; step < VALUE_STEPS; ++step) {
        const int d = int(t) + step * THREADS;
        if (d < VALUE_DIM) {
            float sum = 0.0f;
            for (long j = 0; j < keys; ++j) {
                const float p = weights[j];
                if (p != 0.0f) {
                    sum = fma(p, v_head[j * VALUE_DIM + d], sum);
                }
            }
            out[(b * rows + r) * VALUE_DIM + d] = sum * inverse;
        }
    }
}
