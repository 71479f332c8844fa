// Thread block clusters (CUDA, sm_90 and later): the blocks of a cluster read each other's
// shared memory (distributed shared memory) and meet at cluster barriers.  The attention
// kernel splits a row's keys over a cluster, the 16-bit matmul of a few activation rows its K.
// Include-guarded like the prelude.
#ifndef GGUFC_CUDA_CLUSTER
#define GGUFC_CUDA_CLUSTER

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

#endif  // GGUFC_CUDA_CLUSTER
