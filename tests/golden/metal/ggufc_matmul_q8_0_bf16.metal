// ggufc matmul: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q8_0 weights,
// bfloat activations, simdgroup matrices (simdgroup_bfloat8x8 operands, float accumulators).
//
// A threadgroup of 128 threads (4 simdgroups side by side along N) computes a 32x64 tile of
// out (threadgroups = (ceil(N / 64), ceil(M / 32))); each simdgroup a 32x16 strip as 4x2
// 8x8 accumulators.  Per 64-wide K step the threadgroup stages x[32][64] and the dequantized
// weights W[64][64] in threadgroup memory (one 32-weight part per thread); rows past M or N
// and columns past K are zero-filled.  The output tile goes through threadgroup memory for
// the bias add and guarded stores.  Template constants: format, dtype, tiles.  Arguments:
// M, N, K, has_bias.
namespace ggufc_matmul_q8_0_bf16_impl {
typedef ggufc::Q8_0 Format;
typedef bfloat mma_t;
enum {
    TILE_M = 32,
    TILE_N = 64,
    TILE_K = 64,
    THREADS = 128,
    FRAG = 8,
    SIMDGROUP_N = TILE_N / 4,
    FRAGS_M = TILE_M / FRAG,
    FRAGS_N = SIMDGROUP_N / FRAG,
    A_BYTES = TILE_M * TILE_K * sizeof(mma_t),
    B_BYTES = TILE_N * TILE_K * sizeof(mma_t),
    C_BYTES = TILE_M * TILE_N * sizeof(float),
    SHARED_BYTES = A_BYTES + B_BYTES > C_BYTES ? A_BYTES + B_BYTES : C_BYTES,
};
}  // namespace ggufc_matmul_q8_0_bf16_impl

kernel void ggufc_matmul_q8_0_bf16(
    device const bfloat* x [[buffer(0)]],
    device const uchar* blocks [[buffer(1)]],
    device const bfloat* bias [[buffer(2)]],
    device bfloat* out [[buffer(3)]],
    constant long& M [[buffer(4)]],
    constant long& N [[buffer(5)]],
    constant long& K [[buffer(6)]],
    constant int& has_bias [[buffer(7)]],
    uint3 group [[threadgroup_position_in_grid]],
    ushort tid [[thread_index_in_threadgroup]],
    ushort simdgroup [[simdgroup_index_in_threadgroup]]) {
    using namespace ggufc_matmul_q8_0_bf16_impl;
    // one buffer, float-aligned: the staging tiles, then (after the K loop) the output tile
    threadgroup float shared[SHARED_BYTES / sizeof(float)];
    threadgroup mma_t* a_tile = reinterpret_cast<threadgroup mma_t*>(shared);
    threadgroup mma_t* b_tile = reinterpret_cast<threadgroup mma_t*>(shared + A_BYTES / sizeof(float));
    threadgroup float* c_tile = shared;

    const long n0 = long(group.x) * TILE_N;
    const long m0 = long(group.y) * TILE_M;
    const long blocks_per_row = K / Format::BLOCK_WEIGHTS;
    const int b_row = tid / (TILE_K / ggufc::PART_WEIGHTS);
    const int b_col = (tid % (TILE_K / ggufc::PART_WEIGHTS)) * ggufc::PART_WEIGHTS;
    const bool b_row_valid = n0 + b_row < N;
    device const uchar* b_src = blocks + (b_row_valid ? (n0 + b_row) * blocks_per_row * Format::BLOCK_BYTES : 0);

    simdgroup_float8x8 acc[FRAGS_M][FRAGS_N];
    for (int i = 0; i < FRAGS_M; ++i) {
        for (int j = 0; j < FRAGS_N; ++j) {
            acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
        }
    }

    for (long k0 = 0; k0 < K; k0 += TILE_K) {
        for (int c = tid; c < TILE_M * TILE_K / ggufc::CHUNK; c += THREADS) {
            const int row = c / (TILE_K / ggufc::CHUNK);
            const int col = (c % (TILE_K / ggufc::CHUNK)) * ggufc::CHUNK;
            float v[ggufc::CHUNK];
            if (m0 + row < M && k0 + col < K) {
                ggufc::load_chunk(x + (m0 + row) * K + k0 + col, v);
            } else {
                for (int j = 0; j < ggufc::CHUNK; ++j) {
                    v[j] = 0.0f;
                }
            }
            ggufc::store_chunk(a_tile + row * TILE_K + col, v);
        }
        {
            float w[ggufc::PART_WEIGHTS];
            const long k = k0 + b_col;
            if (b_row_valid && k < K) {
                const long block = k / Format::BLOCK_WEIGHTS;
                const int part = int(k % Format::BLOCK_WEIGHTS) / ggufc::PART_WEIGHTS;
                Format::dequantize_part(b_src + block * Format::BLOCK_BYTES, part, w);
            } else {
                for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
                    w[j] = 0.0f;
                }
            }
            for (int j = 0; j < ggufc::PART_WEIGHTS; j += ggufc::CHUNK) {
                ggufc::store_chunk(b_tile + b_row * TILE_K + b_col + j, w + j);
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int ks = 0; ks < TILE_K; ks += FRAG) {
            simdgroup_bfloat8x8 a[FRAGS_M];
            simdgroup_bfloat8x8 b[FRAGS_N];
            for (int i = 0; i < FRAGS_M; ++i) {
                simdgroup_load(a[i], a_tile + i * FRAG * TILE_K + ks, TILE_K);
            }
            for (int j = 0; j < FRAGS_N; ++j) {
                // W is staged [n][k]; loading it transposed gives the K x N operand
                simdgroup_load(b[j], b_tile + (simdgroup * SIMDGROUP_N + j * FRAG) * TILE_K + ks,
                               TILE_K, ulong2(0, 0), true);
            }
            for (int i = 0; i < FRAGS_M; ++i) {
                for (int j = 0; j < FRAGS_N; ++j) {
                    simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }

    for (int i = 0; i < FRAGS_M; ++i) {
        for (int j = 0; j < FRAGS_N; ++j) {
            simdgroup_store(acc[i][j], c_tile + i * FRAG * TILE_N + simdgroup * SIMDGROUP_N + j * FRAG,
                            TILE_N);
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const int col = tid % TILE_N;
    const long n = n0 + col;
    if (n < N) {
        const float b = has_bias != 0 ? float(bias[n]) : 0.0f;
        for (int row = tid / TILE_N; row < TILE_M; row += THREADS / TILE_N) {
            if (m0 + row < M) {
                out[(m0 + row) * N + n] = bfloat(c_tile[row * TILE_N + col] + b);
            }
        }
    }
}
