
// ggufc matmul: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q5_0 weights,
// __nv_bfloat16 activations, tensor cores (mma.sync m16n8k16, bf16 operands, float32
// accumulators).
//
// A block of 384 threads computes a 64x128 tile of out (grid = (ceil(N / 128),
// ceil(M / 64))).  K advances 64 weights a step through a ring of 6 shared-memory stages
// of activations x[64][64] as they are (as many as fit the emitter's budget); the raw GGUF
// bytes of the weights come 4 steps at a time into a ring of 3 group slots (decoded by the
// format's tc::Staged<FORMAT>).  The block is warp-specialized:
// its last warpgroup (the producer) only copies, by cp.async, and the first 256 threads (the
// consumers, 8 warps) only decode and multiply, so the copies' address arithmetic and waits
// are off the consumers' path.  Activation rows are 128 bytes of 8 chunks, chunk c of row r
// stored at c ^ (r % 8), so the 8 rows an ldmatrix reads and the rows a warp's copies write
// hit distinct banks.  Rows past M, weight rows past N and columns past K are zero-filled or
// skipped, so ragged shapes need no other path.  Dynamic shared memory: 130048 bytes (the
// launch rule's).
// Portable build (mma.sync m16n8k16): the consumer warps are 2 (M) x 4 (N), each a 32x32
// tile of out over both 32-weight parts of a step; a warp reads its activation fragments with
// ldmatrix and decodes its weight fragments from the raw bytes straight into registers (no
// dequantized copy in shared memory).  The producer fills the ring 4 steps ahead, a block
// barrier a step.
// Compiled for sm_90a (``__CUDA_ARCH_FEAT_SM90_ALL``) the same staging feeds warpgroup mma
// (wgmma): the 2 consumer warpgroups own 64 weight rows each and all 64 activation rows
// (wgmma.m64n64k16), the decoded weights are its A operand in registers and the staged
// activation tile, whose layout is the 128-byte swizzle wgmma reads, its B operand in shared
// memory.  The activation stages come by the tensor memory accelerator instead (one copy of a
// box of x_map a stage, swizzled and zero-filled past M and K by the copy), and so do the
// weight groups where the launcher encodes w_map (rows of whole 16-byte words on 16-byte
// boundaries: one box a group, from the 16-byte boundary at or before it, zeros past N; the
// producer's threads copy the other weights).  Shared-memory barriers (mbarrier) pace the ring instead of
// block barriers: the producer refills a stage as soon as the consumers release it, the
// consumer warpgroups run out of step, and each decodes step t + 1 into a second set of
// fragment registers while the products of step t run.
// Same launch rule either way.
// Template constants: format, dtype, tile geometry.  Kernel arguments: M, N, K, has_bias,
// x_map (x as an M x K tensor map with 64 x 64 boxes), w_map (the blocks as an N x row-bytes
// uint8 map with 128 x MAPPED_GROUP_STRIDE boxes, or zeros; both read on sm_90a only).
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
        "[%0], [%1, {%2, %3}], [%4];\n" ::"r"(destination),
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

// Warpgroup tensor-core operations (wgmma, sm_90a) of the 16-bit matmul (matmul.cu).
//
// A warpgroup is 4 consecutive warps (128 threads) whose warp index % 4 is its rank.  One
// wgmma.m64n64k16 multiplies a 64x16 A tile held in registers (warp r of the group holds
// rows 16r..16r+15 in the mma.sync m16n8k16 A fragment layout: a[0] = (row g, K 2p, 2p+1),
// a[1] = (row g + 8, same K), a[2] = (row g, K 2p + 8, +9), a[3] = (row g + 8, same K), where
// g = lane / 4, p = lane % 4) by a 16x64 B tile read from shared memory through a
// descriptor, into 32 float32 accumulators a thread: d[4i + e] is (row 16r + g + 8 (e / 2),
// column 8i + 2p + e % 2).  B is K-major with the 128-byte swizzle: each of the 64 columns is
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

// Orders this thread's register and shared-memory writes before the warpgroup's next wgmma.
// The fragments and descriptors of the products to come are its inputs, so the compiler
// defines them all before it (one defined between the fence and the products makes ptxas
// serialize every wgmma, C7513).
__device__ __forceinline__ void fence(const Fragments& a, const Descriptors& b) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::"r"(a[0][0][0]), "r"(a[0][0][1]), "r"(a[0][0][2]), "r"(a[0][0][3]), "r"(a[0][1][0]), "r"(a[0][1][1]), "r"(a[0][1][2]), "r"(a[0][1][3]), "r"(a[1][0][0]), "r"(a[1][0][1]), "r"(a[1][0][2]), "r"(a[1][0][3]), "r"(a[1][1][0]), "r"(a[1][1][1]), "r"(a[1][1][2]), "r"(a[1][1][3]), "l"(b[0]),
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
                 : "+r"(a[0][0][0]), "+r"(a[0][0][1]), "+r"(a[0][0][2]), "+r"(a[0][0][3]), "+r"(a[0][1][0]), "+r"(a[0][1][1]), "+r"(a[0][1][2]), "+r"(a[0][1][3]), "+r"(a[1][0][0]), "+r"(a[1][0][1]), "+r"(a[1][0][2]), "+r"(a[1][0][3]), "+r"(a[1][1][0]), "+r"(a[1][1][1]), "+r"(a[1][1][2]), "+r"(a[1][1][3])
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
#ifndef GGUFC_CUDA_MATMUL_WGMMA_N64
#define GGUFC_CUDA_MATMUL_WGMMA_N64
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace ggufc {
namespace wg {

// d += a * b for a 64x16 A in registers and a 16x64 B at ``b`` (the scale-d predicate
// ``accumulate`` is always set: the accumulators start at zero).
template <typename T>
__device__ __forceinline__ void mma_m64n64k16(float (&d)[32], const u32 (&a)[4], u64 b);


template <>
__device__ __forceinline__ void mma_m64n64k16<__half>(float (&d)[32], const u32 (&a)[4],
                                                        u64 b) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, "
        "accumulate, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}


template <>
__device__ __forceinline__ void mma_m64n64k16<__nv_bfloat16>(float (&d)[32], const u32 (&a)[4],
                                                        u64 b) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, "
        "accumulate, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}


}  // namespace wg
}  // namespace ggufc

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
#endif  // GGUFC_CUDA_MATMUL_WGMMA_N64

namespace ggufc_matmul_rows64_q5_0_bf16_impl {
using act_t = __nv_bfloat16;
using Staged = ggufc::tc::StagedQ5_0;
using ggufc::i64;
using ggufc::u32;
using ggufc::u8;
constexpr int TILE_M = 64;
constexpr int TILE_N = 128;
constexpr int STEP_K = 64;
constexpr int THREADS = 384;
// threads 0 .. CONSUMER_THREADS - 1 decode and multiply; the rest (a warpgroup) copy
constexpr int CONSUMER_THREADS = 256;
constexpr int PRODUCER_THREADS = THREADS - CONSUMER_THREADS;
constexpr int GROUP_THREADS = 4 * ggufc::WARP_SIZE;  // a warpgroup
static_assert(CONSUMER_THREADS % GROUP_THREADS == 0 && PRODUCER_THREADS == GROUP_THREADS,
              "consumer warpgroups, then one producer warpgroup");
// the copy work of a step is cut into COPY_SLOTS equal slots (two a weight row)
constexpr int COPY_SLOTS = CONSUMER_THREADS;
constexpr int SLOTS_PER_PRODUCER = COPY_SLOTS / PRODUCER_THREADS;
static_assert(SLOTS_PER_PRODUCER * PRODUCER_THREADS == COPY_SLOTS, "whole slots a producer");
constexpr int STAGES = 6;
// blocks of a cluster splitting K (their partial sums meet in distributed shared memory)
constexpr int SPLITS = 1;
static_assert(SPLITS >= 1 && SPLITS <= 8, "8 blocks: the largest portable cluster");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr bool SPLIT_K = SPLITS > 1;
#else
constexpr bool SPLIT_K = false;  // the cluster's blocks split the tile's rows instead
#endif
// sm_90a: the activation stages come by the tensor memory accelerator, one box of x_map a
// stage (TILE_M rows x STEP_K, the 128-byte swizzle, zeros past M and K); elsewhere by the
// producer's cp.async copies
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr bool ACTIVATIONS_BY_MAP = true;
#else
constexpr bool ACTIVATIONS_BY_MAP = false;
#endif
// The activation rows a block computes: the tile's, but on the portable path a tile of more
// than 128 rows split over a cluster gives each block TILE_M / SPLITS rows over all of K (its
// warps then hold the default geometry's 64x32 tiles of out, not twice as many accumulators)
constexpr bool PORTABLE_SPLITS_ROWS = !SPLIT_K && SPLITS > 1 && TILE_M > 128;
constexpr int BLOCK_M = PORTABLE_SPLITS_ROWS ? TILE_M / SPLITS : TILE_M;
// the portable (mma.sync) path's consumer warps: 2 (M) x 4 (N), or 1 x 8 for a tile of 16
// activation rows; split (but for PORTABLE_SPLITS_ROWS), block s of a cluster takes the N
// warps w with w % SPLITS == s
constexpr int PORTABLE_WARPS_M = TILE_M >= 32 ? 2 : 1;
constexpr int PORTABLE_WARPS_N = CONSUMER_THREADS / ggufc::WARP_SIZE / PORTABLE_WARPS_M;
constexpr int PORTABLE_WARP_ROWS = TILE_N / PORTABLE_WARPS_N;
constexpr int PART = ggufc::PART_WEIGHTS;  // the K range of one warp in one step
constexpr int K_GROUPS = STEP_K / PART;
constexpr int MMA_K = 16;  // the K of one mma.sync / wgmma
constexpr int SUB_STEPS = PART / MMA_K;
static_assert(K_GROUPS * TILE_N == CONSUMER_THREADS, "one scale-table entry per consumer and step");
static_assert(2 * TILE_N == COPY_SLOTS, "two copy slots a weight row");

// shared memory: activation stages | weight group slots | 2 scale tables | partial sums
constexpr int CHUNK = ggufc::tc::CHUNK_BYTES;
constexpr int A_ROW_BYTES = STEP_K * static_cast<int>(sizeof(act_t));
constexpr int A_ROW_CHUNKS = A_ROW_BYTES / CHUNK;
static_assert(A_ROW_CHUNKS == 8, "the swizzle permutes 8 chunks by row % 8");
constexpr int A_STAGE_BYTES = TILE_M * A_ROW_BYTES;
// Weights come a group at a time: the contiguous bytes of a row that GROUP_STEPS steps read
// (a whole number of the format's copy units, scales included), copied with the group's
// first step into one of GROUP_SLOTS slots; a step's segments lie at fixed offsets from the
// group's start.  (A K-quant step's segments copied on their own took up to 2.5x the copies.)
constexpr int GROUP_STEPS = 4;
static_assert(GROUP_STEPS % Staged::UNIT_STEPS == 0, "a group is whole copy units");
constexpr int GROUP_BYTES = GROUP_STEPS / Staged::UNIT_STEPS * Staged::UNIT_BYTES;
constexpr int GROUP_CHUNKS = ggufc::tc::covering_chunks(GROUP_BYTES, Staged::ALIGNED);
constexpr bool HAS_TABLE = Staged::HEADER_BYTES > 0;
// an odd multiple of 16 bytes: the 8 rows of a fragment read fall in distinct banks
constexpr int GROUP_STRIDE = 208;
constexpr int GROUP_SLOTS = 3;
static_assert(GROUP_CHUNKS == 12, "the emitter's matmul_group_chunks is the kernel's");
static_assert(GROUP_CHUNKS * CHUNK <= GROUP_STRIDE, "row slots hold a group");
// filled by w_map (rows of whole 16-byte words), a slot's rows are a box's width apart
constexpr int MAPPED_GROUP_STRIDE = 176;
static_assert(GROUP_BYTES + ggufc::box_misalignment(GROUP_BYTES) <= MAPPED_GROUP_STRIDE &&
                  MAPPED_GROUP_STRIDE <= GROUP_STRIDE &&
                  MAPPED_GROUP_STRIDE % (2 * CHUNK) == CHUNK,
              "a box holds a group, its rows an odd number of chunks apart, within a slot");
// a slot is refilled only once every step of its last group is done (see the producers)
static_assert(GROUP_STEPS * GROUP_SLOTS >= STAGES + GROUP_STEPS - 1, "enough group slots");
constexpr int GROUP_SLOT_BYTES = TILE_N * GROUP_STRIDE;
constexpr int GROUP_OFFSET = STAGES * A_STAGE_BYTES;
// a tensor map's box lands on a 128-byte boundary (sm_90a: the weight groups by w_map)
static_assert(GROUP_OFFSET % 128 == 0 && GROUP_SLOT_BYTES % 128 == 0, "group slots start aligned");
constexpr int TABLE_OFFSET = GROUP_OFFSET + GROUP_SLOTS * GROUP_SLOT_BYTES;
constexpr int TABLE_WORDS = K_GROUPS * TILE_N;  // one table: (K group, row) -> u32
constexpr int TABLES_END = TABLE_OFFSET + (HAS_TABLE ? 2 * TABLE_WORDS * 4 : 0);
// split K: each consumer's TILE_M / 2 partial sums, accumulator-major
constexpr bool PARTIALS_OVER_RING = false;
constexpr int REDUCE_OFFSET = PARTIALS_OVER_RING ? 0 : TABLES_END;
constexpr int REDUCE_BYTES = SPLITS > 1 ? TILE_M / 2 * CONSUMER_THREADS * 4 : 0;
constexpr int LAYOUT_BYTES = PARTIALS_OVER_RING
                                 ? (TABLES_END > REDUCE_BYTES ? TABLES_END : REDUCE_BYTES)
                                 : REDUCE_OFFSET + REDUCE_BYTES;
// the layout starts at the first 1024-byte boundary of the dynamic shared memory (wgmma's
// swizzle atoms are aligned to it)
constexpr int SHARED_ALIGNMENT = 1024;
static_assert(A_STAGE_BYTES % SHARED_ALIGNMENT == 0, "every activation stage starts aligned");
constexpr int SHARED_BYTES = 130048;
static_assert(SHARED_BYTES == LAYOUT_BYTES + SHARED_ALIGNMENT,
              "the launch rule's dynamic shared memory is this layout's");
// one block an SM: 384 threads of up to 168 registers (the consumers' two fragment sets)
constexpr int MIN_BLOCKS = 1;
// how many steps before its first step a group's weights come: the mma.sync path builds
// step t + 1's scale table during step t
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr int GROUP_AHEAD = 0;
#else
constexpr int GROUP_AHEAD = 1;
#endif
}  // namespace ggufc_matmul_rows64_q5_0_bf16_impl

extern "C" __global__ void __launch_bounds__(384, ggufc_matmul_rows64_q5_0_bf16_impl::MIN_BLOCKS) ggufc_matmul_rows64_q5_0_bf16(
    const ggufc_matmul_rows64_q5_0_bf16_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matmul_rows64_q5_0_bf16_impl::act_t* bias, ggufc_matmul_rows64_q5_0_bf16_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias,
    const __grid_constant__ ggufc::TensorMap x_map, const __grid_constant__ ggufc::TensorMap w_map) {
    using namespace ggufc_matmul_rows64_q5_0_bf16_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    namespace tc = ggufc::tc;
    extern __shared__ __align__(16) u8 ggufc_matmul_rows64_q5_0_bf16_shared[];
    const u32 shared_start = tc::shared_address(ggufc_matmul_rows64_q5_0_bf16_shared);
    u8* const shared =
        ggufc_matmul_rows64_q5_0_bf16_shared + ((SHARED_ALIGNMENT - shared_start % SHARED_ALIGNMENT) % SHARED_ALIGNMENT);

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / ggufc::WARP_SIZE;
    const int lane = tid % ggufc::WARP_SIZE;
    const int group = lane / 4;  // fragment row (A) / column (B)
    const int pair = lane % 4;   // fragment K position
    const int split = SPLITS > 1 ? static_cast<int>(blockIdx.x) % SPLITS : 0;
    // whether this block computes weight row ``row`` of the tile: every row when it splits K
    // (or nothing is split), else the rows of its consumer warps
    auto has_row = [&](int row) {
        return SPLIT_K || SPLITS == 1 || PORTABLE_SPLITS_ROWS ||
               row / PORTABLE_WARP_ROWS % SPLITS == split;
    };
    const i64 n0 = static_cast<i64>(blockIdx.x / SPLITS) * TILE_N;
    const i64 m0 =
        static_cast<i64>(blockIdx.y) * TILE_M + (PORTABLE_SPLITS_ROWS ? split * BLOCK_M : 0);
    // row_bytes and the offsets inside a row fit in int; only row starts need 64 bits
    const int row_bytes = static_cast<int>(K / Staged::BLOCK_WEIGHTS * Staged::BLOCK_BYTES);
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // a group's rows come by one box of w_map where the launcher could encode it: rows of
    // whole 16-byte words from a 16-byte boundary (elsewhere it passes the optional map as
    // zeros, and the producer's threads copy them)
    const bool weights_by_map = ggufc::encoded(w_map) && row_bytes % CHUNK == 0;
#else
    constexpr bool weights_by_map = false;
#endif
    // bytes between a group slot's rows: a box's width where they come by w_map
    const int slot_row_stride = weights_by_map ? MAPPED_GROUP_STRIDE : GROUP_STRIDE;
    const int steps = static_cast<int>((K + STEP_K - 1) / STEP_K);
    // this block's steps: step_begin .. step_begin + step_count - 1
    const int step_begin = SPLIT_K ? static_cast<int>(static_cast<i64>(steps) * split / SPLITS) : 0;
    const int step_count =
        SPLIT_K ? static_cast<int>(static_cast<i64>(steps) * (split + 1) / SPLITS) - step_begin : steps;

    // The copies are the producer warpgroup's (threads CONSUMER_THREADS and up); the
    // consumers only decode and multiply.  Each producer thread does the work of
    // SLOTS_PER_PRODUCER copy slots, slot s copying each step: activations chunk column a_col
    // of rows a_row + 32i; weights the chunks w_half, w_half + 2, ... of row w_row (two slots
    // a row: 32 contiguous bytes of each of 16 rows a warp's copy).
    struct CopySlot {
        const act_t* a_src;
        int a_col;
        int a_dst;
        int a_rows_valid;
        int w_row;
        int w_half;
        const u8* w_src;
        int w_row_misalignment;
        int w_row_left;
    };
    // slots copying activations: all of them, or for a tile of fewer rows than they cover,
    // the first A_COPY_SLOTS
    constexpr int A_ROWS_APART =
        COPY_SLOTS / A_ROW_CHUNKS < BLOCK_M ? COPY_SLOTS / A_ROW_CHUNKS : BLOCK_M;
    constexpr int A_COPY_SLOTS = A_ROWS_APART * A_ROW_CHUNKS;
    const i64 a_rows_apart = A_ROWS_APART * K;
    // bytes from a row's start to the tensor's end are capped past any offset a copy reaches
    // within the row: copies never read beyond the tensor
    const int w_reach = row_bytes + CHUNK * GROUP_CHUNKS;
    auto copy_slot = [&](int slot) {
        CopySlot s;
        const int a_row = slot / A_ROW_CHUNKS;
        s.a_col = slot % A_ROW_CHUNKS;
        s.a_src = x + (m0 + a_row) * K + s.a_col * (CHUNK / static_cast<int>(sizeof(act_t)));
        s.a_dst = a_row * A_ROW_BYTES + (s.a_col ^ (a_row % 8)) * CHUNK;  // same for all i
        s.a_rows_valid = 0;
#pragma unroll
        for (int i = 0; i < BLOCK_M / A_ROWS_APART; ++i) {
            s.a_rows_valid |= (m0 + a_row + i * A_ROWS_APART < M) << i;
        }
        s.w_row = slot / 2;
        s.w_half = slot % 2;
        const i64 w_row_offset = (n0 + s.w_row) * row_bytes;
        s.w_src = blocks + w_row_offset;
        s.w_row_misalignment = static_cast<int>(w_row_offset) & (CHUNK - 1);
        const i64 w_left = N * static_cast<i64>(row_bytes) - w_row_offset;
        s.w_row_left = static_cast<int>(w_left <= 0 ? 0 : (w_left < w_reach ? w_left : w_reach));
        return s;
    };
    // the warpgroup's index from lane 0, which the compiler knows to be uniform over a warp:
    // with ``tid >= CONSUMER_THREADS`` it takes the consumers' path as divergent and
    // serializes their wgmma (ptxas C7520)
    const bool producer =
        __shfl_sync(0xffffffffu, tid / GROUP_THREADS, 0) >= CONSUMER_THREADS / GROUP_THREADS;
    CopySlot slots[SLOTS_PER_PRODUCER];
#pragma unroll
    for (int j = 0; j < SLOTS_PER_PRODUCER; ++j) {
        slots[j] = copy_slot(producer ? tid - CONSUMER_THREADS + j * PRODUCER_THREADS : 0);
    }
    // no copy of any row of this block needs clamping (all but the tensor's last block)
    const bool block_inside = (n0 + TILE_N + 1) * static_cast<i64>(row_bytes) + w_reach <=
                              N * static_cast<i64>(row_bytes);

    // chunk ``index`` of the aligned chunks covering the row's bytes from ``start`` on
    // (a segment of ``bytes`` bytes: on a 2-byte boundary it takes one chunk fewer than its slot
    // most of the time, and the chunk past it, which nothing reads, is left out where the
    // format says so)
    auto stage_chunk = [&](const CopySlot& s, u8* slot, int start, int bytes, int index, bool inside) {
        const int misalignment = (s.w_row_misalignment + start) & (CHUNK - 1);
        if (Staged::SKIP_UNREAD_CHUNKS && CHUNK * index >= misalignment + bytes) {
            return;
        }
        const int offset = start - misalignment + CHUNK * index;
        if (inside) {
            ggufc::cp_async_16(slot, s.w_src + offset);
        } else {
            // a row past the tensor reads nothing: its first chunk starts before the row
            // (offset < 0) and would otherwise reach back into bytes past the tensor's end
            const int left = s.w_row_left > 0 ? s.w_row_left - offset : 0;
            ggufc::cp_async_16_fill(slot, s.w_src + offset, left <= 0 ? 0 : (left < CHUNK ? left : CHUNK));
        }
    };
    auto issue_activations = [&](const CopySlot& s, int step, int stage, bool inside) {
        u8* tile = shared + stage * A_STAGE_BYTES + s.a_dst;
        const i64 k0 = static_cast<i64>(step) * STEP_K;
        if (inside) {
#pragma unroll
            for (int i = 0; i < BLOCK_M / A_ROWS_APART; ++i) {
                ggufc::cp_async_16(tile + i * A_ROWS_APART * A_ROW_BYTES, s.a_src + k0 + i * a_rows_apart);
            }
            return;
        }
        const bool k_valid = k0 + s.a_col * (CHUNK / static_cast<int>(sizeof(act_t))) < K;
        const act_t* src = s.a_src + k0;
#pragma unroll
        for (int i = 0; i < BLOCK_M / A_ROWS_APART; ++i) {
            const bool valid = k_valid && ((s.a_rows_valid >> i) & 1);
            ggufc::cp_async_16_fill(tile + i * A_ROWS_APART * A_ROW_BYTES, src + i * a_rows_apart,
                                    valid ? CHUNK : 0);
        }
    };
    // the group slot of step ``step``'s weights, and where in the row its group starts
    auto group_slot = [&](int step) { return step / GROUP_STEPS % GROUP_SLOTS; };
    auto group_start = [&](int step) { return step / GROUP_STEPS * GROUP_BYTES; };
    // the group of step ``step`` (its first step, or this block's first) of the slot's row:
    // the slot's half of the chunks that cover it
    auto issue_group = [&](const CopySlot& s, int step, bool inside) {
        if (!has_row(s.w_row)) {
            return;
        }
        u8* slot = shared + GROUP_OFFSET + group_slot(step) * GROUP_SLOT_BYTES + s.w_row * GROUP_STRIDE;
#pragma unroll
        for (int i = 0; i < (GROUP_CHUNKS + 1) / 2; ++i) {
            const int chunk = 2 * i + s.w_half;
            if (GROUP_CHUNKS % 2 == 0 || chunk < GROUP_CHUNKS) {
                stage_chunk(s, slot + chunk * CHUNK, group_start(step), GROUP_BYTES,
                            chunk, inside);
            }
        }
    };
    // step ``step``'s copies of every slot of this producer thread: its activations into
    // ``stage``, and where step ``step + GROUP_AHEAD`` starts a group (or is this block's first
    // step) that group (the mma.sync path builds step t + 1's scale table during step t from
    // the header that came with step t's copies; the wgmma path waits for step t + 1's own)
    // ``inside``: no copy of the step needs a bound (the block's rows all inside M and N, the
    // step inside K), so the copies skip the tests and the zero fill
    // whether step ``step`` is the first of its group, or this block's first
    auto starts_group = [&](int step) {
        return step < steps && (step % GROUP_STEPS == 0 || step == step_begin);
    };
    auto issue_step = [&](int step, int stage, bool inside) {
        if (step >= steps) {
            return;
        }
        const int group_step = step + GROUP_AHEAD;
        const bool new_group = !weights_by_map && starts_group(group_step);
#pragma unroll
        for (int j = 0; j < SLOTS_PER_PRODUCER; ++j) {
            if (!ACTIVATIONS_BY_MAP && (A_COPY_SLOTS == COPY_SLOTS ||
                                        tid - CONSUMER_THREADS + j * PRODUCER_THREADS < A_COPY_SLOTS)) {
                issue_activations(slots[j], step, stage, inside);
            }
            if (new_group) {
                issue_group(slots[j], group_step, inside);
            }
        }
    };
    const bool rows_inside = block_inside && m0 + BLOCK_M <= M;
    // steps before this one are whole in K
    const int whole_steps = static_cast<int>(K / STEP_K);
    // the scales of step ``step``'s parts, one (K group, row) per thread, from its header; the
    // threads of each 128 build the entries of 64 rows, so that on sm_90a a warpgroup builds
    // those of its own rows and its own barrier orders them
    constexpr int TABLE_ROWS_A_SET = TILE_N / K_GROUPS;
    const int table_row =
        tid / (K_GROUPS * TABLE_ROWS_A_SET) * TABLE_ROWS_A_SET + tid % TABLE_ROWS_A_SET;
    const int table_group = tid / TABLE_ROWS_A_SET % K_GROUPS;
    // (n0 + row) * row_bytes mod 16, in unsigned arithmetic that may wrap
    const int table_row_misalignment = static_cast<int>(
        (static_cast<u32>(n0 + table_row) * static_cast<u32>(row_bytes)) & (CHUNK - 1));
    auto prepare_table = [&](int step, int table_index) {
        const int misalignment =
            Staged::ALIGNED ? 0 : (table_row_misalignment + group_start(step)) & (CHUNK - 1);
        const u8* header = shared + GROUP_OFFSET + group_slot(step) * GROUP_SLOT_BYTES +
                           table_row * slot_row_stride + misalignment + Staged::header_start(step) -
                           group_start(step);
        const int part = K_GROUPS * (step & 3) + table_group;
        u32* table = reinterpret_cast<u32*>(shared + TABLE_OFFSET) + table_index * TABLE_WORDS;
        table[table_group * TILE_N + table_row] = Staged::template prepare<act_t>(header, part);
    };

    // Every weight row this lane decodes is, modulo 16, row ``group`` or ``group + 8`` of the
    // tile (mma.sync: n0 + warp_n * 64 + 8j + group; wgmma: rows ``row`` and ``row + 8``), and
    // 16 rows are a whole number of 16-byte chunks, so two misalignments serve all of them.
    const int row_misalignment[2] = {(group * row_bytes) & (CHUNK - 1),
                                     ((group + 8) * row_bytes) & (CHUNK - 1)};
    // row ``row``'s group slot holding step ``step``'s weights, and the offset there of the
    // step's segment ``segment`` from the group's first byte
    auto group_base = [&](int step, int row) {
        return shared + GROUP_OFFSET + group_slot(step) * GROUP_SLOT_BYTES + row * slot_row_stride;
    };
    auto segment_offset = [&](int segment, int step) {
        return Staged::body_start(segment, step) - group_start(step);
    };
    auto step_misalignments = [&](int step, int (&misalignment)[2]) {
        misalignment[0] = misalignment[1] = 0;
        if (!Staged::ALIGNED) {
            const int start = group_start(step);
            misalignment[0] = (row_misalignment[0] + start) & (CHUNK - 1);
            misalignment[1] = (row_misalignment[1] + start) & (CHUNK - 1);
        }
    };

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // wgmma: warpgroup g owns weight rows 64g .. 64g + 63, its warp r rows 16r .. 16r + 15 of
    // those; this lane decodes rows ``row`` and ``row + 8`` into A fragments
    namespace wg = ggufc::wg;
    namespace bulk = ggufc::bulk;
    constexpr int WGMMA_M = 64;
    constexpr int A_FRAGMENT_ROWS = 16;
    static_assert(TILE_N == (CONSUMER_THREADS / wg::WARPGROUP_THREADS) * WGMMA_M,
                  "a consumer warpgroup per 64 rows");
    static_assert(A_STAGE_BYTES % wg::SWIZZLE_ATOM_BYTES == 0, "stages start on swizzle atoms");
    const int warpgroup = tid / wg::WARPGROUP_THREADS;
    const int rank = warp % (wg::WARPGROUP_THREADS / ggufc::WARP_SIZE);
    const int row = warpgroup * WGMMA_M + rank * A_FRAGMENT_ROWS + group;
    float acc[TILE_M / 2];  // zeroed by the consumers (the producer holds no accumulators)
    const u32 a_tiles = tc::shared_address(shared);
    using wg::Fragments;  // A fragments of one step (its two K groups)
    static_assert(K_GROUPS == wg::FRAGMENT_PARTS && SUB_STEPS == wg::FRAGMENT_SUB_STEPS,
                  "a step's fragments are matmul_wgmma.cuh's");
    // decodes step ``step``'s weights into ``a`` and starts its products; ``a`` must stay
    // unchanged until they complete.  ``previous``: the fragments of step - 1, whose products
    // may still run.
    auto compute = [&](int step, int stage, Fragments& a, Fragments& previous) {
        const u8* group_row = group_base(step, row);
        const u32* table = reinterpret_cast<const u32*>(shared + TABLE_OFFSET) +
                           (step & 1) * TABLE_WORDS + row;
        int misalignment[2];
        step_misalignments(step, misalignment);
        const int offset[2] = {segment_offset(0, step), segment_offset(1, step)};
        // The last step of a K % 64 == 32 row has no second part, yet its products run with
        // no branch (a branch among them makes ptxas serialize them): its activations are
        // zero-filled, and its staged weight bytes (the next row's block, or zeros past the
        // tensor) decode to finite values, so those products add zeros.
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
            u32 low_rows[SUB_STEPS][2];
            u32 high_rows[SUB_STEPS][2];
            const u8* low = group_row + misalignment[0];
            const u8* high = group_row + 8 * slot_row_stride + misalignment[1];
            Staged::template fragment<act_t>(low + offset[0], low + offset[1],
                                             HAS_TABLE ? table[g * TILE_N] : 0u, g, pair, step,
                                             low_rows);
            Staged::template fragment<act_t>(high + offset[0], high + offset[1],
                                             HAS_TABLE ? table[g * TILE_N + 8] : 0u, g, pair,
                                             step, high_rows);
#pragma unroll
            for (int s = 0; s < SUB_STEPS; ++s) {
                a[g][s][0] = low_rows[s][0];
                a[g][s][1] = high_rows[s][0];
                a[g][s][2] = low_rows[s][1];
                a[g][s][3] = high_rows[s][1];
            }
        }
        // a descriptor's address field is the shared address over 16: the sub-steps' are the
        // stage's plus their offset over 16 (no carry: shared addresses are below 2^18)
        const wg::u64 a_tile = wg::descriptor(a_tiles + stage * A_STAGE_BYTES);
        wg::Descriptors b;
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
#pragma unroll
            for (int s = 0; s < SUB_STEPS; ++s) {
                const int k_bytes = (g * PART + s * MMA_K) * static_cast<int>(sizeof(act_t));
                b[g * SUB_STEPS + s] = a_tile + k_bytes / 16;
            }
        }
        // A no-op wait (at most step - 1's products are in flight already) that ends ptxas's
        // pipeline stage: the fragments just defined belong to the next one, so ptxas need not
        // serialize the products (C7513: a wgmma input defined by other instructions within
        // the stage of the products in flight)
        wg::wait<1>(previous);
        wg::fence(a, b);
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
#pragma unroll
            for (int s = 0; s < SUB_STEPS; ++s) {
                wg::mma_m64n64k16<act_t>(acc, a[g][s], b[g * SUB_STEPS + s]);
            }
        }
        wg::commit();
    };

#else
    // mma.sync: 8 consumer warps, 2 (M) x 4 (N) each a 64x32 tile of out (1 x 8, each 16x16,
    // for a tile of 16 activation rows), over the whole step (both K parts)
    constexpr int MMA_M = 16;
    constexpr int WARPS_M = PORTABLE_WARPS_M;
    constexpr int WARPS_N = PORTABLE_WARPS_N;
    constexpr int MMA_N = 8;
    constexpr int WARP_TILE_M = BLOCK_M / WARPS_M;
    constexpr int WARP_TILE_N = TILE_N / WARPS_N;
    constexpr int FRAGS_M = WARP_TILE_M / MMA_M;
    constexpr int FRAGS_N = WARP_TILE_N / MMA_N;
    static_assert(WARPS_M * WARPS_N * ggufc::WARP_SIZE == CONSUMER_THREADS, "8 consumer warps, 2x4");
    static_assert(WARP_TILE_N % 16 == 0, "a warp's rows start on a 16-row boundary (misalignments)");
    const int warp_m = warp / WARPS_N;
    const int warp_n = warp % WARPS_N;
    static_assert(WARP_TILE_N == PORTABLE_WARP_ROWS, "a warp's rows are the split's unit");
    // split, the warps of the cluster's other blocks' rows only meet the block barriers
    const bool warp_computes = has_row(warp_n * WARP_TILE_N);
    float acc[FRAGS_M][FRAGS_N][4];
#pragma unroll
    for (int i = 0; i < FRAGS_M; ++i) {
#pragma unroll
        for (int j = 0; j < FRAGS_N; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                acc[i][j][e] = 0.0f;
            }
        }
    }

    // ldmatrix.x4 of a 16x16 A tile: lanes 0-15 address rows 0-15 at K 0-7, lanes 16-31 the
    // same rows at K 8-15, giving the mma's a0..a3; row % 8 == lane % 8 in every tile
    const int a_row_offset = (warp_m * WARP_TILE_M + lane % 16) * A_ROW_BYTES;
    auto a_chunk_offset = [&](int g, int s) {
        const int chunk = (g * PART + s * MMA_K) / 8 + lane / 16;
        return (chunk ^ (lane % 8)) * CHUNK;
    };

    auto compute = [&](int step, int stage) {
        const u8* a_tile = shared + stage * A_STAGE_BYTES + a_row_offset;
        const u8* group_row = group_base(step, warp_n * WARP_TILE_N + group);
        int misalignment[2];
        step_misalignments(step, misalignment);
        const int offset[2] = {segment_offset(0, step), segment_offset(1, step)};
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
            // the last step of a K % 64 == 32 row has no second part (uniform over the block)
            if (static_cast<i64>(step) * STEP_K + g * PART >= K) {
                break;
            }
            u32 a[SUB_STEPS][FRAGS_M][4];
#pragma unroll
            for (int s = 0; s < SUB_STEPS; ++s) {
#pragma unroll
                for (int i = 0; i < FRAGS_M; ++i) {
                    tc::load_matrix_x4(a[s][i], a_tile + i * MMA_M * A_ROW_BYTES + a_chunk_offset(g, s));
                }
            }
            const u32* table = reinterpret_cast<const u32*>(shared + TABLE_OFFSET) +
                               (step & 1) * TABLE_WORDS + g * TILE_N + warp_n * WARP_TILE_N + group;
#pragma unroll
            for (int j = 0; j < FRAGS_N; ++j) {
                u32 b[SUB_STEPS][2];
                const u8* rows = group_row + j * MMA_N * slot_row_stride + misalignment[j % 2];
                Staged::template fragment<act_t>(rows + offset[0], rows + offset[1],
                                                 HAS_TABLE ? table[j * MMA_N] : 0u, g, pair, step, b);
#pragma unroll
                for (int s = 0; s < SUB_STEPS; ++s) {
#pragma unroll
                    for (int i = 0; i < FRAGS_M; ++i) {
                        tc::mma<act_t>(acc[i][j], a[s][i], b[s]);
                    }
                }
            }
        }
    };

#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // No block barrier: shared-memory barriers track each stage.  The producer copies step t's
    // activations into stage t % STAGES (and at a group's first step, or the block's first,
    // the group's weights into its slot) once the consumers are done with step t - STAGES
    // (drained), each of its threads arriving on filled[t % STAGES] as its copies land; a
    // consumer waits for filled, decodes and multiplies, and arrives on drained once its
    // products completed (which it learns while decoding the step after).  A group slot is
    // refilled GROUP_SLOTS groups later, after drained of step G (g + GROUP_SLOTS) - STAGES
    // >= G g + G - 1 (G = GROUP_STEPS), the last step of the group g it held.
    // Phase k of stage s is step s + k STAGES.  The consumer warpgroups run out of step; each
    // builds its rows' scale table of step t + 1 while its products of step t run, ordered by
    // its own barrier.
    __shared__ bulk::u64 filled[STAGES];
    __shared__ bulk::u64 drained[STAGES];
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            bulk::barrier_init(&filled[s], PRODUCER_THREADS);
            bulk::barrier_init(&drained[s], CONSUMER_THREADS);
        }
    }
    __syncthreads();
    if (producer) {
        int stage = 0;  // t % STAGES
        for (int t = 0; t < step_count; ++t) {
            const int step = step_begin + t;
            if (t >= STAGES) {
                bulk::wait_phase(&drained[stage], (t / STAGES - 1) & 1);
            }
            if (tid == CONSUMER_THREADS) {  // the stage's activations: one box of x_map
                const bool group_by_map = weights_by_map && starts_group(step);
                bulk::expect_bytes(&filled[stage],
                                   A_STAGE_BYTES + (group_by_map ? TILE_N * MAPPED_GROUP_STRIDE : 0));
                bulk::copy_box_2d(tc::shared_address(shared + stage * A_STAGE_BYTES), &x_map,
                                step * STEP_K, static_cast<int>(m0), &filled[stage]);
                if (group_by_map) {  // and its group's weights: one box of w_map
                    // a box starts on a 16-byte boundary: the one at or before the group, as
                    // the producer's chunk copies do (its misalignment is read as theirs)
                    bulk::copy_box_2d(
                        tc::shared_address(shared + GROUP_OFFSET + group_slot(step) * GROUP_SLOT_BYTES),
                        &w_map, group_start(step) & ~(CHUNK - 1), static_cast<int>(n0), &filled[stage]);
                }
            }
            issue_step(step, stage, rows_inside && step < whole_steps);
            bulk::arrive_after_copies(&filled[stage]);
            stage = stage == STAGES - 1 ? 0 : stage + 1;
        }
        ggufc::cp_async_wait<0>();

        return;
    }
#pragma unroll
    for (int i = 0; i < TILE_M / 2; ++i) {
        acc[i] = 0.0f;
    }
    // Two sets of A fragments: step t decodes into set t % 2 while the products of step t - 1
    // (set (t - 1) % 2) run, and waits for those only after starting its own.
    Fragments fragments[2] = {};
    // this block's step ``t`` (step_begin + t) on fragments ``a``; ``previous`` holds t - 1's
    auto consume = [&](int t, int stage, Fragments& a, Fragments& previous) {
        const int step = step_begin + t;
        const int next = stage == STAGES - 1 ? 0 : stage + 1;
        bulk::wait_phase(&filled[stage], (t / STAGES) & 1);
        wg::fence_async_shared();  // the copies' writes, seen by wgmma
        if (HAS_TABLE) {
            if (t == 0) {
                prepare_table(step, step & 1);
            }
            // every thread of the warpgroup has built step's table and read step - 1's
            wg::warpgroup_sync(warpgroup);
        }
        compute(step, stage, a, previous);
        if (HAS_TABLE && t + 1 < step_count) {
            // while the products run: step + 1's header, copied with its stage
            bulk::wait_phase(&filled[next], ((t + 1) / STAGES) & 1);
            prepare_table(step + 1, (step + 1) & 1);
        }
        // step - 1's products are done: its stage and fragments are free
        wg::wait<1>(a);
        bulk::arrive_if(&drained[stage == 0 ? STAGES - 1 : stage - 1], t > 0);
        return next;
    };
    int stage = 0;  // t % STAGES
    int t = 0;
    for (; t + 1 < step_count; t += 2) {
        stage = consume(t, stage, fragments[0], fragments[1]);
        stage = consume(t + 1, stage, fragments[1], fragments[0]);
    }
    if (t < step_count) {
        consume(t, stage, fragments[0], fragments[1]);
        wg::wait<0>(fragments[0]);
    } else {
        wg::wait<0>(fragments[1]);
    }
    // (the last products: no stage is refilled after them)
#else
    // a stage is refilled two steps after its products ran (one would do for the activations;
    // the weight groups, which come a step early for the scale tables, need the second)
    constexpr int PREFETCH = STAGES - 2;
    // Commit groups (the producer's): before the loop, {weight group 0, A 0}, {A 1}, ... up to
    // A PREFETCH - 1 (with the weight group of step s + 1 where that starts one); step t
    // commits {A t+PREFETCH, and the weight group of step t+PREFETCH+1 if it starts one}.  So
    // when step t waits for its own A it also has the weights of step t+1, whose scale table
    // the consumers build while the products of step t run.  Step t's copies refill the stage
    // of step t + PREFETCH - STAGES = t - 2, which every consumer has finished with by the
    // barrier ending the step before; a weight group slot is refilled GROUP_SLOTS groups later,
    // in step G (g + GROUP_SLOTS) - PREFETCH - 1 for group g (G = GROUP_STEPS), whose last
    // step G g + G - 1 is done by the barrier before it (G GROUP_SLOTS >= STAGES + G - 1).
    // The producer and the consumers run loops of their own that meet at the same block
    // barriers (one after the prologue, one after the first table, one a step).
    if (producer) {
#pragma unroll
        for (int j = 0; j < SLOTS_PER_PRODUCER; ++j) {
            issue_group(slots[j], 0, false);
        }
#pragma unroll
        for (int s = 0; s < PREFETCH; ++s) {
            issue_step(s, s, rows_inside && s < whole_steps);
            ggufc::cp_async_commit();
        }
        ggufc::cp_async_wait<PREFETCH - 1>();
        __syncthreads();
        if (HAS_TABLE) {
            __syncthreads();
        }
        int stage = 0;  // step % STAGES
        for (int step = 0; step < step_count; ++step) {
            const int ahead = step + PREFETCH;
            issue_step(ahead, (stage + PREFETCH) % STAGES, rows_inside && ahead < whole_steps);
            ggufc::cp_async_commit();
            ggufc::cp_async_wait<PREFETCH - 1>();
            stage = stage == STAGES - 1 ? 0 : stage + 1;
            __syncthreads();
        }
        return;  // (its last commit groups hold no copies: steps past the end)
    }
    __syncthreads();
    if (HAS_TABLE) {
        prepare_table(0, 0);
        __syncthreads();
    }
    int stage = 0;  // step % STAGES
    for (int step = 0; step < steps; ++step) {
        const int next = stage == STAGES - 1 ? 0 : stage + 1;
        if (HAS_TABLE && step + 1 < steps) {
            prepare_table(step + 1, (step + 1) & 1);
        }
        if (warp_computes) {
            compute(step, stage);
        }
        stage = next;
        __syncthreads();
    }
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

    // accumulator 4i + e is weight row ``row`` (+8 for e >= 2) and activation row 8i + 2 pair
    // + e % 2 of the tile
    float bias_of[2] = {0.0f, 0.0f};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const i64 n = n0 + row + 8 * h;
        if (has_bias && n < N) {
            bias_of[h] = ggufc::to_float(bias[n]);
        }
    }
#pragma unroll
    for (int i = 0; i < TILE_M / 8; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const i64 m = m0 + 8 * i + 2 * pair + e % 2;
            const i64 n = n0 + row + 8 * (e / 2);
            if (m < M && n < N && (SPLITS == 1 || (4 * i + e) % SPLITS == split)) {
                out[m * N + n] = ggufc::from_float<act_t>(acc[4 * i + e] + bias_of[e / 2]);
            }
        }
    }
#else
    if (!warp_computes) {
        return;
    }
    // accumulator (i, j, e) is out row group (+8 for e >= 2), column 2*pair + e % 2
    const bool paired_stores = N % 2 == 0;  // two outputs of a lane share an aligned word
#pragma unroll
    for (int j = 0; j < FRAGS_N; ++j) {
        const i64 n = n0 + warp_n * WARP_TILE_N + j * MMA_N + 2 * pair;
        const float bias0 = has_bias && n < N ? ggufc::to_float(bias[n]) : 0.0f;
        const float bias1 = has_bias && n + 1 < N ? ggufc::to_float(bias[n + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < FRAGS_M; ++i) {
            const float (&sums)[4] = acc[i][j];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const i64 m = m0 + warp_m * WARP_TILE_M + i * MMA_M + group + 8 * h;
                if (m >= M) {
                    continue;
                }
                const float v0 = sums[2 * h] + bias0;
                const float v1 = sums[2 * h + 1] + bias1;
                act_t* dst = out + m * N + n;
                if (paired_stores && n + 1 < N) {
                    *reinterpret_cast<u32*>(dst) = ggufc::tc::Pair<act_t>::pack(v0, v1);
                } else {
                    if (n < N) {
                        dst[0] = ggufc::from_float<act_t>(v0);
                    }
                    if (n + 1 < N) {
                        dst[1] = ggufc::from_float<act_t>(v1);
                    }
                }
            }
        }
    }
#endif
}

