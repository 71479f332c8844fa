// Warpgroup tensor-core operations (wgmma, sm_90a) of the 16-bit matmul (matmul.cu).
//
// A warpgroup is 4 consecutive warps (128 threads) whose warp index % 4 is its rank.  One
// wgmma.m64n{{ wgmma_n }}k16 multiplies a 64x16 A tile held in registers (warp r of the group holds
// rows 16r..16r+15 in the mma.sync m16n8k16 A fragment layout: a[0] = (row g, K 2p, 2p+1),
// a[1] = (row g + 8, same K), a[2] = (row g, K 2p + 8, +9), a[3] = (row g + 8, same K), where
// g = lane / 4, p = lane % 4) by a 16x{{ wgmma_n }} B tile read from shared memory through a
// descriptor, into {{ wgmma_n // 2 }} float32 accumulators a thread: d[4i + e] is (row 16r + g + 8 (e / 2),
// column 8i + 2p + e % 2).  B is K-major with the 128-byte swizzle: each of the {{ wgmma_n }} columns is
// a 128-byte row of 64 K values whose 16-byte chunk c sits at c ^ (row % 8), 8 rows to a
// 1024-byte atom; the atoms must start 1024-byte aligned, and the K sub-step j of a 64-wide
// row starts 32 j bytes in.  These helpers exist only where the compiler targets sm_90a
// (``__CUDA_ARCH_FEAT_SM90_ALL``); the matmul falls back to mma.sync elsewhere.
// The helpers that do not depend on the tile's N have a guard of their own, so kernels of
// several N (the matmul's 128 and 64, the split-K matvec's 16) share a translation unit.
#ifndef GGUFC_CUDA_MATMUL_WGMMA
#define GGUFC_CUDA_MATMUL_WGMMA
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace ggufc {
namespace wg {

typedef unsigned long long u64;
namespace tc = ggufc::tc;

constexpr int WARPGROUP_THREADS = 128;
constexpr int SWIZZLE_ATOM_BYTES = 1024;  // 8 rows of 128 bytes
// descriptor fields (PTX "matrix descriptor"): start address, leading and stride byte offsets
// in 16-byte units at bits 0, 16 and 32; layout at bits 62-63 (1 = 128-byte swizzle)
constexpr u64 DESCRIPTOR_LEADING_OFFSET = 1ull << 16;  // unused by swizzled K-major layouts
constexpr u64 DESCRIPTOR_STRIDE_OFFSET = static_cast<u64>(SWIZZLE_ATOM_BYTES / 16) << 32;
constexpr u64 DESCRIPTOR_SWIZZLE_128B = 1ull << 62;

// descriptor of a K-major, 128-byte swizzled B tile starting at shared address ``address``
__device__ __forceinline__ u64 descriptor(u32 address) {
    return static_cast<u64>((address & 0x3FFFFu) >> 4) | DESCRIPTOR_LEADING_OFFSET |
           DESCRIPTOR_STRIDE_OFFSET | DESCRIPTOR_SWIZZLE_128B;
}

// A step's A fragments: 2 K parts of 32 x 2 sub-steps of 16 x the 4 registers of a 64x16 tile
// (see mma_m64n*k16), and the B descriptors of its 4 products (part g, sub-step s at 2 g + s).
// The fence and the wait below name them as asm operands, each of the 16 registers spelled
// out by the template.
constexpr int FRAGMENT_PARTS = 2;
constexpr int FRAGMENT_SUB_STEPS = 2;
using Fragments = u32[FRAGMENT_PARTS][FRAGMENT_SUB_STEPS][4];
using Descriptors = u64[FRAGMENT_PARTS * FRAGMENT_SUB_STEPS];
{% set fragment_registers = [] %}{% for g in range(2) %}{% for s in range(2) %}{% for e in range(4) %}{% set _ = fragment_registers.append("a[%d][%d][%d]" % (g, s, e)) %}{% endfor %}{% endfor %}{% endfor %}
// Orders this thread's register and shared-memory writes before the warpgroup's next wgmma.
// The fragments and descriptors of the products to come are its inputs, so the compiler
// defines them all before it (one defined between the fence and the products makes ptxas
// serialize every wgmma, C7513).
__device__ __forceinline__ void fence(const Fragments& a, const Descriptors& b) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::{% for r in fragment_registers %}"r"({{ r }}), {% endfor %}"l"(b[0]),
                 "l"(b[1]), "l"(b[2]), "l"(b[3])
                 : "memory");
}
__device__ __forceinline__ void commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most PENDING of the warpgroup's committed wgmma groups are in flight.  The
// fragments ``a`` that the groups still in flight may read pass through it, so the compiler
// keeps them in their registers until it instead of giving those to the next decode (ptxas
// would then wait for every group before that decode).
template <int PENDING>
__device__ __forceinline__ void wait(Fragments& a) {
    asm volatile("wgmma.wait_group.sync.aligned %16;\n"
                 : {% for r in fragment_registers %}"+r"({{ r }}){{ ", " if not loop.last }}{% endfor %}
                 : "n"(PENDING)
                 : "memory");
}
// Makes shared memory written by ordinary stores and cp.async visible to wgmma's reads.
__device__ __forceinline__ void fence_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// setmaxnreg: a warpgroup gives back registers to the SM's pool down to REGISTERS a thread, or
// takes them from it up to REGISTERS (waiting until the pool holds them); every warp of the
// warpgroup runs it, and ptxas allocates the code after it within the new count.
template <int REGISTERS>
__device__ __forceinline__ void release_registers() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGISTERS));
}
template <int REGISTERS>
__device__ __forceinline__ void claim_registers() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGISTERS));
}
// Barrier of the 128 threads of warpgroup ``warpgroup`` (0 or 1: barriers 1 and 2, 0 being
// __syncthreads').  Constant ids: a register id makes ptxas reserve all 16 barriers.
__device__ __forceinline__ void warpgroup_sync(int warpgroup) {
    if (warpgroup == 0) {
        asm volatile("bar.sync 1, %0;\n" ::"n"(WARPGROUP_THREADS) : "memory");
    } else {
        asm volatile("bar.sync 2, %0;\n" ::"n"(WARPGROUP_THREADS) : "memory");
    }
}

// Barrier of the consumer warpgroups (the first ``threads`` threads of the block).
template <int THREADS>
__device__ __forceinline__ void consumers_sync() {
    asm volatile("bar.sync 3, %0;\n" ::"n"(THREADS) : "memory");
}

}  // namespace wg
}  // namespace ggufc

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
#endif  // GGUFC_CUDA_MATMUL_WGMMA
#ifndef GGUFC_CUDA_MATMUL_WGMMA_N{{ wgmma_n }}
#define GGUFC_CUDA_MATMUL_WGMMA_N{{ wgmma_n }}
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace ggufc {
namespace wg {

// d += a * b for a 64x16 A in registers and a 16x{{ wgmma_n }} B at ``b`` (the scale-d predicate
// ``accumulate`` is always set: the accumulators start at zero).
template <typename T>
__device__ __forceinline__ void mma_m64n{{ wgmma_n }}k16(float (&d)[{{ wgmma_n // 2 }}], const u32 (&a)[4], u64 b);
{% for type, ptx in (("__half", "f16"), ("__nv_bfloat16", "bf16")) %}

template <>
__device__ __forceinline__ void mma_m64n{{ wgmma_n }}k16<{{ type }}>(float (&d)[{{ wgmma_n // 2 }}], const u32 (&a)[4],
                                                        u64 b) {
    asm volatile(
        "{{ '{' }}\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %{{ wgmma_n // 2 + 5 }}, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n{{ wgmma_n }}k16.f32.{{ ptx }}.{{ ptx }} "
        "{{ '{' }}{% for i in range(wgmma_n // 2) %}%{{ i }}{{ ', ' if not loop.last }}{% endfor %}{{ '}' }}, "
        "{{ '{' }}%{{ wgmma_n // 2 }}, %{{ wgmma_n // 2 + 1 }}, %{{ wgmma_n // 2 + 2 }}, %{{ wgmma_n // 2 + 3 }}{{ '}' }}, %{{ wgmma_n // 2 + 4 }}, "
        "accumulate, 1, 1, 0;\n{{ '}' }}\n"
        : {% for i in range(wgmma_n // 2) %}"+f"(d[{{ i }}]){{ ', ' if not loop.last }}{% endfor %}
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
{% endfor %}

}  // namespace wg
}  // namespace ggufc

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
#endif  // GGUFC_CUDA_MATMUL_WGMMA_N{{ wgmma_n }}
