// ggufc rotary embedding (rotate-half): out[r, d] = x[r, d] * cos[m, d] + x[r, (d + D/2) % D] *
// sin[m, d] with m = r % M, for the R rows of 256 floats of x [..., M, D] (cos, sin: [M, D]).
//
// A thread an element, 256 a block (grid.x = ceil(R * D / 256)): a decode step's q and k are a
// few rows, so the kernel is one wave of loads and stores.  See ggufc.rotary (compiler/ops.py).
// Template constant: dim D.  Kernel arguments: rows R, tokens M.
namespace ggufc_rotary_d256_f32_impl {
using ggufc::i64;
constexpr int THREADS = 256;
constexpr int DIM = 256;
constexpr int HALF = DIM / 2;
static_assert(DIM % 2 == 0, "the rotate-half form pairs the two halves of a row");

}  // namespace ggufc_rotary_d256_f32_impl

extern "C" __global__ void __launch_bounds__(256) ggufc_rotary_d256_f32(
    const float* x, const float* cos_table,
    const float* sin_table, float* __restrict__ out, ggufc::i64 rows,
    ggufc::i64 tokens) {
    using namespace ggufc_rotary_d256_f32_impl;
    ggufc::begin_dependent_kernel();  // prelude: programmatic dependent launch
    const i64 element = static_cast<i64>(blockIdx.x) * THREADS + threadIdx.x;
    if (element >= rows * DIM) {
        return;
    }
    const i64 row = element / DIM;
    const int d = static_cast<int>(element % DIM);
    const i64 table = (row % tokens) * DIM + d;
    const int partner = d < HALF ? d + HALF : d - HALF;
    out[element] = fmaf(x[row * DIM + partner], sin_table[table], x[element] * cos_table[table]);
}
