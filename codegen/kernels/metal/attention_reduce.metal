// Threadgroup-wide reductions of the attention kernel (Metal): simdgroup reductions, then one
// value a simdgroup through threadgroup memory.  Include-guarded like the prelude.
#ifndef GGUFC_METAL_ATTENTION_REDUCE
#define GGUFC_METAL_ATTENTION_REDUCE

namespace ggufc {

// The largest / the sum of ``value`` over a threadgroup of ``simdgroups`` simdgroups; every
// thread gets it.  ``scratch``: ``simdgroups`` floats of threadgroup memory.  Every thread
// calls it; it ends on a barrier.
inline float threadgroup_max(float value, threadgroup float* scratch, uint simdgroup, uint lane,
                             int simdgroups) {
    value = simd_max(value);
    if (lane == 0) {
        scratch[simdgroup] = value;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    value = scratch[0];
    for (int w = 1; w < simdgroups; ++w) {
        value = max(value, scratch[w]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return value;
}

inline float threadgroup_sum(float value, threadgroup float* scratch, uint simdgroup, uint lane,
                             int simdgroups) {
    value = simd_sum(value);
    if (lane == 0) {
        scratch[simdgroup] = value;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    value = scratch[0];
    for (int w = 1; w < simdgroups; ++w) {
        value += scratch[w];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return value;
}

}  // namespace ggufc

#endif  // GGUFC_METAL_ATTENTION_REDUCE
