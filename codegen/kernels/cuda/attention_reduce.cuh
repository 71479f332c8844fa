// Reductions of the attention kernel (CUDA): block-wide ones (warp shuffles, then one value a
// warp through shared memory) and, on sm_90 and later, reads of the other blocks' shared
// memory within a thread block cluster (the blocks that split a row's keys meet there).
// Include-guarded like the prelude.
#ifndef GGUFC_CUDA_ATTENTION_REDUCE
#define GGUFC_CUDA_ATTENTION_REDUCE

// Thread block clusters (and their distributed shared memory) exist from sm_90 on; before, a
// kernel has no cluster and takes its portable path.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GGUFC_HAS_CLUSTERS 1
#define GGUFC_CLUSTER_DIMS(x) __cluster_dims__(x, 1, 1)
#else
#define GGUFC_HAS_CLUSTERS 0
#define GGUFC_CLUSTER_DIMS(x)
#endif

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

#if GGUFC_HAS_CLUSTERS
// Every thread of every block of the cluster calls it: shared-memory writes before it (release)
// are visible to every block of the cluster after it (acquire).
__device__ __forceinline__ void cluster_barrier() {
    asm volatile(
        "barrier.cluster.arrive.release.aligned;\n\t"
        "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// The float at ``local`` (an address in this block's shared memory) in the shared memory of
// the cluster's block ``rank`` instead: the same variable, another block's copy.
__device__ __forceinline__ float load_from_cluster_block(const float* local, unsigned rank) {
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(local));
    unsigned remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(address), "r"(rank));
    float value;
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(value) : "r"(remote) : "memory");
    return value;
}
#endif

}  // namespace ggufc

#endif  // GGUFC_CUDA_ATTENTION_REDUCE
