// ggufc matvec: out[m, n] = sum_k x[m, k] * W[n, k] + bias[n] for Q4_K weights,
// half activations, float32 accumulation.
//
// One simdgroup per weight row n (4 rows per threadgroup of 128 threads,
// threadgroups.x = ceil(N / 4)); the lanes walk the row's parts (32 weights each) with a
// stride of 32 parts and simd_sum reduces.  Each decoded part is used for up to 1
// activation rows (threadgroups.y = ceil(M / 1)): the weights are read once for all.
// Template constants: format, dtype, geometry.  Arguments: M, N, K, has_bias.
namespace ggufc_matvec_q4_k_f16_impl {
typedef ggufc::Q4_K Format;
enum { WARPS_PER_BLOCK = 4, MAX_ROWS = 1 };
}  // namespace ggufc_matvec_q4_k_f16_impl

kernel void ggufc_matvec_q4_k_f16(
    device const half* x [[buffer(0)]],
    device const uchar* blocks [[buffer(1)]],
    device const half* bias [[buffer(2)]],
    device half* out [[buffer(3)]],
    constant long& M [[buffer(4)]],
    constant long& N [[buffer(5)]],
    constant long& K [[buffer(6)]],
    constant int& has_bias [[buffer(7)]],
    uint3 group [[threadgroup_position_in_grid]],
    ushort simdgroup [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
    using namespace ggufc_matvec_q4_k_f16_impl;
    const long n = long(group.x) * WARPS_PER_BLOCK + simdgroup;
    if (n >= N) {
        return;  // the whole simdgroup leaves together: simd_sum below sees every lane
    }
    const long m0 = long(group.y) * MAX_ROWS;
    const int rows = int(min(M - m0, long(MAX_ROWS)));
    const int blocks_per_row = int(K / Format::BLOCK_WEIGHTS);
    const int parts = blocks_per_row * Format::PARTS;
    device const uchar* row = blocks + n * blocks_per_row * Format::BLOCK_BYTES;
    device const half* xs = x + m0 * K;

    float acc[MAX_ROWS];
    for (int r = 0; r < MAX_ROWS; ++r) {
        acc[r] = 0.0f;
    }
    for (int p = lane; p < parts; p += ggufc::SIMD_WIDTH) {
        const int block = p / Format::PARTS;
        float w[ggufc::PART_WEIGHTS];
        Format::dequantize_part(row + block * Format::BLOCK_BYTES, p % Format::PARTS, w);
        const long k0 = long(p) * ggufc::PART_WEIGHTS;
        for (int r = 0; r < MAX_ROWS; ++r) {
            if (r < rows) {
                acc[r] += ggufc::dot_part(w, xs + r * K + k0);
            }
        }
    }
    for (int r = 0; r < MAX_ROWS; ++r) {
        if (r < rows) {
            const float total = simd_sum(acc[r]);
            if (lane == 0) {
                const float b = has_bias != 0 ? float(bias[n]) : 0.0f;
                out[(m0 + r) * N + n] = half(total + b);
            }
        }
    }
}
