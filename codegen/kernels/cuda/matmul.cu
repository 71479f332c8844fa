{% if tf32 %}
{% include "cuda/matmul_tf32.cuh" %}
{% else %}
// ggufc matmul: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for {{ format }} weights,
// {{ act_type }} activations, tensor cores (mma.sync m16n8k16, {{ mma_ptx_type }} operands, float32
// accumulators).
//
// A block of {{ threads }} threads computes a {{ tile_m }}x{{ tile_n }} tile of out (grid = (ceil(N / {{ tile_n }}),
// ceil(M / {{ tile_m }}))).  K advances {{ tile_k }} weights a step through a ring of {{ stages }} shared-memory stages
// filled by cp.async {{ stages - 1 }} steps ahead: the activations x[{{ tile_m }}][{{ tile_k }}] as they are, and the raw GGUF
// bytes of the step's weights (see matmul_operands.cuh), so no thread waits on a global load.
// The 8 warps are 2 (M) x 2 (N) x 2 (K): each warp owns a 64x64 tile of out and one 32-weight
// part of each step; it reads its activation fragments with ldmatrix and decodes its weight
// fragments from the raw bytes straight into registers (no dequantized copy in shared
// memory).  The two K groups' sums meet through shared memory at the end.  Activation rows
// are 128 bytes of 8 chunks, chunk c of row r stored at c ^ (r % 8), so the 8 rows an
// ldmatrix reads and the 4 rows a warp's copies write hit distinct banks.  Rows past M, weight
// rows past N and columns past K are zero-filled or skipped, so ragged shapes need no other
// path.  Dynamic shared memory: {{ shared_bytes }} bytes (the launch rule's).
// Compiled for sm_90a (``__CUDA_ARCH_FEAT_SM90_ALL``) the same staging feeds warpgroup mma
// (wgmma) instead: the 2 warpgroups own 64 weight rows each and all {{ tile_m }} activation rows
// (wgmma.m64n{{ tile_m }}k16), the decoded weights are its A operand in registers and the staged
// activation tile, whose layout is the 128-byte swizzle wgmma reads, its B operand in shared
// memory; no K groups, so no exchange.  There shared-memory barriers (mbarrier) track each
// stage instead of a block barrier a step, so the warpgroups drift apart and one decodes
// while the other's products run; registers are capped for two blocks an SM where two fit.
// Same launch rule either way.
// Template constants: format, dtype, tile geometry.  Kernel arguments: M, N, K, has_bias.
{% include "cuda/matmul_operands.cuh" %}
{% with wgmma_n = tile_m %}{% include "cuda/matmul_wgmma.cuh" %}{% endwith %}
namespace {{ entry }}_impl {
using act_t = {{ act_type }};
using Staged = ggufc::tc::Staged{{ format }};
using ggufc::i64;
using ggufc::u32;
using ggufc::u8;
constexpr int TILE_M = {{ tile_m }};
constexpr int TILE_N = {{ tile_n }};
constexpr int STEP_K = {{ tile_k }};
constexpr int THREADS = {{ threads }};
constexpr int STAGES = {{ stages }};
constexpr int PART = ggufc::PART_WEIGHTS;  // the K range of one warp in one step
constexpr int K_GROUPS = STEP_K / PART;
constexpr int WARPS_M = 2;
constexpr int WARPS_N = 2;
constexpr int MMA_M = 16;
constexpr int MMA_N = 8;
constexpr int MMA_K = 16;
constexpr int WARP_TILE_M = TILE_M / WARPS_M;
constexpr int WARP_TILE_N = TILE_N / WARPS_N;
constexpr int FRAGS_M = WARP_TILE_M / MMA_M;
constexpr int FRAGS_N = WARP_TILE_N / MMA_N;
constexpr int SUB_STEPS = PART / MMA_K;
static_assert(WARPS_M * WARPS_N * K_GROUPS * ggufc::WARP_SIZE == THREADS, "8 warps, 2x2x2");
static_assert(K_GROUPS * TILE_N == THREADS, "one scale-table entry per thread and step");
static_assert(2 * TILE_N == THREADS, "two threads copy each weight row");

// shared memory: activation stages | body stages | header stages | 2 scale tables
constexpr int CHUNK = ggufc::tc::CHUNK_BYTES;
constexpr int A_ROW_BYTES = STEP_K * static_cast<int>(sizeof(act_t));
constexpr int A_ROW_CHUNKS = A_ROW_BYTES / CHUNK;
static_assert(A_ROW_CHUNKS == 8, "the swizzle permutes 8 chunks by row % 8");
constexpr int A_STAGE_BYTES = TILE_M * A_ROW_BYTES;
constexpr int BODY_CHUNKS = Staged::BODY_CHUNKS_0 + Staged::BODY_CHUNKS_1;
constexpr int HEADER_CHUNKS = Staged::HEADER_CHUNKS;
constexpr bool HAS_TABLE = HEADER_CHUNKS > 0;
// odd multiples of 16 bytes: the 8 rows of a fragment read fall in distinct banks
constexpr int BODY_STRIDE = {{ body_stride }};
constexpr int HEADER_STRIDE = {{ header_stride }};
static_assert(BODY_CHUNKS == {{ body_chunks }} && HEADER_CHUNKS == {{ header_chunks }},
              "the emitter's MATMUL_STAGED_CHUNKS are the format's");
static_assert(BODY_CHUNKS * CHUNK <= BODY_STRIDE && HEADER_CHUNKS * CHUNK <= HEADER_STRIDE,
              "row slots hold the staged chunks");
constexpr int BODY_STAGE_BYTES = TILE_N * BODY_STRIDE;
constexpr int HEADER_STAGE_BYTES = TILE_N * HEADER_STRIDE;
constexpr int BODY_OFFSET = STAGES * A_STAGE_BYTES;
constexpr int HEADER_OFFSET = BODY_OFFSET + STAGES * BODY_STAGE_BYTES;
constexpr int TABLE_OFFSET = HEADER_OFFSET + STAGES * HEADER_STAGE_BYTES;
constexpr int TABLE_WORDS = K_GROUPS * TILE_N;  // one table: (K group, row) -> u32
constexpr int LAYOUT_BYTES = TABLE_OFFSET + (HAS_TABLE ? 2 * TABLE_WORDS * 4 : 0);
// at the end the K group 1 warps hand their accumulators (a float4 per lane and fragment) over
constexpr int EXCHANGE_BYTES = WARPS_M * WARPS_N * FRAGS_M * FRAGS_N * ggufc::WARP_SIZE * 16;
// the layout starts at the first 1024-byte boundary of the dynamic shared memory (wgmma's
// swizzle atoms are aligned to it)
constexpr int SHARED_ALIGNMENT = {{ shared_alignment }};
static_assert(A_STAGE_BYTES % SHARED_ALIGNMENT == 0, "every activation stage starts aligned");
constexpr int SHARED_BYTES = {{ shared_bytes }};
static_assert(SHARED_BYTES ==
                  (LAYOUT_BYTES > EXCHANGE_BYTES ? LAYOUT_BYTES : EXCHANGE_BYTES) + SHARED_ALIGNMENT,
              "the launch rule's dynamic shared memory is this layout's");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// registers capped for two blocks an SM where two fit its shared memory (the emitter's rule;
// the wgmma path needs no more); the mma.sync path needs ~230 registers, so one block
constexpr int MIN_BLOCKS = {{ wgmma_min_blocks }};
#else
constexpr int MIN_BLOCKS = 1;
#endif
}  // namespace {{ entry }}_impl

extern "C" __global__ void __launch_bounds__({{ threads }}, {{ entry }}_impl::MIN_BLOCKS) {{ entry }}(
    const {{ entry }}_impl::act_t* __restrict__ x, const ggufc::u8* __restrict__ blocks,
    const {{ entry }}_impl::act_t* __restrict__ bias, {{ entry }}_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace {{ entry }}_impl;
    namespace tc = ggufc::tc;
    extern __shared__ __align__(16) u8 {{ entry }}_shared[];
    const u32 shared_start = tc::shared_address({{ entry }}_shared);
    u8* const shared =
        {{ entry }}_shared + ((SHARED_ALIGNMENT - shared_start % SHARED_ALIGNMENT) % SHARED_ALIGNMENT);

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / ggufc::WARP_SIZE;
    const int lane = tid % ggufc::WARP_SIZE;
    const int group = lane / 4;  // fragment row (A) / column (B)
    const int pair = lane % 4;   // fragment K position
    const i64 n0 = static_cast<i64>(blockIdx.x) * TILE_N;
    const i64 m0 = static_cast<i64>(blockIdx.y) * TILE_M;
    // row_bytes and the offsets inside a row fit in int; only row starts need 64 bits
    const int row_bytes = static_cast<int>(K / Staged::BLOCK_WEIGHTS * Staged::BLOCK_BYTES);
    const int steps = static_cast<int>((K + STEP_K - 1) / STEP_K);

    // What this thread copies each step, fixed for the whole loop.  Activations: chunk column
    // a_col of rows a_row + 32i.  Weights: the chunks w_half, w_half + 2, ... of row w_row
    // (two lanes per row: a warp's copy covers 32 contiguous bytes of each of 16 rows).
    const int a_row = tid / A_ROW_CHUNKS;
    const int a_col = tid % A_ROW_CHUNKS;
    constexpr int A_ROWS_APART = THREADS / A_ROW_CHUNKS;
    const act_t* a_src = x + (m0 + a_row) * K + a_col * (CHUNK / static_cast<int>(sizeof(act_t)));
    const i64 a_rows_apart = A_ROWS_APART * K;
    const int a_dst = a_row * A_ROW_BYTES + (a_col ^ (a_row % 8)) * CHUNK;  // same for all i
    int a_rows_valid = 0;
#pragma unroll
    for (int i = 0; i < TILE_M / A_ROWS_APART; ++i) {
        a_rows_valid |= (m0 + a_row + i * A_ROWS_APART < M) << i;
    }
    const int w_row = tid / 2;
    const int w_half = tid % 2;
    const i64 w_row_offset = (n0 + w_row) * row_bytes;
    const u8* w_src = blocks + w_row_offset;
    const int w_row_misalignment = static_cast<int>(w_row_offset) & (CHUNK - 1);
    // bytes from the row's start to the tensor's end, capped past any offset a copy reaches
    // within the row: copies never read beyond the tensor
    const i64 w_left = N * static_cast<i64>(row_bytes) - w_row_offset;
    const int w_reach = row_bytes + CHUNK * (BODY_CHUNKS + HEADER_CHUNKS);
    const int w_row_left =
        static_cast<int>(w_left <= 0 ? 0 : (w_left < w_reach ? w_left : w_reach));
    // no copy of any row of this block needs clamping (all but the tensor's last block)
    const bool block_inside = (n0 + TILE_N + 1) * static_cast<i64>(row_bytes) + w_reach <=
                              N * static_cast<i64>(row_bytes);

    // chunk ``index`` of the aligned chunks covering the row's bytes from ``start`` on
    auto stage_chunk = [&](u8* slot, int start, int index) {
        const int offset = start - ((w_row_misalignment + start) & (CHUNK - 1)) + CHUNK * index;
        if (block_inside) {
            ggufc::cp_async_16(slot, w_src + offset);
        } else {
            const int left = w_row_left - offset;
            ggufc::cp_async_16_fill(slot, w_src + offset, left <= 0 ? 0 : (left < CHUNK ? left : CHUNK));
        }
    };
    auto issue_activations = [&](int step, int stage) {
        if (step >= steps) {
            return;
        }
        u8* tile = shared + stage * A_STAGE_BYTES + a_dst;
        const i64 k0 = static_cast<i64>(step) * STEP_K;
        const bool k_valid = k0 + a_col * (CHUNK / static_cast<int>(sizeof(act_t))) < K;
        const act_t* src = a_src + k0;
#pragma unroll
        for (int i = 0; i < TILE_M / A_ROWS_APART; ++i) {
            const bool valid = k_valid && ((a_rows_valid >> i) & 1);
            ggufc::cp_async_16_fill(tile + i * A_ROWS_APART * A_ROW_BYTES, src + i * a_rows_apart,
                           valid ? CHUNK : 0);
        }
    };
    auto issue_body = [&](int step, int stage) {
        if (step >= steps) {
            return;
        }
        u8* slot = shared + BODY_OFFSET + stage * BODY_STAGE_BYTES + w_row * BODY_STRIDE;
        const int start0 = Staged::body_start(0, step);
        const int start1 = Staged::body_start(1, step);
#pragma unroll
        for (int i = 0; i < (BODY_CHUNKS + 1) / 2; ++i) {
            const int chunk = 2 * i + w_half;
            if (BODY_CHUNKS % 2 == 0 || chunk < BODY_CHUNKS) {
                const bool second = chunk >= Staged::BODY_CHUNKS_0;
                stage_chunk(slot + chunk * CHUNK, second ? start1 : start0,
                            second ? chunk - Staged::BODY_CHUNKS_0 : chunk);
            }
        }
    };
    auto issue_header = [&](int step, int stage) {
        if (!HAS_TABLE || step >= steps) {
            return;
        }
        u8* slot = shared + HEADER_OFFSET + stage * HEADER_STAGE_BYTES + w_row * HEADER_STRIDE;
#pragma unroll
        for (int i = 0; i < (HEADER_CHUNKS + 1) / 2; ++i) {
            const int chunk = 2 * i + w_half;
            if (HEADER_CHUNKS % 2 == 0 || chunk < HEADER_CHUNKS) {
                stage_chunk(slot + chunk * CHUNK, Staged::header_start(step), chunk);
            }
        }
    };
    // step ``step``'s copies: its activations and body into ``stage``, and the next step's
    // header into the stage after (see the copy groups below)
    auto issue_step = [&](int step, int stage) {
        issue_activations(step, stage);
        issue_body(step, stage);
        issue_header(step + 1, (stage + 1) % STAGES);
    };
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
    auto prepare_table = [&](int step, int table_index, int stage) {
        const u8* header =
            shared + HEADER_OFFSET + stage * HEADER_STAGE_BYTES + table_row * HEADER_STRIDE;
        const int misalignment =
            Staged::ALIGNED ? 0
                            : (table_row_misalignment + Staged::header_start(step)) & (CHUNK - 1);
        const int part = K_GROUPS * (step & 3) + table_group;
        u32* table = reinterpret_cast<u32*>(shared + TABLE_OFFSET) + table_index * TABLE_WORDS;
        table[table_group * TILE_N + table_row] =
            Staged::template prepare<act_t>(header, misalignment, part);
    };

    // Every weight row this lane decodes is, modulo 16, row ``group`` or ``group + 8`` of the
    // tile (mma.sync: n0 + warp_n * 64 + 8j + group; wgmma: rows ``row`` and ``row + 8``), and
    // 16 rows are a whole number of 16-byte chunks, so two misalignments serve all of them.
    const int row_misalignment[2] = {(group * row_bytes) & (CHUNK - 1),
                                     ((group + 8) * row_bytes) & (CHUNK - 1)};
    auto step_misalignments = [&](int step, int (&misalignment)[2]) {
        misalignment[0] = misalignment[1] = 0;
        if (!Staged::ALIGNED) {
            const int start = Staged::row_start(step);
            misalignment[0] = (row_misalignment[0] + start) & (CHUNK - 1);
            misalignment[1] = (row_misalignment[1] + start) & (CHUNK - 1);
        }
    };

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // wgmma: warpgroup g owns weight rows 64g .. 64g + 63, its warp r rows 16r .. 16r + 15 of
    // those; this lane decodes rows ``row`` and ``row + 8`` into A fragments
    namespace wg = ggufc::wg;
    constexpr int WGMMA_M = 64;
    constexpr int A_FRAGMENT_ROWS = 16;
    static_assert(TILE_N == (THREADS / wg::WARPGROUP_THREADS) * WGMMA_M, "a warpgroup per 64 rows");
    static_assert(A_STAGE_BYTES % wg::SWIZZLE_ATOM_BYTES == 0, "stages start on swizzle atoms");
    const int warpgroup = tid / wg::WARPGROUP_THREADS;
    const int rank = warp % (wg::WARPGROUP_THREADS / ggufc::WARP_SIZE);
    const int row = warpgroup * WGMMA_M + rank * A_FRAGMENT_ROWS + group;
    float acc[TILE_M / 2];
#pragma unroll
    for (int i = 0; i < TILE_M / 2; ++i) {
        acc[i] = 0.0f;
    }
    const u32 a_tiles = tc::shared_address(shared);
    auto compute = [&](int step, int stage) {
        const u8* body = shared + BODY_OFFSET + stage * BODY_STAGE_BYTES + row * BODY_STRIDE;
        const u32* table = reinterpret_cast<const u32*>(shared + TABLE_OFFSET) +
                           (step & 1) * TABLE_WORDS + row;
        int misalignment[2];
        step_misalignments(step, misalignment);
        // the last step of a K % 64 == 32 row has no second part (uniform over the block)
        const bool second_part = static_cast<i64>(step) * STEP_K + PART < K;
        u32 a[K_GROUPS][SUB_STEPS][4];
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
            u32 low_rows[SUB_STEPS][2];
            u32 high_rows[SUB_STEPS][2];
            Staged::template fragment<act_t>(body, misalignment[0],
                                             HAS_TABLE ? table[g * TILE_N] : 0u, g, pair, step,
                                             low_rows);
            Staged::template fragment<act_t>(body + 8 * BODY_STRIDE, misalignment[1],
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
        const u32 a_tile = a_tiles + stage * A_STAGE_BYTES;
        wg::fence();
#pragma unroll
        for (int g = 0; g < K_GROUPS; ++g) {
            if (g == 0 || second_part) {
#pragma unroll
                for (int s = 0; s < SUB_STEPS; ++s) {
                    const int k_bytes = (g * PART + s * MMA_K) * static_cast<int>(sizeof(act_t));
                    wg::mma_m64n{{ tile_m }}k16<act_t>(acc, a[g][s], wg::descriptor(a_tile + k_bytes));
                }
            }
        }
        wg::commit();
    };

#else
    // mma.sync: 8 warps, 2 (M) x 2 (N) x 2 (K groups)
    const int k_group = warp / (WARPS_M * WARPS_N);
    const int warp_m = (warp / WARPS_N) % WARPS_M;
    const int warp_n = warp % WARPS_N;
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
    int a_chunk_offset[SUB_STEPS];
#pragma unroll
    for (int s = 0; s < SUB_STEPS; ++s) {
        const int chunk = (k_group * PART + s * MMA_K) / 8 + lane / 16;
        a_chunk_offset[s] = (chunk ^ (lane % 8)) * CHUNK;
    }

    auto compute = [&](int step, int stage) {
        // the last step of a K % 64 == 32 row has no part for K group 1
        if (static_cast<i64>(step) * STEP_K + k_group * PART >= K) {
            return;
        }
        const u8* a_tile = shared + stage * A_STAGE_BYTES + a_row_offset;
        u32 a[SUB_STEPS][FRAGS_M][4];
#pragma unroll
        for (int s = 0; s < SUB_STEPS; ++s) {
#pragma unroll
            for (int i = 0; i < FRAGS_M; ++i) {
                tc::load_matrix_x4(a[s][i], a_tile + i * MMA_M * A_ROW_BYTES + a_chunk_offset[s]);
            }
        }
        const u8* body = shared + BODY_OFFSET + stage * BODY_STAGE_BYTES +
                         (warp_n * WARP_TILE_N + group) * BODY_STRIDE;
        const u32* table = reinterpret_cast<const u32*>(shared + TABLE_OFFSET) +
                           (step & 1) * TABLE_WORDS + k_group * TILE_N + warp_n * WARP_TILE_N +
                           group;
        int misalignment[2];
        step_misalignments(step, misalignment);
#pragma unroll
        for (int j = 0; j < FRAGS_N; ++j) {
            u32 b[SUB_STEPS][2];
            Staged::template fragment<act_t>(body + j * MMA_N * BODY_STRIDE, misalignment[j % 2],
                                             HAS_TABLE ? table[j * MMA_N] : 0u, k_group, pair,
                                             step, b);
#pragma unroll
            for (int s = 0; s < SUB_STEPS; ++s) {
#pragma unroll
                for (int i = 0; i < FRAGS_M; ++i) {
                    tc::mma<act_t>(acc[i][j], a[s][i], b[s]);
                }
            }
        }
    };

#endif
    // a stage is refilled the step after its products ran
    constexpr int PREFETCH = STAGES - 1;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // No block barrier a step: shared-memory barriers track each stage, so that the two
    // warpgroups run out of step and one decodes while the other's products run.  Step t's
    // copies (A t, body t, header t + 1) arrive on filled[t % STAGES] as they land; a thread
    // done with step t (its products completed) arrives on drained[t % STAGES], and the
    // stage is refilled once all have.  Each barrier counts THREADS arrivals a phase, phase
    // k of stage s being step s + k STAGES.  The scale tables are built a step ahead, while
    // the products run, by the warpgroup that reads them, ordered by its own barrier.
    __shared__ wg::u64 filled[STAGES];
    __shared__ wg::u64 drained[STAGES];
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            wg::barrier_init(&filled[s], THREADS);
            wg::barrier_init(&drained[s], THREADS);
        }
    }
    __syncthreads();
    issue_header(0, 0);
#pragma unroll
    for (int s = 0; s < PREFETCH; ++s) {
        issue_step(s, s);
        if (s < steps) {
            wg::arrive_after_copies(&filled[s]);
        }
    }
    int stage = 0;  // step % STAGES
    for (int step = 0; step < steps; ++step) {
        const int next = stage == STAGES - 1 ? 0 : stage + 1;
        wg::wait_phase(&filled[stage], (step / STAGES) & 1);
        wg::fence_async_shared();  // the copies' writes, seen by wgmma
        if (HAS_TABLE) {
            if (step == 0) {
                prepare_table(0, 0, 0);
            }
            // every thread of the warpgroup has built step's table and read step - 1's
            wg::warpgroup_sync(warpgroup);
        }
        compute(step, stage);
        // While the products run, refill the stage of step - 1 with step + PREFETCH.  At step
        // 0 that stage is unused; the header slot it also fills (stage 0's, with step
        // STAGES's header) was read by prepare_table(0) before the warpgroup barrier above,
        // in the warpgroup whose threads copy those rows (w_row = tid / 2).
        const int ahead = (stage + PREFETCH) % STAGES;
        if (step + PREFETCH < steps) {
            if (step > 0) {
                wg::wait_phase(&drained[ahead], ((step - 1) / STAGES) & 1);
            }
            issue_step(step + PREFETCH, ahead);
            wg::arrive_after_copies(&filled[ahead]);
        }
        if (HAS_TABLE && step + 1 < steps) {
            prepare_table(step + 1, (step + 1) & 1, next);  // its header came with step's copies
        }
        wg::wait<0>();
        wg::arrive(&drained[stage]);
        stage = next;
    }
#else
    // Copy groups: before the loop, {header 0, A 0, body 0, header 1}, {A 1, body 1, header 2},
    // ... up to A PREFETCH - 1; step t commits {A t+PREFETCH, body t+PREFETCH, header
    // t+PREFETCH+1}.  So when step t waits for its own A and body it also has header t+1, whose
    // table it builds while the products of step t run.  Step t's copies refill the stage of
    // step t + PREFETCH - STAGES = t - 1, which every thread (its products too) has finished
    // with by the barrier ending the step before.
    issue_header(0, 0);
#pragma unroll
    for (int s = 0; s < PREFETCH; ++s) {
        issue_step(s, s);
        ggufc::cp_async_commit();
    }
    ggufc::cp_async_wait<PREFETCH - 1>();
    __syncthreads();
    if (HAS_TABLE) {
        prepare_table(0, 0, 0);
        __syncthreads();
    }
    int stage = 0;  // step % STAGES
    for (int step = 0; step < steps; ++step) {
        const int ahead = (stage + PREFETCH) % STAGES;
        const int next = stage == STAGES - 1 ? 0 : stage + 1;
        issue_step(step + PREFETCH, ahead);
        ggufc::cp_async_commit();
        if (HAS_TABLE && step + 1 < steps) {
            prepare_table(step + 1, (step + 1) & 1, next);
        }
        compute(step, stage);
        stage = next;
        ggufc::cp_async_wait<PREFETCH - 1>();
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
            if (m < M && n < N) {
                out[m * N + n] = ggufc::from_float<act_t>(acc[4 * i + e] + bias_of[e / 2]);
            }
        }
    }
#else
    // K group 1 hands its sums to K group 0, which adds them and writes out
    ggufc::cp_async_wait<0>();
    __syncthreads();
    float4* exchange = reinterpret_cast<float4*>(shared) +
                       (warp_m * WARPS_N + warp_n) * FRAGS_M * FRAGS_N * ggufc::WARP_SIZE + lane;
    if (k_group == 1) {
#pragma unroll
        for (int i = 0; i < FRAGS_M; ++i) {
#pragma unroll
            for (int j = 0; j < FRAGS_N; ++j) {
                exchange[(i * FRAGS_N + j) * ggufc::WARP_SIZE] =
                    make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
            }
        }
    }
    __syncthreads();
    if (k_group == 1) {
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
            const float4 other = exchange[(i * FRAGS_N + j) * ggufc::WARP_SIZE];
            const float sums[4] = {acc[i][j][0] + other.x, acc[i][j][1] + other.y,
                                   acc[i][j][2] + other.z, acc[i][j][3] + other.w};
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
{% endif %}
