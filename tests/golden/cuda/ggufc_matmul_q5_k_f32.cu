
// ggufc matmul, float32 activations: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q5_K weights,
// float activations, tensor cores (mma.sync m16n8k8, float operands rounded to TF32,
// float32 accumulators).
//
// A block computes a 64x64 tile of out (grid = (ceil(N / 64), ceil(M / 64))) with
// 128 threads = 4 warps in 2x2, each warp a 32x32 sub-tile of 16x8 mma tiles.
// Per 64-wide K step the block stages x[64][64] (copied as is) and the dequantized
// weights W[64][64] (one part of 32 weights per thread) in shared memory, then runs the
// products; the global loads of the next step are issued before the products, so they
// overlap.  Rows past M, weight rows past N and columns past K are zero-filled, so ragged
// shapes need no other path.  Shared rows are padded by 16 bytes: the fragment loads of a
// warp (8 rows x 4 words) then hit 32 distinct banks.
// Template constants: format, dtype, tile geometry.  Kernel arguments: M, N, K, has_bias.
namespace ggufc_matmul_q5_k_f32_impl {
using act_t = float;
using mma_t = float;  // operand type as staged in shared memory
using Format = ggufc::Q5_K;
using ggufc::u32;
constexpr int TILE_M = 64;
constexpr int TILE_N = 64;
constexpr int TILE_K = 64;
constexpr int THREADS = 128;
constexpr int MMA_M = 16;
constexpr int MMA_N = 8;
constexpr int MMA_K = 8;
constexpr int WARPS_M = 2;
constexpr int WARPS_N = 2;
constexpr int WARP_TILE_M = TILE_M / WARPS_M;
constexpr int WARP_TILE_N = TILE_N / WARPS_N;
constexpr int FRAGS_M = WARP_TILE_M / MMA_M;
constexpr int FRAGS_N = WARP_TILE_N / MMA_N;
constexpr int ROW_PAD = 16 / sizeof(mma_t);
constexpr int LDS = TILE_K + ROW_PAD;  // elements per shared row, A and B alike
constexpr int CHUNK = 8;               // weights per shared store
// activations move as 16-byte words, unconverted (act_t is the staged operand type)
constexpr int WORD_ELEMENTS = 16 / sizeof(act_t);
constexpr int WORDS_PER_ROW = TILE_K / WORD_ELEMENTS;
constexpr int A_WORDS = TILE_M * WORDS_PER_ROW / THREADS;  // per thread and step
static_assert(TILE_N * (TILE_K / ggufc::PART_WEIGHTS) == THREADS, "one weight part per thread");
static_assert(TILE_M * WORDS_PER_ROW % THREADS == 0, "whole activation words per thread");
static_assert(sizeof(act_t) == sizeof(mma_t), "activations are staged as they are");

// One mma.sync: d += a (16 x MMA_K, row-major) * b (MMA_K x 8, column-major).
__device__ __forceinline__ void mma(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// The mma operand register of the float at p (its TF32 rounding).
__device__ __forceinline__ u32 operand(const mma_t* p) {
    u32 bits;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(*p));
    return bits;
}
// Fragment element (row, col) of a 16 x 8 A tile / 8 x 8 B tile for lane (group, pair):
// a[i]: rows group (+8 for odd i), cols pair (+4 for i >= 2); b[i]: k = pair (+4 for i = 1).
constexpr int K_HALF = 4;

}  // namespace ggufc_matmul_q5_k_f32_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_matmul_q5_k_f32(
    const ggufc_matmul_q5_k_f32_impl::act_t* x, const ggufc::u8* __restrict__ blocks,
    const ggufc_matmul_q5_k_f32_impl::act_t* bias, ggufc_matmul_q5_k_f32_impl::act_t* __restrict__ out,
    ggufc::i64 M, ggufc::i64 N, ggufc::i64 K, int has_bias) {
    using namespace ggufc_matmul_q5_k_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    using ggufc::i64;
    __shared__ __align__(16) mma_t a_tile[TILE_M * LDS];
    __shared__ __align__(16) mma_t b_tile[TILE_N * LDS];

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / ggufc::WARP_SIZE;
    const int lane = tid % ggufc::WARP_SIZE;
    const int group = lane / 4;  // fragment row (A) / column (B)
    const int pair = lane % 4;   // fragment K position

    const int warp_m = (warp / WARPS_N) * WARP_TILE_M;
    const int warp_n = (warp % WARPS_N) * WARP_TILE_N;
    const i64 n0 = static_cast<i64>(blockIdx.x) * TILE_N;
    const i64 m0 = static_cast<i64>(blockIdx.y) * TILE_M;
    const i64 blocks_per_row = K / Format::BLOCK_WEIGHTS;

    // this thread's weight part in each K step: row b_row of the tile, columns b_col..+31
    const int b_row = tid / (TILE_K / ggufc::PART_WEIGHTS);
    const int b_col = (tid % (TILE_K / ggufc::PART_WEIGHTS)) * ggufc::PART_WEIGHTS;
    const bool b_row_valid = n0 + b_row < N;
    const ggufc::u8* b_src =
        blocks + (b_row_valid ? (n0 + b_row) * blocks_per_row * Format::BLOCK_BYTES : 0);

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

    // the registers one K step travels through: raw weight part and activation words
    typename Format::Raw w_raw{};
    uint4 x_words[A_WORDS];
    auto load_step = [&](i64 k0) {
        const i64 k = k0 + b_col;
        if (b_row_valid && k < K) {
            const int part = static_cast<int>(k % Format::BLOCK_WEIGHTS) / ggufc::PART_WEIGHTS;
            w_raw = Format::load(b_src + (k / Format::BLOCK_WEIGHTS) * Format::BLOCK_BYTES, part);
        }
#pragma unroll
        for (int i = 0; i < A_WORDS; ++i) {
            const int c = tid + i * THREADS;
            const int row = c / WORDS_PER_ROW;
            const int col = (c % WORDS_PER_ROW) * WORD_ELEMENTS;
            if (m0 + row < M && k0 + col < K) {
                x_words[i] = *reinterpret_cast<const uint4*>(x + (m0 + row) * K + k0 + col);
            } else {
                x_words[i] = make_uint4(0u, 0u, 0u, 0u);
            }
        }
    };
    auto store_step = [&](i64 k0) {
#pragma unroll
        for (int i = 0; i < A_WORDS; ++i) {
            const int c = tid + i * THREADS;
            const int row = c / WORDS_PER_ROW;
            const int col = (c % WORDS_PER_ROW) * WORD_ELEMENTS;
            *reinterpret_cast<uint4*>(a_tile + row * LDS + col) = x_words[i];
        }
        float w[ggufc::PART_WEIGHTS];
        const i64 k = k0 + b_col;
        if (b_row_valid && k < K) {
            const int part = static_cast<int>(k % Format::BLOCK_WEIGHTS) / ggufc::PART_WEIGHTS;
            Format::decode(w_raw, part, w);
        } else {
#pragma unroll
            for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
                w[j] = 0.0f;
            }
        }
#pragma unroll
        for (int j = 0; j < ggufc::PART_WEIGHTS; j += CHUNK) {
            ggufc::store8(b_tile + b_row * LDS + b_col + j, w + j);
        }
    };

    load_step(0);
    for (i64 k0 = 0; k0 < K; k0 += TILE_K) {
        store_step(k0);
        __syncthreads();
        if (k0 + TILE_K < K) {
            load_step(k0 + TILE_K);  // in flight during the products below
        }
#pragma unroll
        for (int ks = 0; ks < TILE_K; ks += MMA_K) {
            u32 a[FRAGS_M][4];
            u32 b[FRAGS_N][2];

            const int kk = ks + pair;
#pragma unroll
            for (int i = 0; i < FRAGS_M; ++i) {
                const mma_t* rows = a_tile + (warp_m + i * MMA_M + group) * LDS + kk;
                a[i][0] = operand(rows);
                a[i][1] = operand(rows + 8 * LDS);
                a[i][2] = operand(rows + K_HALF);
                a[i][3] = operand(rows + 8 * LDS + K_HALF);
            }
#pragma unroll
            for (int j = 0; j < FRAGS_N; ++j) {
                const mma_t* cols = b_tile + (warp_n + j * MMA_N + group) * LDS + kk;
                b[j][0] = operand(cols);
                b[j][1] = operand(cols + K_HALF);
            }

#pragma unroll
            for (int i = 0; i < FRAGS_M; ++i) {
#pragma unroll
                for (int j = 0; j < FRAGS_N; ++j) {
                    mma(acc[i][j], a[i], b[j]);
                }
            }
        }
        __syncthreads();
    }

    // epilogue: accumulator (i, j, e) is out row group (+8 for e >= 2), column 2*pair + e % 2
#pragma unroll
    for (int j = 0; j < FRAGS_N; ++j) {
        const i64 n_base = n0 + warp_n + j * MMA_N + 2 * pair;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const i64 n = n_base + e % 2;
            if (n < N) {
                const float b = has_bias ? ggufc::to_float(bias[n]) : 0.0f;
#pragma unroll
                for (int i = 0; i < FRAGS_M; ++i) {
                    const i64 m = m0 + warp_m + i * MMA_M + group + 8 * (e / 2);
                    if (m < M) {
                        out[m * N + n] = ggufc::from_float<act_t>(acc[i][j][e] + b);
                    }
                }
            }
        }
    }
}


