// ggufc attention: out[b, r, :] = sum_j p_j v[b, j, :] with p = softmax_j(scale * q[b, r, :] .
// k[b, j, :]) over the keys j that visible[r % M, j] lets row r see (the others get weight 0
// and are never read); float32 throughout.  See ggufc.attention (compiler/ops.py).
//
// One block of 256 threads per query row r and key head b (grid.x = R, grid.y = B).  The
// warps take keys warp, warp + 8, ... (the lanes of a warp split the dot product over
// the 128 dims, coalesced); the row's scores sit in dynamic shared memory (S floats); a
// block-wide max and sum turn them into weights; then thread t sums output dims t, t + 256,
// ... over the keys with a weight (each key's 128 values read coalesced by the block).
// A row that sees no key gives NaN (softmax of nothing), as the reference does.
// Template constants: head_dim D, value_dim Dv.  Kernel arguments: rows R, tokens M, keys S,
// scale.
namespace ggufc_attention_d128_v128_f32_impl {
using ggufc::i64;
constexpr int THREADS = 256;
constexpr int WARPS = THREADS / ggufc::WARP_SIZE;
constexpr int HEAD_DIM = 128;
constexpr int VALUE_DIM = 128;
constexpr int DOT_STEPS = (HEAD_DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // q dims a lane
constexpr int VALUE_STEPS = (VALUE_DIM + THREADS - 1) / THREADS;  // output dims a thread
constexpr unsigned NEGATIVE_INFINITY_BITS = 0xff800000u;  // no math.h (INFINITY) under NVRTC

}  // namespace ggufc_attention_d128_v128_f32_impl

extern "C" __global__ void __launch_bounds__(256) ggufc_attention_d128_v128_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const bool* __restrict__ visible, float* __restrict__ out, ggufc::i64 rows,
    ggufc::i64 tokens, ggufc::i64 keys, float scale) {
    using namespace ggufc_attention_d128_v128_f32_impl;
    const float negative_infinity = __uint_as_float(NEGATIVE_INFINITY_BITS);
    extern __shared__ float weights[];  // the row's scores, then its softmax weights
    __shared__ float scratch[WARPS];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const i64 r = blockIdx.x;
    const i64 b = blockIdx.y;
    const float* q_row = q + (b * rows + r) * HEAD_DIM;
    const float* k_head = k + b * keys * HEAD_DIM;
    const float* v_head = v + b * keys * VALUE_DIM;
    const bool* seen = visible + (r % tokens) * keys;

    float q_part[DOT_STEPS];
#pragma unroll
    for (int i = 0; i < DOT_STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        q_part[i] = d < HEAD_DIM ? q_row[d] : 0.0f;
    }
    for (i64 j = warp; j < keys; j += WARPS) {
        float score = negative_infinity;
        if (seen[j]) {  // the same j for every lane: no divergence
            const float* k_row = k_head + j * HEAD_DIM;
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < DOT_STEPS; ++i) {
                const int d = lane + i * ggufc::WARP_SIZE;
                if (d < HEAD_DIM) {
                    dot = fmaf(q_part[i], k_row[d], dot);
                }
            }
            score = ggufc::warp_sum(dot) * scale;
        }
        if (lane == 0) {
            weights[j] = score;
        }
    }
    __syncthreads();
    float largest = negative_infinity;
    for (i64 j = threadIdx.x; j < keys; j += THREADS) {
        largest = fmaxf(largest, weights[j]);
    }
    largest = ggufc::block_reduce<WARPS>(largest, scratch, ggufc::MaxOf());
    float total = 0.0f;
    for (i64 j = threadIdx.x; j < keys; j += THREADS) {
        // masked keys weigh 0 (also when no key is seen: largest is -inf then)
        const float p = weights[j] == negative_infinity ? 0.0f : expf(weights[j] - largest);
        weights[j] = p;
        total += p;
    }
    // block_reduce's barrier also orders the weights written above before the reads below
    total = ggufc::block_reduce<WARPS>(total, scratch, ggufc::SumOf());
    const float inverse = 1.0f / total;  // no key seen: 0 * inf below gives NaN
#pragma unroll
    for (int step = 0; step < VALUE_STEPS; ++step) {
        const int d = static_cast<int>(threadIdx.x) + step * THREADS;
        if (d < VALUE_DIM) {
            float sum = 0.0f;
            for (i64 j = 0; j < keys; ++j) {
                const float p = weights[j];
                if (p != 0.0f) {  // the same j for every thread: no divergence
                    sum = fmaf(p, v_head[j * VALUE_DIM + d], sum);
                }
            }
            out[(b * rows + r) * VALUE_DIM + d] = sum * inverse;
        }
    }
}
