// Copies by the tensor memory accelerator (TMA) and the shared-memory barriers (mbarrier) they
// complete on: the 16-bit matmul's stages (matmul.cu) and the staged mma matvec's weight
// groups (matvec_mma_staged.cu: a tensor map's box, or a bulk copy a row).  A kernel takes a
// tensor map as a __grid_constant__ argument whatever it is compiled for (the launcher passes
// the same bytes); the copies and barriers exist only where the compiler targets sm_90a
// (``__CUDA_ARCH_FEAT_SM90_ALL``).
#ifndef GGUFC_CUDA_BULK_COPY
#define GGUFC_CUDA_BULK_COPY
namespace ggufc {
// A tensor map (cuda.h's CUtensorMap): 128 opaque bytes the host encodes
// (cuTensorMapEncodeTiled), passed by value as a __grid_constant__ kernel argument.
struct alignas(64) TensorMap {
    unsigned long long opaque[16];
};
// Whether the host encoded ``map``: an optional map the launcher could not encode (its tensor
// not on 16-byte boundaries) comes as 128 zero bytes, and an encoded one holds an address.
__device__ __forceinline__ bool encoded(const TensorMap& map) {
    unsigned long long any = 0;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        any |= map.opaque[i];
    }
    return any != 0;
}
// How far past the 16-byte boundary a box starts on a group of ``group_bytes`` may start, in
// rows of whole 16-byte words: groups start at multiples of group_bytes, so at most 16 -
// gcd(group_bytes, 16) (16 a power of two: the gcd is group_bytes' lowest bit, at most 16).
__host__ __device__ constexpr int box_misalignment(int group_bytes) {
    return 16 - ((group_bytes & -group_bytes) < 16 ? (group_bytes & -group_bytes) : 16);
}
}  // namespace ggufc
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace ggufc {
namespace bulk {

typedef unsigned long long u64;
namespace tc = ggufc::tc;

// Shared-memory barriers (mbarrier): a barrier completes a phase when its count of arrivals
// is reached and the bytes it expects have landed, and a waiter names the phase by its parity.
__device__ __forceinline__ void barrier_init(u64* barrier, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(tc::shared_address(barrier)),
                 "r"(count)
                 : "memory");
}
// Arrives once all of this thread's earlier cp.async copies have landed (the barrier's count
// includes this arrival: no pending count is added).
__device__ __forceinline__ void arrive_after_copies(u64* barrier) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                     tc::shared_address(barrier))
                 : "memory");
}
// Arrives where ``condition`` holds: a predicated instruction, not a branch (the consumer
// loop of the matmul keeps its products' pipeline free of branches).
__device__ __forceinline__ void arrive_if(u64* barrier, bool condition) {
    asm volatile(
        "{\n.reg .pred p;\n.reg .b64 state;\nsetp.ne.b32 p, %1, 0;\n"
        "@p mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(tc::shared_address(barrier)),
        "r"(static_cast<u32>(condition))
        : "memory");
}
// Waits until the phase of parity ``parity`` has completed.
__device__ __forceinline__ void wait_phase(u64* barrier, u32 parity) {
    asm volatile(
        "{\n.reg .pred complete;\nretry:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 complete, [%0], %1;\n"
        "@!complete bra retry;\n}\n" ::"r"(tc::shared_address(barrier)),
        "r"(parity)
        : "memory");
}
// Adds ``bytes`` to the transaction count the phase in progress of ``barrier`` waits for (the
// bytes a tensor copy completing on it will write).
__device__ __forceinline__ void expect_bytes(u64* barrier, u32 bytes) {
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(
                     tc::shared_address(barrier)),
                 "r"(bytes)
                 : "memory");
}
// Arrives once and adds ``bytes`` to the transaction count of the phase in progress: the one
// thread that issues a tensor copy completing on a barrier of count 1.
__device__ __forceinline__ void arrive_expecting_bytes(u64* barrier, u32 bytes) {
    asm volatile(
        "{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
            tc::shared_address(barrier)),
        "r"(bytes)
        : "memory");
}
// Copies the box of tensor map ``map`` at element (``x``, ``y``) (x the inner dimension) to
// shared address ``destination`` by the tensor memory accelerator; the copy's bytes complete
// a transaction on ``barrier``.
__device__ __forceinline__ void copy_box_2d(u32 destination, const TensorMap* map, int x, int y,
                                           u64* barrier) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes "
        "[%0], [%1, {{ '{' }}%2, %3}], [%4];\n" ::"r"(destination),
        "l"(reinterpret_cast<u64>(map)), "r"(x), "r"(y), "r"(tc::shared_address(barrier))
        : "memory");
}

// Copies ``bytes`` (a multiple of 16) from global ``source`` to shared address ``destination``
// (both on 16-byte boundaries) by the tensor memory accelerator, with no tensor map; the
// copy's bytes complete a transaction on ``barrier``.
__device__ __forceinline__ void copy_bytes(u32 destination, const void* source, u32 bytes, u64* barrier) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
            destination),
        "l"(source), "r"(bytes), "r"(tc::shared_address(barrier))
        : "memory");
}

}  // namespace bulk
}  // namespace ggufc

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
#endif  // GGUFC_CUDA_BULK_COPY
