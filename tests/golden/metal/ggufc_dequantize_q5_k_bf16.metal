// ggufc dequantize: out[i, :] = dequantize(W[i, :]) as bfloat, Q5_K rows: the
// embedding gather's kernel with row i for index i (no indices; M = N).
//
// One thread per (index, part): thread g decodes part g % (K/32) of row indices[g / (K/32)];
// only the rows named by an index are read.  threadgroups.x = ceil(M * K / 32 / 128).
// An index outside [0, N) yields a NaN row instead of an out-of-bounds read.
// Template constants: format, dtype, threads, gather (false for the dequantize kind).
// Arguments: M (indices), N, K; the dequantize kind's N, K.
namespace ggufc_dequantize_q5_k_bf16_impl {
typedef ggufc::Q5_K Format;
}  // namespace ggufc_dequantize_q5_k_bf16_impl

kernel void ggufc_dequantize_q5_k_bf16(
    device const uchar* blocks [[buffer(0)]],
    device bfloat* out [[buffer(1)]],
    constant long& N [[buffer(2)]],
    constant long& K [[buffer(3)]],
    uint g [[thread_position_in_grid]]) {
    using namespace ggufc_dequantize_q5_k_bf16_impl;
    const long M = N;  // every row, in order
    const long parts_per_row = K / ggufc::PART_WEIGHTS;
    if (long(g) >= M * parts_per_row) {
        return;
    }
    const long i = long(g) / parts_per_row;
    const int p = int(long(g) % parts_per_row);
    const long index = i;
    float w[ggufc::PART_WEIGHTS];
    if (index >= 0 && index < N) {
        const long blocks_per_row = K / Format::BLOCK_WEIGHTS;
        device const uchar* row = blocks + index * blocks_per_row * Format::BLOCK_BYTES;
        Format::dequantize_part(row + (p / Format::PARTS) * Format::BLOCK_BYTES,
                                p % Format::PARTS, w);
    } else {
        for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
            w[j] = NAN;
        }
    }
    device bfloat* dst = out + i * K + long(p) * ggufc::PART_WEIGHTS;
    for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
        dst[j] = bfloat(w[j]);
    }
}
