// ggufc matvec_batched on tensor cores, the weights as the A operand, staged: out[m, n] =
// sum_k x[m, k] * W[n, k] + bias[n] for Q4_0 weights, __half activations, float32
// accumulation.  Any M, one read of the
// weights for each 8 activation rows (the lowering takes it up to M = 8:
// emitter.MATVEC_MMA_MAX_M; and as the M = 1 matvec of emitter.MATVEC_ONE_ROW_MMA_FORMATS on
// long rows, a block an activation row: ONE_ROW below).
//
// A block of 6 warps computes out[m0][n0 .. n0+15] (grid = (ceil(N / 16), M)):
// mma.sync m16n8k16 with A = 16 weight rows and B = x (activation row m0 as every column; 1 A tile of 16 rows a warp).  The warps split K by groups of GROUP_STEPS
// K steps of 64 weights (warp w takes groups w, w + 6, ...).  Most blocks are only
// 2-byte aligned (18, 22, 34, 210 bytes), so no lane can load its bytes as wide words straight
// from global memory (as matvec_mma.cu does for the 16-byte multiples of Q4_K / Q5_K, which
// are staged here too on longer rows): each warp copies a group of its 16
// rows, as the 16-byte chunks that cover them, into a ring of W_SLOTS group slots of its own
// by cp.async, W_AHEAD groups before it is decoded, and every step's activation rows into a
// ring of X_SLOTS step slots, X_AHEAD steps ahead (X_BY_GROUP: a group's steps of them with
// the group's weights).  Compiled for sm_90a, where the launcher
// encodes w_map (rows of whole 16-byte words from a 16-byte boundary: K a multiple of 256,
// of 2048 for Q6_K), a group's rows come instead as one box of the map that lane 0 asks the
// tensor memory accelerator for, completing on the slot's shared-memory barrier: the
// copies' address and bound arithmetic leaves the warps; where the rows are not whole words
// (no map), the kernels of BULK_ROWS take each row's covering chunks as one bulk copy of the
// accelerator, a lane's.  Lane (g, t) = (lane / 4, lane % 4) decodes
// the quants of rows g and g + 8 at its k slots from there as exact q - zero point pairs
// (tc::StagedQ4_0::values, in the 16-bit matmul's fragment layout) and takes B by ldmatrix
// from the staged activations; the mmas of each scale (a 32-weight block's d; Q6_K's d * sc
// of each 16 weights: Staged::scales) sum into fresh accumulators, which the rows' scales
// then add to the lane's sums in float32 (Q4_K / Q5_K: OFFSETS below).  The warps' sums meet in shared
// memory at the end.  Rows past N or M contribute nothing; no step past K is read.
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K (a multiple of the
// block weights, below 2^31), has_bias, w_map (the blocks as an N x row-bytes uint8 map with
// TILE_N x MAPPED_GROUP_STRIDE boxes, or zeros; read on sm_90a only).  Dynamic shared memory:
// SHARED_BYTES (the launch rule's: emitter.matvec_mma_staged_layout).
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

namespace ggufc_matvec_mma_six_warps_q4_0_f16_impl {
using act_t = __half;
using Staged = ggufc::tc::StagedQ4_0;
namespace tc = ggufc::tc;
using ggufc::i64;
using ggufc::u32;
using ggufc::u8;
constexpr int WARPS = 6;
constexpr int ROW_TILES = 1;  // 16-row A tiles a warp multiplies by the same B
constexpr int TILE_N = 16;  // weight rows: ROW_TILES times the mma's M
constexpr int TILE_M = 8;  // activation rows: the mma's N
constexpr int LANE_GROUPS = 4;  // lanes sharing a row (t = lane % 4)
constexpr int LANE_ROWS = 2 * ROW_TILES;  // rows g + 8 h of a lane, h = 0 .. LANE_ROWS - 1
static_assert(TILE_N == LANE_ROWS * ggufc::WARP_SIZE / LANE_GROUPS, "rows g + 8 h of a lane");
static_assert(TILE_M == ggufc::WARP_SIZE / LANE_GROUPS, "activation row g: B column g");
constexpr int PART = ggufc::PART_WEIGHTS;
constexpr int STEP_K = 2 * PART;  // a K step: the two K groups of the staged decode
constexpr int K_GROUPS = STEP_K / PART;
constexpr int MMA_K = 16;
constexpr int SUB_STEPS = PART / MMA_K;
constexpr int SCALES = Staged::SCALES_A_PART;  // scales of a K group's weights, in order
static_assert(SUB_STEPS % SCALES == 0, "a scale covers whole mmas");
// Weights d * sc * q - dmin * m (Q4_K, Q5_K: OFFSETS): the scales d * sc as the other
// formats' (Staged::scales), and the offsets summed apart: an mma of each K group with A the
// pairs of its rows' m (exact small integers, Staged::min_pair) adds m * sum(x) into
// accumulators of the block, which its rows' -dmin then add to the sums as the group's steps
// pass to its next block and at the group's end.  Both come from each row's block head, read
// once a block (Staged::Head; a group is one block or more, UNIT_STEPS steps each).
constexpr bool OFFSETS = Staged::HAS_OFFSETS;
// ONE_ROW (the M = 1 matvec of emitter.MATVEC_ONE_ROW_MMA_FORMATS, kind "matvec"): a block
// takes one activation row (m0 = blockIdx.y); every lane's ldmatrix row address is that row,
// so B's 8 columns are copies of it, and only the sums of column 0 are kept (half the scaling
// FFMAs).  Its activations come a group at a time (a slot holds the group's steps of the row,
// 128 bytes each), with the group's weights: one wait a group instead of one a step.
constexpr bool ONE_ROW = true;
// X_BY_GROUP (ONE_ROW, and the batched forms whose emitter.MmaForm has x_by_group): the
// activations come a weight group at a time, a slot the group's steps (each step's TILE_M rows;
// ONE_ROW: its one row), copied with the group's weights: one wait a group instead of one a
// step, and a group's steps, where all lie in the row, unrolled with no test between them.
constexpr bool X_BY_GROUP = true;
static_assert(X_BY_GROUP || !ONE_ROW, "the one-row form takes its activations a group at a time");
// X_THROUGH_L1 (emitter.MATVEC_MMA_X_THROUGH_L1): a group's activation copies go through L1
// (cp.async.ca), where an SM's blocks may share the lines; else L2 only, as the weights' copies
constexpr bool X_THROUGH_L1 = false;
static_assert(!X_THROUGH_L1 || X_BY_GROUP, "only a group's activation copies go through L1");
// what a group's rows keep of their block's head: Staged::Head where the format has offsets
template <typename Format, bool = Format::HAS_OFFSETS>
struct HeadOf {
    struct type {
        __device__ static __forceinline__ type of(const u8*, int) { return {}; }
    };
};
template <typename Format>
struct HeadOf<Format, true> {
    using type = typename Format::Head;
};
using Head = typename HeadOf<Staged>::type;
static_assert(!Staged::VALUES_FROM_HEAD || OFFSETS, "a head is read only where the format has offsets");
// a K group's values, from the step's bytes or partly from the block's head (Q5_K's qh)
template <typename Format, typename T, typename H>
__device__ __forceinline__ void values_of(const u8* body, const u8* body_1, const H& head, int k_group, int pair,
                                          int step, u32 (&v)[SUB_STEPS][2]) {
    if constexpr (Format::VALUES_FROM_HEAD) {
        Format::template values<T>(head, body_1, k_group, pair, step, v);
    } else {
        Format::template values<T>(body, body_1, k_group, pair, step, v);
    }
}
// a K group's scales, from the step's bytes or from the block's head
template <typename Format, typename H>
__device__ __forceinline__ void scales_of(const u8* body, const u8* header, const H& head, int k_group, int step,
                                          float (&scale)[Format::SCALES_A_PART]) {
    if constexpr (Format::HAS_OFFSETS) {
        Format::scales(head, k_group, step, scale);
    } else {
        Format::scales(body, header, k_group, step, scale);
    }
}
// a K group's pair of m (m, m) where the format has offsets
template <typename Format, typename T, typename H>
__device__ __forceinline__ u32 min_pair_of(const H& head, int k_group, int step) {
    if constexpr (Format::HAS_OFFSETS) {
        return Format::template min_pair<T>(head, k_group, step);
    } else {
        return 0u;
    }
}
// the factor of a group's offset sums: -dmin of the row's block
template <typename Format, typename H>
__device__ __forceinline__ float offset_scale_of(const H& head) {
    if constexpr (Format::HAS_OFFSETS) {
        return Format::offset_scale(head);
    } else {
        return 0.0f;
    }
}
constexpr int CHUNK = tc::CHUNK_BYTES;
// weights: a group is GROUP_STEPS steps of a row, whole copy units
constexpr int GROUP_STEPS = 4;
static_assert(GROUP_STEPS % Staged::UNIT_STEPS == 0, "a group is whole copy units");
constexpr int GROUP_BYTES = GROUP_STEPS / Staged::UNIT_STEPS * Staged::UNIT_BYTES;
constexpr int GROUP_CHUNKS = tc::covering_chunks(GROUP_BYTES, Staged::ALIGNED);
// an odd multiple of 16 bytes: rows g = 0..7 of a fragment read fall in distinct banks
constexpr int GROUP_STRIDE = 176;
static_assert(GROUP_CHUNKS * CHUNK <= GROUP_STRIDE && GROUP_STRIDE % (2 * CHUNK) == CHUNK,
              "row slots hold a group, an odd number of chunks apart");
// filled by w_map (rows of whole 16-byte words), a slot's rows are a box's width apart
constexpr int MAPPED_GROUP_STRIDE = 144;
static_assert(GROUP_BYTES + ggufc::box_misalignment(GROUP_BYTES) <= MAPPED_GROUP_STRIDE &&
                  MAPPED_GROUP_STRIDE <= GROUP_STRIDE &&
                  MAPPED_GROUP_STRIDE % (2 * CHUNK) == CHUNK,
              "a box holds a group, its rows an odd number of chunks apart, within a slot");
// the bytes of w_map's elements: the launcher encodes the uint8 blocks as elements of this many
// bytes where a box of single bytes would pass the tensor map's 256 elements (emitter.weight_map_element_bytes)
constexpr int MAP_ELEMENT_BYTES = 1;
static_assert(MAPPED_GROUP_STRIDE % MAP_ELEMENT_BYTES == 0 && MAPPED_GROUP_STRIDE / MAP_ELEMENT_BYTES <= 256,
              "a box's rows are at most 256 whole elements");
constexpr int GROUP_SLOT_BYTES = TILE_N * GROUP_STRIDE;
constexpr int COPY_CHUNKS = TILE_N * GROUP_CHUNKS;  // a group's cp.async
constexpr int COPY_ROUNDS = (COPY_CHUNKS + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;
// BULK_ROWS (emitter.MATVEC_ONE_ROW_MMA_BULK_ROWS): on sm_90a, where the launcher passes no map
// (rows not whole 16-byte words), a group's rows come as a bulk copy a row, each lane's,
// completing on the slot's barrier (Arrival ROWS; the launcher's blocks start on a 16-byte word:
// codegen.cuda_run.REQUIRED_ALIGNMENT)
constexpr bool BULK_ROWS = false;
constexpr int ROW_COPY_ROUNDS = (TILE_N + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;  // ROWS: a row a lane
static_assert(!BULK_ROWS || ROW_COPY_ROUNDS * ggufc::WARP_SIZE >= TILE_N, "every row a lane's copy");
// activations: a step's TILE_M rows of STEP_K, each row's 128 bytes one 128-byte line of
// shared memory (so each cp.async of a row lands in one line; rows 144 bytes apart, before
// v41, took up to 1.4x the kernel's time at M = 8), its 16-byte chunks swizzled: chunk c of
// row r at chunk c ^ r, so that the 8 rows of an ldmatrix phase fall in distinct bank groups
constexpr int X_ROW_BYTES = STEP_K * static_cast<int>(sizeof(act_t));
constexpr int X_ROW_CHUNKS = X_ROW_BYTES / CHUNK;
static_assert(X_ROW_BYTES == 128 && TILE_M == 8, "a row one line, 8 rows: chunk c ^ r");
// a slot: a step's TILE_M rows (ONE_ROW: its one row); X_BY_GROUP: a group's steps of them
constexpr int X_STEP_ROWS = ONE_ROW ? 1 : TILE_M;
constexpr int X_SLOT_ROWS = X_BY_GROUP ? GROUP_STEPS * X_STEP_ROWS : TILE_M;
constexpr int X_SLOT_BYTES = X_SLOT_ROWS * X_ROW_BYTES;
constexpr int X_ROUNDS = TILE_M * X_ROW_CHUNKS / ggufc::WARP_SIZE;
static_assert(X_ROUNDS * ggufc::WARP_SIZE == TILE_M * X_ROW_CHUNKS, "whole copy rounds");
constexpr int X_CHUNK_WEIGHTS = CHUNK / static_cast<int>(sizeof(act_t));
// X_BY_GROUP: copy rounds of a group's activations
constexpr int X_GROUP_CHUNKS = GROUP_STEPS * X_STEP_ROWS * X_ROW_CHUNKS;
constexpr int X_GROUP_ROUNDS = (X_GROUP_CHUNKS + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;
constexpr int X_PART_CHUNKS = PART * static_cast<int>(sizeof(act_t)) / CHUNK;
static_assert(X_PART_CHUNKS == 4, "ldmatrix.x4: a K group's four 8 x 8 matrices");
// as step i of a warp begins, the activations of step i + X_AHEAD are copied and, where step
// i starts a group, the weights of the group W_AHEAD groups on (the activations come from
// L2, the weights mostly from memory); the activations' ring is a power of two of slots
constexpr int X_AHEAD = 3;
constexpr int W_AHEAD = 1;
static_assert(X_AHEAD >= 1 && W_AHEAD >= 1 && W_AHEAD * GROUP_STEPS >= X_AHEAD, "the weights go first");
constexpr int X_SLOTS = 4;
constexpr int W_SLOTS = 2;
static_assert(X_SLOTS > X_AHEAD && (X_SLOTS & (X_SLOTS - 1)) == 0, "a power of two past the steps ahead");
static_assert(W_SLOTS == W_AHEAD + 1, "a slot a group ahead and the group decoded");
// WEIGHTS_BEFORE_WAIT (emitter.MATVEC_ONE_ROW_MMA_AHEAD): a group's copies W_AHEAD groups on
// are issued before the wait for the group's own weights, not after it, so all W_SLOTS groups
// are in flight while a warp waits (W_AHEAD otherwise): the one-row kernels' deeper rings
constexpr bool WEIGHTS_BEFORE_WAIT = false;
// X_BY_GROUP: the copy groups committed after a group's own when its wait comes
constexpr int X_GROUPS_AFTER = WEIGHTS_BEFORE_WAIT ? W_AHEAD : W_AHEAD - 1;
// Dynamic shared memory from its first 128-byte boundary (where a tensor map's box may land):
// every warp's activation ring, then every warp's weight ring, every slot a multiple of 128
// bytes on, then the weight slots' barriers.
constexpr int X_RING_SLOTS = X_BY_GROUP ? W_SLOTS : X_SLOTS;  // X_BY_GROUP: a slot a weight group's
constexpr int X_RING_BYTES = X_RING_SLOTS * X_SLOT_BYTES;
constexpr int W_RING_BYTES = W_SLOTS * GROUP_SLOT_BYTES;
constexpr int W_RINGS_OFFSET = WARPS * X_RING_BYTES;
constexpr int SHARED_ALIGNMENT = 128;
static_assert(X_SLOT_BYTES % SHARED_ALIGNMENT == 0 && GROUP_SLOT_BYTES % SHARED_ALIGNMENT == 0,
              "every slot starts aligned");
constexpr int BARRIERS_OFFSET = W_RINGS_OFFSET + WARPS * W_RING_BYTES;
constexpr int BARRIER_BYTES = 8;
constexpr int SHARED_BYTES = 40160;
static_assert(SHARED_BYTES == BARRIERS_OFFSET + WARPS * W_SLOTS * BARRIER_BYTES + SHARED_ALIGNMENT,
              "the launch rule's dynamic shared memory is this layout's");
// at the end each warp's sums go to the start of its own activation ring: a column an
// activation row (ONE_ROW: column 0, B's other columns copies of it)
constexpr int SUM_COLUMNS = ONE_ROW ? 1 : TILE_M;
static_assert(TILE_N * SUM_COLUMNS * 4 <= X_RING_BYTES, "a warp's partial sums fit its ring");
// How a launch's weight groups arrive, fixed for the whole loop: by w_map's boxes (MAPPED),
// by a bulk copy a row (ROWS: BULK_ROWS on sm_90a without the map; a slot as the chunk
// copies lay it out), or by the lanes' chunk copies.  The loop is compiled once for each, so
// that the mapped one's row addresses in a slot are constant strides (its rows start on
// 16-byte words) rather than recomputed from a stride chosen at run time every step (v42).
// MAPPED and ROWS complete a group on its slot's barrier.
template <bool BY_MAP, bool BY_ROWS = false>
struct Arrival {
    static constexpr bool MAPPED = BY_MAP;
    static constexpr bool ROWS = BY_ROWS;
    static constexpr bool ON_BARRIER = BY_MAP || BY_ROWS;
};
// Whether a group's steps all lie in the row with both K groups (its steps' loop is then
// compiled without the tests between them)
template <bool B>
struct Whole {
    static constexpr bool VALUE = B;
};
}  // namespace ggufc_matvec_mma_six_warps_q4_0_f16_impl

extern "C" __global__ void __launch_bounds__(192, 3) ggufc_matvec_mma_six_warps_q4_0_f16(
    const ggufc_matvec_mma_six_warps_q4_0_f16_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matvec_mma_six_warps_q4_0_f16_impl::act_t* bias, ggufc_matvec_mma_six_warps_q4_0_f16_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias, const __grid_constant__ ggufc::TensorMap w_map) {
    using namespace ggufc_matvec_mma_six_warps_q4_0_f16_impl;
    extern __shared__ __align__(16) u8 dynamic_shared[];
    u8* const shared =
        dynamic_shared + ((SHARED_ALIGNMENT - tc::shared_address(dynamic_shared) % SHARED_ALIGNMENT) % SHARED_ALIGNMENT);
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int g = lane / LANE_GROUPS;
    const int t = lane % LANE_GROUPS;
    const i64 n0 = static_cast<i64>(blockIdx.x) * TILE_N;
    const i64 m0 = static_cast<i64>(blockIdx.y) * (ONE_ROW ? 1 : TILE_M);
    const int k_weights = static_cast<int>(K);
    const int row_bytes = k_weights / Staged::BLOCK_WEIGHTS * Staged::BLOCK_BYTES;
    const int parts = k_weights / PART;
    const int steps = (parts + 1) / 2;
    const int groups = (steps + GROUP_STEPS - 1) / GROUP_STEPS;
    const int my_groups = warp < groups ? (groups - warp + WARPS - 1) / WARPS : 0;
    u8* const x_ring = shared + warp * X_RING_BYTES;
    u8* const w_ring = shared + W_RINGS_OFFSET + warp * W_RING_BYTES;
    const int x_rows = ONE_ROW ? 1 : static_cast<int>(M - m0 < TILE_M ? M - m0 : TILE_M);
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // a group's rows by one box of w_map where the launcher could encode it (elsewhere it
    // passes the optional map as zeros), else (BULK_ROWS) by a bulk copy a row, else by the
    // lanes' chunk copies
    namespace bulk = ggufc::bulk;
    const bool weights_by_map = ggufc::encoded(w_map) && row_bytes % CHUNK == 0;
    const bool weights_by_rows = BULK_ROWS && !weights_by_map;
    bulk::u64* const w_filled = reinterpret_cast<bulk::u64*>(shared + BARRIERS_OFFSET) + warp * W_SLOTS;
    if (weights_by_map || weights_by_rows) {
        if (lane == 0) {
#pragma unroll
            for (int slot = 0; slot < W_SLOTS; ++slot) {
                bulk::barrier_init(&w_filled[slot], 1);
            }
        }
        __syncwarp();
    }
#endif

    // The weight chunks this lane copies of every group: chunk c = lane + 32 r of the
    // TILE_N x GROUP_CHUNKS (row-major), from the 16-byte boundary at or before the group's
    // bytes.  The tile starts at a multiple of 16 rows, so on a 16-byte boundary.  A row's
    // last group may be short, its chunks reaching up to GROUP_CHUNKS chunks past the row:
    // where that may pass the tensor's end, the copies stop at the tile's last row.
    const u8* const tile = blocks + n0 * row_bytes;
    const bool inside = (n0 + TILE_N) * row_bytes + GROUP_CHUNKS * CHUNK <= N * row_bytes;
    const int tile_bytes = static_cast<int>((N - n0 < TILE_N ? N - n0 : TILE_N) * row_bytes);
    int copy_offset[COPY_ROUNDS];        // the row's 16-byte boundary at or before it, + 16 c
    int copy_misalignment[COPY_ROUNDS];  // the row's start mod 16; < 0: no chunk
    int copy_target[COPY_ROUNDS];
#pragma unroll
    for (int r = 0; r < COPY_ROUNDS; ++r) {
        const int c = lane + ggufc::WARP_SIZE * r;
        const int row = c / GROUP_CHUNKS;
        const int row_offset = row * row_bytes;
        copy_misalignment[r] = c < COPY_CHUNKS && n0 + row < N ? row_offset & (CHUNK - 1) : -1;
        copy_offset[r] = (row_offset & ~(CHUNK - 1)) + CHUNK * (c % GROUP_CHUNKS);
        copy_target[r] = row * GROUP_STRIDE + CHUNK * (c % GROUP_CHUNKS);
    }
    auto issue_weights = [&](auto arrival, int group, int j) {
        u8* const slot = w_ring + j % W_SLOTS * GROUP_SLOT_BYTES;
        const int start = group * GROUP_BYTES;  // whole units (a K-quant block from its head)
        if constexpr (decltype(arrival)::MAPPED) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
            if (lane == 0) {  // from the 16-byte boundary at or before the group, as the chunks
                bulk::u64* const filled = &w_filled[j % W_SLOTS];
                bulk::arrive_expecting_bytes(filled, TILE_N * MAPPED_GROUP_STRIDE);
                bulk::copy_box_2d(tc::shared_address(slot), &w_map, (start & ~(CHUNK - 1)) / MAP_ELEMENT_BYTES, static_cast<int>(n0),
                                  filled);
            }
#endif
        } else if (decltype(arrival)::ROWS && inside) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
            // row r's GROUP_CHUNKS chunks from the 16-byte word at or before its group, as the
            // chunk copies lay them out: one bulk copy, lane r's
            bulk::u64* const filled = &w_filled[j % W_SLOTS];
            if (lane == 0) {
                bulk::arrive_expecting_bytes(filled, TILE_N * GROUP_CHUNKS * CHUNK);
            }
#pragma unroll
            for (int r = 0; r < ROW_COPY_ROUNDS; ++r) {
                const int row = lane + ggufc::WARP_SIZE * r;
                if (row < TILE_N) {
                    bulk::copy_bytes(tc::shared_address(slot + row * GROUP_STRIDE),
                                     tile + ((row * row_bytes + start) & ~(CHUNK - 1)), GROUP_CHUNKS * CHUNK, filled);
                }
            }
#endif
        } else if (inside) {
#pragma unroll
            for (int r = 0; r < COPY_ROUNDS; ++r) {
                if (copy_misalignment[r] >= 0) {
                    const int offset = copy_offset[r] + ((copy_misalignment[r] + start) & ~(CHUNK - 1));
                    ggufc::cp_async_16(slot + copy_target[r], tile + offset);
                }
            }
        } else {
#pragma unroll
            for (int r = 0; r < COPY_ROUNDS; ++r) {
                if (copy_misalignment[r] >= 0) {
                    const int offset = copy_offset[r] + ((copy_misalignment[r] + start) & ~(CHUNK - 1));
                    const int left = tile_bytes - offset;
                    ggufc::cp_async_16_fill(slot + copy_target[r], tile + offset,
                                            left >= CHUNK ? CHUNK : (left > 0 ? left : 0));
                }
            }
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
            if (decltype(arrival)::ROWS && lane == 0) {
                // the last tile's chunks (by cp.async, waited for with the activations): the
                // slot's barrier expects no bytes
                bulk::arrive_expecting_bytes(&w_filled[j % W_SLOTS], 0);
            }
#endif
        }
    };
    // A step's activation rows, chunk c = lane + 32 r of TILE_M x X_ROW_CHUNKS.  Rows past M
    // are zeroed once (below) and never copied; a chunk past K is not copied either (only a
    // row's last step has one, and its second K group is not decoded).
    const u8* x_source[X_ROUNDS];  // the chunk's bytes at step 0
    int x_steps[X_ROUNDS];  // the steps that have the chunk (none for a row past M)
    int x_target[X_ROUNDS];
#pragma unroll
    for (int r = 0; r < X_ROUNDS; ++r) {
        const int c = lane + ggufc::WARP_SIZE * r;
        const int row = c / X_ROW_CHUNKS;
        const int k = (c % X_ROW_CHUNKS) * (CHUNK / static_cast<int>(sizeof(act_t)));
        x_steps[r] = row < x_rows ? (k_weights - k + STEP_K - 1) / STEP_K : 0;
        x_source[r] = reinterpret_cast<const u8*>(x + (row < x_rows ? (m0 + row) * K + k : 0));
        x_target[r] = row * X_ROW_BYTES + CHUNK * ((c % X_ROW_CHUNKS) ^ row);
    }
    // the activation slot of this warp's i-th step
    auto x_slot = [&](int i) { return x_ring + (i & (X_SLOTS - 1)) * X_SLOT_BYTES; };
    // this warp's i-th step's activations (step ``step`` of the row) into its slot
    auto issue_x = [&](int step, int i) {
        u8* const slot = x_slot(i);
#pragma unroll
        for (int r = 0; r < X_ROUNDS; ++r) {
            if (step < x_steps[r]) {
                ggufc::cp_async_16(slot + x_target[r], x_source[r] + static_cast<u32>(step) * X_ROW_BYTES);
            }
        }
    };
    // X_BY_GROUP: the activation slot of this warp's j-th group (its weight slot's twin)
    auto x_group_slot = [&](int j) { return x_ring + j % W_SLOTS * X_SLOT_BYTES; };
    // X_BY_GROUP: the activations of this warp's j-th group (group ``group``), chunk c = lane +
    // 32 r of its GROUP_STEPS x X_STEP_ROWS rows of 128 bytes (step-major, each step's rows
    // swizzled as a step slot's), into the group's slot; none past K or M
    auto issue_x_group = [&](int group, int j) {
        u8* const slot = x_group_slot(j);
#pragma unroll
        for (int r = 0; r < X_GROUP_ROUNDS; ++r) {
            const int c = lane + ggufc::WARP_SIZE * r;
            const int step_row = c / X_ROW_CHUNKS;  // s * X_STEP_ROWS + row
            const int row = step_row % X_STEP_ROWS;
            const int chunk = c % X_ROW_CHUNKS;
            const int k = (group * GROUP_STEPS + step_row / X_STEP_ROWS) * STEP_K + chunk * X_CHUNK_WEIGHTS;
            if (c < X_GROUP_CHUNKS && row < x_rows && k < k_weights) {
                ggufc::cp_async_16<X_THROUGH_L1>(slot + step_row * X_ROW_BYTES + CHUNK * (chunk ^ row), x + (m0 + row) * K + k);
            }
        }
    };
    // rows past M: zeros in every slot, once (no copy targets them)
    if (!ONE_ROW && x_rows < TILE_M) {
        for (int c = lane; c < X_RING_BYTES / CHUNK; c += ggufc::WARP_SIZE) {
            if (c / X_ROW_CHUNKS % TILE_M >= x_rows) {
                *reinterpret_cast<uint4*>(x_ring + c * CHUNK) = make_uint4(0u, 0u, 0u, 0u);
            }
        }
    }
    // this warp's j-th group
    auto group_of = [&](int j) { return warp + WARPS * j; };
    // this warp's i-th step (the steps of its groups in turn; past the row's last: none)
    auto step_of = [&](int i) { return group_of(i / GROUP_STEPS) * GROUP_STEPS + i % GROUP_STEPS; };
    // the group's rows g + 8 h in the slot start at their misalignment
    int row_misalignment[LANE_ROWS];
#pragma unroll
    for (int h = 0; h < LANE_ROWS; ++h) {
        row_misalignment[h] = ((g + 8 * h) * row_bytes) & (CHUNK - 1);
    }
    // ldmatrix: lane l gives row l % 8 of matrix l / 8 (chunk l / 8 of each K group), swizzled
    int x_lane_offset[K_GROUPS];
#pragma unroll
    for (int k_group = 0; k_group < K_GROUPS; ++k_group) {
        const int row = ONE_ROW ? 0 : lane % 8;
        x_lane_offset[k_group] = row * X_ROW_BYTES + CHUNK * ((k_group * X_PART_CHUNKS + lane / 8) ^ row);
    }

    float acc[ROW_TILES][4] = {};
    // the whole pipeline, for the launch's way of filling the weight slots (Arrival)
    auto run = [&](auto arrival) {
        // the first groups' weights do not depend on the kernels before (prelude: programmatic
        // dependent launch); the activations do
#pragma unroll
        for (int j = 0; j < W_AHEAD; ++j) {
            if (j < my_groups) {
                issue_weights(arrival, group_of(j), j);
            }
        }
        ggufc::allow_dependent_launch();
        ggufc::wait_for_previous_kernels();
        if constexpr (X_BY_GROUP) {
#pragma unroll
            for (int j = 0; j < W_AHEAD; ++j) {
                if (j < my_groups) {
                    issue_x_group(group_of(j), j);
                }
                ggufc::cp_async_commit();  // one group a weight group, empty or not
            }
        } else {
#pragma unroll
            for (int i = 0; i < X_AHEAD; ++i) {
                const int step = step_of(i);
                if (i / GROUP_STEPS < my_groups && step < steps) {
                    issue_x(step, i);
                }
                ggufc::cp_async_commit();  // one group a step, empty or not: the wait count stays uniform
            }
        }
        for (int j = 0; j < my_groups; ++j) {
            const int group = group_of(j);
            if constexpr (WEIGHTS_BEFORE_WAIT) {
                // group j + W_AHEAD into the slots of group j - 1, whose decode every lane has
                // left (else: once group j's copies have landed, below; spelled there as it was
                // before this path, so the kernels issuing late compile to the same PTX)
                __syncwarp();
                if (j + W_AHEAD < my_groups) {
                    issue_weights(arrival, group_of(j + W_AHEAD), j + W_AHEAD);
                    if constexpr (X_BY_GROUP) {
                        issue_x_group(group_of(j + W_AHEAD), j + W_AHEAD);
                    }
                }
                if constexpr (X_BY_GROUP) {
                    ggufc::cp_async_commit();  // one group a weight group, empty or not
                }
            }
            const u8* slot = w_ring + j % W_SLOTS * GROUP_SLOT_BYTES;
            const int group_start = group * GROUP_BYTES;
            const u8* rows[LANE_ROWS];
            Head heads[LANE_ROWS];  // OFFSETS: the head of each row's block
            float offset_sums[ROW_TILES][4] = {};  // OFFSETS: the block's m * x, as acc
            // OFFSETS: the block's offset sums, scaled by its rows' -dmin, into acc as it ends
            auto add_offsets = [&]() {
#pragma unroll
                for (int q = 0; q < ROW_TILES; ++q) {
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        if (!ONE_ROW || c % 2 == 0) {  // ONE_ROW: column 2t, a copy of 0
                            acc[q][c] += offset_scale_of<Staged>(heads[2 * q + c / 2]) * offset_sums[q][c];
                        }
                        offset_sums[q][c] = 0.0f;
                    }
                }
            };
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
            if constexpr (decltype(arrival)::ON_BARRIER) {
                bulk::wait_phase(&w_filled[j % W_SLOTS], (j / W_SLOTS) & 1);
            }
#endif
            if constexpr (decltype(arrival)::MAPPED) {
                // every row starts on a 16-byte word (row_bytes % CHUNK == 0), as its box
#pragma unroll
                for (int h = 0; h < LANE_ROWS; ++h) {
                    rows[h] = slot + (g + 8 * h) * MAPPED_GROUP_STRIDE + (group_start & (CHUNK - 1));
                }
            } else {
#pragma unroll
                for (int h = 0; h < LANE_ROWS; ++h) {
                    rows[h] = slot + (g + 8 * h) * GROUP_STRIDE + ((row_misalignment[h] + group_start) & (CHUNK - 1));
                }
            }
            // the group's steps; WHOLE (X_BY_GROUP, whose steps wait for nothing of their own): every
            // one in the row with both K groups (all groups but a row's last), so the unrolled
            // steps run with no test between them and their decodes interleave (with the
            // activations a group at a time: Q4_0 4096x14336 at M = 1 14.5 -> 13.8 us)
            auto run_steps = [&](auto whole) {
                constexpr bool WHOLE = decltype(whole)::VALUE;
#pragma unroll
                for (int s = 0; s < GROUP_STEPS; ++s) {
                    const int step = group * GROUP_STEPS + s;
                    if (!WHOLE && step >= steps) {
                        break;  // the row's last group may be short (and is this warp's last)
                    }
                    const int i = j * GROUP_STEPS + s;
                    if (!X_BY_GROUP || s == 0) {
                        // every lane's copies of step i (X_BY_GROUP: of group j) landed; the
                        // slots before are free
                        ggufc::cp_async_wait<X_BY_GROUP ? X_GROUPS_AFTER : X_AHEAD - 1>();
                        __syncwarp();
                    }
                    if (OFFSETS && s % Staged::UNIT_STEPS == 0) {
                        if (s > 0) {
                            add_offsets();  // the group's block before this one
                        }
#pragma unroll
                        for (int h = 0; h < LANE_ROWS; ++h) {
                            heads[h] = Head::of(rows[h] + Staged::header_start(step) - group_start, t);
                        }
                    }
                    if (!WEIGHTS_BEFORE_WAIT && s == 0 && j + W_AHEAD < my_groups) {
                        issue_weights(arrival, group_of(j + W_AHEAD), j + W_AHEAD);
                        if constexpr (X_BY_GROUP) {
                            issue_x_group(group_of(j + W_AHEAD), j + W_AHEAD);
                        }
                    }
                    if constexpr (X_BY_GROUP) {
                        if (!WEIGHTS_BEFORE_WAIT && s == 0) {
                            ggufc::cp_async_commit();
                        }
                    } else {
                        // the step X_AHEAD on: step s + X_AHEAD of this group or of a later one of
                        // this warp's (s is unrolled, so the split is a constant)
                        const int ahead_j = j + (s + X_AHEAD) / GROUP_STEPS;
                        const int ahead = group_of(ahead_j) * GROUP_STEPS + (s + X_AHEAD) % GROUP_STEPS;
                        if (ahead_j < my_groups && ahead < steps) {
                            issue_x(ahead, i + X_AHEAD);
                        }
                        ggufc::cp_async_commit();
                    }
                    const u8* x_step = X_BY_GROUP ? x_group_slot(j) + s * X_STEP_ROWS * X_ROW_BYTES : x_slot(i);
                    // the step's segments and scales in the group's slot (tensor_core.cuh)
                    const int segment[2] = {Staged::body_start(0, step) - group_start,
                                            Staged::body_start(1, step) - group_start};
                    const int header = Staged::header_start(step) - group_start;
                    // the last step of a row of K % 64 == 32 has one K group
                    const int k_groups = WHOLE || 2 * step + 1 < parts ? K_GROUPS : 1;
#pragma unroll
                    for (int k_group = 0; k_group < K_GROUPS; ++k_group) {
                        if (k_group < k_groups) {
                            u32 a_rows[LANE_ROWS][SUB_STEPS][2];  // rows g + 8 h
                            float scale[LANE_ROWS][SCALES];
                            u32 min_pairs[LANE_ROWS];
#pragma unroll
                            for (int r = 0; r < LANE_ROWS; ++r) {
                                values_of<Staged, act_t>(rows[r] + segment[0], rows[r] + segment[1], heads[r], k_group, t,
                                                         step, a_rows[r]);
                                scales_of<Staged>(rows[r] + segment[0], rows[r] + header, heads[r], k_group, step,
                                                  scale[r]);
                                min_pairs[r] = min_pair_of<Staged, act_t>(heads[r], k_group, step);
                            }
                            u32 b[4];  // k 8j + 2t, +1 of matrix j: sub-step j / 2, its half j % 2
                            tc::load_matrix_x4(b, x_step + x_lane_offset[k_group]);
#pragma unroll
                            for (int q = 0; q < ROW_TILES; ++q) {
                                // sums[.][0, 1]: row 16 q + g, columns 2t, 2t + 1; [2, 3]: row 16 q + g + 8
                                float sums[SCALES][4] = {};
#pragma unroll
                                for (int sub = 0; sub < SUB_STEPS; ++sub) {
                                    const u32 a[4] = {a_rows[2 * q][sub][0], a_rows[2 * q + 1][sub][0],
                                                      a_rows[2 * q][sub][1], a_rows[2 * q + 1][sub][1]};
                                    const u32 bs[2] = {b[2 * sub], b[2 * sub + 1]};
                                    tc::mma<act_t>(sums[sub * SCALES / SUB_STEPS], a, bs);
                                    if constexpr (OFFSETS) {  // every k of a row: its m
                                        const u32 m[4] = {min_pairs[2 * q], min_pairs[2 * q + 1], min_pairs[2 * q],
                                                          min_pairs[2 * q + 1]};
                                        tc::mma<act_t>(offset_sums[q], m, bs);
                                    }
                                }
#pragma unroll
                                for (int h = 0; h < SCALES; ++h) {
#pragma unroll
                                    for (int c = 0; c < 4; ++c) {
                                        if (!ONE_ROW || c % 2 == 0) {  // ONE_ROW: column 2t, a copy of 0
                                            acc[q][c] += scale[2 * q + c / 2][h] * sums[h][c];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if constexpr (X_BY_GROUP) {
                if ((group + 1) * GROUP_STEPS * K_GROUPS <= parts) {
                    run_steps(Whole<true>{});
                } else {
                    run_steps(Whole<false>{});
                }
            } else {
                run_steps(Whole<false>{});
            }
            if constexpr (OFFSETS) {
                add_offsets();  // the group's last block read (a row's last group may be short)
            }
        }
    };
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    if (weights_by_map) {
        run(Arrival<true>{});
    } else if constexpr (BULK_ROWS) {
        run(Arrival<false, true>{});
    } else {
        run(Arrival<false>{});
    }
#else
    run(Arrival<false>{});
#endif
    ggufc::cp_async_wait<0>();  // no copy may still target shared memory past here
    __syncwarp();

    // each warp's sums at the start of its own activation ring (ONE_ROW: column 0 only)
    float (*partial)[SUM_COLUMNS] = reinterpret_cast<float (*)[SUM_COLUMNS]>(x_ring);
#pragma unroll
    for (int q = 0; q < ROW_TILES; ++q) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int column = 2 * t + c % 2;
            if (column < SUM_COLUMNS) {
                partial[16 * q + g + 8 * (c / 2)][column] = acc[q][c];
            }
        }
    }
    __syncthreads();
    constexpr int SUMS = TILE_N * SUM_COLUMNS;
    constexpr int REDUCTION_ROUNDS = (SUMS + WARPS * ggufc::WARP_SIZE - 1) / (WARPS * ggufc::WARP_SIZE);
#pragma unroll
    for (int round = 0; round < REDUCTION_ROUNDS; ++round) {
      const int e = static_cast<int>(threadIdx.x) + round * WARPS * ggufc::WARP_SIZE;
      if (e < SUMS) {
        const int n = e / SUM_COLUMNS;
        const int m = e % SUM_COLUMNS;
        if (n0 + n < N && m0 + m < M) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w) {
                sum += reinterpret_cast<const float*>(shared + w * X_RING_BYTES)[e];
            }
            if (has_bias) {
                sum += ggufc::to_float(bias[n0 + n]);
            }
            out[(m0 + m) * N + n0 + n] = ggufc::from_float<act_t>(sum);
        }
      }
    }
}
