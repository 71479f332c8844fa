// Reductions of the attention kernel (CUDA): block-wide ones (warp shuffles, then one value a
// warp through shared memory); the blocks that split a row's keys meet in a thread block
// cluster (cluster.cuh).
// Include-guarded like the prelude.
#ifndef GGUFC_CUDA_ATTENTION_REDUCE
#define GGUFC_CUDA_ATTENTION_REDUCE

{% include "cuda/cluster.cuh" %}

namespace ggufc {

struct MaxOf {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOf {
    __device__ float operator()(float a, float b) const { return a + b; }
};

// ``value`` reduced over a block of WARPS warps by ``combine``; every thread gets the result.
// ``scratch``: WARPS floats of shared memory.  Every thread of the block calls it; it ends on
// a barrier, so writes to shared memory before the call are visible to every thread after.
template <int WARPS, typename Combine>
__device__ __forceinline__ float block_reduce(float value, float* scratch, Combine combine) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value = combine(value, __shfl_xor_sync(FULL_MASK, value, offset));
    }
    if (threadIdx.x % WARP_SIZE == 0) {
        scratch[threadIdx.x / WARP_SIZE] = value;
    }
    __syncthreads();
    value = scratch[0];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) {
        value = combine(value, scratch[w]);
    }
    __syncthreads();  // scratch is free again
    return value;
}

}  // namespace ggufc

#endif  // GGUFC_CUDA_ATTENTION_REDUCE
