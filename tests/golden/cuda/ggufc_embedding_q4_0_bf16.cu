// ggufc embedding: out[i, :] = dequantize(W[indices[i], :]) as __nv_bfloat16, Q4_0 rows.
//
// One thread per (index, part): thread g decodes part g % (K/32) of row indices[g / (K/32)]
// and stores its 32 values with 16-byte stores; only the rows named by an index are read.
// grid.x = ceil(M * K / 32 / 128).  An index outside [0, N) yields a NaN row, so a
// bad index is visible in the output instead of reading out of bounds.
// Template constants: format, dtype, threads.  Kernel arguments: M (indices), N, K.
namespace ggufc_embedding_q4_0_bf16_impl {
using act_t = __nv_bfloat16;
using Format = ggufc::Q4_0;
}  // namespace ggufc_embedding_q4_0_bf16_impl

extern "C" __global__ void __launch_bounds__(128) ggufc_embedding_q4_0_bf16(
    const ggufc::u8* __restrict__ blocks, const ggufc::i64* __restrict__ indices,
    ggufc_embedding_q4_0_bf16_impl::act_t* __restrict__ out, ggufc::i64 M, ggufc::i64 N, ggufc::i64 K) {
    using namespace ggufc_embedding_q4_0_bf16_impl;
    using ggufc::i64;
    const i64 parts_per_row = K / ggufc::PART_WEIGHTS;
    const i64 g = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= M * parts_per_row) {
        return;
    }
    const i64 i = g / parts_per_row;
    const int p = static_cast<int>(g % parts_per_row);
    const i64 index = indices[i];
    float w[ggufc::PART_WEIGHTS];
    if (index >= 0 && index < N) {
        const i64 blocks_per_row = K / Format::BLOCK_WEIGHTS;
        const ggufc::u8* row = blocks + index * blocks_per_row * Format::BLOCK_BYTES;
        const int part = p % Format::PARTS;
        Format::decode(Format::load(row + (p / Format::PARTS) * Format::BLOCK_BYTES, part), part, w);
    } else {
#pragma unroll
        for (int j = 0; j < ggufc::PART_WEIGHTS; ++j) {
            w[j] = __int_as_float(0x7fc00000);  // quiet NaN
        }
    }
    act_t* dst = out + i * K + static_cast<i64>(p) * ggufc::PART_WEIGHTS;
#pragma unroll
    for (int chunk = 0; chunk < ggufc::PART_WEIGHTS / 8; ++chunk) {
        ggufc::store8(dst + 8 * chunk, w + 8 * chunk);
    }
}
