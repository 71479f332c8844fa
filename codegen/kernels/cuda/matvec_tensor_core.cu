// ggufc {{ kind }} on tensor cores: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for
// {{ format }} weights, {{ act_type }} activations, float32 accumulation.  Any M; the weights are
// read once for up to {{ tile }} activation rows (the matvec_batched bucket).
//
// A block of {{ warps_per_block }} warps computes out[m0 .. m0+{{ tile - 1 }}][n0 .. n0+{{ tile - 1 }}] (grid = (ceil(N / {{ tile }}), ceil(M / {{ tile }}))).
// mma.sync m16n8k16 with A = activations (rows m0 + 0..7; rows 8..15 of A are zero) and
// B = weights (8 weight rows as its 8 columns).  The K order inside an mma is free as long as
// A and B agree: lane (g, c) = (lane / 4, lane % 4) supplies, in mma j, weights 4j..4j+3 of
// part step_part(c, i) of weight row n0 + g (B) and the activations at those positions of row
// m0 + g (A): block c + 4i of the step for the 32-weight formats; a K-quant lane's two parts are the two
// nibbles of the same quant bytes.
//
// The warps split K by steps of {{ step_blocks }} block(s) per weight row: warp w takes steps w, w + {{ warps_per_block }}, ...
// Each warp streams its steps global -> shared memory with 16-byte cp.async (L2 only) into a
// ring of {{ stages }} buffers ({{ tile }} rows each), {{ stages - 1 }} steps ahead, so many bytes are in flight without
// holding registers.  A lane decodes its part from the staged bytes (2-byte aligned words) to
// integer pairs, to exact half2 integers (the 1024.0 exponent trick), then applies the part's
// scale (and offset) per 16 weights in half2{% if dtype == "bfloat16" %} and converts the weights to bfloat16{% endif %}.  The warps' partial sums
// meet in shared memory at the end.  Rows past N or M, and parts past K, contribute zeros.
// Template constants: format, dtype, geometry.  Kernel arguments: M, N, K, has_bias.
namespace {{ entry }}_impl {
using act_t = {{ act_type }};
using Format = ggufc::{{ format }};
using ggufc::i64;
using ggufc::u32;
using ggufc::u8;
constexpr int WARPS = {{ warps_per_block }};
constexpr int TILE = {{ tile }};  // weight rows (mma N) and activation rows per block
constexpr int STAGES = {{ stages }};
constexpr int STEP_BLOCKS = {{ step_blocks }};
constexpr int STEP_PARTS = STEP_BLOCKS * Format::PARTS;
constexpr int STEP_BYTES = STEP_BLOCKS * Format::BLOCK_BYTES;
constexpr int LANE_GROUPS = 4;  // lanes sharing a weight row: c = lane % 4
constexpr int SUBSTEPS = STEP_PARTS / LANE_GROUPS;
constexpr int CHUNK_BYTES = 16;
// a step's bytes start at any even offset of a 16-byte chunk
constexpr int ROW_CHUNKS = (STEP_BYTES + CHUNK_BYTES - 2 + CHUNK_BYTES - 1) / CHUNK_BYTES;
constexpr int ROW_STAGE_BYTES = ROW_CHUNKS * CHUNK_BYTES;
constexpr int STAGE_BYTES = TILE * ROW_STAGE_BYTES;
constexpr int MMAS_PER_PART = ggufc::PART_WEIGHTS / 4;
constexpr int ACCUMULATORS = {{ accumulators }};
static_assert(STEP_PARTS % LANE_GROUPS == 0, "every lane group decodes whole parts");
static_assert(WARPS * ggufc::WARP_SIZE == {{ threads }}, "block of WARPS warps");

// d += a (16 x 16, row-major) * b (16 x 8, column-major)
__device__ __forceinline__ void mma(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.{{ mma_ptx_type }}.{{ mma_ptx_type }}.f32 "
        {% raw %}"{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"{% endraw %}
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}


// The part lane group c decodes in substep sub of a step.  Partner parts (the two nibbles of
// the same quant bytes) go to the same lane, so their bytes are read once.
template <typename F = Format>
__device__ __forceinline__ int step_part(int c, int sub) {
    if constexpr (F::PARTS == 1) {
        return c + LANE_GROUPS * sub;  // blocks c, c + 4 of the step
    } else {
        constexpr int PARTNER = F::PART_PARTNER_OFFSET;
        // PARTNER 1: parts 2c, 2c + 1; PARTNER 2: parts (t, t + 2) of half c / 2, t = c % 2
        return (c / PARTNER) * 2 * PARTNER + c % PARTNER + PARTNER * sub;
    }
}

// Scale (and offset) of half h of a part as the B operand type, twice.
struct PairAffine {
    {{ pair_type }} scale[2];
    {{ pair_type }} offset[2];
};

__device__ __forceinline__ PairAffine pair_affine(const ggufc::PartAffine& affine) {
    PairAffine out;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        out.scale[h] = {{ pair_from_float }}(affine.scale[h]);
        out.offset[h] = {{ pair_from_float }}(-affine.offset[h]);
    }
    return out;
}

// The B operand register of an integer pair of half h: scale * (q - zero point) - offset.
__device__ __forceinline__ u32 weight_pair(u32 pair, const PairAffine& affine, int h) {
    const __half2 q = ggufc::half_pair_of_ints<Format::PAIR_ZERO_POINT>(pair);
{% if dtype == "float16" %}
    const __half2 qv = q;
{% else %}
    const __nv_bfloat162 qv = __float22bfloat162_rn(__half22float2(q));
{% endif %}
    {{ pair_type }} w;
    if constexpr (Format::HAS_OFFSET) {
        w = __hfma2(qv, affine.scale[h], affine.offset[h]);
    } else {
        w = __hmul2(qv, affine.scale[h]);
    }
    return *reinterpret_cast<u32*>(&w);
}
}  // namespace {{ entry }}_impl

extern "C" __global__ void __launch_bounds__({{ threads }}, {{ min_blocks_per_sm }}) {{ entry }}(
    const {{ entry }}_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const {{ entry }}_impl::act_t* bias, {{ entry }}_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace {{ entry }}_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    __shared__ __align__(16) u8 stage_all[WARPS][STAGES * STAGE_BYTES];
    __shared__ float partial[WARPS][TILE][TILE];
    const int warp = static_cast<int>(threadIdx.x) / ggufc::WARP_SIZE;
    const int lane = static_cast<int>(threadIdx.x) % ggufc::WARP_SIZE;
    const int g = lane / LANE_GROUPS;
    const int c = lane % LANE_GROUPS;
    const i64 n0 = static_cast<i64>(blockIdx.x) * TILE;
    const i64 m0 = static_cast<i64>(blockIdx.y) * TILE;
    const int tile_rows = static_cast<int>(N - n0 < TILE ? N - n0 : TILE);
    const int blocks_per_row = static_cast<int>(K / Format::BLOCK_WEIGHTS);
    const i64 row_bytes = static_cast<i64>(blocks_per_row) * Format::BLOCK_BYTES;
    const int steps = (blocks_per_row + STEP_BLOCKS - 1) / STEP_BLOCKS;
    const int my_steps = warp < steps ? (steps - warp + WARPS - 1) / WARPS : 0;
    const bool has_x = m0 + g < M;
    const act_t* x_row = x + (has_x ? (m0 + g) * K : 0);
    const bool has_row = g < tile_rows;
    const ggufc::u8* my_row = blocks + (n0 + (has_row ? g : 0)) * row_bytes;
    u8* stage = stage_all[warp];

    // The 16-byte chunks this lane copies of each step: chunk t = lane + 32 i of the tile's
    // TILE x ROW_CHUNKS (row-major); the row and shared offset do not change between steps.
    constexpr int COPY_ITERATIONS = (TILE * ROW_CHUNKS + ggufc::WARP_SIZE - 1) / ggufc::WARP_SIZE;
    const u8* copy_row[COPY_ITERATIONS];
    int copy_offset[COPY_ITERATIONS];  // chunk's byte offset in the row; < 0: no chunk
#pragma unroll
    for (int i = 0; i < COPY_ITERATIONS; ++i) {
        const int t = lane + ggufc::WARP_SIZE * i;
        const int r = t / ROW_CHUNKS;
        const bool used = t < TILE * ROW_CHUNKS && r < tile_rows;
        copy_row[i] = blocks + (n0 + (used ? r : 0)) * row_bytes;
        copy_offset[i] = used ? (t % ROW_CHUNKS) * CHUNK_BYTES : -1;
    }
    // Copies step `step` of the tile's rows into ring slot `slot` (one commit group).
    auto issue = [&](int step, int slot) {
        const i64 begin = static_cast<i64>(step) * STEP_BYTES;
        const i64 end = min(begin + STEP_BYTES, row_bytes);
        u8* slot_stage = stage + slot * STAGE_BYTES;
#pragma unroll
        for (int i = 0; i < COPY_ITERATIONS; ++i) {
            const u8* first = reinterpret_cast<const u8*>(
                reinterpret_cast<size_t>(copy_row[i] + begin) & ~static_cast<size_t>(CHUNK_BYTES - 1));
            const u8* source = first + copy_offset[i];
            if (copy_offset[i] >= 0 && source < copy_row[i] + end) {
                const int r = (lane + ggufc::WARP_SIZE * i) / ROW_CHUNKS;
                ggufc::cp_async_16(slot_stage + r * ROW_STAGE_BYTES + copy_offset[i], source);
            }
        }
        ggufc::cp_async_commit();
    };

    // independent accumulators, so consecutive mma do not wait on each other's result
    float acc[ACCUMULATORS][4] = {};
#pragma unroll
    for (int i = 0; i < STAGES - 1; ++i) {
        if (i < my_steps) {
            issue(warp + WARPS * i, i);
        } else {
            ggufc::cp_async_commit();  // an empty group keeps the wait count uniform
        }
    }
    for (int i = 0; i < my_steps; ++i) {
        ggufc::cp_async_wait<STAGES - 2>();
        __syncwarp();  // every lane's copies of step i landed; slot (i - 1) is free
        const int ahead = i + STAGES - 1;
        if (ahead < my_steps) {
            issue(warp + WARPS * ahead, ahead % STAGES);
        } else {
            ggufc::cp_async_commit();
        }
        const int step = warp + WARPS * i;
        const u8* row_stage = stage + (i % STAGES) * STAGE_BYTES + g * ROW_STAGE_BYTES +
                              (reinterpret_cast<size_t>(my_row + static_cast<i64>(step) * STEP_BYTES) &
                               (CHUNK_BYTES - 1));
#pragma unroll
        for (int sub = 0; sub < SUBSTEPS; ++sub) {
            const int part_in_step = step_part(c, sub);
            const int block_in_step = part_in_step / Format::PARTS;
            const int part = part_in_step % Format::PARTS;
            const int block = step * STEP_BLOCKS + block_in_step;
            const bool in_k = block < blocks_per_row;
            // activations of the part's 32 positions, as 16 pairs
            u32 a_pairs[16];
            if (has_x && in_k) {
                const uint4* source = reinterpret_cast<const uint4*>(
                    x_row + static_cast<i64>(block) * Format::BLOCK_WEIGHTS + part * ggufc::PART_WEIGHTS);
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    const uint4 v = source[q];
                    a_pairs[4 * q] = v.x;
                    a_pairs[4 * q + 1] = v.y;
                    a_pairs[4 * q + 2] = v.z;
                    a_pairs[4 * q + 3] = v.w;
                }
            } else {
#pragma unroll
                for (int q = 0; q < 16; ++q) {
                    a_pairs[q] = 0u;
                }
            }
            u32 b_pairs[16];
            if (has_row && in_k) {
                const auto words =
                    Format::load_part_words(row_stage + block_in_step * Format::BLOCK_BYTES, part);
                u32 ints[16];
                ggufc::PartAffine affine;
                Format::integer_pairs(words, part, ints, affine);
                const PairAffine pairs_affine = pair_affine(affine);
#pragma unroll
                for (int j = 0; j < 16; ++j) {
                    b_pairs[j] = weight_pair(ints[j], pairs_affine, j / 8);
                }
            } else {
#pragma unroll
                for (int j = 0; j < 16; ++j) {
                    b_pairs[j] = 0u;
                }
            }
#pragma unroll
            for (int j = 0; j < MMAS_PER_PART; ++j) {
                const u32 a[4] = {a_pairs[2 * j], 0u, a_pairs[2 * j + 1], 0u};
                const u32 b[2] = {b_pairs[2 * j], b_pairs[2 * j + 1]};
                mma(acc[j % ACCUMULATORS], a, b);
            }
        }
    }
    ggufc::cp_async_wait<0>();  // no copy may still target shared memory when the block exits

    // acc[0], acc[1]: activation row m0 + g, weight rows n0 + 2c, n0 + 2c + 1 (acc[2..3]: the
    // zero rows 8..15 of A)
    float sums[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < ACCUMULATORS; ++i) {
        sums[0] += acc[i][0];
        sums[1] += acc[i][1];
    }
    partial[warp][g][2 * c] = sums[0];
    partial[warp][g][2 * c + 1] = sums[1];
    __syncthreads();
    const int t = static_cast<int>(threadIdx.x);
    if (t < TILE * TILE) {
        const int m = t / TILE;
        const int n = t % TILE;
        if (m0 + m < M && n0 + n < N) {
            float total = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w) {
                total += partial[w][m][n];
            }
            if (has_bias) {
                total += ggufc::to_float(bias[n0 + n]);
            }
            out[(m0 + m) * N + n0 + n] = ggufc::from_float<act_t>(total);
        }
    }
}
