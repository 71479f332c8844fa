// ggufc attention: out[b, r, :] = sum_j p_j v[b, j, :] with p = softmax_j(scale * q[b, r, :] .
// k[b, j, :]) over the keys j that visible[r % M, j] lets row r see (the others get weight 0
// and are never read); float32 throughout.  See ggufc.attention (compiler/ops.py).
//
// Grid (8, R, B): the 8 blocks of query row r and key head b form a thread block cluster
// and split the row's keys into 8 contiguous slices (flash decoding: a decode step has a
// few rows, and a block a row would read all of a row's keys from one SM).  Each block of
// 256 threads:
//   1. scores its slice: a warp takes 4 keys at once (their loads in flight together), its
//      lanes splitting each dot product over the 80 head dims (coalesced);
//   2. reduces the slice's largest score m_s and sum l_s of exp(score - m_s), the weights;
//   3. sums the slice's values by weight: warps take keys, lanes take value dims, and the
//      warps' sums meet in shared memory: acc_s;
//   4. meets the cluster's other blocks (distributed shared memory) and writes its share of the
//      96 output dims: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s, M = max_s m_s.
// Before sm_90 (no clusters) block 0 of a row takes every key and the others return.
// A row that sees no key gives NaN (softmax of nothing), as the reference does.
// Dynamic shared memory: S floats (scores, then weights) + 8 x 96 floats (warp sums).
// Template constants: head_dim D, value_dim Dv.  Kernel arguments: rows R, tokens M, keys S,
// scale.
namespace ggufc_attention_d80_v96_f32_impl {
using ggufc::i64;
constexpr int THREADS = 256;
constexpr int WARPS = THREADS / ggufc::WARP_SIZE;
constexpr int SPLITS = 8;
constexpr int KEY_BATCH = 4;
constexpr int HEAD_DIM = 80;
constexpr int VALUE_DIM = 96;
constexpr int DOT_STEPS = (HEAD_DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // q dims a lane
constexpr int VALUE_STEPS = (VALUE_DIM + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // v dims a lane
static_assert(SPLITS >= 1 && SPLITS <= 8, "8 blocks: the largest portable cluster");
constexpr unsigned NEGATIVE_INFINITY_BITS = 0xff800000u;  // no math.h (INFINITY) under NVRTC

}  // namespace ggufc_attention_d80_v96_f32_impl

extern "C" __global__ void __launch_bounds__(256) GGUFC_CLUSTER_DIMS(8) ggufc_attention_d80_v96_f32(
    const float* q, const float* k, const float* v,
    const bool* visible, float* __restrict__ out, ggufc::i64 rows,
    ggufc::i64 tokens, ggufc::i64 keys, float scale) {
    using namespace ggufc_attention_d80_v96_f32_impl;
    // prelude: programmatic dependent launch; a cluster kernel lets the next kernel start
    // only as it ends (matmul.cu)
    ggufc::wait_for_previous_kernels();
    const float negative_infinity = __uint_as_float(NEGATIVE_INFINITY_BITS);
    extern __shared__ float dynamic_shared[];
    float* weights = dynamic_shared;  // the slice's scores, then its weights (index j - begin)
    float* warp_values = dynamic_shared + keys;  // WARPS x VALUE_DIM
    __shared__ float slice_values[VALUE_DIM];  // acc_s
    __shared__ float scratch[WARPS];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int split = static_cast<int>(blockIdx.x);
    const i64 r = blockIdx.y;
    const i64 b = blockIdx.z;
#if GGUFC_HAS_CLUSTERS
    const i64 slice_keys = (keys + SPLITS - 1) / SPLITS;
    const i64 begin = min(keys, split * slice_keys);
    const i64 end = min(keys, begin + slice_keys);
#else
    if (split != 0) {
        return;
    }
    const i64 begin = 0;
    const i64 end = keys;
#endif
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
    // 1. scores
    for (i64 first = begin + warp * KEY_BATCH; first < end; first += WARPS * KEY_BATCH) {
        float dot[KEY_BATCH];
        bool used[KEY_BATCH];
#pragma unroll
        for (int u = 0; u < KEY_BATCH; ++u) {
            const i64 j = first + u;
            used[u] = j < end && seen[j];  // the same for every lane of the warp
            const float* k_row = k_head + j * HEAD_DIM;
            dot[u] = 0.0f;
#pragma unroll
            for (int i = 0; i < DOT_STEPS; ++i) {
                const int d = lane + i * ggufc::WARP_SIZE;
                if (d < HEAD_DIM) {
                    dot[u] = fmaf(q_part[i], used[u] ? k_row[d] : 0.0f, dot[u]);
                }
            }
        }
        // the KEY_BATCH warp sums interleaved: their shuffles overlap
#pragma unroll
        for (int offset = ggufc::WARP_SIZE / 2; offset > 0; offset /= 2) {
#pragma unroll
            for (int u = 0; u < KEY_BATCH; ++u) {
                dot[u] += __shfl_xor_sync(ggufc::FULL_MASK, dot[u], offset);
            }
        }
        if (lane == 0) {
#pragma unroll
            for (int u = 0; u < KEY_BATCH; ++u) {
                if (first + u < end) {
                    weights[first + u - begin] = used[u] ? dot[u] * scale : negative_infinity;
                }
            }
        }
    }
    __syncthreads();
    // 2. the slice's largest score and weights
    float largest = negative_infinity;
    for (i64 j = begin + threadIdx.x; j < end; j += THREADS) {
        largest = fmaxf(largest, weights[j - begin]);
    }
    largest = ggufc::block_reduce<WARPS>(largest, scratch, ggufc::MaxOf());
    float total = 0.0f;
    for (i64 j = begin + threadIdx.x; j < end; j += THREADS) {
        // masked keys weigh 0 (also when the slice sees no key: largest is -inf then)
        const float score = weights[j - begin];
        const float p = score == negative_infinity ? 0.0f : expf(score - largest);
        weights[j - begin] = p;
        total += p;
    }
    // block_reduce's barrier also orders the weights written above before the reads below
    total = ggufc::block_reduce<WARPS>(total, scratch, ggufc::SumOf());
    // 3. the slice's weighted sum of values
    float acc[VALUE_STEPS];
#pragma unroll
    for (int i = 0; i < VALUE_STEPS; ++i) {
        acc[i] = 0.0f;
    }
    for (i64 first = begin + warp; first < end; first += WARPS * KEY_BATCH) {
#pragma unroll
        for (int u = 0; u < KEY_BATCH; ++u) {
            const i64 j = first + u * WARPS;
            const float p = j < end ? weights[j - begin] : 0.0f;
            const float* v_row = v_head + j * VALUE_DIM;
#pragma unroll
            for (int i = 0; i < VALUE_STEPS; ++i) {
                const int d = lane + i * ggufc::WARP_SIZE;
                if (d < VALUE_DIM) {
                    // a key of weight 0 is not read (masked: its value may be anything)
                    acc[i] = fmaf(p, p != 0.0f ? v_row[d] : 0.0f, acc[i]);
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < VALUE_STEPS; ++i) {
        const int d = lane + i * ggufc::WARP_SIZE;
        if (d < VALUE_DIM) {
            warp_values[warp * VALUE_DIM + d] = acc[i];
        }
    }
    __syncthreads();
    for (int d = static_cast<int>(threadIdx.x); d < VALUE_DIM; d += THREADS) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) {
            sum += warp_values[w * VALUE_DIM + d];
        }
        slice_values[d] = sum;
    }
    float* out_row = out + (b * rows + r) * VALUE_DIM;
#if GGUFC_HAS_CLUSTERS
    // 4. the slices meet
    __shared__ float slice_largest;  // m_s
    __shared__ float slice_total;  // l_s
    if (threadIdx.x == 0) {
        slice_largest = largest;
        slice_total = total;
    }
    ggufc::cluster_barrier();
    float largest_of[SPLITS];
    float overall = negative_infinity;
#pragma unroll
    for (int s = 0; s < SPLITS; ++s) {
        largest_of[s] = ggufc::load_from_cluster_block(&slice_largest, s);
        overall = fmaxf(overall, largest_of[s]);
    }
    float factor[SPLITS];
    float denominator = 0.0f;
#pragma unroll
    for (int s = 0; s < SPLITS; ++s) {
        // a slice that sees no key counts 0 (none at all: 0 / 0 below gives NaN)
        factor[s] = largest_of[s] == negative_infinity ? 0.0f : expf(largest_of[s] - overall);
        if (factor[s] != 0.0f) {
            denominator += factor[s] * ggufc::load_from_cluster_block(&slice_total, s);
        }
    }
    const float inverse = 1.0f / denominator;
    constexpr int OUTPUT_SHARE = (VALUE_DIM + SPLITS - 1) / SPLITS;  // output dims a block writes
    const int share_end = min(VALUE_DIM, (split + 1) * OUTPUT_SHARE);
    for (int d = split * OUTPUT_SHARE + static_cast<int>(threadIdx.x); d < share_end;
         d += THREADS) {
        float sum = 0.0f;
#pragma unroll
        for (int s = 0; s < SPLITS; ++s) {
            if (factor[s] != 0.0f) {
                sum += factor[s] * ggufc::load_from_cluster_block(&slice_values[d], s);
            }
        }
        out_row[d] = sum * inverse;
    }
    ggufc::cluster_barrier();  // no block exits while another may still read its shared memory
#else
    __syncthreads();
    const float inverse = 1.0f / total;  // no key seen: 0 * inf gives NaN
    for (int d = static_cast<int>(threadIdx.x); d < VALUE_DIM; d += THREADS) {
        out_row[d] = slice_values[d] * inverse;
    }
#endif
}
