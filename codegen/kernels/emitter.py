"""Specialise the kernel templates: one source per (backend, format, kind, activation dtype,
geometry); a kind has one geometry but the CUDA matvec (see `geometries`).

Templates live beside this module as ordinary source files (``cuda/*.cu``, ``cuda/*.cuh``,
``metal/*.metal``) rendered by jinja2 with ``StrictUndefined``.  Every generated kernel is

    header = prelude + the format's dequantize helper      (shared by all kinds and dtypes)
    source = the kind's kernel, specialised to one dtype   (defines ``entry``)

and the program compiles ``header + "\\n" + source``.  Headers are include-guarded and the
sources keep their names in a namespace of their own, so any set of generated sources can
be concatenated into one translation unit (the CI compile checks do that).

What is a template constant and what is a kernel argument
---------------------------------------------------------
* Template constants (baked into the source text): backend, format, kernel kind, activation
  dtype, and the tile geometry of the kind (threads, rows per block, tile sizes; for the CUDA
  matvec one of its geometries, picked from N and K by `pick_geometry`).
* Kernel arguments (the same source serves every layer): the sizes ``M``, ``N``, ``K`` as
  int64 and, for linear kinds, ``has_bias`` as int32.  So there are at most 90 Metal and 259
  CUDA sources (6 formats x 3 dtypes x 5 kinds, plus the CUDA geometries of `geometries`:
  the matvec's, the batched matvec's, the 16-bit matmul's) however many layers a model has,
  and a program file interns each once.

Kernel signatures (CUDA parameter order = Metal buffer indices)::

    linear kinds:  (const T* x, const u8* blocks, const T* bias, T* out,
                    int64 M, int64 N, int64 K, int32 has_bias)
                   out[M, N] = x[M, K] @ dequantize(blocks[N, K])^T (+ bias[N])
    embedding:     (const u8* blocks, const int64* indices, T* out, int64 M, int64 N, int64 K)
                   out[M, K] = dequantize(blocks[indices[i]]), M = number of indices
    dequantize:    (const u8* blocks, T* out, int64 N, int64 K)
                   out[N, K] = dequantize(blocks)  (the embedding's kernel, row i for index i)

``bias`` must be a valid pointer even when ``has_bias`` is 0 (pass any tensor; it is not
read).  ``blocks`` must be 16-byte aligned (torch allocations and the program file's
64-byte aligned constants are).  ``x``, ``out`` are contiguous, 16-byte aligned, and K is
a multiple of the format's block weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import jinja2

from codegen.kernels.launch import PART_WEIGHTS, GridExtent, LaunchRule, TensorMapRule, ceil_div
from compiler.errors import UnsupportedError
from compiler.formats import FORMATS
from runtime_schema.validate import TENSOR_MAP_ELEMENT_BYTES, TENSOR_MAP_MAX_BOX

TEMPLATE_DIR = Path(__file__).parent
BACKENDS = ("cuda", "metal")
KINDS = ("matvec", "matvec_batched", "matmul", "embedding", "dequantize")
LINEAR_KINDS = ("matvec", "matvec_batched", "matmul")
DTYPES = ("float16", "bfloat16", "float32")
FORMAT_NAMES = tuple(FORMATS)
DTYPE_TAGS = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}
# Q4_K and Q5_K share the 6-bit scale/min packing
KQUANT_SCALE_FORMATS = ("Q4_K", "Q5_K")

WARP_SIZE = 32  # threads of a CUDA warp and of a Metal simdgroup
THREADS = 128  # 4 warps / simdgroups per block in every kind
WARPS = THREADS // WARP_SIZE
MATVEC_BATCHED_ROWS = 8  # activation rows served by one read of the weights
MATVEC_ROWS_PER_WARP = 4  # weight rows a matvec warp decodes against one read of x
# Small CUDA matvecs (N * K up to the bound of their activation dtype) take a narrow
# geometry, one weight row a warp: a matvec that small is bound by the latency of its few
# chunks, not by bandwidth, and four times the warps each decoding a quarter of the rows
# finish sooner.  Larger ones keep MATVEC_ROWS_PER_WARP (one read of x serves more rows,
# which matters most for float32 x, twice the bytes).  `benchmarks/cuda_matvec_geometry.py`,
# H100, 2026-11-26, narrow / default time: float32 0.75-0.92 at 1.2 Mi weights (640x2048),
# 0.97-1.08 at 2 Mi, 1.28-1.42 at 8 Mi; float16 0.65-0.77 at 1.2 Mi, 0.85-0.97 at 8 Mi,
# 0.85-1.02 at 16 Mi (Q5_0, Q4_K, Q8_0).  bfloat16 moves as many bytes as float16 and takes
# its bound (not measured separately).
MATVEC_NARROW_MAX_WEIGHTS = {
    "float32": 3 << 19,  # 1.5 Mi: every linear of Gemma 3 270M but its lm_head
    "float16": 8 << 20,
    "bfloat16": 8 << 20,
}
MATVEC_NARROW_ROWS_PER_WARP = 1
# Large CUDA matvecs of these formats with K >= MATVEC_SPLIT_K_MIN_K take the split-K
# geometry (`cuda/matvec_split_k.cu`): a block's threads split K and load their parts
# straight from global memory.  Their 18- and 22-byte blocks are only 2-byte aligned, so
# decoding them from the warp-staged chunks of `cuda/matvec.cu` costs shared-memory bank
# conflicts; with fewer parts a row than threads a block (K < 32 * 128) threads idle and the
# staged kernel wins again.  `benchmarks/cuda_matvec_geometry.py` measures both (figures in
# BENCHMARKS.md).  The K-quants' aligned blocks stage well and are slower split (H200
# 2026-11-26, Q6_K float16 4096x14336: 45.8 vs 27.5 us).
MATVEC_SPLIT_K_FORMATS = ("Q4_0", "Q5_0")
MATVEC_SPLIT_K_THREADS = 128
MATVEC_SPLIT_K_MIN_K = PART_WEIGHTS * MATVEC_SPLIT_K_THREADS  # a part for every thread
MATVEC_SPLIT_K_ROWS = 4  # weight rows a block decodes against one read of each part of x
# The split-K geometries and the warps of a block that split each row's K ("split_k": the
# block of MATVEC_SPLIT_K_THREADS).  Both hold the same registers a thread, so an SM runs
# twice the paired blocks, each taking twice the rounds of a row's parts; `split_k_geometry_of`
# picks by the rounds each geometry's slots go through.  H100, us, split_k / paired (session
# 18, BENCHMARKS.md): float16 Q4_0 4096x14336 17.5 / 16.5, 5376x21504 31.7 / 36.1 (1344
# paired blocks: 1.02 waves), 4096x11008 14.3 / 15.5, Q5_0 14336x4096 20.9 / 19.5,
# 128256x4096 158.9 / 143.2.  Over the 44 cells of `benchmarks/cuda_matvec_geometry.py
# --tables split_k` with K >= 4096 (Q4_0, Q5_0; float16, float32) the rule's pick is on
# average 0.4% slower than the faster of the two, at most 5.7% (Q5_0 float16 8192x4096); in
# an earlier run of 34 cells, 0.06% and 1.4%.
MATVEC_SPLIT_K_WARPS = {"split_k": MATVEC_SPLIT_K_THREADS // WARP_SIZE, "split_k_paired": 2}
MATVEC_SPLIT_K_PAIRED_TIE_ROUNDS = 4  # at equal rounds, pairs where a thread takes this many
MATVEC_SPLIT_K_WHOLE_WAVES = 2  # grids of fewer waves count their last wave whole
# Blocks an SM of the 4-warp split-K matvec by activation class and format (the 2-warp one:
# twice as many), which `split_k_geometry_of` counts waves with, and which __launch_bounds__
# asks of ptxas (at most 102, 128 or 170 registers a thread) but for MATVEC_SPLIT_K_UNBOUNDED.
# Unbounded, nvcc 13 gave them 96, 114, 115 and 145 registers.  Bounded, the float32 kernels
# came out at 106 and 143 and faster (H100, us, session 18: Q4_0 4096x14336 23.6 -> 20.5,
# 5376x21504 44.0 -> 37.8; Q5_0 30.2 -> 27.0, 53.5 -> 47.4), 16-bit Q4_0 the same, 16-bit
# Q5_0 (113) 2-3% slower in every shape measured.
MATVEC_SPLIT_K_BLOCKS_PER_SM = {
    ("16-bit", "Q4_0"): 5,
    ("16-bit", "Q5_0"): 4,
    ("float32", "Q4_0"): 4,
    ("float32", "Q5_0"): 3,
}
MATVEC_SPLIT_K_UNBOUNDED = (("16-bit", "Q5_0"),)
# Large CUDA matvecs of the staged formats share each group of MATVEC_ROWS_PER_WARP rows
# among G warps of a block (`cuda/matvec.cu`, GROUP_WARPS), warp w taking chunks w, w + G, ...
# of them (partial sums meet in shared memory): G = 1 is the default geometry, 2 and 4 those
# of MATVEC_GROUP_GEOMETRIES.  A warp keeps at least MATVEC_GROUP_MIN_CHUNKS whole chunks
# (1024 weights each) of a row, so G = 2 needs K >= 4096 (MATVEC_PAIRED_MIN_K), G = 4 8192.
#
# G is the one of the format's choices (MATVEC_GROUP_WARPS, MATVEC_FLOAT32_GROUP_WARPS) whose
# blocks fill their last wave best (`matvec_group_warps`; a wave: MATVEC_WAVE_SMS SMs x
# MATVEC_WAVE_BLOCKS_PER_SM blocks), a tie going to the earlier in the list.  At N = 4096 the
# unshared grid is 256 blocks, half a wave on an H100; at N = 5376 pairs make 1.27 waves and
# four warps 2.55.  Every kernel the rule weighs runs 4 blocks an SM: on its own registers
# (112-128) or by __launch_bounds__ (MATVEC_BOUNDED_GEOMETRIES).  Q6_K is never unshared with
# 16-bit x (145 registers: 3 blocks an SM); Q8_0's ties go to one warp, the K-quants' to pairs
# (N = 8192: Q8_0 30.7 us unshared vs 31.9 paired, Q4_K 23.9 vs 23.6), and Q8_0 stops at
# pairs (four warps lost 7% at 5376x21504).  H100, float16, 2026-11-26
# (`benchmarks/cuda_matvec_geometry.py --tables group_warps`, BENCHMARKS.md, session 15; 56
# shapes from 2048x8192 to 8192x28672, 1, 2 and 4 warps each, the same shapes the rule was
# drawn from): the picked G 0.3% slower than the fastest on average, at most 2.9%; the rule
# before (pairs for Q4_K / Q5_K only) 7.7%, at most 39%.  Against it, same call: Q6_K
# 8192x21504 80.9 -> 65.8 us, 3072x21504 38.9 -> 29.3, Q4_K 5376x21504 45.7 -> 38.4.
# bfloat16 moves the same bytes and takes the same rule (not measured separately).  float32:
# Q4_K / Q5_K (their grouped kernels bounded to 4 blocks an SM): at 4096x14336, 14336x4096
# and 5376x21504 the rule's pick was the fastest of 1, 2 and 4 warps for both (Q4_K 22.3 /
# 23.1 / 45.9 us; BENCHMARKS.md); Q8_0 since session 18 (its paired kernel bounded too): of
# 10 shapes with K = 4096-21504 (H100, us, 1 warp / 2 warps) the rule picks the faster but at
# 14336x8192 (59.6 / 56.4) and 14336x6144 (46.2 / 45.1), and gains 4096x14336 33.6 -> 28.8,
# 4096x4096 12.6 -> 10.8, 28672x8192 113 -> 101, 11008x8192 56.6 -> 44.9 (BENCHMARKS.md).
# Q6_K grouped is not measured with float32 x.
MATVEC_GROUP_GEOMETRIES = {2: "paired", 4: "quad"}
MATVEC_GROUP_WARPS = {"Q4_K": (2, 1, 4), "Q5_K": (2, 1, 4), "Q6_K": (2, 4), "Q8_0": (1, 2)}
MATVEC_FLOAT32_GROUP_WARPS = {"Q4_K": (2, 1, 4), "Q5_K": (2, 1, 4), "Q8_0": (1, 2)}
MATVEC_GROUP_MIN_CHUNKS = 2
MATVEC_CHUNK_WEIGHTS = WARP_SIZE * PART_WEIGHTS  # a warp's chunk: one part a lane
MATVEC_PAIRED_MIN_K = 2 * MATVEC_GROUP_MIN_CHUNKS * MATVEC_CHUNK_WEIGHTS
MATVEC_WAVE_BLOCKS_PER_SM = 4
# The matvecs whose __launch_bounds__ ask for MATVEC_WAVE_BLOCKS_PER_SM blocks an SM (at most
# 128 registers, no spills), by activation class and format: the geometries listed; the
# others leave their registers to the compiler (bounded, Q6_K's float32 kernels and Q4_0 /
# Q5_0's streamed ones were 3-7% slower, and the 16-bit Q4_K ones 2-4%).  H100, same call,
# before -> after (with the branch-free K-quant scales, session 15): float32 Q4_K paired
# 4096x14336 34.6 -> 22.3 us (144 -> 124 registers), Q5_K 35.9 -> 25.0, Q8_0 4096x14336
# 39.6 -> 35.7, its streamed 262144x640 103.5 -> 95.5; float16 Q5_K paired 23.2 -> 22.1 (the
# scales' selects had taken it to 141 registers).  Q6_K's and Q8_0's 16-bit grouped kernels
# were bounded from the start (Q6_K paired 5376x21504 65.3 us without, 51.0 with, in two runs
# of the same day).  Session 16, with the aligned-row chunk copy (`cuda/matvec.cu`): the
# 16-bit Q5_K kernels fit 128 registers unbounded (bounded they fell to 108-110 and were 2-3%
# slower than before the copy; unbounded 2.6-4.6% faster), and float32 Q4_K's default and
# streamed ones went to 140-144 (3 blocks an SM; bounded, us: 131072x1024 50.5 -> 45.5,
# 65536x2048 47.9 -> 44.4, 8192x3072 15.4 -> 12.5).
MATVEC_BOUNDED_GEOMETRIES = {
    ("16-bit", "Q4_K"): ("quad_stream",),  # the lane-word kernel (MATVEC_LANE_WORD_FORMATS)
    ("16-bit", "Q6_K"): ("paired", "quad", "quad_stream"),
    ("16-bit", "Q8_0"): ("paired",),
    ("float32", "Q8_0"): ("default", "stream", "paired"),
    ("float32", "Q4_K"): ("default", "stream", "paired", "quad"),
    ("float32", "Q5_K"): ("default", "paired", "quad"),
}
MATVEC_WAVE_SMS = 132  # an H100 SXM's SMs: the GPU the group rule was measured on
# Where a CUDA matvec lets the next kernel start (programmatic dependent launch): at once where
# its grid fills its waves (more than one, or one with at most a tenth of the slots free,
# counted at MATVEC_WAVE_BLOCKS_PER_SM blocks an SM and the device's SMs; prelude:
# grid_fills_its_waves), else after its weight loads.  H100, float16, us, both ways launched
# dependently (session 18, BENCHMARKS.md): Q6_K paired 4096x14336 25.2 -> 24.0, 14336x4096
# 25.4 -> 24.8, Q4_K paired 4096x14336 17.1 -> 16.6, Q8_0 14336x4096 27.4 -> 26.6; grids
# leaving slots free unchanged (Q8_0 5376x21504 50.2).  The narrow geometry keeps its trigger
# after the loads (its 64-72-register kernels run 7-8 blocks an SM, so 4 misjudged
# Q4_K 2048x2048: 3.0 -> 5.2 us, and the test alone cost Gemma's narrow kernels 0.1 us).
MATVEC_LATE_TRIGGER_GEOMETRIES = ("narrow",)
# Large CUDA matvecs of short rows (K <= MATVEC_STREAM_MAX_K, N >= MATVEC_STREAM_MIN_N; a
# vocabulary projection) take the streamed geometry: `cuda/matvec.cu` with each warp taking
# MATVEC_STREAM_GROUPS row groups in turn, the next group's first chunk loading while this
# one's is decoded.  In the default geometry a row of one chunk gives a warp one load and one
# decode with nothing in flight between them.  H100 2026-11-26
# (`benchmarks/cuda_matvec_geometry.py --tables stream`, default -> 4 groups, us): Q8_0
# 262144x640 float32 114.0 -> 103.7, float16 105.0 -> 91.0; Q4_0 float32 108.6 -> 76.5;
# where it is picked, 0.68-1.05x the default's time (every format; float32 9-32% less), the
# losses Q4_0 / Q5_0 with float16 x at K = 640 (1-5%); at K = 2048 or N <= 32768 the gain is
# gone or a loss, and 8 or 16 groups lose at N = 65536 (BENCHMARKS.md, session 11).
MATVEC_STREAM_GROUPS = 4
MATVEC_STREAM_MAX_K = 1024
MATVEC_STREAM_MIN_N = 65536
# Large matvecs of these formats whose rows are MATVEC_QUAD_STREAM_CHUNKS chunks (3072 < K <=
# 4096) take "quad_stream": the four warps of a block share each row group, one chunk each,
# and take MATVEC_QUAD_STREAM_GROUPS row groups in turn (`cuda/matvec.cu`: GROUP_WARPS 4,
# STREAM_GROUPS), the next group's chunk loading during this one's decode and each warp's part
# of x kept from group to group; where its grid's waves fill at least
# MATVEC_QUAD_STREAM_MIN_FILL of the whole waves they take (MATVEC_WAVE_SMS x
# MATVEC_WAVE_BLOCKS_PER_SM blocks a wave; Q8_0 up to a wave: N > 10332).  Q8_0, H100, us,
# the lowering's pick before (default) -> quad_stream (session 18, BENCHMARKS.md): float16
# 14336x4096 26.6 -> 24.3, 11008x4096 22.8 -> 20.4, 28672x4096 49.2 -> 45.7, 128256x4096
# 187.7 -> 185.7; float32 33.5 -> 31.7, 29.9 -> 20.6, 57.4 -> 48.9, 203.0 -> 192.4.  Smaller
# grids lose (8192x4096: 15.4 -> 19.5) and so do longer rows (4096x14336: 29.7 -> 47.9, no
# part of x kept).
# The K-quants take it with their int16 decode (`takes_integer_x`), 4 groups in turn: with the
# float decode they lost (Q4_K 14336x4096 paired 18.8, quad_stream 19.5), with int16 x they
# gain.  H100, float16, us, paired -> 2 / 3 / 4 / 5 / 6 / 8 groups (session 20,
# BENCHMARKS.md): 14336x4096 Q4_K 18.3 -> - / 17.7 / 16.7 / 18.0 / 19.9 / 16.5, Q5_K 20.1 ->
# 20.4 / 20.0 / 19.4 / 20.2 / 21.8 / 20.8, Q6_K 24.0 -> 23.4 / - / 22.3 / - / - / 24.1.
# 4 groups at 6144 / 8192 / 11008 / 28672 rows: Q4_K 9.9 -> 8.6, 11.5 -> 9.8, 14.6 -> 15.3
# (1.30 waves: not taken), 31.0 -> 29.4; Q5_K 11.1 -> 9.9, 13.1 -> 11.2, 16.4 -> 16.9, 34.4 ->
# 32.9; Q6_K 13.7 -> 11.9, 16.3 -> 13.5, 20.1 -> 19.8, 42.3 -> 39.8.  Tried for Q4_K: 2 groups
# bounded for 5 blocks an SM, 16.4-16.6 at 14336 rows but 11.8 at 8192 and 7.2 at 4096
# (paired 6.4).
MATVEC_QUAD_STREAM_GROUPS = {"Q8_0": 7, "Q4_K": 4, "Q5_K": 4, "Q6_K": 4}
MATVEC_QUAD_STREAM_FORMATS = tuple(MATVEC_QUAD_STREAM_GROUPS)
# the formats that take it only with int16 activations (Q8_0 takes it with any)
MATVEC_QUAD_STREAM_INTEGER_X_ONLY = ("Q4_K", "Q5_K", "Q6_K")
MATVEC_QUAD_STREAM_CHUNKS = 4
MATVEC_QUAD_STREAM_MIN_FILL = Fraction(7, 10)
# The K-quants' streamed quads of other row groups in turn than MATVEC_QUAD_STREAM_GROUPS
# ("quad_stream_g5" .. "quad_stream_g8", `quad_stream_geometry`): of the group counts whose grid
# fills MATVEC_QUAD_STREAM_MIN_FILL of its whole waves, the one whose busiest SM takes the fewest
# rows (its blocks over MATVEC_WAVE_SMS SMs times a block's rows), a tie going to fewer rounds of
# MATVEC_WAVE_BLOCKS_PER_SM blocks an SM, then to more blocks an SM at once, then to fewer
# groups.  On an H200 the time of a streamed quad of K = 4096 follows the busiest SM's rows
# rather than its last wave's fill: session 40, float16, us, 4 / 5 / 6 / 7 / 8 groups (scratch;
# BENCHMARKS.md): Q5_K 9216x4096 14.18 / 12.36 / 11.84 / 13.06 / 14.30 (paired picked: 13.29),
# 11008x4096 15.14 / 16.28 / 14.23 / 13.36 / 14.57 (paired 14.48), 12288x4096 15.43 / 16.53 /
# 14.02 / 15.85 / 14.80, 14336x4096 16.75 / 18.08 / 18.94 / 15.86 / 17.73, 16384x4096 18.21 /
# 19.50 / 20.43 / 21.44 / 17.65, 20480x4096 22.44 / 21.83 / 22.74 / 23.37 / 23.99, 65536x4096
# 62.44 / 61.04 / 60.82 / 60.47 / 60.93; Q6_K (where its one-row rule leaves it the streamed
# quad) 18944x4096 27.09 / 27.45 / 26.15 / 29.23 / 29.97; Q4_K's staged quads against its
# lane-word kernel (13.90 at 14336x4096) 14.68 / 15.88 / 17.22 / 13.48 / 15.00, but over several
# rounds the lane words keep it (18944x4096 17.49 against 19.05 for the 6 groups the rule would
# take; 32768x4096 28.02 against 29.71), so Q4_K takes another count only in one round
# (MATVEC_QUAD_STREAM_ONE_ROUND).  Q8_0 keeps its 7 groups.  As taken (v71, cuda_matvec_ab.py
# against v70, same call; BENCHMARKS.md), float16 / bfloat16, us: Q5_K 10240x4096 14.0 / 13.9 ->
# 12.2 / 12.3, 14336x4096 16.8 / 16.9 -> 15.9, 65536x4096 62.4 / 62.8 -> 60.9 / 61.3; Q4_K 9216x4096
# 11.0 / 10.9 -> 10.2, 14336x4096 13.9 -> 13.5; Q6_K 9216x4096 (paired before) 16.4 / 16.5 -> 14.9 /
# 15.0, 28672x4096 38.1 / 38.2 -> 36.8: 50 cells 1-13% faster, 32768x4096 (7 groups) 0-1% slower;
# at K = 3584 (float16) 9216-17408 rows 0-13% faster (Q5_K 11008x3584 15.2 -> 13.1).
# The other counts' kernels leave their registers to the compiler, as measured (Q6_K's own
# quad_stream alone is bounded: MATVEC_BOUNDED_GEOMETRIES).
MATVEC_QUAD_STREAM_GROUP_CHOICES = {fmt: (4, 5, 6, 7, 8) for fmt in ("Q4_K", "Q5_K", "Q6_K")}
MATVEC_QUAD_STREAM_ONE_ROUND = ("Q4_K",)
# The lane-word kernel (`takes_lane_words`) takes it from a fill of half the whole waves.
# H100, Q4_K float16, us, the lowering's pick before -> lane-word quad_stream, with the fill
# (session 21, BENCHMARKS.md): 5120x4096 (0.61) paired 9.14 -> 8.21, 10240x4096 (1.21 waves,
# 0.61) paired 14.11 -> 12.94, 11008x4096 (0.65) paired 14.65 -> 13.21, 4608x3584 (0.55)
# default 7.94 -> 7.79; below half it loses (4096x4096, 0.48: paired 6.36, lane words 6.85;
# 3584x3584, 0.42: default 6.83 and paired 6.10 against 6.38).  bfloat16 takes the same rule
# (the same bytes and kernel; not measured separately).
MATVEC_LANE_WORD_MIN_FILL = Fraction(1, 2)
# Activation dtypes whose CUDA matvecs (every geometry) stage each warp's activations through
# shared memory (prelude: stage_part_activations) instead of every lane loading its own part
# through L1, one cache line a lane.  H100, lanes -> staged (us, benchmarks/cuda_matvec_ab.py):
# float32 Q6_K 4096x14336 51.4 -> 41.6, Q4_0 32.4 -> 26.8, Q8_0 262144x640 134.9 -> 113.9,
# 640x2048 (narrow) 5.2-6.1 -> 4.0-5.0; three cells 3-7% slower (Q4_0 262144x640 108.8 ->
# 116.3).  float16 was mostly slower staged (Q4_K 4096x14336 20.5 -> 28.3: 24 more registers
# and half the lines to save), so 16-bit x keeps the per-lane loads (BENCHMARKS.md, session 8).
MATVEC_STAGED_X_DTYPES = ("float32",)
# Formats whose CUDA matvecs (every geometry, the split-K one included) take 16-bit activations
# as int16 and sum each part by dp2a (prelude: "integer dot products"; Format::integer_dot):
# a 4-bit word costs one mask and two dp2a instead of 4 PRMT and 4 FFMA, and a part's
# activations are converted once for all the rows a lane decodes.  H100, float16, us, float ->
# int16 decode in the lowering's geometry (session 20, BENCHMARKS.md): Q4_0 14336x4096 16.5 ->
# 15.2, 4096x14336 16.5 -> 15.7, 5376x21504 31.8 -> 29.5; Q4_K 16.6 -> 14.8 (4096x14336),
# 32.2 -> 31.1 (5376x21504); Q5_K 19.1 -> 17.6, 36.8 -> 36.2; Q6_K 24.1 -> 22.3, 45.7 -> 43.7;
# Q8_0 (signed bytes, no mask) 25.5 -> 24.7, 24.3 -> 23.0 (14336x4096), 50.1 -> 46.9,
# 262144x640 90.7 -> 77.3; the error against the float64 reference stays the output's rounding
# (2.1e-4).  float32 x keeps the float decode: int16 would cost it precision its bound (2e-6)
# does not allow.  Q5_0 (its fifth bits spread from qh into bit 4 of each quant byte; session
# 22, same card, float / int16, the better of two medians): 4096x14336 19.6 -> 18.9,
# 14336x4096 19.5 -> 17.7, 5376x21504 35.3 -> 33.7, 4096x4096 7.6 -> 6.9, 262144x640 83.9 ->
# 61.9, 2048x8192 7.7 -> 7.0; the narrow 640x2048 2.5 -> 2.6.
MATVEC_INTEGER_X_FORMATS = ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q5_0")
MATVEC_INTEGER_X_DTYPES = ("float16", "bfloat16")
# CUDA matvecs of these formats in MATVEC_LANE_WORD_GEOMETRIES with int16 activations
# (`takes_integer_x`) take `cuda/matvec_lanes.cu`: each lane loads its own 16-byte words of the
# blocks (Format::LANE_WORDS a block) straight into registers, where `cuda/matvec.cu` copies
# every chunk through shared memory so that a lane can read a whole part at any alignment
# (blocks of whole 16-byte words need no copy), and a row group's four rows meet in 6
# shuffles (prelude: warp_sum_rows) instead of 20.  H100, float16, us, the same geometry
# staged -> lane words (session 21, BENCHMARKS.md): Q4_K quad_stream 14336x4096 16.7 -> 15.1,
# 8192x4096 9.8 -> 9.6, 28672x4096 29.3 -> 27.2, 6144x4096 8.6 -> 8.6 (a prototype that
# served only one chunk a warp, K = 4096: 13.9, 8.7, 25.4, 8.1); with the lane's block
# address hoisted and the row-group index of one group a block folded, 14.7, 9.4, 26.5.  In the paired, quad and
# default geometries (4096x14336, 5376x21504, 2048x8192, 8192x14336, ...) the lane words were
# slower than the staged kernel (its first form, same call: paired 4096x14336 14.8 -> 16.1,
# quad 5376x21504 31.1 -> 32.3).  Bounded for MATVEC_WAVE_BLOCKS_PER_SM blocks an SM
# (MATVEC_BOUNDED_GEOMETRIES; 124 registers unbounded, 128 bounded, no spills).
MATVEC_LANE_WORD_FORMATS = ("Q4_K",)
MATVEC_LANE_WORD_GEOMETRIES = ("quad_stream",)
# The geometries a kernel kind may take (`emit`'s ``geometry``): "default" for every kind;
# the CUDA matvec also "narrow", "stream" and, for its formats, "split_k" and
# "split_k_paired" (MATVEC_SPLIT_K_WARPS) or "paired" / "quad" (MATVEC_GROUP_GEOMETRIES), and
# "quad_stream" (MATVEC_QUAD_STREAM_FORMATS); the CUDA matvec_batched "split_k2" .. "split_k8"
# (SPLIT_K_BATCHED_FORMATS) and the mma matvec's "mma" and its other forms (MATVEC_MMA_FORMATS:
# MATVEC_MMA_GEOMETRIES).
DEFAULT_GEOMETRY = "default"

# CUDA matvec_batched with 16-bit activations runs on tensor cores (`cuda/matvec_tensor_core.cu`):
# a block computes an 8 x 8 tile of out (8 weight rows = the mma's N, up to 8 activation
# rows), its warps splitting K; weights stream through a ring of shared-memory stages by
# cp.async.  At M = 1 that kernel is slower than the CUDA-core matvec (it issues ~2
# instructions per weight to build f16 operands; H100 2026-11-25: Q4_K 4096x14336 36 us vs
# 35 us, Q4_0 28 vs 25 us, Q6_K 49 vs 42 us), so M = 1 keeps the CUDA-core kernel.  float32
# activations keep the CUDA-core kernels too (their 2e-6 error bound rules out f16 weights).
TENSOR_CORE_MATVEC_KINDS = ("matvec_batched",)
TENSOR_CORE_MATVEC_DTYPES = ("float16", "bfloat16")
TENSOR_CORE_MATVEC_TILE = 8
TENSOR_CORE_MATVEC_STAGES = 3
# Warps splitting K in a block, and the blocks an SM the registers must allow
# (__launch_bounds__): 4 x 6 warps keep enough weight bytes in flight, and 4 blocks an SM
# (528 on an H100) take the 512 blocks of N = 4096 in one wave, where 3 x 8 warps (396) left
# a second wave of 116 blocks at a third of the occupancy: H100, float16, 4096x14336, same
# call, M = 8: Q4_0 36.6 -> 29.8 us, Q8_0 46.3 -> 39.4, Q4_K 71.2 -> 59.0; every cell of
# M = 2, 4, 8 at 4096x14336 and 14336x4096 within -19% .. +2% (BENCHMARKS.md, session 7)
TENSOR_CORE_MATVEC_WARPS = 6
TENSOR_CORE_MATVEC_MIN_BLOCKS_PER_SM = 4
TENSOR_CORE_MATVEC_ACCUMULATORS = 2  # independent mma accumulator sets per lane
# Blocks per weight row a warp stages per step: whole K-quant blocks (their scales sit in the
# block header); eight of the 32-weight formats (4 of Q8_0's 34-byte blocks keep the stage
# ring small).  Every step then splits into parts of 32 weights among 4 lanes per row.
TENSOR_CORE_MATVEC_STEP_BLOCKS = {"Q4_0": 8, "Q5_0": 8, "Q8_0": 4, "Q4_K": 1, "Q5_K": 1, "Q6_K": 1}
# CUDA matvec_batched of these formats with 16-bit activations takes the 16-bit matmul instead
# (cuda/matmul.cu, its producer warpgroup and wgmma consumers) with a tile of
# SPLIT_K_BATCHED_TILE_M activation rows (wgmma.m64n16k16) and K split over a thread block
# cluster of S blocks whose partial sums meet in distributed shared memory: the geometries
# "split_k2" .. "split_k8".  Without the split, N = 4096 would be 32 blocks.  H100, float16,
# M = 8 (session 13, BENCHMARKS.md): Q4_K 4096x14336 59.5 -> 32.2 us (S = 7), 14336x4096
# 62.5 -> 31.4 (S = 2); the same kernel was slower than the tensor-core batched matvec for
# Q4_0, Q8_0 and Q6_K (4096x14336, S = 8: Q4_0 39.3 vs 29.9, Q6_K 89.8 vs 56.0).
# Built without wgmma (before sm_90a) the cluster's blocks split the tile's rows instead (by
# consumer warp), each over all of K: the H100's portable build, M = 8, us against the
# tensor-core batched matvec's: Q4_K 14336x4096 38.3 vs 62.4, 4096x14336 115.4 vs 59.0 (a long
# K on few warps is latency-bound), Q5_K 46.9 vs 72.8 and 144.4 vs 71.4.
SPLIT_K_BATCHED_FORMATS = ("Q4_K", "Q5_K")
SPLIT_K_BATCHED_DTYPES = ("float16", "bfloat16")
SPLIT_K_BATCHED_TILE_M = 16
SPLIT_K_BATCHED_SPLITS = (2, 3, 4, 5, 6, 7, 8)  # 8: the largest portable cluster
# pick_geometry takes the largest S that keeps the grid within one wave of clusters and every
# block at least SPLIT_K_MIN_STEPS K steps of 64 weights.  An H100 holds two of these blocks an
# SM (72-97 KB of shared memory, 70-80 registers a thread) but only 30 clusters of 8 at once
# (ncu's "max active clusters": a cluster's blocks share a GPC): 240 blocks.  Past that a
# second wave runs (Q4_K 4096x14336, M = 8: S = 8, 256 blocks, 40.2 us; S = 7, 224 blocks,
# 32.2); below it the largest S measured best or within 17% of the best S at the six shapes
# of session 13 (PERFORMANCE.md).
SPLIT_K_MAX_BLOCKS = 240
SPLIT_K_MIN_STEPS = 4
# CUDA matvec_batched of these formats with 16-bit activations and M <= MATVEC_MMA_MAX_M takes
# "mma": mma.sync with 16 weight rows as A and up to 8 activation rows as B, each warp's
# weights and activations staged in shared memory (`cuda/matvec_mma_staged.cu`:
# MATVEC_MMA_STAGED_AHEAD below), or one of its other forms (MATVEC_MMA_FORMS).  Q4_K and Q5_K
# also have a form whose lanes load their blocks straight into registers (MATVEC_MMA_LOADED:
# MATVEC_MMA_LOADED_FORMATS).
MATVEC_MMA_FORMATS = ("Q4_K", "Q5_K", "Q4_0", "Q5_0", "Q8_0", "Q6_K")
MATVEC_MMA_DTYPES = ("float16", "bfloat16")
MATVEC_MMA_MAX_M = 8  # the mma's N: activation rows a block
MATVEC_MMA_ROWS = 16  # the mma's M: weight rows a block
# The loaded form ("mma_loaded", `cuda/matvec_mma.cu`) of the formats whose blocks are 16-byte
# multiples (Q4_K's 144 bytes, Q5_K's 176): each lane loads its part of its two rows' blocks
# straight into registers and folds the sub-block scale into the A pairs (sc * q, exact in
# f16; in bfloat16's 8-bit mantissa only as two pairs, q * (sc % 8) and q * (sc / 8), two
# mmas: kquant_scales.cuh), MATVEC_MMA_LOADED_WARPS warps splitting K.  It was their "mma"
# from session 19 to 30.  H100, float16, us, split-K -> loaded (session 19, BENCHMARKS.md):
# Q4_K (activations staged: MATVEC_MMA_LOADED_STAGE_X_FORMATS) M = 8 4096x14336 32.3 -> 18.2,
# 14336x4096 31.8 -> 20.2, 5376x21504 61.3 -> 39.1, 4096x4096 14.3 -> 6.5; M = 2 32.5 -> 17.9,
# 31.6 -> 19.4.  Q5_K (its fifth bits OR-ed in from qh, sc * q <= 1953 still exact; 128
# registers, 8 bytes of spills): M = 8 40.4 -> 26.2, 39.3 -> 28.9, 5376x21504 78.2 -> 72.1,
# 4096x4096 17.1 -> 9.5; M = 2 40.7 -> 21.9.  The staged kernel took over from session 31 but
# on short rows (MATVEC_MMA_LOADED_MAX_K).
MATVEC_MMA_LOADED = "mma_loaded"
MATVEC_MMA_LOADED_WARPS = 8
MATVEC_MMA_LOADED_MIN_BLOCKS_PER_SM = 2  # 128 registers: the 16 warps an SM the measurements ran
MATVEC_MMA_LOADED_DEPTH = 1  # blocks a warp loads ahead (2: more registers, fewer warps, slower)
# Formats whose loaded mma matvec stages each block's activation rows in shared memory (cp.async, a
# row of 512 bytes an instruction) instead of each lane loading its k slots from global
# memory, where a load instruction touches a cache line a lane at M = 8.  H100, float16, us,
# M = 1 / 2 / 8, loaded -> staged (session 19, same call): Q4_K 4096x14336 17.3 / 17.8 / 23.5
# -> 18.0 / 17.9 / 18.2, 14336x4096 19.1 / 19.6 / 25.8 -> 19.4 / 19.4 / 20.2, 5376x21504
# 40.2 / 44.3 / 64.4 -> 38.6 / 38.6 / 39.1 (bfloat16 alike: 4096x14336 M = 8 24.8 -> 21.7,
# M = 1 20.1 -> 21.4); Q5_K (128 registers either way) loses at M = 2
# on every shape (4-19%: 4096x14336 21.9 -> 26.0) and gains at M = 8 on three of four
# (5376x21504 71.4 -> 58.9; 4096x14336 26.2 -> 27.6), so it keeps the loads.
MATVEC_MMA_LOADED_STAGE_X_FORMATS = ("Q4_K",)
# The staged mma matvec (`cuda/matvec_mma_staged.cu`, every format's "mma" and the other forms
# of MATVEC_MMA_FORMS): the 18-, 22-, 34- and 210-byte blocks of Q4_0, Q5_0, Q8_0 and Q6_K are
# only 2-byte aligned, so no lane can load its fragment bytes as wide words; each warp copies
# groups of MATMUL_GROUP_STEPS[format] K steps of its 16 rows into shared memory by cp.async,
# and every step's activation rows, and its lanes decode the quants there as exact q - zero
# point pairs (tc::Staged<FORMAT>::values, the 16-bit matmul's layout), the mmas of each scale
# (a 32-weight block's d, Q6_K's d * sc of 16 weights) summing into fresh accumulators that the
# rows' scales then add in float32 (Q4_K and Q5_K: below).  They took the tensor-core batched
# matvec before (cuda/matvec_tensor_core.cu: 8 weight rows as B, the activations as A, half of
# its rows zero; each lane loading its 32 activations of a part from global memory), as they
# still do above MATVEC_MMA_MAX_M rows.  H100, float16, us, M = 2 / 8, default -> mma (session
# 22, same call, BENCHMARKS.md): Q4_0 4096x14336 26.7 / 28.6 -> 18.5 / 27.1, 14336x4096 26.9 /
# 31.0 -> 23.8 / 27.2, 5376x21504 54.7 / 59.2 -> 45.1 / 60.3, 4096x4096 10.0 / 11.1 -> 7.8 /
# 9.3; Q5_0 33.7 / 35.0 -> 24.1 / 30.8, 33.3 / 36.5 -> 28.9 / 30.6, 68.5 / 71.5 -> 51.5 / 69.6,
# 12.1 / 13.1 -> 9.4 / 13.0; Q8_0 34.2 / 38.5 -> 28.6 / 37.2, 34.1 / 39.0 -> 32.4 / 36.9, 70.7 /
# 81.5 -> 65.2 / 78.2, 12.2 / 13.7 -> 10.1 / 11.6; Q6_K (a block a group of 4 steps, d * sc of
# each 16 weights from the block's scales) 4096x14336 48.2 / 55.1 -> 24.8 / 32.7, 14336x4096
# 46.5 / 54.7 -> 30.9 / 32.4.  The scales folded into f16 pairs (the matmul's fragment) cost two
# HMUL2 a pair more and 2.6-3.0e-4 of error against 2.1e-4.  On sm_90a, where the blocks' rows
# are whole 16-byte words (K a multiple of 256, of 2048 for Q6_K), a group's rows come as one
# box of a tensor map instead (lane 0 issues it; box width `mapped_group_stride`).  Session 28,
# H100, float16, us, M = 2 / 4 / 8, chunk copies -> map (same kernel, the optional map passed as
# zeros or not, same call): Q4_0 4096x14336 18.8 / 22.2 / 28.1 -> 17.5 / 20.9 / 27.1, 5376x21504
# 47.2 / 50.8 / 60.3 -> 41.6 / 45.3 / 55.1; Q5_0 4096x14336 25.7 / 26.6 / 32.5 -> 24.4 / 25.4 /
# 31.1; Q8_0 4096x14336 28.7 / 31.8 / 36.7 -> 26.3 / 29.7 / 34.1, 5376x21504 65.6 / 69.1 / 78.6
# -> 57.7 / 62.9 / 76.1; Q6_K 14336x4096 31.1 / 31.7 / 32.4 -> 30.0 / 30.4 / 32.5.  A box as
# wide as the copies' slot rows (176 bytes for Q4_0 / Q8_0, 208 for Q5_0) gained less and lost
# for Q8_0 (5376x21504 M = 8 78.6 -> 83.4): the bytes past the group come from L2 all the same.
# Q4_K and Q5_K joined in session 31 (v45): a group is one block of 4 steps, whose head each row
# reads once (tc::KquantHead: d * sc exact by one byte permute and one fused multiply-add), and
# the offsets -dmin * m * x summed apart by an mma with A the rows' m pairs into the group's
# accumulators, which -dmin then scales.  H100, float16, us at M = 2 / 4 / 8, loaded -> staged
# (same call): Q4_K 4096x14336 17.9 / 17.8 / 17.9 -> 16.0 / 15.9 / 16.0, 5376x21504 38.4 / 38.5
# / 39.1 -> 34.9 / 35.2 / 35.4, 6144x16384 30.1 / 30.2 / 30.7 -> 28.3 / 28.5 / 29.0, 2048x8192
# 9.8 / 9.8 / 10.0 -> 8.7 / 8.8 / 8.9; Q5_K 4096x14336 21.7 / 22.0 / 26.1 -> 19.8 / 19.8 / 20.1,
# 5376x21504 47.0 / 53.6 / 70.6 -> 42.8 / 42.6 / 42.9, 5120x13824 31.8 / 35.3 / 46.0 -> 29.2 /
# 28.9 / 28.7.  Four warps a block (MATVEC_MMA_FOUR_WARPS, the same rule as the other formats')
# on 14336x4096: Q4_K 19.3 / 19.5 / 20.0 -> 18.4 / 18.6 / 19.1, Q5_K 23.8 / 24.4 / 28.7 -> 22.0
# / 21.9 / 21.4.
#
# (weight groups, activation steps) a warp's copies run ahead of its decode.  The weights' group
# slots and the activations' step slots share each block's dynamic shared memory
# (matvec_mma_staged_layout): deeper rings leave fewer blocks an SM.  Same session and card, two
# calls, 4096x14336 M = 2 / 8: Q4_0 (1, 3) 18.5 / 27.1 (both calls), (2, 3) 18.8 / 26.6, (1, 2)
# 19.2 / 28.0, (1, 1) 26.4 / 40.9; Q5_0 (1, 3) 24.1 / 30.8, (2, 3) 30.6 / 32.7; Q8_0 (2 steps a
# group) (2, 3) 28.6 / 37.2, (2, 2) 29.0 / 37.5, (1, 2) 29.5 / 38.0, (1, 1) 39.5 / 54.3; Q6_K
# (1, 3) 24.8 / 32.7, (1, 2) 25.2 / 33.4, (1, 1) 27.1 / 34.5, (2, 3) 31.8 / 34.3 (one block an
# SM).  Four warps a block (twice the blocks an SM) were slower on every shape but 14336x4096
# (Q4_0 4096x14336 M = 2 28.2 with (2, 3)); since v42's cheaper step they are faster on many
# rows (v43: MATVEC_MMA_FOUR_WARPS below).
MATVEC_MMA_STAGED_AHEAD = {
    "Q4_0": (1, 3),
    "Q5_0": (1, 3),
    "Q8_0": (2, 3),
    "Q6_K": (1, 3),
    "Q4_K": (1, 3),
    "Q5_K": (1, 3),
}
MATVEC_MMA_STAGED_WARPS = 8
# 16-row A tiles a warp multiplies by the same activations (a block's rows: 16 times this).
# Two halve the activations' L2 traffic a weight, which grows with M, but double each warp's
# weight slots (one block an SM where shared memory allows two at one tile).  Same card,
# session 22, us at M = 2 / 4 / 8, one tile -> two (with the settings in parentheses):
# Q4_0 (2 steps a group, (1, 2)) 4096x14336 18.6 / 22.1 / 27.1 -> 25.4 / 27.1 / 30.4,
# 14336x4096 24.1 / 24.7 / 27.4 -> 21.4 / 22.5 / 24.9; Q4_0 ((2, 2)) 4096x14336 -> 20.3 /
# 21.8 / 23.8, 14336x4096 -> 27.7 / 28.3 / 28.8; Q8_0 (2 steps, (1, 2)) 4096x14336 28.6 /
# 31.6 / 37.3 -> 27.7 / 29.2 / 31.5, 14336x4096 33.0 / 34.1 / 37.1 -> 34.8 / 35.4 / 36.3.
# No setting won every shape: one tile stays (a rule by shape and M is not drawn yet).
MATVEC_MMA_STAGED_ROW_TILES = 1
# Formats whose staged mma matvec takes the wide geometry instead ("mma_wide", where its
# shared memory fits the card's: `pick_geometry`): 2 row tiles a warp (32 weight rows a block,
# half the activations' L2 reads a weight) with the rings ahead by these (weight groups,
# activation steps), one block an SM.  Session 28, H100, float16, us, M = 2 / 4 / 8, "mma" ->
# "mma_wide" (same call): Q8_0 4096x14336 26.3 / 29.4 / 35.2 -> 24.9 / 26.3 / 28.5,
# 14336x4096 30.2 / 31.6 / 35.0 -> 29.3 / 31.1 / 32.8, 5376x21504 57.8 / 62.7 / 76.0 -> 55.0 /
# 56.5 / 60.5, 4096x4096 9.6 / 10.1 / 10.9 -> 9.3 / 9.5 / 9.6, 2048x8192 11.1 / 11.9 / 13.8
# -> 10.9 / 11.1 / 11.6, 8192x8192 30.7 / 34.1 / 39.9 -> 29.6 / 31.1 / 32.8 (faster or tied in
# all 30 cells of 10 shapes); with (1, 1), two blocks an SM: faster at N >= 8192 (14336x4096
# 27.2 / 28.0 / 29.7), slower below (4096x14336 31.5 / 33.2 / 36.4).  Q4_0 with (1, 3): mixed
# (4096x14336 17.7 / 20.9 / 27.1 -> 18.2 / 19.0 / 21.0, 14336x4096 22.6 / 23.5 / 26.6 -> 25.4 /
# 26.0 / 26.2, 2048x8192 slower at M = 2, 4); Q5_0 / Q6_K slower but at M = 8 on 4096x14336.
# Session 29, same card, us, M = 2 / 4 / 8, mma -> mma_wide with (1, 3) (same call): Q4_0
# 4096x14336 17.7 / 20.8 / 27.2 -> 18.2 / 19.0 / 20.9, 4096x4096 7.5 / 8.2 / 9.6 -> 7.7 / 7.9 /
# 8.2, 5376x21504 42.2 / 46.7 / 55.7 -> 46.4 / 47.0 / 50.0, 2048x8192 8.9 / 9.0 / 10.8 -> 10.3 /
# 10.2 / 10.4, 5120x5120 13.5 / 14.7 / 16.2 -> 14.9 / 15.3 / 15.9; at M = 5 / 6: 4096x14336
# 22.7 / 25.4 -> 19.4 / 20.7, 5376x21504 48.5 / 52.3 -> 48.2 / 49.1, 4096x4096 8.0 / 8.5 -> 7.9
# / 8.1, 2048x8192 9.5 / 9.9 -> 10.4 / 10.4, 5120x5120 14.8 / 15.7 -> 15.5 / 15.9 (v40 took it
# for Q4_0 from 5 rows).  Since v41 (the activation rows a line of shared memory each) the
# 16-row form's time no longer grows with M, and Q4_0's wide form lost (same card and call, M =
# 2 / 4 / 8, mma -> mma_wide: 4096x14336 M = 8 15.7 -> 18.1, 5376x21504 37.9 -> 48.2) while
# Q8_0's still gains a little (4096x14336 24.6 / 24.8 / 25.1 -> 24.5 / 24.5 / 24.6, 5376x21504
# 55.9 / 56.2 / 56.8 -> 54.9 / 55.2 / 55.4).
MATVEC_MMA_WIDE_ROW_TILES = 2
MATVEC_MMA_WIDE_AHEAD = {"Q8_0": (2, 3)}
# A wide form with rings one group and one step ahead ("mma_wide_shallow", 104 KB, two blocks
# an SM) served Q4_0 and Q8_0 from v40 (session 29: on rows of K <= 8192 whose grid of 32-row
# blocks filled its last wave at least MATVEC_MMA_MIN_LAST_WAVE_FILL or ran
# MATVEC_MMA_WHOLE_WAVES waves; session 30: Q4_0's long rows where 16-row blocks would end in a
# mostly empty wave).  The four-warp form below (v43) fills the same waves with the same
# fraction and was faster in 25 of 28 cells on short rows and 11 of 12 of Q4_0's on long
# ones, so the shallow form went in session 30 (its figures: BENCHMARKS.md sessions 29-30).
MATVEC_MMA_MIN_LAST_WAVE_FILL = Fraction(3, 5)
MATVEC_MMA_WHOLE_WAVES = 2
MATVEC_MMA_STAGED_MIN_BLOCKS_PER_SM = 2  # the bound of registers; shared memory allows 2
# The 16-row form with K split over 4 warps a block instead of 8 ("mma_four_warps"), four
# blocks an SM (the same 16 warps; each warp runs twice the K steps, so its pipeline is
# longer, and a block's set-up and reduction serve half the warps): on rows of K up to
# MATVEC_MMA_FOUR_WARPS_MAX_K whose grid of ceil(N / 16) blocks, four on each of
# MATVEC_WAVE_SMS SMs, fills its last wave at least MATVEC_MMA_MIN_LAST_WAVE_FILL or runs
# MATVEC_MMA_WHOLE_WAVES waves, ahead of the other forms.  Session 30 (v43 on v42's kernel),
# H100, float16, us at M = 2 / 8, the form picked before -> four warps (same call): Q4_0
# 14336x4096 (shallow) 19.2 / 19.6 -> 18.0 / 17.9, 8192x4096 (shallow) 10.8 / 10.9 -> 10.0 /
# 10.3, 28672x4096 (shallow) 36.6 / 37.6 -> 33.2 / 32.3, 8192x8192 (shallow) 18.3 / 19.3 -> 16.9
# / 17.5, 6144x4096 (16 rows) 10.2 / 10.1 -> 8.5 / 8.9; Q5_0 14336x4096 24.7 / 24.1 -> 22.1 /
# 21.8, 28672x4096 44.8 / 42.6 -> 39.5 / 37.7, 8192x8192 22.6 / 22.7 -> 20.4 / 20.9; Q6_K
# 14336x4096 27.9 / 27.3 -> 25.2 / 25.1, 16384x4096 30.3 / 29.8 -> 26.6 / 26.3, 6144x4096 13.2 /
# 13.2 -> 12.9 / 13.0; Q8_0 14336x4096 (shallow) 26.3 / 27.1 -> 25.7 / 25.7, 16384x4096
# (shallow) 28.6 / 29.4 -> 28.1 / 28.1, 14336x8192 (shallow) 47.6 / 49.9 -> 48.4 / 50.0 and
# 8192x8192 M = 2 27.0 -> 27.1 (the rule's losses, 0.3-1.7%). Where the last wave is emptier they lose: 11008x4096 (688 blocks,
# 1.3 waves) Q8_0 (deep wide form) 21.9 / 22.3 -> 22.6 / 23.1, Q4_0 (16 rows) 16.6 / 16.3 ->
# 16.1 / 16.4, though Q5_0 / Q6_K gain 5-8%; 4096x4096 (0.48 of a wave) Q4_0 6.4 / 6.2 -> 7.6 /
# 7.5; 4096x14336 Q4_0 14.9 / 15.5 -> 22.2 / 22.6.
# Past MATVEC_MMA_FOUR_WARPS_MAX_K only the formats of MATVEC_MMA_FOUR_WARPS_ANY_K take it (the
# same fill rule).  Same card and kind of call, M = 2 / 8, us, the pick before -> four warps:
# Q4_0 5376x21504 (shallow) 34.0 / 36.4 -> 33.0 / 36.0, 5120x13824 (shallow) 22.9 / 24.3 ->
# 22.6 / 22.9, 8192x14336 (16 rows) 28.9 / 29.3 -> 26.8 / 27.9, 14336x14336 52.1 / 51.8 ->
# 48.8 / 49.8, 8192x28672 52.0 / 53.9 -> 50.4 / 53.2, 6144x16384 (shallow) 27.5 / 29.9 ->
# 26.4 / 30.5 (the one loss); the others lose on the grids of under a wave: 5376x21504 Q5_0
# 40.3 -> 45.1 at M = 2, Q6_K 50.8 / 51.2 -> 61.3 / 62.0, Q8_0 (deep wide) 52.6 / 53.1 -> 60.6 /
# 63.9, and win by 1-6% only on 8192x14336 and 14336x14336.
MATVEC_MMA_FOUR_WARPS = 4
MATVEC_MMA_FOUR_WARPS_BLOCKS_PER_SM = 4
MATVEC_MMA_FOUR_WARPS_MAX_K = 8192
MATVEC_MMA_FOUR_WARPS_ANY_K = ("Q4_0",)
# The 16-row form in blocks of 6 warps, three an SM ("mma_six_warps"; Q4_0, Q5_0: Q6_K's
# spills 12 bytes at three blocks' registers, Q8_0's 76 KB do not fit three), for grids
# whose last wave of three blocks an SM is fuller than the 16-row form's (two an SM) and, where
# four warps would be taken on a grid of under MATVEC_MMA_WHOLE_WAVES waves, fuller than
# theirs: it fills the waves between.  Session 30 (v44 on v43's kernel), H100, float16, us at
# M = 2 / 8, 8 warps / 4 warps / 6 warps (same call), the last waves' fill of 2 / 4 / 3
# blocks an SM in brackets: Q4_0 5376x21504 (0.27 / 0.64 / 0.85) 36.6 / 37.3, 32.9 / 35.7,
# 29.5 / 31.5; 5120x13824 (0.21 / 0.61 / 0.81) 24.9 / 25.1, 22.5 / 22.9, 19.2 / 20.6;
# 6144x16384 (0.45 / 0.73 / 0.97) 29.1 / 29.6, 26.4 / 29.2, 23.4 / 24.9; 11008x4096 (2.6 waves,
# 0.61 / 0.30 / 0.74) 16.4 / 16.3, 16.0 / 16.4, 14.8 / 14.7; Q5_0 5376x21504 40.1 / 44.4, 45.1 /
# 45.2, 37.0 / 38.0; 5120x13824 27.4 / 27.8, 29.9 / 30.4, 24.4 / 24.8; 6144x16384 36.1 / 36.1,
# 35.5 / 36.0, 29.8 / 31.3; 11008x4096 19.9 / 19.2, 18.7 / 18.4, 18.3 / 17.8.  Where the 16-row
# grid's wave is full it loses: 4096x14336 (0.97 / 0.48 / 0.65) Q4_0 14.9 / 15.5, 22.0 / 22.6,
# 18.9 / 19.9, 4096x4096 Q5_0 7.5 / 7.3, 9.7 / 9.8, 8.3 / 8.7.  Q6_K: 5376x21504 51.0 / 51.5
# against 52.7 / 53.3, 6144x16384 38.1 / 40.5 against 36.7 / 38.8: not taken.  Since v58 the
# staged rule takes four warps with the activations a group at a time there instead (three
# blocks an SM too, MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_AHEAD, and smaller: three fit wherever
# three six-warp blocks do); six warps serve the M = 1 one-row rule.
MATVEC_MMA_SIX_WARPS = 6
MATVEC_MMA_SIX_WARPS_BLOCKS_PER_SM = 3
MATVEC_MMA_SIX_WARPS_AHEAD = {fmt: MATVEC_MMA_STAGED_AHEAD[fmt] for fmt in ("Q4_0", "Q5_0")}
# The same waves for Q4_K and Q8_0, whose six-warp forms spill or do not fit: blocks of 5 warps,
# three an SM ("mma_five_warps").  An SM's registers are four files of 16K, one a quarter of its
# warps: 18 warps (six of three blocks) put 5 on a quarter, 102 registers a thread at most (96
# by ptxas), where 15 (five of three) put 4: 128, as the 16 warps of two 8-warp blocks
# do.  Taken where six warps would be for Q4_0 / Q5_0 but not where four warps are (not measured
# against them there), and after the loaded form.  Session 31 (v46), H100, float16, us at M = 2
# / 8, the pick before -> five warps (same call): Q4_K 5376x21504 (16 rows) 35.0 / 35.5 -> 33.7
# / 34.3, 5120x13824 24.4 / 24.5 -> 22.5 / 22.9, 6144x16384 28.4 / 28.9 -> 26.6 / 27.1; Q8_0
# (deep wide form) 5120x13824 35.8 / 36.6 -> 32.3 / 33.4, 6144x16384 44.0 / 44.4 -> 40.1 / 41.4,
# 5376x21504 52.7 / 53.2 -> 52.0 / 54.0, 11008x4096 21.9 / 22.3 -> 21.6 / 21.4.  Not taken:
# Q6_K's (16 rows -> five: 6144x16384 38.1 / 40.8 -> 35.9 / 37.3, 5120x13824 35.4 / 35.3 -> 35.0
# / 35.3, but 5376x21504 50.9 / 51.5 -> 51.5 / 52.2, and 51.6 / 51.9 -> 52.0 / 52.8 in a later
# call), Q5_K's (1-3% slower on the three long shapes: 5376x21504 43.1 / 43.0 -> 44.1 / 44.5);
# Q4_0 / Q5_0 keep six (Q4_0 5376x21504 29.5 / 31.6 against 32.5 / 33.5 for five; Q5_0 within
# 1%).
MATVEC_MMA_FIVE_WARPS = 5
MATVEC_MMA_FIVE_WARPS_BLOCKS_PER_SM = 3
MATVEC_MMA_FIVE_WARPS_AHEAD = {fmt: MATVEC_MMA_STAGED_AHEAD[fmt] for fmt in ("Q4_K", "Q8_0")}
# Blocks of 2 warps, eight an SM ("mma_two_warps": the same 16 warps an SM, each warp twice
# the K steps of four warps'), on rows of K up to MATVEC_MMA_TWO_WARPS_MAX_K whose grid is one
# wave of eight blocks an SM at least MATVEC_MMA_TWO_WARPS_MIN_FILL full, where four warps
# would run 1.6-2 waves.  Session 31 (v47), H100, float16, us at M = 2 / 8, four warps -> two
# (same call): 14336x4096 (896 blocks: 0.85 of a wave of eight) Q4_0 18.0 / 17.9 -> 16.1 /
# 16.9, Q5_0 21.9 / 21.8 -> 20.1 / 20.4, Q6_K 25.2 / 25.1 -> 23.9 / 24.8, Q4_K 18.6 / 19.4 ->
# 17.7 / 18.1; 16384x4096 (0.97) Q4_0 19.2 / 19.1 -> 17.1 / 17.6, Q5_0 23.0 / 22.8 -> 20.5 /
# 20.9, Q6_K 26.7 / 26.3 -> 24.6 / 25.5, Q4_K 20.5 / 20.2 -> 18.0 / 18.4.  Not taken: Q8_0's
# and Q5_K's (14336x4096 25.6 / 25.8 -> 26.3 / 27.6 and 22.0 / 21.4 -> 22.9 / 23.1), nor
# emptier or longer grids: 28672x4096 (1.7 waves) within +-9%, 11008x4096 (0.65) up to 22%
# slower, 8192x8192 (0.48) 50-70% slower.
MATVEC_MMA_TWO_WARPS = 2
MATVEC_MMA_TWO_WARPS_BLOCKS_PER_SM = 8
MATVEC_MMA_TWO_WARPS_MAX_K = 4096
MATVEC_MMA_TWO_WARPS_MIN_FILL = Fraction(4, 5)
MATVEC_MMA_TWO_WARPS_AHEAD = {
    fmt: MATVEC_MMA_STAGED_AHEAD[fmt] for fmt in ("Q4_0", "Q5_0", "Q6_K", "Q4_K")
}
# Q6_K's two warps with their activations a weight group at a time, as the one-row form takes
# them (a slot the group's 4 steps of the 8 rows, 4 KB; one wait a group; the group's steps
# without tests between them): seven blocks an SM (its 31904 bytes do not fit eight), taken
# before two warps where its grid is one wave of seven blocks an SM at least
# MATVEC_MMA_TWO_WARPS_MIN_FILL full.  Session 34, H100, float16, us at M = 2 / 4 / 8, two
# warps -> the same at the by-group form's shared memory (seven an SM) -> by group (same call):
# Q6_K 14336x4096 (0.97 of a wave of seven) 23.7 / 23.9 / 24.6 -> 23.3 / 23.4 / 23.7 -> 22.1 /
# 22.3 / 23.1, 13824x4096 23.3 / 23.6 / 23.9 -> 23.1 / 23.4 / 23.7 -> 22.1 / 22.2 / 23.0; two
# waves of seven lose (16384x4096 24.5 / 24.7 / 25.4 -> 31.9 / 32.6 / 32.5).  As taken (v54,
# the pick before -> this form, BENCHMARKS.md): 12288x4096 (0.83 of a wave of seven; eight
# warps before) 23.3 / 23.5 / 23.4 -> 21.6 / 21.7 / 22.7, 12288x2048 15.8 / 15.9 / 14.9 -> 11.9
# / 12.0 / 12.7, 14336x2048 13.2 / 13.3 / 13.5 -> 12.5 / 12.6 / 13.1; bfloat16 0-19% faster but
# two cells at M = 8 within 1% slower.  Not taken by the
# other formats: Q4_0 (eight an SM) and Q5_0 (seven) within 1-2% of two warps (14336x4096
# Q4_0 16.1 / 16.6 / 16.7 -> 15.9 / 16.3 / 16.7, Q5_0 20.0 / 20.3 / 20.6 -> 19.5 / 19.7 /
# 20.4), Q4_K 7-10% slower (17.6 / 17.9 / 18.1 -> 18.9 / 19.1 / 20.0; the same for its eight-,
# four- and five-warp forms, and for Q5_K's, by group).
MATVEC_MMA_TWO_WARPS_X_BY_GROUP_BLOCKS_PER_SM = 7
MATVEC_MMA_TWO_WARPS_X_BY_GROUP_AHEAD = {"Q6_K": MATVEC_MMA_STAGED_AHEAD["Q6_K"]}
# Q6_K's three blocks an SM, where Q4_0 / Q5_0 took six warps and Q4_K / Q8_0 take five (Q6_K's
# six-warp form spills, its five-warp form gained nothing, v46): four warps with the
# activations a group at a time (63680 bytes: three blocks an SM).  Session 34, H100, float16,
# us at M = 2 / 8, the pick before -> four warps a step at a time at three blocks an SM
# (dynamic shared memory padded) -> by group (same call): 5376x21504 (eight warps, 1.27 waves;
# 0.85 of a wave of three) 51.8 / 51.5 -> 49.1 / 49.2 -> 46.8 / 48.8, 6144x4096 (four warps,
# 0.73; 0.97) 12.7 / 12.9 -> 11.3 / 11.5 -> 10.9 / 11.1, 11008x4096 (eight warps, 2.6 waves;
# 1.74) 22.3 / 22.1 -> 20.5 / 20.9 -> 19.4 / 19.5; under 3/5 of a last wave of three it loses
# (8192x8192: four warps 24.2 / 24.9 against 28.9 / 29.0, 13824x5120 29.4 / 29.8 against 31.6 /
# 30.4), as under a fuller wave of eight warps (4096x14336 21.2 / 21.9 against 27.9 / 28.8).
# As taken (v55, the pick before -> this form, BENCHMARKS.md): 5376x21504 51.6 / 51.6 -> 45.0 /
# 46.6, 5120x13824 35.0 / 35.2 -> 29.9 / 31.8, 18944x8960 67.0 / 67.5 -> 59.8 / 60.1, 6144x8192
# (four warps before) 23.0 / 23.2 -> 18.2 / 18.5; every one of 11 changed shapes 4-24% faster,
# bfloat16 2-23% but 4608x14336 at M = 8 (30.9 -> 31.6).
# Q4_0 and Q5_0 take it too, before their six warps (v58; 55488 / 59584 bytes, three blocks an
# SM by registers): session 35, H100, float16, us at M = 2 / 8, six warps -> it (scratch, same
# call): Q4_0 5376x21504 29.3 / 31.3 -> 28.7 / 31.1, 4608x14336 19.2 / 20.6 -> 18.9 / 19.8,
# 11008x4096 14.5 / 14.6 -> 13.9 / 14.0, 6144x16384 23.4 / 25.0 -> 23.4 / 24.7; Q5_0 5376x21504
# 37.2 / 38.5 -> 36.2 / 37.7, 6144x16384 29.9 / 30.9 -> 28.6 / 30.2, 11008x4096 17.9 / 18.1 ->
# 17.2 / 17.1, 5120x13824 24.6 / 25.0 -> 24.5 / 25.7 (the one loss).  At M = 1 Q4_0's one-row
# rule keeps six warps (5376x21504 27.5 against 31.7 at four blocks an SM, 27.6 held to three);
# Q5_0's takes it at three blocks an SM (v59, MATVEC_ONE_ROW_MMA).
MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_BLOCKS_PER_SM = 3
# Q4_K has the form for its one-row rule only (MATVEC_MMA_ONE_ROW_ONLY_FORMS): at M = 2..8 its
# five warps stay (session 36, H100, float16, us at M = 2 / 8, five warps against it, same call:
# 5376x21504 33.9 / 34.4 against 35.7 / 37.6, 6144x16384 26.6 / 27.3 against 27.8 / 29.4; the
# K-quants lose by group at M = 2..8, session 34).
MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_AHEAD = {
    fmt: MATVEC_MMA_STAGED_AHEAD[fmt] for fmt in ("Q4_0", "Q5_0", "Q6_K", "Q4_K")
}
# Q4_0's eight warps with their activations a weight group at a time ("mma_x_by_group":
# 110848 bytes, two blocks an SM where the card's shared memory holds them, an H100's; an
# A100's 163 KB holds one, and there the step-at-a-time form stays), taken where eight warps
# are on rows of K >= MATVEC_MMA_X_BY_GROUP_MIN_K whose grid's last wave of two blocks an SM is
# at least MATVEC_MMA_X_BY_GROUP_MIN_FILL full.  Session 35, H100, us at M = 2 / 4 / 8, a step
# at a time -> by group (cuda_matvec_batched.py, same call; BENCHMARKS.md): float16 4096x14336
# 14.9 / 15.2 / 15.5 -> 14.4 / 14.7 / 15.0, 4096x11008 12.7 / 12.9 / 13.2 -> 12.1 / 12.3 /
# 12.8, 4096x8192 9.9 / 10.1 / 10.2 -> 9.5 / 9.6 / 9.8, 3072x8192 (0.73 of a wave) 8.7 / 8.8 /
# 8.9 -> 8.3 / 8.4 / 8.7, 3584x18944 (0.85) 17.8 / 18.2 / 18.8 -> 17.4 / 17.8 / 18.4; bfloat16
# 0-5% faster but 3584x18944 at M = 2 / 8 (within 0.6%).  Emptier grids lose (2560x10240,
# 0.61: bfloat16 9.9 / 10.0 / 10.3 -> 10.1 / 10.1 / 10.9; 2048x8192, 0.48: 7.7 / 7.8 / 7.9 ->
# 7.8 / 7.8 / 8.2), as do rows of a group or two a warp (4096x2048 at M = 8, bfloat16 4.4 ->
# 4.6; 2048x2048 3.0 -> 3.5).  Not Q5_0 (119040 bytes: one block an SM) nor the K-quants (7-15%
# slower by group in every form, session 34).
MATVEC_MMA_X_BY_GROUP_AHEAD = {"Q4_0": MATVEC_MMA_STAGED_AHEAD["Q4_0"]}
MATVEC_MMA_X_BY_GROUP_MIN_K = 4096
MATVEC_MMA_X_BY_GROUP_MIN_FILL = Fraction(7, 10)
# (format, form)s whose activation copies go through L1 too (cp.async.ca; X_THROUGH_L1 in
# cuda/matvec_mma_staged.cu): an SM's blocks work on the same activations, so a line one block
# copied may serve the others (three blocks an SM of Q4_0's four warps by group, 3 x 56.5 KB of
# shared memory).  At M = 8 the activations' L2 reads are ~1.8x the 4-bit weights' bytes, and
# the staged matvec's time from M = 2 to 8 grows by their copies alone (session 36: copies of 2
# of 8 rows took M = 8 to M = 2's time).  Session
# 36, H100, us at M = 2 / 4 / 8, L2 only -> through L1 (.exp/s36/xca.py, same call;
# BENCHMARKS.md), float16: 5376x21504 28.8 / 29.3 / 31.4 -> 28.5 / 28.7 / 29.4, 6144x16384 23.3
# / 23.6 / 24.6 -> 23.2 / 23.4 / 24.2, 4608x14336 at M = 8 19.8 -> 20.4 (the one loss over 1%),
# 11008x4096, 5120x13824, 6144x8192 within -2..+1%.  The other by-group forms measured lost
# (scratch, M = 8): Q5_0's four (3 x 60.6 KB) 37.8 -> 38.6, Q6_K's four (3 x 64.7 KB) 47.1 ->
# 54.1, Q4_0's eight warps (2 x 112 KB: little L1 left) 15.0 -> 17.1.  Why Q5_0's and Q6_K's four
# lose is not measured: their three blocks need the same 196 KB carveout step as Q4_0's, and
# their activations are a smaller share of their bytes.
MATVEC_MMA_X_THROUGH_L1 = {("Q4_0", "mma_four_warps_x_by_group")}
# Rows of K up to MATVEC_MMA_LOADED_MAX_K that four warps do not take keep the loaded form
# where the format has it, up to MATVEC_MMA_LOADED_MAX_M[format] activation rows (Q5_K's
# loaded form slows with M: its registers spill): a warp's 2 groups of 16-row blocks are too
# few for the staged rings to pay off.  Session 31, H100, float16, us at M = 2 / 4 / 8, loaded /
# staged (same call): Q4_K 4096x4096 6.2 / 6.2 / 6.3, 6.8 / 6.8 / 6.6; 11008x4096 15.6 / 15.6 /
# 16.1, 17.9 / 17.9 / 17.2 (four warps 16.0 / 16.3 / 16.3); Q5_K 4096x4096 7.3 / 8.0 / 9.2, 8.0
# / 8.1 / 8.0; 11008x4096 19.1 / 19.6 / 23.9, 21.1 / 21.0 / 20.5 (four warps 18.9 / 19.0 /
# 18.5).  From K = 8192 the staged form won every cell (2048x8192 Q4_K 9.8 / 9.8 / 10.0 -> 8.7
# / 8.8 / 8.9).
# Q4_K / Q5_K take no six-warp form: before the head was read once a group it was the fastest
# in none of 32 cells (8 shapes, M = 2 / 8; 5376x21504 Q5_K M = 8 48.9 against 45.6 for 8
# warps), and since then it spills (36-48 bytes at three blocks' registers).
MATVEC_MMA_LOADED_MAX_K = 4096
MATVEC_MMA_LOADED_MAX_M = {"Q4_K": MATVEC_MMA_MAX_M, "Q5_K": 4}
MATVEC_MMA_LOADED_FORMATS = tuple(MATVEC_MMA_LOADED_MAX_M)


MATVEC_ONE_ROW_MMA_MAX_WAVES = 2  # a one-row rule's waves unless it names fewer


@dataclass(frozen=True)
class OneRowMmaRule:
    """Where the CUDA matvec (M = 1) of a format takes the staged mma matvec's one-row form:
    rows of at least ``min_k`` weights, the staged pick at M = 1 among ``forms`` (each one of
    the format's staged forms; a pick outside them keeps the matvec's own; a form of
    ``form_min_k`` only on rows of its own least K), its grid at most ``max_waves`` waves, the
    last at least ``min_fill`` full (a form of ``form_min_fill``: its own; of
    ``second_wave_fill``: its own where the grid runs more than one wave); ``max_waves`` None: a
    grid of any waves, of which one wave alone must be ``min_fill`` full.  Where the pick misses
    that, the matvec keeps its own kernel, but for a form of ``fall_through``: then the staged
    pick among the rule's other forms is tried instead."""

    min_k: int
    min_fill: Fraction
    forms: tuple[str, ...]
    form_min_fill: dict[str, Fraction] = field(default_factory=dict)
    max_waves: int | None = MATVEC_ONE_ROW_MMA_MAX_WAVES
    form_min_k: dict[str, int] = field(default_factory=dict)
    second_wave_fill: dict[str, Fraction] = field(default_factory=dict)
    fall_through: tuple[str, ...] = ()

    def min_fill_of(self, geometry: str, waves: int = 1) -> Fraction:
        """How full the last wave of ``geometry``'s grid of ``waves`` waves must be."""
        if waves > 1 and geometry in self.second_wave_fill:
            return self.second_wave_fill[geometry]
        return self.form_min_fill.get(geometry, self.min_fill)

    def takes_grid(self, geometry: str, waves: int, last_wave: Fraction) -> bool:
        """Whether a grid of ``geometry`` of ``waves`` waves, the last ``last_wave`` full, takes
        the one-row form."""
        if self.max_waves is None:
            return waves > 1 or last_wave >= self.min_fill_of(geometry)
        return waves <= self.max_waves and last_wave >= self.min_fill_of(geometry, waves)

    def forms_for(self, k: int) -> tuple[str, ...]:
        """The forms the rule takes on rows of ``k`` weights."""
        return tuple(f for f in self.forms if k >= self.form_min_k.get(f, self.min_k))


# The CUDA matvec (M = 1) of these formats with 16-bit activations takes the staged mma matvec
# where its OneRowMmaRule says (`one_row_mma_geometry`), in the kernel's one-row form (ONE_ROW: a
# block an activation row, its activations a weight group at a time, a row's whole groups
# without tests between their steps).  It reads its weights by tensor map into shared memory
# where the split-K matvec loads each block by two-byte loads through L1 (ncu: L1 86% busy on
# Q4_0 4096x14336).  Session 33 (v51), H100, float16, us, split-K -> one-row staged form (same
# call): Q4_0 14336x4096 (two warps, 0.85 of a wave) 15.3 -> 14.6, 16384x4096 16.8 -> 15.5,
# 5376x21504 (six warps, 0.85) 29.3 -> 27.7, 8192x8192 (four warps) 16.9 -> 15.4, 4096x8192 9.9 ->
# 8.9, 3072x8192 (0.73) 8.1 -> 7.6, 11008x4096 (six warps, 1.74 waves) 12.4 -> 12.0; Q5_0
# 4096x11008 14.7 -> 13.7, 8192x14336 (1.94 waves) 33.8 -> 31.7, 8192x16384 36.9 -> 35.8,
# 8192x8192 19.9 -> 19.0, 4096x8192 11.7 -> 10.7, 16384x4096 19.7 -> 19.2.  Where Q5_0's last wave
# is under 9/10 full it ties or loses: 3584x18944 (0.85) 20.9 / 20.7, 5120x13824 (0.81) 21.7 /
# 21.7, 14336x4096 (0.85) 17.7 -> 18.6, 5376x21504 (0.85) 33.6 -> 34.0, 11008x4096 (last wave
# 0.74) 14.2 -> 15.0, 4608x14336 (0.73) 20.6 -> 22.5; and both formats under 3/5 of a wave
# (2048x8192 Q4_0 6.2 -> 6.5, Q5_0 7.0 -> 8.7).  Before v51 (session 32, v49) the staged kernel
# won only on rows of K >= 10240 (Q5_0: 14336) in one wave of eight or four warps a block.
# Q6_K (session 34, v53), paired / quad / streamed quad -> one-row staged form (same call):
# 4096x14336 22.2 -> 19.8, 4096x11008 18.5 -> 16.5, 8192x14336 (1.94 waves) 41.7 -> 37.2,
# 3584x18944 (0.85) 28.7 -> 25.5, 3072x8192 (0.73) 12.0 -> 10.5, 2560x10240 (0.61) 13.3 -> 12.0,
# four warps 8192x8192 26.8 -> 22.4, 14336x4096 (1.70 waves) 22.3 -> 21.3, 13824x5120 29.1 -> 27.0,
# 6144x4096 11.6 -> 10.9; not under 3/5 of a wave (2048x8192 8.9 / 9.3, 2048x14336 13.2 / 15.5)
# nor where eight warps run a second wave 0.09-0.27 full (5376x21504 43.2 / 52.4, 4608x14336
# 29.0 / 29.9).  Q6_K takes no two-warp form at M = 1, where the staged pick for M = 2..8 has it:
# 14336x4096 two warps 22.0 (bfloat16 22.6 against its streamed quad's 22.1), four 21.3 (21.0).
# Q6_K's rule takes its four warps of three blocks an SM too (mma_four_warps_x_by_group, v56:
# the one-row kernel reserving the batched one's shared memory so that three blocks an SM run,
# not four): quad / paired -> it, 5376x21504 43.3 -> 42.3, 4608x14336 29.0 -> 26.1, 6144x16384
# 37.3 -> 32.5, 4608x4096 11.9 -> 9.1; 14 shapes 2-23% faster (bfloat16: but 11008x14336 53.7
# -> 54.7).  Not Q4_K / Q5_K (v51: 4096x14336 14.6 -> 14.8, 17.2 -> 18.7: their M = 1
# kernels load 16-byte words already) nor Q8_0 (its matvec within 1.18x on the H100; on an H200
# it is not: Q8_0's rule below).
# Q5_0's rule takes the same form (v59) where its last wave of three blocks an SM is at least
# 4/5 full, and before six warps; Q4_K's takes it and four warps (four blocks an SM) on rows of
# K >= 8192 in one wave, and nothing else (v60).  Session 36, H100, us, the pick before -> it
# (cuda_matvec_ab.py, same call; BENCHMARKS.md), float16 / bfloat16: Q5_0 5376x21504 (split-K)
# 33.7 / 33.5 -> 32.7 / 32.6, 5376x5120 11.1 -> 9.4 / 9.4, 6144x28672 46.3 -> 45.0, 6144x16384
# (six warps) 27.7 -> 27.3, 5120x13824 (0.81 of a wave) 21.7 / 21.8 -> 21.4, 5120x4096 7.9 ->
# 8.1 / 8.0 (the one loss); not 4608x14336 (0.73: scratch 20.6 -> 21.3) nor 11008x4096 (two
# waves, the last 0.74 full: 14.3 -> 15.2).  Q4_K (quad) 5376x21504 31.0 / 31.3 -> 29.8 / 31.0,
# 5120x13824 22.0 / 22.3 -> 20.2 / 21.2, 6144x16384 25.7 / 26.1 -> 24.0 / 24.5, 5376x8192 14.7 /
# 14.9 -> 12.7 / 13.2, 4608x14336 (0.73) 21.2 / 21.3 -> 20.5 / 21.5, four warps (paired) 8192x8192
# 18.2 / 18.3 -> 16.4 / 17.0; not two waves (11008x14336 38.3 / 38.4 -> 40.0 / 41.2, 16384x8192
# bfloat16 32.8 -> 38.5), nor Q4_K's short rows (11008x4096, quad_stream, 12.9 against 14.0,
# scratch), nor its one-wave grids of eight warps (4096x14336, paired, 14.7; v51's one-row eight
# warps 14.8), nor Q5_K (scratch: 5376x21504 35.3 -> 39.0, 6144x16384 29.2 -> 31.0), nor Q4_0
# (its six warps tie it: 5376x21504 27.7 / 27.6, 6144x16384 22.0 / 22.4).  With W_AHEAD 3 and
# its weights before the wait (MATVEC_ONE_ROW_MMA_AHEAD) Q4_0's rule takes it before six warps
# on rows of K >= 8192 (v63); session 37, H100, us, six warps -> it (cuda_matvec_ab.py, same
# call), float16 / bfloat16: 5376x21504 27.5 / 27.6 -> 26.2 / 26.8, 4608x14336 17.5 / 17.4 ->
# 15.9 / 16.0, 6144x16384 22.0 / 22.2 -> 21.2 / 21.4, 5120x13824 17.9 / 18.3 -> 16.6 / 17.0,
# 12288x8192 (1.94 waves) 22.8 / 23.1 -> 21.8 / 22.0, 5376x8192 11.4 / 11.7 -> 10.5 / 10.6,
# 11008x14336 34.7 / 35.4 -> 33.7 / 34.1; on rows of 4096 it won or lost (4608x4096 6.3 / 6.5
# -> 5.7 / 6.0, 6144x4096 7.2 / 7.4 -> 7.2 / 7.7, 11008x4096 12.0 / 12.2 -> 12.7 / 12.8).
# Q5_0's two warps take a last wave from 4/5 full (v63: split-K before it under 9/10), with
# W_AHEAD 2: 14336x4096 (0.85) 17.7 / 17.7 -> 17.0 / 17.1, 13824x4096 (0.82) 17.2 / 17.2 ->
# 16.9 / 16.8, and 16384x4096 (two warps before too) 19.2 / 19.1 -> 17.7 / 17.7.  Its eight
# warps (W_AHEAD 2 since v62) take a last wave from 7/10 full (v64; split-K before under
# 9/10): 3584x18944 (0.85) 20.8 / 20.9 -> 19.9 / 20.0, 3072x8192 (0.73) 9.3 / 9.4 -> 9.0 / 9.0,
# 3072x14336 14.6 / 14.5 -> 14.3 / 14.3, 3584x28672 29.8 / 29.8 -> 29.0 / 28.9, 3584x4096 6.6
# -> 6.6; not under (2560x10240, 0.61: split-K 9.9, eight warps 10.3).  Its by-group four at
# W_AHEAD 3 won and lost (5120x13824 21.3 -> 20.6, 6144x16384 27.5 -> 26.2, but 5376x21504
# 32.7 -> 33.1, 6144x4096 8.8 -> 9.7): it keeps its batched twin's rings.
# Since v68 (session 39, H200) Q5_0's two warps need 7/8 of their wave, and where they miss it
# the pick falls through to the other forms (`OneRowMmaRule.fall_through`): four warps, whose
# second wave needs 3/5 (`second_wave_fill`; one wave the rule's 9/10).  H200, us, the pick
# before -> four warps (cuda_matvec_ab.py, same call; BENCHMARKS.md), float16 / bfloat16:
# 14336x4096 (two warps, 0.85 of their wave) 16.4 / 16.3 -> 15.4, 13824x4096 (0.82) 16.3 -> 15.2,
# 15360x4608 (split-K) 21.1 / 21.3 -> 18.9, 15872x4608 21.8 / 21.9 -> 19.1, 14848x5120 21.0 / 21.1
# -> 20.3, 13824x6144 21.5 -> 21.2; rows of 7168-8192 within -3..+3% (15360x8192 29.6 / 29.8 ->
# 30.5 / 30.4).  Not taken: four warps in one wave under 9/10 (6400x4096, 0.76: 9.1 -> 9.5;
# 6656x6144, 0.79: 12.0 -> 13.0; 7168x8192, 0.85: 16.3 -> 16.6), nor for 14848x4096 (two warps
# 0.88 of their wave: 16.5 -> 16.8).
# Q8_0's rule (v65) comes from an H200 (session 38, the first with no H100 lent; copies at 4.27
# TB/s against the H100's 2.9), where Q8_0's own kernels, 1.12-1.18x the floor on the H100, took
# 1.32-1.50x: eight warps and five (W_AHEAD 2 with the weights before the wait; five warps from a
# last wave 3/4 full), the staged pick between them, in up to two waves, on rows of K >= 12288
# from a last wave 4/5 full.  Session 38, H200, float16, us, its own kernel -> the one-row form
# (cuda_matvec_rings.py, same call): eight warps 4096x4096 8.7 -> 6.7, 4096x14336 21.0 -> 19.6,
# 4096x11008 17.6 -> 15.5, 3072x8192 10.8 -> 10.4, 2048x8192 (0.48 of a wave, the emptiest
# measured) 8.8 -> 8.5, 2560x10240 12.3 -> 12.0, 3584x18944 27.7 -> 24.8, 8192x8192 (two waves)
# 23.4 -> 22.5, 8192x14336 38.7 -> 37.1; five warps 5376x21504 42.9 -> 41.8, 6144x16384 36.9 ->
# 33.3, 6144x4096 12.6 -> 9.5, 5376x5120 12.8 -> 10.6, 12288x4096 (two waves) 20.1 -> 18.0,
# 5120x13824 29.4 -> 27.0.  Not five warps under 3/4 of a last wave (11008x4096, 0.74 of a
# second: 16.3 against 16.9; but 4608x14336, 0.73 of one, 29.5 against 27.5) nor grids of three
# waves or more (14336x4096, 13824x4096: their streamed quads 19.4 / 19.2 against 21.6 / 21.0).
# W_AHEAD 3 tied (the nine eight-warp shapes 157.1 us in all at 2, 156.8 at 3).  The rule as
# first written, against the tree before (cuda_matvec_ab.py, same call; BENCHMARKS.md), float16
# / bfloat16: 2048x4608 7.4 -> 5.6 / 6.0, 2560x4096 6.7 / 6.8 -> 5.2 / 5.5, 4096x8192 13.5 /
# 13.6 -> 11.8 / 12.1, 6144x4096 12.5 / 12.8 -> 9.5 / 9.7, 6144x16384 37.1 / 37.5 -> 33.2 /
# 34.3, 4096x28672 38.9 / 39.2 -> 37.5 / 38.3, 12288x21504 82.0 / 81.8 -> 81.8 / 83.0: of 42
# cells 33 2-24% faster, 5 within 1%, and the long rows of emptier waves 7-15% slower
# (3072x14336, 0.73 of a wave, 16.6 -> 18.2 / 18.6; 2048x28672, 0.48, 24.1 -> 25.7 / 27.6), which
# kept their paired kernel (v65's long rows: K >= 12288 from a last wave 4/5 full).  Not measured
# on an H100.  Since v66 (session 39, H200) the two forms copy groups of 4 steps
# (MATVEC_ONE_ROW_MMA_GROUP_STEPS) and win on grids of any waves: the rule takes every grid of
# two waves or more and a grid of one wave from 9/20 full, the forms at any fill (no long rows).
# H200, float16, us, the pick before -> eight / five warps of 4-step groups (same call): 14336x4096
# (quad_stream, 3.4 waves of eight) 19.4 -> 18.3 / 20.2, 16384x4096 (default) 25.6 -> 20.5 / 21.9,
# 28672x4096 35.9 -> 33.6 / 35.7, 11008x4096 16.3 -> 15.2 / 15.7, 4608x14336 (default) 29.4 ->
# 24.5 / 25.5, 2048x28672 (paired) 24.0 -> 23.3, 3072x14336 (paired) 16.6 -> 16.8 (the one loss of
# 30 shapes, 1%); bfloat16 alike (14336x4096 19.5 -> 18.9, 4608x14336 29.5 -> 25.0).
# the one-row forms of the staged forms that take their activations a step at a time (Q4_0 /
# Q5_0's rules take them all)
MATVEC_ONE_ROW_MMA_STEP_FORMS = ("mma", "mma_four_warps", "mma_six_warps", "mma_two_warps")
MATVEC_ONE_ROW_MMA = {
    "Q4_0": OneRowMmaRule(
        4096,
        Fraction(3, 5),
        (*MATVEC_ONE_ROW_MMA_STEP_FORMS, "mma_four_warps_x_by_group"),
        form_min_k={"mma_four_warps_x_by_group": 8192},
    ),
    "Q5_0": OneRowMmaRule(
        4096,
        Fraction(9, 10),
        (*MATVEC_ONE_ROW_MMA_STEP_FORMS, "mma_four_warps_x_by_group"),
        {
            "mma_four_warps_x_by_group": Fraction(4, 5),
            "mma_two_warps": Fraction(7, 8),
            "mma": Fraction(7, 10),
        },
        second_wave_fill={"mma_four_warps": Fraction(3, 5)},
        fall_through=("mma_two_warps",),
    ),
    "Q6_K": OneRowMmaRule(
        4096, Fraction(3, 5), ("mma", "mma_four_warps", "mma_four_warps_x_by_group")
    ),
    "Q4_K": OneRowMmaRule(
        8192, Fraction(7, 10), ("mma_four_warps", "mma_four_warps_x_by_group"), max_waves=1
    ),
    "Q8_0": OneRowMmaRule(4096, Fraction(9, 20), ("mma", "mma_five_warps"), max_waves=None),
}
# staged forms a format has for its one-row rule only (its batched kernel keeps its others)
MATVEC_MMA_ONE_ROW_ONLY_FORMS = {"Q4_K": ("mma_four_warps_x_by_group",)}
# (format, form): the rings ahead (weight groups, activation steps) of the one-row kernel where
# they differ from its batched twin's (the form's aheads), its weights W_AHEAD groups on then
# issued before the wait for a group's own (WEIGHTS_BEFORE_WAIT in cuda/matvec_mma_staged.cu),
# so W_AHEAD + 1 groups are in flight while a warp waits.  Its M = 1 time is mostly the
# pipeline's: with its decode and mma skipped the one-row kernel took 1.14-1.30x the floor
# (benchmarks/cuda_matvec_activation_copies.py --kind matvec --variants pipeline-only, session
# 37) where a read of the same bytes takes 0.96-1.03x (cuda_read_floor.py), and ncu saw it
# hold 13 warps an SM against the read's 45.  The deeper ring keeps the blocks an SM of every
# form here on an H100 (a smaller card's shared memory may not: `one_row_mma_geometry`).
# Session 37, H100, us, M = 1, W_AHEAD 1 with the weights after the wait -> before it -> and
# W_AHEAD 2 (-> 3), float16 (scratch, .exp; W_AHEAD 3 takes Q5_0's and Q6_K's eight warps to one
# block an SM): Q4_0 eight warps 4096x14336 13.8 -> 13.9 -> 13.1 (13.0), two warps 14336x4096
# 14.6 -> 14.6 -> 13.3 (13.2); Q5_0 eight warps 4096x14336 16.9 -> 17.0 -> 15.8 (19.3); Q6_K
# eight warps 4096x14336 19.8 -> 20.0 -> 18.8 (22.1), four warps 14336x4096 21.4 -> 19.6 -> 19.4
# (21.8); Q4_K four warps by group 5376x21504 29.9 -> 29.6 -> 28.9 (28.8).  As taken (v62,
# cuda_matvec_ab.py against the tree before, same call; BENCHMARKS.md), float16 / bfloat16:
# Q4_0 4096x14336 13.9 / 13.9 -> 12.9 / 13.1, 14336x4096 14.6 / 14.9 -> 13.3 / 13.6, 3072x8192
# 7.6 -> 6.8; Q5_0 4096x14336 17.0 -> 15.8, 8192x16384 35.9 -> 34.8; Q6_K 4096x14336 19.8 /
# 20.1 -> 18.7 / 19.1, 14336x4096 21.4 / 21.0 -> 19.4 / 19.8, 13824x5120 26.8 -> 23.8; Q4_K
# 5376x21504 29.8 / 30.7 -> 29.0 / 29.9: of 62 cells, 53 2-11% faster, 7 within 1%, Q6_K
# bfloat16 3584x18944 and 2560x10240 2% slower.  Not taken: Q4_0's six
# warps (5376x21504 27.5 -> 28.2 -> 29.1), Q5_0's and Q6_K's four warps by group (5376x21504
# 32.6 -> 33.3 -> 33.7 (32.7), 42.2 -> 42.8 -> 42.9 (42.4)), nor any batched form (M = 2 / 8,
# W_AHEAD 2: 13 of 20 cells 2-34% slower, 6 within 1%, Q5_0 14336x4096 at M = 2 2% faster; the
# weights before the wait alone: Q4_0 0-5% faster, Q5_K and Q6_K by group 2-4% slower).
# Q4_0's by-group four (W_AHEAD 3: 26.2 against 2's 26.8 on 5376x21504) and Q5_0's two warps
# (14336x4096 W_AHEAD 1 18.6, 2 17.0, 3 17.3) came with v63 (above MATVEC_ONE_ROW_MMA_STEP_FORMS).
# Q8_0's eight and five warps (v65, from an H200) ran W_AHEAD 2 with the weights before the wait;
# since v66 they and the by-group fours of Q4_0, Q5_0 and Q6_K take larger weight groups
# (MATVEC_ONE_ROW_MMA_GROUP_STEPS) with the rings below.
MATVEC_ONE_ROW_MMA_AHEAD = {
    ("Q4_0", "mma"): (2, 3),
    ("Q4_0", "mma_two_warps"): (2, 3),
    ("Q4_0", "mma_four_warps_x_by_group"): (2, 3),
    ("Q5_0", "mma"): (2, 3),
    ("Q5_0", "mma_two_warps"): (2, 3),
    ("Q5_0", "mma_four_warps_x_by_group"): (1, 3),
    ("Q6_K", "mma"): (2, 3),
    ("Q6_K", "mma_four_warps"): (2, 3),
    ("Q6_K", "mma_four_warps_x_by_group"): (1, 3),
    ("Q4_K", "mma_four_warps_x_by_group"): (2, 3),
    ("Q8_0", "mma"): (1, 3),
    ("Q8_0", "mma_five_warps"): (1, 3),
}
# (format, form): K steps of the one-row kernel's weight groups where they differ from
# MATMUL_GROUP_STEPS (its batched twin's and the matmul's): each group one tensor copy of twice the
# bytes (a box wider than 256 bytes reads the blocks as 2-byte elements,
# `weight_map_element_bytes`), so a warp waits and asks for copies half as often.  On an H200 the
# one-row kernel's copies are too many and too small for the card (session 38: 19% of the pipeline's
# stall samples behind the tensor copy's issue); Q8_0's groups were the smallest (2 steps, 136 bytes
# a row).  Session 39, H200, float16, us, the pick -> these groups with the rings of
# MATVEC_ONE_ROW_MMA_AHEAD (a scratch script, landed as benchmarks/cuda_matvec_rings.py's variants
# FORM@W/XegSTEPS; same call; BENCHMARKS.md): Q8_0 eight warps (4 steps, W_AHEAD 1) 4096x14336 19.5
# -> 18.1, 4096x28672 37.3 -> 33.8, 8192x28672 71.6 -> 64.4, 8192x4096 12.4 -> 11.3, 4096x4096 6.7
# -> 6.4; five warps 5376x21504 41.7 -> 37.4, 6144x16384 33.2 -> 29.9, 12288x21504 81.7 -> 72.7,
# 5120x13824 27.1 -> 24.6; Q5_0's by-group four (8 steps, W_AHEAD 1) 5376x21504 30.8 -> 28.4,
# 5120x28672 40.3 -> 36.6, 12288x21504 59.0 -> 54.6, 5376x8192 13.0 -> 12.1, 6144x4096 7.9 -> 8.0;
# Q4_0's by-group four (8 steps, W_AHEAD 2) 5376x21504 21.9 -> 20.7, 6144x16384 17.9 -> 17.2,
# 12288x21504 44.0 -> 42.4, 5120x13824 14.4 -> 13.6, 12288x8192 19.5 -> 19.4; Q6_K's by-group four
# (8 steps, two blocks a group, W_AHEAD 1; by the map where rows are whole words, K a multiple of
# 2048) 6144x16384 -14%, 4608x14336 -16%, 4608x4096 -16%, 5376x8192 -15%, 6144x28672 -15%,
# 11008x4096 -10%, and by the warps' copies (no map) 5376x21504 -1%, 5120x13824 -3%, 12288x21504 +1%
# (W_AHEAD 2 with 4-step groups: -1% to -11%, 6144x4096 +4%).  Not taken: Q4_0's eight and two warps
# (8 steps, W_AHEAD 1: 4096x14336 11.4 -> 11.9, 14336x4096 11.8 -> 12.1; 52-76 bytes of spills),
# Q5_0's eight warps (14.5 -> 15.9), Q6_K's four warps (8 steps: 17.3 -> 20.5 on 14336x4096), Q4_0's
# by-group four with W_AHEAD 1 (5120x13824 14.4 -> 15.2), groups of 6 steps for Q4_0's eight and two
# warps and Q5_0's eight and two (no spills: 2-19% slower on 13 of 17 shapes, Q4_0 14336x4096 two
# warps 11.8 -> 12.8, Q5_0 4096x14336 14.6 -> 15.1).
# Since v69 (session 40, H200) a K-quant group may be two blocks, each row's head read a block
# and its offsets added as the block ends: Q4_K's by-group four take 8 steps (288 bytes a row,
# W_AHEAD 2).
# H200, float16, us, its 4-step groups -> 8 (cuda_matvec_rings.py, same call; BENCHMARKS.md):
# 5376x21504 29.0 -> 26.8, 6144x16384 22.4 -> 21.7, 4608x14336 19.9 -> 18.5.  Not taken: Q4_K's
# and Q5_K's other forms with 8 steps (eight, four, five and two warps: 36-44 bytes of spill
# stores at their 128 registers; with a group's steps decoded 4 at a time, unrolled, and those
# runs rolled, no spills but from 1% faster to 5% slower than 4 steps, e.g. Q4_K 4096x14336 eight
# warps 13.8 -> 14.5), the same runs of 4 for Q4_0's and Q5_0's eight and two warps (4096x14336
# Q4_0 11.4 -> 11.8, 14336x4096 11.8 -> 11.9); Q5_K's staged forms stay behind its own kernels
# with 8 steps too (5376x21504 quad 30.1, by-group four 36.2).
MATVEC_ONE_ROW_MMA_GROUP_STEPS = {
    ("Q8_0", "mma"): 4,
    ("Q8_0", "mma_five_warps"): 4,
    ("Q5_0", "mma_four_warps_x_by_group"): 8,
    ("Q4_0", "mma_four_warps_x_by_group"): 8,
    ("Q6_K", "mma_four_warps_x_by_group"): 8,
    ("Q4_K", "mma_four_warps_x_by_group"): 8,
}
# (format, form)s whose one-row kernel takes its weight groups as a bulk copy a row where the
# launcher passes no map (rows not whole 16-byte words, Q6_K's where K % 2048 != 0) but the
# blocks start on a 16-byte word, instead of the lanes' 16-byte cp.async (BULK_ROWS in
# cuda/matvec_mma_staged.cu): a lane a row, from the word at or before the row's group.  Session
# 40, H200, us, chunk copies -> a bulk copy a row (cuda_matvec_ab.py against v69, same call;
# BENCHMARKS.md): Q6_K's by-group four (8 steps, 420 bytes a row), float16 5376x21504 39.6 ->
# 37.5, 4608x18944 36.8 -> 33.8, 5376x6400 15.7 -> 14.5, 12288x21504 76.0 -> 72.0, 11008x5120
# 21.2 -> 21.2 (10 of 12 shapes 3-8% faster); bfloat16 0-6% faster, 11008x5120 1% slower (23.5 ->
# 23.7).  A first run: 6144x5120 12.2 -> 12.3.  Smaller groups lose:
# its eight and four warps' one-row kernels (4 steps, 210 bytes) 4096x11008 15.4 -> 16.8,
# 14336x5120 22.9 -> 25.9, and every batched form at M = 2 / 8 2-16% (5376x21504 by-group four
# 46.0 / 47.9 -> 52.2 / 53.8).
MATVEC_ONE_ROW_MMA_BULK_ROWS = frozenset({("Q6_K", "mma_four_warps_x_by_group")})
MATVEC_ONE_ROW_MMA_FORMATS = tuple(MATVEC_ONE_ROW_MMA)


@dataclass(frozen=True)
class MmaForm:
    """A form of the staged mma matvec: 16-row A tiles a warp, the rings ahead by format
    (the formats that have the form), warps a block, the blocks an SM its launch bounds
    ask registers for, and whether its activations come a weight group at a time (X_BY_GROUP
    in cuda/matvec_mma_staged.cu; else a step at a time)."""

    row_tiles: int
    aheads: dict[str, tuple[int, int]]
    warps: int = MATVEC_MMA_STAGED_WARPS
    blocks_per_sm: int = MATVEC_MMA_STAGED_MIN_BLOCKS_PER_SM
    x_by_group: bool = False


# The staged mma matvec's forms: each format has those whose tables (aheads) name it.
MATVEC_MMA_FORMS = {
    "mma": MmaForm(MATVEC_MMA_STAGED_ROW_TILES, MATVEC_MMA_STAGED_AHEAD),
    "mma_four_warps": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_STAGED_AHEAD,
        MATVEC_MMA_FOUR_WARPS,
        MATVEC_MMA_FOUR_WARPS_BLOCKS_PER_SM,
    ),
    "mma_six_warps": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_SIX_WARPS_AHEAD,
        MATVEC_MMA_SIX_WARPS,
        MATVEC_MMA_SIX_WARPS_BLOCKS_PER_SM,
    ),
    "mma_wide": MmaForm(MATVEC_MMA_WIDE_ROW_TILES, MATVEC_MMA_WIDE_AHEAD),
    "mma_two_warps": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_TWO_WARPS_AHEAD,
        MATVEC_MMA_TWO_WARPS,
        MATVEC_MMA_TWO_WARPS_BLOCKS_PER_SM,
    ),
    "mma_five_warps": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_FIVE_WARPS_AHEAD,
        MATVEC_MMA_FIVE_WARPS,
        MATVEC_MMA_FIVE_WARPS_BLOCKS_PER_SM,
    ),
    "mma_two_warps_x_by_group": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_TWO_WARPS_X_BY_GROUP_AHEAD,
        MATVEC_MMA_TWO_WARPS,
        MATVEC_MMA_TWO_WARPS_X_BY_GROUP_BLOCKS_PER_SM,
        x_by_group=True,
    ),
    "mma_four_warps_x_by_group": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES,
        MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_AHEAD,
        MATVEC_MMA_FOUR_WARPS,
        MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_BLOCKS_PER_SM,
        x_by_group=True,
    ),
    "mma_x_by_group": MmaForm(
        MATVEC_MMA_STAGED_ROW_TILES, MATVEC_MMA_X_BY_GROUP_AHEAD, x_by_group=True
    ),
}
MATVEC_MMA_GEOMETRIES = (*MATVEC_MMA_FORMS, MATVEC_MMA_LOADED)
# shared memory the driver sets aside for each block (sm_80 and later): an SM holds its
# per-block maximum plus one of these
SHARED_MEMORY_RESERVED_PER_BLOCK = 1024


def blocks_held(shared_bytes: int, shared_memory_per_block: int) -> int:
    """Blocks of ``shared_bytes`` dynamic shared memory an SM holds on a card whose blocks may
    take up to ``shared_memory_per_block`` (each block also costs the driver's reserve)."""
    per_sm = shared_memory_per_block + SHARED_MEMORY_RESERVED_PER_BLOCK
    return per_sm // (shared_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK)


TENSOR_MAP_BOX_ALIGNMENT = 128  # where a tensor map's box may land in shared memory


def weight_map_element_bytes(box_bytes: int) -> int:
    """The narrowest element a uint8 weight map may read its blocks as (the program's
    TENSOR_MAP_ELEMENT_BYTES; TensorMapRule.element_bytes) in which a box of ``box_bytes``
    bytes a row is at most TENSOR_MAP_MAX_BOX whole elements."""
    for element in TENSOR_MAP_ELEMENT_BYTES:
        if box_bytes % element == 0 and box_bytes // element <= TENSOR_MAP_MAX_BOX:
            return element
    raise UnsupportedError(f"a weight map's box of {box_bytes} bytes a row has no element width")


MBARRIER_BYTES = 8

# Consecutive parts of one block each thread of the CUDA embedding gather decodes, sharing the
# loads of the bytes they have in common (1 where none is given; Metal decodes one part a
# thread).  H100, session 23, 32768 rows, share of copy bandwidth: Q5_K (a pair of parts shares
# its quant bytes, every part the qh bits) 79.9% with one part, 82.2% with two (each stored once
# decoded, 72 registers; the template's comment has the forms tried); Q6_K (its parts share only
# qh) 83.5 -> 65-75% with two; Q4_K 82.2-82.6% with one, 82.2-83.5% with two, one round of
# three at 65.7%: not taken.
EMBEDDING_THREAD_PARTS = {"Q5_K": 2}
# Formats whose CUDA embedding gather reads a part's 2-byte aligned spans by the 16-byte words
# holding them (prelude: load_words_wide; 6 loads a Q6_K part instead of 18): it reads up to
# 14 bytes past a span, so only formats whose spans end that far inside their block take it.
# Q6_K's ql / qh spans end by byte 192 of its 210: H100, session 23, 32768 rows, 79.5-79.8 ->
# 83.5% of copy bandwidth (2394-2396 -> 2515-2517 GB/s).  The 32-weight formats' quants end
# their block, so the table's last block would be read past its end (compute-sanitizer flagged
# Q8_0's), for little: Q8_0 83.0 -> 83.4%, Q4_0 / Q5_0 unchanged.
EMBEDDING_WIDE_LOAD_FORMATS = ("Q6_K",)


def embedding_thread_parts(backend: str, fmt: str) -> int:
    """Parts a thread of ``backend``'s embedding gather decodes (see EMBEDDING_THREAD_PARTS)."""
    return EMBEDDING_THREAD_PARTS.get(fmt, 1) if backend == "cuda" else 1


@dataclass(frozen=True)
class BackendSyntax:
    """The spellings of one backend: file suffixes and activation / matrix types."""

    source_suffix: str
    header_suffix: str
    act_types: dict[str, str]


CUDA = BackendSyntax(
    ".cu", ".cuh", {"float16": "__half", "bfloat16": "__nv_bfloat16", "float32": "float"}
)
METAL = BackendSyntax(
    ".metal", ".metal", {"float16": "half", "bfloat16": "bfloat", "float32": "float"}
)
SYNTAX = {"cuda": CUDA, "metal": METAL}

# Tile geometry of the matmul kind per (backend, dtype): M x N x K per block and K step.
# CUDA 16-bit (cuda/matmul.cu): 8 consumer warps decoding weight fragments from raw GGUF
# bytes that a producer warpgroup copies in, with the activations, through a ring of cp.async
# stages (dynamic shared memory, see cuda_matmul_layout); built for sm_90a the consumers are
# 2 warpgroups of wgmma, each 64 weight rows x all 128 activation rows, paced by
# shared-memory barriers, elsewhere 2 (M) x 4 (N) warps of mma.sync, each a 64x32 tile of
# out.  Same launch either way.
# CUDA float32 (cuda/matmul_tf32.cuh): one weight part of 32 per thread per K step
# (TILE_N * TILE_K / 32 == THREADS), staged dequantized within 48 KB of static shared
# memory.  Metal's fit 32 KB.
MATMUL_TILES = {
    ("cuda", "float16"): (128, 128, 64),
    ("cuda", "bfloat16"): (128, 128, 64),
    ("cuda", "float32"): (64, 64, 64),
    ("metal", "float16"): (32, 64, 64),
    ("metal", "bfloat16"): (32, 64, 64),
    ("metal", "float32"): (32, 64, 64),
}
MATMUL_THREADS = {("cuda", "float16"): 384, ("cuda", "bfloat16"): 384}  # else THREADS
# of those, the threads that decode and multiply (8 warps); the rest copy
MATMUL_CONSUMER_THREADS = 256
# The CUDA 16-bit matmul's cp.async ring has as many stages as fit CUDA_MATMUL_SHARED_BUDGET,
# at most MATMUL_MAX_STAGES (a deeper ring lets the copies run further ahead of the
# consumers, who release a stage only once its products completed).
MATMUL_MAX_STAGES = 6
MATMUL_MIN_STAGES = 3
# The CUDA 16-bit matmul copies weights a group at a time: the contiguous bytes of a row that
# MATMUL_GROUP_STEPS[format] K steps of 64 weights read (a K-quant block and its scales for 4
# steps; 2 blocks a step for the others), into one of a ring of group slots, as the 16-byte
# chunks that cover them on any 2-byte boundary.  A K-quant step's byte ranges copied on their
# own took 1.3x (Q4_K) to 2.5x (Q6_K) the copies of a whole block, and the copies bound the
# matmul.  H100, float16, M = 512 (session 14, PERFORMANCE.md), per-step copies -> groups:
# Q6_K 4096x14336 273.5 -> 165.8 us, Q4_0 127.4 -> 116.3 (4 steps), Q8_0 166.0 -> 155.9 (2
# steps; 4: 158.4, and 202 vs 190 at 14336x4096), Q5_K 162.3 -> 156.3, Q5_0 the same, Q4_K
# 133.2 -> 138.0 (its unit is a block).  Larger groups need more group slots (fewer stages).
MATMUL_GROUP_STEPS = {"Q4_0": 4, "Q5_0": 4, "Q8_0": 2, "Q4_K": 4, "Q5_K": 4, "Q6_K": 4}
# Geometries of the CUDA 16-bit matmul: (activation rows a tile, blocks of a cluster splitting
# K a tile).  A block's time is its K steps whatever rows its tile holds, so where the tiles
# fill less than a wave (4096x14336 below M = 128: 32 blocks on 132 SMs) 64-row tiles and K
# split over a cluster fill it (session 24: 4096x14336 M = 32 108-169 -> 51-77 us, 2048x8192
# 63-99 -> 19-28 us).  Where they fill waves, 256-row tiles with K split in 2 decode and copy
# each weight once for twice the rows (wgmma.m64n256k16: 128 accumulators a consumer thread,
# registers moved from the producer by setmaxnreg, MATMUL_REGISTER_SPLIT; session 26:
# 4096x14336 M = 512 Q4_0 112.9 -> 103.0 us, Q8_0 166.5 -> 125.9).  `matmul_geometry_of`
# picks one by `matmul_cost`.
MATMUL_GEOMETRY_TILES = {
    DEFAULT_GEOMETRY: (128, 1),
    "rows64": (64, 1),
    "rows64_split_k2": (64, 2),
    "rows64_split_k4": (64, 4),
    "rows64_split_k8": (64, 8),
    "rows256_split_k2": (256, 2),
}
# The cost model of those geometries (H100, one block an SM): the blocks of a wave by cluster
# size (clusters of 4 or 8 blocks fill 120 of the 132 SMs at once), a 128-row tile's time a K
# column against a 64-row tile's, and a wave's fixed cost in K columns of a 64-row tile
# (pipeline fill, the split's reduction, the launch).  Fitted on 6 formats x 5 shapes x M = 32
# .. 256 (session 24): the cheapest geometry by the model was within 4% of the fastest measured
# in all 120 cells, 1.78x the default geometry's speed on average.  The 256-row tile's column
# (2.0, and a factor by format below) from 6 formats x 4 shapes x M = 256 .. 2048 (session 26;
# the factors refitted in session 27).
MATMUL_WAVE_BLOCKS = {1: 132, 2: 132, 4: 120, 8: 120}
MATMUL_TILE_COST = {256: 2.0, 128: 1.1, 64: 1.0}
# A 256-row tile's cost a column by format, over MATMUL_TILE_COST's: its decode and weight
# copies serve twice the rows, which the formats of more bytes or decode a weight gain most
# from (least squares of its relative error with the fixed cost below, 6 formats x 3 shapes x
# M = 32 .. 2048, H100, session 27: weight groups by tensor map, and its deeper ring,
# CUDA_MATMUL_SHARED_BUDGET_BY_TILE_M)
MATMUL_WIDE_TILE_FACTOR = {
    256: {"Q4_0": 0.84, "Q5_0": 0.77, "Q8_0": 0.74, "Q4_K": 0.76, "Q5_K": 0.72, "Q6_K": 0.72}
}
MATMUL_WAVE_FIXED_COLUMNS = 512
# ... and a 256-row tile's wave more: its ring of 4-5 stages of 256 rows to fill and 128 KB
# of partial sums to reduce across the cluster (session 27: fitted with the factors above on
# 6 formats x 3 shapes x M = 32 .. 2048, H100: the lowering's route within 5% of the fastest
# in 102 of the 108 cells, mean 1.006, against 99 and 1.009 with the tiles' common 512)
MATMUL_WAVE_FIXED_COLUMNS_BY_TILE_M = {256: 1024}
# `matmul_cost` changes only where M crosses a multiple of the smallest tile's rows
MATMUL_COST_ROW_STEP = min(tile_m for tile_m, _ in MATMUL_GEOMETRY_TILES.values())
# a symbolic M branches between the geometries up to this many rows (`matmul_geometry_segments`;
# beyond, the default geometry, or the dense route of codegen.dense_linear)
MATMUL_SEGMENT_SCAN_ROWS = 1024


def matmul_copy_unit(fmt: str) -> tuple[int, int]:
    """(steps, bytes) of ``fmt``'s copy unit in the CUDA 16-bit matmul: the whole blocks that
    steps of MATMUL_TILES' 64 weights read together (a K-quant block: 4 steps; 2 blocks of 32
    weights: 1 step); tc::Staged<FORMAT>::UNIT_STEPS and UNIT_BYTES."""
    spec = FORMATS[fmt]
    step_weights = MATMUL_TILES["cuda", "float16"][2]
    steps = max(1, spec.block_weights // step_weights)
    return steps, spec.block_bytes * max(1, step_weights // spec.block_weights)


def matmul_group_bytes(fmt: str, steps: int | None = None) -> int:
    """Bytes of a group of ``fmt``: the whole copy units of ``steps`` K steps of a row
    (MATMUL_GROUP_STEPS by default; the kernels' GROUP_BYTES)."""
    unit_steps, unit_bytes = matmul_copy_unit(fmt)
    return (steps or MATMUL_GROUP_STEPS[fmt]) // unit_steps * unit_bytes


def _odd_chunk_bytes(chunks: int) -> int:
    """``chunks`` 16-byte chunks rounded up to an odd number of them, in bytes: slot rows that
    far apart put the 8 rows a fragment read touches in distinct banks."""
    return 16 * (chunks + 1 - chunks % 2)


def matmul_group_stride(fmt: str, steps: int | None = None) -> int:
    """Bytes between the rows of a group slot of ``fmt`` (the 16-bit matmul's and the staged
    mma matvec's; groups of ``steps`` K steps, MATMUL_GROUP_STEPS by default): its group
    chunks, in an odd number of 16-byte chunks."""
    return _odd_chunk_bytes(matmul_group_chunks(fmt, steps))


# The 16-bit matmul took the same box as the staged mma matvec in session 28 (its box had been
# a slot row wide since v35).  H100, float16, 4096x14336, us at M = 512 / 2048, slot-row box
# -> this one (same call): Q8_0 default 128.4 / 511 -> 112.6 / 456, rows256_split_k2 92.2 /
# 376.8 -> 90.1 / 354.3; Q5_0 default 118.4 / 470 -> 116.1 / 467, rows256 93.2 / 369.5 -> 92.3
# / 368.5; Q4_0 rows256 86.2 / 341 -> 85.8 / 340 (K-quants and Q6_K: the same box either way).
def mapped_group_stride(fmt: str, steps: int | None = None) -> int:
    """Bytes between the rows of a group slot of ``fmt`` filled by tensor map (rows of whole
    16-byte words; the 16-bit matmul's and the staged mma matvec's): the box's width, from
    the 16-byte boundary at or before a group to past its end, in an odd number of chunks.
    A group then starts at most 16 - gcd(group bytes, 16) bytes past that boundary, where
    the chunk copies allow 14 (any 2-byte boundary): Q4_0's and Q8_0's slot rows are 144
    bytes instead of 176, Q5_0's 176 instead of 208."""
    group_bytes = matmul_group_bytes(fmt, steps)
    return _odd_chunk_bytes(ceil_div(group_bytes + 16 - math.gcd(group_bytes, 16), 16))


def matmul_group_chunks(fmt: str, steps: int | None = None) -> int:
    """16-byte chunks covering a group of ``fmt`` (``steps`` K steps, MATMUL_GROUP_STEPS by
    default) on any 2-byte boundary, or none past it where units are 16-byte multiples
    (tc::Staged ALIGNED); the kernel static_asserts it."""
    slack = 0 if matmul_copy_unit(fmt)[1] % 16 == 0 else 14
    return ceil_div(matmul_group_bytes(fmt, steps) + slack, 16)


# formats whose steps decode a scale table from the group's header first: the K-quants, whose
# sub-block scales sit in their 256-weight blocks
MATMUL_TABLE_FORMATS = tuple(name for name, spec in FORMATS.items() if spec.block_weights == 256)
# The CUDA 16-bit matmul's layout starts at the first boundary of this many bytes of its
# dynamic shared memory: on sm_90a wgmma reads the activation stages as 128-byte swizzle
# atoms of 8 rows, which must be aligned to it.
CUDA_MATMUL_SHARED_ALIGNMENT = 1024
# Dynamic shared memory a CUDA 16-bit matmul block may take: within the 163 KB an sm_80
# block may have, so that one program launches on an A100 as on an H100.
CUDA_MATMUL_SHARED_BUDGET = 160 * 1024
# Shared memory a block may take on every card ggufc's CUDA kernels run on (an A100's 163 KB),
# and on an H100 or H200 (227 KB; cudaDevAttrMaxSharedMemoryPerBlockOptin)
PORTABLE_SHARED_MEMORY_PER_BLOCK = 163 * 1024
H100_SHARED_MEMORY_PER_BLOCK = 227 * 1024
# ... but the 256-row tile, a geometry for wgmma.m64n256 (sm_90a), takes a deeper ring: its 3
# stages of 32 KB in 160 KB took 1.05-1.28x its time with 4 or 5 stages (session 27, H100,
# 4096x14336 M = 512: Q4_0 93.8 -> 85.6 us, Q8_0 107.8 -> 96.8, Q4_K 114.5 -> 89.3, Q6_K
# 121.0 -> 99.9), so the lowering takes it only for cards with this much shared memory a block
# (`matmul_geometry_of`'s ``shared_memory_per_block``)
CUDA_MATMUL_SHARED_BUDGET_BY_TILE_M = {256: 220 * 1024}
# Split-K partial sums up to this many bytes get their own space (the 64-row tiles' 32 KB);
# a 256-row tile's 128 KB reuse the ring's once the products are done.
MATMUL_PARTIALS_APART_BYTES = 32 * 1024
# Registers a thread of the producer / consumer warpgroups of the CUDA 16-bit matmul take
# (setmaxnreg, sm_90a) by the tile's activation rows, where the even share of one block an
# SM (168) is too few: a 256-row tile's consumers hold 128 accumulators and two fragment sets.
# The producer's release pays for the consumers' claim: 128 x (168 - P) >= 256 x (C - 168).
# 56 / 224 leaves no spill in any format (ptxas, sm_90a); with 40 / 232 some formats spilled
# 4-28 bytes of the producer's copy state.
MATMUL_REGISTER_SPLIT = {256: (56, 224)}
# CUDA tensor-core operands per dtype: (type as staged in shared memory, mma.sync PTX type,
# mma K, rounded to TF32).  float32 activations use TF32 (float range, 10-bit mantissa).
CUDA_MMA = {
    "float16": ("__half", "f16", 16, False),
    "bfloat16": ("__nv_bfloat16", "bf16", 16, False),
    "float32": ("float", "tf32", 8, True),
}
METAL_SIMDGROUP_MATRIX = {
    "float16": "simdgroup_half8x8",
    "bfloat16": "simdgroup_bfloat8x8",
    "float32": "simdgroup_float8x8",
}


# Backends whose every kernel waits for the kernels before it (prelude.cuh:
# wait_for_previous_kernels) before reading anything but weight blocks, and lets the next
# one start early: the runtime may launch them dependently (programmatic stream
# serialization; program field KernelSource.dependent_launch).
DEPENDENT_LAUNCH_BACKENDS = frozenset({"cuda"})


@dataclass(frozen=True)
class KernelSource:
    """One generated kernel: compile ``header + "\\n" + source`` and call ``entry``."""

    backend: str
    format: str
    kind: str
    dtype: str
    entry: str
    header: str
    source: str
    launch: LaunchRule

    @property
    def name(self) -> str:
        return self.entry

    @property
    def text(self) -> str:
        """The whole translation unit."""
        return self.header + "\n" + self.source

    @property
    def dependent_launch(self) -> bool:
        return self.backend in DEPENDENT_LAUNCH_BACKENDS


@dataclass(frozen=True)
class GeneratedKernel:
    """A kernel outside the GGUF formats (attention, RMSNorm, rotary): compile
    ``header + "\n" + source``, call ``entry`` with blocks of ``threads`` threads."""

    backend: str
    entry: str
    header: str
    source: str
    threads: int

    @property
    def text(self) -> str:
        return self.header + "\n" + self.source

    @property
    def dependent_launch(self) -> bool:
        return self.backend in DEPENDENT_LAUNCH_BACKENDS


def require_backend(backend: str, kernel: str) -> None:
    """UnsupportedError naming ``kernel`` (e.g. "RMSNorm") unless ``backend`` is one of
    BACKENDS."""
    if backend not in BACKENDS:
        raise UnsupportedError(
            f"no {kernel} kernel for backend {backend!r}; supported: {', '.join(BACKENDS)}"
        )


def prelude_kernel(
    backend: str, template: str, entry: str, threads: int, **values
) -> GeneratedKernel:
    """The GeneratedKernel of ``backend``'s template ``template`` (a name without suffix),
    rendered with ``entry``, ``threads`` and ``values``, its header the plain prelude."""
    syntax = SYNTAX[backend]
    return GeneratedKernel(
        backend=backend,
        entry=entry,
        header=render_template(f"{backend}/prelude{syntax.header_suffix}"),
        source=render_template(
            f"{backend}/{template}{syntax.source_suffix}", entry=entry, threads=threads, **values
        ),
        threads=threads,
    )


def entry_name(fmt: str, kind: str, dtype: str, geometry: str = DEFAULT_GEOMETRY) -> str:
    variant = kind if geometry == DEFAULT_GEOMETRY else f"{kind}_{geometry}"
    return f"ggufc_{variant}_{fmt.lower()}_{DTYPE_TAGS[dtype]}"


def split_k_geometry(splits: int) -> str:
    return f"split_k{splits}"


def geometries(backend: str, fmt: str, kind: str, dtype: str | None = None) -> tuple[str, ...]:
    """The ``geometry`` values `emit` takes for ``kind`` of ``fmt`` and ``dtype`` activations
    (any dtype if None) on ``backend``: the CUDA matvec has a narrow one for small weights
    (Metal's matvec is one row a simdgroup already), a streamed one for many short rows, a
    split-K one in blocks of 4 or 2 warps (split_k, split_k_paired) for
    MATVEC_SPLIT_K_FORMATS (and for MATVEC_ONE_ROW_MMA_FORMATS with MATVEC_MMA_DTYPES the
    staged mma matvec's forms of its MATVEC_ONE_ROW_MMA rule) and for those of
    MATVEC_GROUP_WARPS two or four warps a row group where the format may take them
    (MATVEC_GROUP_GEOMETRIES: paired, quad), and for
    MATVEC_QUAD_STREAM_FORMATS a streamed quad (quad_stream, and those of
    MATVEC_QUAD_STREAM_GROUP_CHOICES' other counts: `quad_stream_geometries`); the CUDA
    matvec_batched of SPLIT_K_BATCHED_FORMATS with 16-bit activations the split-K matmul geometries
    (`split_k_geometry` of SPLIT_K_BATCHED_SPLITS), and of MATVEC_MMA_FORMATS with
    MATVEC_MMA_DTYPES the mma matvec (mma, `takes_mma_matvec`; for MATVEC_MMA_WIDE_AHEAD's
    formats also its wide form, mma_wide, for MATVEC_MMA_STAGED_AHEAD's its form of four
    warps a block, mma_four_warps, for MATVEC_MMA_SIX_WARPS_AHEAD's that of six,
    mma_six_warps, for MATVEC_MMA_FIVE_WARPS_AHEAD's that of five, mma_five_warps, for
    MATVEC_MMA_TWO_WARPS_AHEAD's that of two, mma_two_warps, for
    MATVEC_MMA_TWO_WARPS_X_BY_GROUP_AHEAD's that of two taking the activations a group at a
    time, mma_two_warps_x_by_group, for MATVEC_MMA_FOUR_WARPS_X_BY_GROUP_AHEAD's that of four
    so, mma_four_warps_x_by_group, for MATVEC_MMA_X_BY_GROUP_AHEAD's that of eight so,
    mma_x_by_group, for MATVEC_MMA_LOADED_FORMATS the loaded form, mma_loaded)."""
    split_k = (
        backend == "cuda"
        and kind == "matvec_batched"
        and fmt in SPLIT_K_BATCHED_FORMATS
        and (dtype is None or dtype in SPLIT_K_BATCHED_DTYPES)
    )
    if split_k:
        mma = _mma_geometries(fmt) if takes_mma_matvec(backend, fmt, kind, dtype) else ()
        return (DEFAULT_GEOMETRY, *(split_k_geometry(s) for s in SPLIT_K_BATCHED_SPLITS), *mma)
    if takes_mma_matvec(backend, fmt, kind, dtype):
        return (DEFAULT_GEOMETRY, *_mma_geometries(fmt))
    if kind == "matmul" and takes_matmul_geometries(backend, dtype):
        return tuple(MATMUL_GEOMETRY_TILES)
    if backend != "cuda" or kind != "matvec":
        return (DEFAULT_GEOMETRY,)
    if fmt in MATVEC_SPLIT_K_FORMATS:
        split_k = (DEFAULT_GEOMETRY, "narrow", "stream", "split_k", "split_k_paired")
        return split_k + _one_row_mma_geometries(fmt, dtype)
    # every dtype has the geometries of any dtype's choices (float32 picks fewer)
    shared = sorted({g for d in DTYPES for g in matvec_group_choices(fmt, d)} - {1})
    quad_stream = quad_stream_geometries(fmt)
    grouped = tuple(MATVEC_GROUP_GEOMETRIES[g] for g in shared)
    one_row = _one_row_mma_geometries(fmt, dtype)
    return (DEFAULT_GEOMETRY, "narrow", "stream", *grouped, *quad_stream, *one_row)


def _one_row_mma_geometries(fmt: str, dtype: str | None) -> tuple[str, ...]:
    """The staged mma matvec's forms the CUDA matvec of ``fmt`` and ``dtype`` (any if None)
    has (the forms of its MATVEC_ONE_ROW_MMA rule, with MATVEC_MMA_DTYPES)."""
    if fmt not in MATVEC_ONE_ROW_MMA or dtype not in (None, *MATVEC_MMA_DTYPES):
        return ()
    return MATVEC_ONE_ROW_MMA[fmt].forms


def _mma_geometries(fmt: str) -> tuple[str, ...]:
    """The mma matvec's geometries of ``fmt``: "mma", the staged forms whose tables name it
    (but those MATVEC_MMA_ONE_ROW_ONLY_FORMS gives it for its matvec only), and the loaded form
    where it has one."""
    one_row_only = MATVEC_MMA_ONE_ROW_ONLY_FORMS.get(fmt, ())
    forms = (
        g
        for g, form in MATVEC_MMA_FORMS.items()
        if g != "mma" and fmt in form.aheads and g not in one_row_only
    )
    loaded = (MATVEC_MMA_LOADED,) if fmt in MATVEC_MMA_LOADED_FORMATS else ()
    return ("mma", *forms, *loaded)


def takes_matmul_geometries(backend: str, dtype: str | None) -> bool:
    """Whether ``backend``'s matmul with ``dtype`` activations (None: any) has the geometries
    of MATMUL_GEOMETRY_TILES: the CUDA 16-bit (cluster) matmul."""
    return backend == "cuda" and (dtype is None or (backend, dtype) in MATMUL_THREADS)


def matmul_cost(fmt: str, n: int, k: int, m: int, geometry: str) -> float:
    """The modelled time of the CUDA 16-bit matmul of ``fmt`` in ``geometry`` for M x K
    activations and an N x K weight, in K columns of a 64-row tile: its waves
    (MATMUL_WAVE_BLOCKS) times each block's share of K (MATMUL_TILE_COST, times the format's
    MATMUL_WIDE_TILE_FACTOR for a 256-row tile) plus MATMUL_WAVE_FIXED_COLUMNS (its
    MATMUL_WAVE_FIXED_COLUMNS_BY_TILE_M where given)."""
    tile_m, splits = MATMUL_GEOMETRY_TILES[geometry]
    tile_n = MATMUL_TILES["cuda", "float16"][1]
    blocks = ceil_div(m, tile_m) * ceil_div(n, tile_n) * splits
    waves = ceil_div(blocks, MATMUL_WAVE_BLOCKS[splits])
    column = MATMUL_TILE_COST[tile_m] * MATMUL_WIDE_TILE_FACTOR.get(tile_m, {}).get(fmt, 1.0)
    fixed = MATMUL_WAVE_FIXED_COLUMNS_BY_TILE_M.get(tile_m, MATMUL_WAVE_FIXED_COLUMNS)
    return waves * (ceil_div(k, splits) * column + fixed)


@cache
def matmul_shared_bytes(fmt: str, geometry: str) -> int:
    """Dynamic shared memory a block of the CUDA 16-bit matmul of ``fmt`` takes in
    ``geometry`` (either 16-bit dtype: the same layout)."""
    tile_m, splits = MATMUL_GEOMETRY_TILES[geometry]
    return cuda_matmul_layout(fmt, "float16", tile_m, splits)["shared_bytes"]


def matmul_geometry_of(
    fmt: str, n: int, k: int, m: int, shared_memory_per_block: int = H100_SHARED_MEMORY_PER_BLOCK
) -> str:
    """The geometry of MATMUL_GEOMETRY_TILES with the least `matmul_cost` (the earlier of
    equal ones: fewer splits) among those leaving each block SPLIT_K_MIN_STEPS K steps and
    taking at most ``shared_memory_per_block`` bytes of shared memory (the target card's;
    an H100's by default, whose cost model this is)."""
    steps = ceil_div(k, MATMUL_TILES["cuda", "float16"][2])
    fitting = [
        geometry
        for geometry, (_, splits) in MATMUL_GEOMETRY_TILES.items()
        if (splits == 1 or steps >= splits * SPLIT_K_MIN_STEPS)
        and matmul_shared_bytes(fmt, geometry) <= shared_memory_per_block
    ]
    return min(fitting, key=lambda geometry: matmul_cost(fmt, n, k, m, geometry))


def matmul_geometry_segments(
    fmt: str,
    n: int,
    k: int,
    low: int,
    high: int,
    shared_memory_per_block: int = H100_SHARED_MEMORY_PER_BLOCK,
) -> list[tuple[int, str]]:
    """The geometry `matmul_geometry_of` picks for each M in [low, high] (on a card of
    ``shared_memory_per_block``), as (last M, geometry) runs in order.  The cost changes only
    where M crosses a multiple of 64 (a tile's rows); past MATMUL_SEGMENT_SCAN_ROWS the
    geometry picked there takes every M."""
    rows = MATMUL_COST_ROW_STEP
    segments: list[tuple[int, str]] = []
    m = low
    while m <= high:
        top = min(high, ceil_div(m, rows) * rows)
        scanned = m <= MATMUL_SEGMENT_SCAN_ROWS
        geometry = matmul_geometry_of(
            fmt, n, k, top if scanned else MATMUL_SEGMENT_SCAN_ROWS, shared_memory_per_block
        )
        last = top if scanned else high
        if segments and segments[-1][1] == geometry:
            segments[-1] = (last, geometry)
        else:
            segments.append((last, geometry))
        m = last + 1
    return segments


def takes_integer_x(fmt: str, dtype: str) -> bool:
    """Whether the CUDA matvecs of ``fmt`` with ``dtype`` activations take them as int16 and
    sum by dp2a (MATVEC_INTEGER_X_FORMATS, MATVEC_INTEGER_X_DTYPES)."""
    return fmt in MATVEC_INTEGER_X_FORMATS and dtype in MATVEC_INTEGER_X_DTYPES


def takes_lane_words(fmt: str, dtype: str, geometry: str) -> bool:
    """Whether the CUDA matvec of ``fmt``, ``dtype`` activations and ``geometry`` is
    `cuda/matvec_lanes.cu` (MATVEC_LANE_WORD_FORMATS, MATVEC_LANE_WORD_GEOMETRIES, int16
    activations) rather than `cuda/matvec.cu`."""
    return (
        fmt in MATVEC_LANE_WORD_FORMATS
        and geometry in MATVEC_LANE_WORD_GEOMETRIES
        and takes_integer_x(fmt, dtype)
    )


def takes_mma_matvec(backend: str, fmt: str, kind: str, dtype: str | None = None) -> bool:
    """Whether ``kind`` of ``fmt`` with ``dtype`` activations (any dtype if None) on ``backend``
    has the "mma" geometry (MATVEC_MMA_FORMATS): the lowering's pick up to MATVEC_MMA_MAX_M
    rows."""
    return (
        backend == "cuda"
        and kind == "matvec_batched"
        and fmt in MATVEC_MMA_FORMATS
        and (dtype is None or dtype in MATVEC_MMA_DTYPES)
    )


def matvec_group_choices(fmt: str, dtype: str) -> tuple[int, ...]:
    """The warps a row group of a large CUDA matvec of ``fmt`` and ``dtype`` may have, in the
    order a tie goes (1 alone for formats without grouped geometries)."""
    table = MATVEC_FLOAT32_GROUP_WARPS if dtype == "float32" else MATVEC_GROUP_WARPS
    return table.get(fmt, (1,))


def matvec_group_warps(fmt: str, dtype: str, n: int, k: int) -> int:
    """G, the warps sharing each row group of a large CUDA matvec (see MATVEC_GROUP_WARPS):
    of the format's choices that leave every warp MATVEC_GROUP_MIN_CHUNKS chunks of a row,
    the one whose blocks fill their last wave (MATVEC_WAVE_SMS SMs x
    MATVEC_WAVE_BLOCKS_PER_SM blocks) best, a tie going to the earlier choice."""
    chunks = k // MATVEC_CHUNK_WEIGHTS  # whole ones: G = 2 from K = MATVEC_PAIRED_MIN_K
    choices = [g for g in matvec_group_choices(fmt, dtype) if g * MATVEC_GROUP_MIN_CHUNKS <= chunks]
    if not choices:
        return 1
    row_groups = ceil_div(n, MATVEC_ROWS_PER_WARP)

    def last_wave_fill(group_warps: int) -> Fraction:
        return _whole_wave_fill(ceil_div(row_groups * group_warps, WARPS))

    # max keeps the first of equal keys
    return max(choices, key=last_wave_fill)


def _whole_wave_fill(blocks: int) -> Fraction:
    """The share of the slots of the whole waves ``blocks`` take that they fill (a wave:
    MATVEC_WAVE_SMS x MATVEC_WAVE_BLOCKS_PER_SM blocks)."""
    slots = MATVEC_WAVE_SMS * MATVEC_WAVE_BLOCKS_PER_SM
    return Fraction(blocks, ceil_div(blocks, slots) * slots)


def pick_geometry(
    backend: str,
    fmt: str,
    kind: str,
    dtype: str,
    n: int,
    k: int,
    m: int | None = None,
    shared_memory_per_block: int = H100_SHARED_MEMORY_PER_BLOCK,
) -> str:
    """The geometry the lowering takes for an N x K weight of ``fmt`` and ``dtype``
    activations and ``m`` activation rows (None: any M the kind serves): for a
    matvec_batched with the "mma" geometry (`takes_mma_matvec`) that up to
    MATVEC_MMA_MAX_M rows (the lowering branches on a symbolic M), or one of its other forms
    where the format has them, the shape calls for them and they fit
    ``shared_memory_per_block`` (`_staged_mma_geometry`); for the matvec narrow up to
    `MATVEC_NARROW_MAX_WEIGHTS`, else streamed for
    short rows (K <= `MATVEC_STREAM_MAX_K`, N >= `MATVEC_STREAM_MIN_N`), else for
    MATVEC_ONE_ROW_MMA_FORMATS with 16-bit activations the staged mma matvec's form where
    `one_row_mma_geometry` gives one (its grid at most its rule's waves, the last full enough), else
    split-K where
    the format has it and K >= `MATVEC_SPLIT_K_MIN_K` (4 or 2 warps: `split_k_geometry_of`),
    else the streamed quad where the format has it and `quad_stream_geometry` gives one, else the
    row-group sharing of `matvec_group_warps` (paired, quad; the default for one
    warp); for a matvec_batched with split-K matmul geometries, the one of
    `split_k_splits`; for the CUDA 16-bit matmul the cheapest of MATMUL_GEOMETRY_TILES at
    ``m`` by `matmul_cost` that fits ``shared_memory_per_block`` (the default for any M: the
    lowering branches on a symbolic M, `matmul_geometry_segments`)."""
    available = geometries(backend, fmt, kind, dtype)
    mma_rows = kind == "matvec_batched" and m is not None and m <= MATVEC_MMA_MAX_M
    if "mma" in available and mma_rows:
        return _staged_mma_geometry(available, fmt, dtype, n, k, m, shared_memory_per_block)
    if kind == "matmul":
        if m is None or not takes_matmul_geometries(backend, dtype):
            return DEFAULT_GEOMETRY
        return matmul_geometry_of(fmt, n, k, m, shared_memory_per_block)
    if split_k_geometry(SPLIT_K_BATCHED_SPLITS[0]) in available:
        return split_k_geometry(split_k_splits(n, k))
    if "narrow" in available and n * k <= MATVEC_NARROW_MAX_WEIGHTS[dtype]:
        return "narrow"
    if "stream" in available and k <= MATVEC_STREAM_MAX_K and n >= MATVEC_STREAM_MIN_N:
        return "stream"
    if kind == "matvec" and backend == "cuda":
        one_row = one_row_mma_geometry(fmt, dtype, n, k, shared_memory_per_block)
        if one_row is not None:
            return one_row
    if "split_k" in available and k >= MATVEC_SPLIT_K_MIN_K:
        return split_k_geometry_of(fmt, dtype, n, k)
    if "quad_stream" in available:
        streamed = quad_stream_geometry(fmt, dtype, n, k)
        if streamed is not None:
            return streamed
    if kind == "matvec" and backend == "cuda":
        group_warps = matvec_group_warps(fmt, dtype, n, k)
        if group_warps > 1:
            return MATVEC_GROUP_GEOMETRIES[group_warps]
    return DEFAULT_GEOMETRY


def mma_form_wave(geometry: str) -> int:
    """Blocks in one wave of the staged mma matvec's form ``geometry`` (its blocks an SM on
    MATVEC_WAVE_SMS SMs)."""
    return MATVEC_MMA_FORMS[geometry].blocks_per_sm * MATVEC_WAVE_SMS


def mma_form_last_wave_fill(blocks: int, geometry: str) -> Fraction:
    """How full the last wave of a grid of ``blocks`` blocks of the staged mma matvec's form
    ``geometry`` is (1: whole waves)."""
    wave = mma_form_wave(geometry)
    return Fraction(blocks - (ceil_div(blocks, wave) - 1) * wave, wave)


def one_row_mma_geometry(
    fmt: str, dtype: str, n: int, k: int, shared_memory_per_block: int
) -> str | None:
    """The staged mma matvec form an N x K CUDA matvec (M = 1) of ``fmt`` and ``dtype``
    activations takes (its MATVEC_ONE_ROW_MMA rule), or None where it keeps its own."""
    if not _one_row_mma_geometries(fmt, dtype):
        return None
    rule = MATVEC_ONE_ROW_MMA[fmt]
    forms = rule.forms_for(k)
    while forms:
        geometry = _staged_mma_geometry(forms, fmt, dtype, n, k, 1, shared_memory_per_block)
        if geometry not in forms:  # the staged pick's last resort, "mma", where the rule has none
            return None
        # the one-row kernel's rings may be deeper than its batched twin's, which the staged
        # pick fitted: a card whose shared memory holds fewer of its blocks keeps the matvec's own
        need = matvec_mma_staged_layout(fmt, dtype, geometry, "matvec")["shared_bytes"]
        if blocks_held(need, shared_memory_per_block) < MATVEC_MMA_FORMS[geometry].blocks_per_sm:
            return None
        blocks = ceil_div(n, MATVEC_MMA_ROWS)
        waves = ceil_div(blocks, mma_form_wave(geometry))
        last_wave = mma_form_last_wave_fill(blocks, geometry)
        if rule.takes_grid(geometry, waves, last_wave):
            return geometry
        if geometry not in rule.fall_through:
            return None
        forms = tuple(f for f in forms if f != geometry)  # the staged pick without it
    return None


def takes_quad_stream(fmt: str, dtype: str, n: int, k: int) -> bool:
    """Whether an N x K matvec of ``fmt`` (MATVEC_QUAD_STREAM_FORMATS; those of
    MATVEC_QUAD_STREAM_INTEGER_X_ONLY with int16 activations only, `takes_integer_x`) and
    ``dtype`` activations may take "quad_stream" (its MATVEC_QUAD_STREAM_GROUPS row groups in
    turn; `quad_stream_geometry` weighs the other counts of MATVEC_QUAD_STREAM_GROUP_CHOICES): rows
    of MATVEC_QUAD_STREAM_CHUNKS chunks (a chunk a warp, its part of x kept from group to
    group), and a grid whose waves fill at least MATVEC_QUAD_STREAM_MIN_FILL of the whole waves
    they take (counted at MATVEC_WAVE_SMS x MATVEC_WAVE_BLOCKS_PER_SM blocks a wave);
    MATVEC_LANE_WORD_MIN_FILL where it is the lane-word kernel (`takes_lane_words`)."""
    return fmt in MATVEC_QUAD_STREAM_FORMATS and _takes_quad_stream_groups(
        fmt, dtype, n, k, MATVEC_QUAD_STREAM_GROUPS[fmt]
    )


def _quad_stream_launch(groups: int) -> LaunchRule:
    """The launch of a streamed quad of ``groups`` row groups in turn."""
    return _matvec_launch(MATVEC_ROWS_PER_WARP, _matvec_group_warps("quad_stream"), groups)


def _takes_quad_stream_groups(fmt: str, dtype: str, n: int, k: int, groups: int) -> bool:
    """`takes_quad_stream` for a streamed quad of ``groups`` row groups in turn (the
    format's own count: the lane-word kernel's fill where it is that kernel)."""
    if fmt in MATVEC_QUAD_STREAM_INTEGER_X_ONLY and not takes_integer_x(fmt, dtype):
        return False
    if ceil_div(k, MATVEC_CHUNK_WEIGHTS) != MATVEC_QUAD_STREAM_CHUNKS:
        return False
    launch = _quad_stream_launch(groups)
    default = groups == MATVEC_QUAD_STREAM_GROUPS[fmt]
    lane_words = default and takes_lane_words(fmt, dtype, "quad_stream")
    min_fill = MATVEC_LANE_WORD_MIN_FILL if lane_words else MATVEC_QUAD_STREAM_MIN_FILL
    return _whole_wave_fill(launch.grid_size(1, n, k)[0]) >= min_fill


def quad_stream_geometries(fmt: str) -> tuple[str, ...]:
    """The streamed quads the CUDA matvec of ``fmt`` has: "quad_stream" (MATVEC_QUAD_STREAM_GROUPS
    row groups in turn) and "quad_stream_gG" for the other counts G of
    MATVEC_QUAD_STREAM_GROUP_CHOICES."""
    if fmt not in MATVEC_QUAD_STREAM_FORMATS:
        return ()
    counts = MATVEC_QUAD_STREAM_GROUP_CHOICES.get(fmt, ())
    others = (g for g in counts if g != MATVEC_QUAD_STREAM_GROUPS[fmt])
    return ("quad_stream", *(_quad_stream_name(fmt, g) for g in others))


def _quad_stream_name(fmt: str, groups: int) -> str:
    """The geometry of ``fmt``'s streamed quad of ``groups`` row groups in turn."""
    return "quad_stream" if groups == MATVEC_QUAD_STREAM_GROUPS[fmt] else f"quad_stream_g{groups}"


def quad_stream_geometry(fmt: str, dtype: str, n: int, k: int) -> str | None:
    """The streamed quad an N x K CUDA matvec of ``fmt`` and ``dtype`` takes, or None: for the
    formats of MATVEC_QUAD_STREAM_GROUP_CHOICES with int16 activations and rows of
    MATVEC_QUAD_STREAM_CHUNKS chunks, of the counts whose grid fills the streamed quad's
    share of its whole waves (`takes_quad_stream`'s; MATVEC_QUAD_STREAM_ONE_ROUND's formats'
    other counts in one round of MATVEC_WAVE_BLOCKS_PER_SM blocks an SM only), the one whose
    busiest SM takes the fewest rows, a tie going to fewer rounds, then more blocks an SM at
    once, then fewer groups; for the other formats "quad_stream" where `takes_quad_stream`."""
    choices = MATVEC_QUAD_STREAM_GROUP_CHOICES.get(fmt)
    if not choices:
        return "quad_stream" if takes_quad_stream(fmt, dtype, n, k) else None
    default = MATVEC_QUAD_STREAM_GROUPS[fmt]

    def blocks_per_sm(groups: int) -> int:
        return ceil_div(_quad_stream_launch(groups).grid_size(1, n, k)[0], MATVEC_WAVE_SMS)

    def rounds(groups: int) -> int:
        return ceil_div(blocks_per_sm(groups), MATVEC_WAVE_BLOCKS_PER_SM)

    def cost(groups: int) -> tuple[int, int, int, int]:
        block_rows = _quad_stream_launch(groups).grid[0].per_block
        at_once = min(blocks_per_sm(groups), MATVEC_WAVE_BLOCKS_PER_SM)
        return (blocks_per_sm(groups) * block_rows, rounds(groups), -at_once, groups)

    candidates = [
        g
        for g in choices
        if _takes_quad_stream_groups(fmt, dtype, n, k, g)
        and (g == default or fmt not in MATVEC_QUAD_STREAM_ONE_ROUND or rounds(g) == 1)
    ]
    return _quad_stream_name(fmt, min(candidates, key=cost)) if candidates else None


def split_k_geometry_of(fmt: str, dtype: str, n: int, k: int) -> str:
    """The split-K geometry of a CUDA matvec of an N x K ``fmt`` weight with ``dtype``
    activations (MATVEC_SPLIT_K_WARPS): the one whose slots go through the fewer rounds of
    parts, its waves (blocks over MATVEC_WAVE_SMS SMs x `split_k_blocks_per_sm`) times the
    rounds a thread takes of a row's parts (no round overlaps the next).  A grid of fewer than
    MATVEC_SPLIT_K_WHOLE_WAVES waves counts its last wave whole (its tail is that wave); a
    larger one counts it by its share (its last blocks start as earlier ones end).  A tie goes
    to the paired one where its threads take at most MATVEC_SPLIT_K_PAIRED_TIE_ROUNDS rounds
    (K <= 8192), else to four warps."""
    blocks = ceil_div(n, MATVEC_SPLIT_K_ROWS)
    parts = k // PART_WEIGHTS

    def rounds(geometry: str) -> Fraction:
        slots = MATVEC_WAVE_SMS * split_k_blocks_per_sm(fmt, dtype, geometry)
        threads = MATVEC_SPLIT_K_WARPS[geometry] * WARP_SIZE
        waves = Fraction(blocks, slots)
        if waves < MATVEC_SPLIT_K_WHOLE_WAVES:
            waves = Fraction(ceil_div(blocks, slots))
        return waves * ceil_div(parts, threads)

    paired, four = rounds("split_k_paired"), rounds("split_k")
    paired_rounds = ceil_div(parts, MATVEC_SPLIT_K_WARPS["split_k_paired"] * WARP_SIZE)
    if paired < four or (paired == four and paired_rounds <= MATVEC_SPLIT_K_PAIRED_TIE_ROUNDS):
        return "split_k_paired"
    return "split_k"


def split_k_blocks_per_sm(fmt: str, dtype: str, geometry: str) -> int:
    """The blocks an SM a split-K CUDA matvec is counted at (MATVEC_SPLIT_K_BLOCKS_PER_SM,
    for 4 warps a block; as many more as its block is smaller)."""
    four_warps = MATVEC_SPLIT_K_BLOCKS_PER_SM[_activation_class(dtype), fmt]
    return four_warps * MATVEC_SPLIT_K_WARPS["split_k"] // MATVEC_SPLIT_K_WARPS[geometry]


def _split_k_min_blocks(fmt: str, dtype: str, geometry: str) -> int:
    """The blocks an SM a split-K matvec's __launch_bounds__ asks for (0: none)."""
    if (_activation_class(dtype), fmt) in MATVEC_SPLIT_K_UNBOUNDED:
        return 0
    return split_k_blocks_per_sm(fmt, dtype, geometry)


def split_k_splits(n: int, k: int) -> int:
    """Blocks splitting the K of each 128-row tile of an N x K split-K matmul: the largest of
    SPLIT_K_BATCHED_SPLITS that keeps the grid within SPLIT_K_MAX_BLOCKS and each block at
    least SPLIT_K_MIN_STEPS K steps, the smallest if none does (the same for float16 and
    bfloat16, whose tiles are the same)."""
    _, tile_n, tile_k = MATMUL_TILES["cuda", "float16"]
    tiles = ceil_div(n, tile_n)
    steps = ceil_div(k, tile_k)
    fitting = [
        s
        for s in SPLIT_K_BATCHED_SPLITS
        if tiles * s <= SPLIT_K_MAX_BLOCKS and steps >= s * SPLIT_K_MIN_STEPS
    ]
    return max(fitting, default=SPLIT_K_BATCHED_SPLITS[0])


def _split_k_splits(geometry: str) -> int | None:
    """S of a split-K matmul geometry, None for any other."""
    for splits in SPLIT_K_BATCHED_SPLITS:
        if geometry == split_k_geometry(splits):
            return splits
    return None


def cuda_matmul_layout(
    fmt: str, dtype: str, tile_m: int | None = None, splits: int = 1
) -> dict[str, int]:
    """Shared-memory row strides and total bytes of the CUDA 16-bit matmul for ``fmt``, with
    ``tile_m`` activation rows a block (MATMUL_TILES' if None) and K split over ``splits``
    blocks.

    The activation stages, then the weight group slots (one row slot a weight row, an odd
    number of 16-byte chunks, so that the 8 rows a fragment read touches fall in distinct
    banks); then two scale tables (K-quants), and with a split the consumers' partial sums.
    As many stages as fit CUDA_MATMUL_SHARED_BUDGET (CUDA_MATMUL_SHARED_BUDGET_BY_TILE_M's
    for its tiles), up to MATMUL_MAX_STAGES, with the group slots they need: a slot is
    refilled only once every step of its group is done, so group steps x slots >= stages +
    group steps - 1."""
    default_tile_m, tile_n, tile_k = MATMUL_TILES["cuda", dtype]
    tile_m = tile_m or default_tile_m
    group_chunks = matmul_group_chunks(fmt)
    group_steps = MATMUL_GROUP_STEPS[fmt]
    group_stride = matmul_group_stride(fmt)
    activation_bytes = tile_m * tile_k * 2
    tables = 2 * (tile_k // PART_WEIGHTS) * tile_n * 4 if fmt in MATMUL_TABLE_FORMATS else 0
    # split K: the consumers' partial sums (tile_m / 2 floats each), past the tables, or where
    # that leaves too few stages, over the ring (written once its last products are done)
    partials = tile_m // 2 * MATMUL_CONSUMER_THREADS * 4 if splits > 1 else 0
    partials_over_ring = partials > MATMUL_PARTIALS_APART_BYTES
    budget = CUDA_MATMUL_SHARED_BUDGET_BY_TILE_M.get(tile_m, CUDA_MATMUL_SHARED_BUDGET)
    room = budget - CUDA_MATMUL_SHARED_ALIGNMENT - tables
    room -= 0 if partials_over_ring else partials

    def group_slots(stages: int) -> int:
        return ceil_div(stages + group_steps - 1, group_steps)

    def ring_bytes(stages: int) -> int:
        return stages * activation_bytes + group_slots(stages) * tile_n * group_stride

    fitting = [s for s in range(1, MATMUL_MAX_STAGES + 1) if ring_bytes(s) <= room]
    stages = max(fitting, default=0)
    if stages < MATMUL_MIN_STAGES:
        raise AssertionError(f"{fmt}: {stages} matmul stages fit, want {MATMUL_MIN_STAGES}")
    layout_bytes = ring_bytes(stages) + tables
    layout_bytes = max(layout_bytes, partials) if partials_over_ring else layout_bytes + partials
    return {
        "partials_over_ring": partials_over_ring,
        "group_chunks": group_chunks,
        "group_steps": group_steps,
        "group_stride": group_stride,
        "mapped_group_stride": mapped_group_stride(fmt),
        "group_slots": group_slots(stages),
        "shared_alignment": CUDA_MATMUL_SHARED_ALIGNMENT,
        "shared_bytes": layout_bytes + CUDA_MATMUL_SHARED_ALIGNMENT,
        "stages": stages,
    }


def launch_rule(
    backend: str, fmt: str, kind: str, dtype: str, geometry: str = DEFAULT_GEOMETRY
) -> LaunchRule:
    """Grid and block of ``kind`` for ``fmt`` and ``dtype`` on ``backend`` in ``geometry``
    (see codegen.kernels.launch and `geometries`)."""
    _check_geometry(backend, fmt, kind, dtype, geometry)
    one = GridExtent()
    splits = _split_k_splits(geometry)
    if splits is not None:
        return _cuda_matmul_launch(fmt, dtype, SPLIT_K_BATCHED_TILE_M, splits)
    if geometry in MATVEC_MMA_GEOMETRIES:
        threads, rows, shared = MATVEC_MMA_LOADED_WARPS * WARP_SIZE, MATVEC_MMA_ROWS, 0
        maps: tuple[TensorMapRule, ...] = ()
        if geometry in MATVEC_MMA_FORMS:
            layout = matvec_mma_staged_layout(fmt, dtype, geometry, kind)
            threads, rows, shared = layout["threads"], layout["tile_n"], layout["shared_bytes"]
            if kind == "matvec" and MATVEC_MMA_FORMS[geometry].x_by_group:
                # the one-row kernel of a by-group form reserves enough shared memory that no
                # more than its form's blocks an SM run (its own would let one more in: Q6_K's
                # four warps at M = 1, three blocks an SM against four, 4608x14336 31.1 -> 25.7
                # us, 6144x16384 38.3 -> 32.0, session 34; Q4_K's 5376x21504 37.0 -> 29.7,
                # session 36)
                most = MATVEC_MMA_FORMS[geometry].blocks_per_sm
                shared = max(shared, shared_bytes_for_at_most(most))
            # a group's rows, each as wide as a group needs, where they are whole 16-byte words
            element = layout["map_element_bytes"]
            box_inner = layout["mapped_group_stride"] // element
            maps = (
                TensorMapRule(1, box_inner, rows, swizzle=0, optional=True, element_bytes=element),
            )
        tile_m = 1 if kind == "matvec" else MATVEC_MMA_MAX_M
        grid = (GridExtent(("N",), rows), GridExtent(("M",), tile_m), one)
        return LaunchRule(threads, grid, shared, maps)
    if uses_tensor_core_matvec(backend, kind, dtype):
        tile = TENSOR_CORE_MATVEC_TILE
        threads = 32 * TENSOR_CORE_MATVEC_WARPS
        return LaunchRule(threads, (GridExtent(("N",), tile), GridExtent(("M",), tile), one))
    if geometry in MATVEC_SPLIT_K_WARPS:
        grid = (GridExtent(("N",), MATVEC_SPLIT_K_ROWS), GridExtent(("M",), 1), one)
        return LaunchRule(MATVEC_SPLIT_K_WARPS[geometry] * WARP_SIZE, grid)
    if kind == "matvec":
        return _matvec_launch(
            _matvec_rows_per_warp(backend, geometry),
            _matvec_group_warps(geometry),
            _matvec_stream_groups(geometry, fmt),
        )
    if kind == "matvec_batched":
        rows = GridExtent(("M",), MATVEC_BATCHED_ROWS)
        return LaunchRule(THREADS, (GridExtent(("N",), WARPS), rows, one))
    if kind == "matmul":
        tile_m, tile_n, _ = MATMUL_TILES[backend, dtype]
        if (backend, dtype) in MATMUL_THREADS:
            return _cuda_matmul_launch(fmt, dtype, *MATMUL_GEOMETRY_TILES[geometry])
        return LaunchRule(THREADS, (GridExtent(("N",), tile_n), GridExtent(("M",), tile_m), one))
    units = THREADS * embedding_thread_parts(backend, fmt)
    rows = "M" if kind == "embedding" else "N"  # dequantize: every row
    return LaunchRule(THREADS, (GridExtent((rows, "K_PARTS"), units), one, one))


def _staged_mma_geometry(
    available: tuple[str, ...], fmt: str, dtype: str, n: int, k: int, m: int, shared: int
) -> str:
    """The mma matvec's geometry (see `pick_geometry`): two warps a block on rows of K up to
    MATVEC_MMA_TWO_WARPS_MAX_K whose grid is one wave of eight blocks an SM at least
    MATVEC_MMA_TWO_WARPS_MIN_FILL full, where ``shared`` leaves room for eight (for Q6_K first
    its form with the activations a group at a time, on a wave of seven blocks an SM); else four
    warps a block on rows of K up to
    MATVEC_MMA_FOUR_WARPS_MAX_K (any K for MATVEC_MMA_FOUR_WARPS_ANY_K) whose grid of four
    blocks an SM fills its last wave at least MATVEC_MMA_MIN_LAST_WAVE_FILL or runs
    MATVEC_MMA_WHOLE_WAVES waves, where ``shared`` bytes a block leave room for four, unless
    that grid is under MATVEC_MMA_WHOLE_WAVES waves and a form of three blocks an SM fills its
    last wave more (four warps taking the activations a group at a time, else six warps, the
    first the format has that ``shared`` holds three of); else the loaded form on rows of K up
    to MATVEC_MMA_LOADED_MAX_K and ``m`` up to MATVEC_MMA_LOADED_MAX_M where the format has it;
    else a form of three blocks an SM (the by-group four warps, six or five warps, the first
    the format has that fits) where it fills the last wave at least as the four must and more
    than 16 rows of 8 warps; else the wide form where the format has it and ``shared``
    holds it; else 16 rows a block (Q4_0's with the activations a group at a time on rows of K
    >= MATVEC_MMA_X_BY_GROUP_MIN_K whose last wave of two blocks an SM is at least
    MATVEC_MMA_X_BY_GROUP_MIN_FILL full, where ``shared`` holds two of those blocks)."""

    def blocks_per_sm(geometry: str) -> int:
        return blocks_held(matvec_mma_staged_layout(fmt, dtype, geometry)["shared_bytes"], shared)

    def fits(geometry: str) -> bool:
        return (
            geometry in available
            and blocks_per_sm(geometry) >= MATVEC_MMA_FORMS[geometry].blocks_per_sm
        )

    sixteen_rows = ceil_div(n, MATVEC_MMA_ROWS)  # the blocks of every 16-row form
    fill = {
        g: mma_form_last_wave_fill(sixteen_rows, g)
        for g, form in MATVEC_MMA_FORMS.items()
        if form.row_tiles == MATVEC_MMA_STAGED_ROW_TILES
    }

    def takes_two_warps(geometry: str) -> bool:
        return (
            fits(geometry)
            and k <= MATVEC_MMA_TWO_WARPS_MAX_K
            and sixteen_rows <= mma_form_wave(geometry)
            and fill[geometry] >= MATVEC_MMA_TWO_WARPS_MIN_FILL
        )

    for two_warps in ("mma_two_warps_x_by_group", "mma_two_warps"):
        if takes_two_warps(two_warps):
            return two_warps
    # three blocks an SM, the first a format has that fits (the same fill: the same wave);
    # where four warps are taken, only those measured against them
    three_an_sm = ("mma_four_warps_x_by_group", "mma_six_warps", "mma_five_warps")
    fuller_than_four = ("mma_four_warps_x_by_group", "mma_six_warps")

    def fills(geometry: str) -> bool:
        whole_waves = sixteen_rows >= MATVEC_MMA_WHOLE_WAVES * mma_form_wave(geometry)
        return fill[geometry] >= MATVEC_MMA_MIN_LAST_WAVE_FILL or whole_waves

    def takes_three_an_sm(geometry: str) -> bool:
        return fits(geometry) and fills(geometry)

    four_warps = (
        fits("mma_four_warps")
        and (k <= MATVEC_MMA_FOUR_WARPS_MAX_K or fmt in MATVEC_MMA_FOUR_WARPS_ANY_K)
        and fills("mma_four_warps")
    )
    if four_warps:
        under_two_waves = sixteen_rows < MATVEC_MMA_WHOLE_WAVES * mma_form_wave("mma_four_warps")
        for three in fuller_than_four:
            fuller = fill[three] > fill["mma_four_warps"]
            if takes_three_an_sm(three) and under_two_waves and fuller:
                return three
        return "mma_four_warps"
    loaded = MATVEC_MMA_LOADED in available and k <= MATVEC_MMA_LOADED_MAX_K
    if loaded and m <= MATVEC_MMA_LOADED_MAX_M[fmt]:
        return MATVEC_MMA_LOADED
    for three in three_an_sm:
        if takes_three_an_sm(three) and fill[three] > fill["mma"]:
            return three
    if "mma_wide" in available and blocks_per_sm("mma_wide") >= 1:
        return "mma_wide"
    by_group = k >= MATVEC_MMA_X_BY_GROUP_MIN_K and fill["mma"] >= MATVEC_MMA_X_BY_GROUP_MIN_FILL
    if by_group and fits("mma_x_by_group"):
        return "mma_x_by_group"
    return "mma"


def matvec_mma_staged_layout(
    fmt: str, dtype: str, geometry: str = "mma", kind: str = "matvec_batched"
) -> dict:
    """Shared-memory layout of the staged mma matvec (cuda/matvec_mma_staged.cu) for ``fmt``
    and ``dtype`` in ``geometry`` (its row tiles a warp and rings ahead: MATVEC_MMA_FORMS; the
    one-row kernel's rings MATVEC_ONE_ROW_MMA_AHEAD's where it lists the form):
    its warps, its group of K steps, the row stride of a group slot (an odd number of 16-byte
    chunks), how far its copies run ahead with
    the slots that takes, and the dynamic shared bytes of a block (every warp's ring of
    activation step slots, then every warp's ring of group slots, then a barrier a group
    slot, from a 128-byte boundary: a tensor map's box lands on one).  ``kind`` "matvec" is
    the one-row form (M = 1): its activation slots hold a weight group's steps of one row, a
    slot a weight slot, where the batched kernel's hold a step's MATVEC_MMA_MAX_M rows (a
    form with x_by_group: a weight group's steps of them, a slot a weight slot)."""
    step_weights = 2 * PART_WEIGHTS
    form = MATVEC_MMA_FORMS[geometry]
    row_tiles = form.row_tiles
    one_row_ahead = MATVEC_ONE_ROW_MMA_AHEAD.get((fmt, geometry)) if kind == "matvec" else None
    one_row_steps = (
        MATVEC_ONE_ROW_MMA_GROUP_STEPS.get((fmt, geometry)) if kind == "matvec" else None
    )
    group_steps = one_row_steps or MATMUL_GROUP_STEPS[fmt]
    group_stride = matmul_group_stride(fmt, group_steps)
    mapped_stride = mapped_group_stride(fmt, group_steps)
    w_ahead, x_ahead = one_row_ahead or form.aheads[fmt]
    if not 1 <= x_ahead <= w_ahead * group_steps:
        # the weights of a step must have been asked for no later than its activations
        raise UnsupportedError(
            f"CUDA staged mma matvec {fmt}: {x_ahead} activation steps ahead; expected 1 to "
            f"{w_ahead * group_steps} ({w_ahead} groups of {group_steps} steps)"
        )
    x_slots = 1 << x_ahead.bit_length()  # a power of two past the steps ahead
    w_slots = w_ahead + 1
    act_bytes = 2  # 16-bit activations (MATVEC_MMA_DTYPES)
    x_row = step_weights * act_bytes  # a step of a row: 128 bytes
    # a step's activation rows a slot, swizzled; by group (the M = 1 matvec, one row a block,
    # and the forms with x_by_group): a weight group's steps of them a slot, a slot a weight
    # slot
    x_by_group = kind == "matvec" or form.x_by_group
    step_rows = 1 if kind == "matvec" else MATVEC_MMA_MAX_M
    x_ring = (w_slots * group_steps if x_by_group else x_slots) * step_rows * x_row
    tile_n = MATVEC_MMA_ROWS * row_tiles
    warp_bytes = w_slots * tile_n * group_stride + x_ring
    barriers = form.warps * w_slots * MBARRIER_BYTES
    return {
        "warps": form.warps,
        "min_blocks_per_sm": form.blocks_per_sm,
        "row_tiles": row_tiles,
        "tile_n": tile_n,
        "threads": form.warps * WARP_SIZE,
        "group_steps": group_steps,
        "group_stride": group_stride,
        "mapped_group_stride": mapped_stride,
        "map_element_bytes": weight_map_element_bytes(mapped_stride),
        "x_ahead": x_ahead,
        "w_ahead": w_ahead,
        "x_slots": x_slots,
        "w_slots": w_slots,
        "x_by_group": "true" if x_by_group else "false",
        "x_through_l1": "true" if (fmt, geometry) in MATVEC_MMA_X_THROUGH_L1 else "false",
        "bulk_rows": "true"
        if kind == "matvec" and (fmt, geometry) in MATVEC_ONE_ROW_MMA_BULK_ROWS
        else "false",
        "weights_before_wait": "true" if one_row_ahead else "false",
        "shared_alignment": TENSOR_MAP_BOX_ALIGNMENT,
        "shared_bytes": form.warps * warp_bytes + barriers + TENSOR_MAP_BOX_ALIGNMENT,
    }


def shared_bytes_for_at_most(blocks_per_sm: int) -> int:
    """The fewest dynamic shared bytes a block must ask for so that no more than
    ``blocks_per_sm`` of its blocks fit an H100's SM (H100_SHARED_MEMORY_PER_BLOCK and the
    driver's SHARED_MEMORY_RESERVED_PER_BLOCK a block: 228 KB)."""
    per_sm = H100_SHARED_MEMORY_PER_BLOCK + SHARED_MEMORY_RESERVED_PER_BLOCK
    return per_sm // (blocks_per_sm + 1) - SHARED_MEMORY_RESERVED_PER_BLOCK + 1


def _cuda_matmul_launch(fmt: str, dtype: str, tile_m: int, splits: int) -> LaunchRule:
    """The launch of the CUDA 16-bit matmul (cuda/matmul.cu) with ``tile_m`` activation rows a
    block and K split over ``splits`` blocks a tile of rows; its activations x as a tensor map
    of tile_m x tile_k boxes (a stage's), its weight blocks as one of a group's rows
    (`mapped_group_stride` bytes x tile_n rows; optional: rows of whole 16-byte words only)."""
    _, tile_n, tile_k = MATMUL_TILES["cuda", dtype]
    grid = (GridExtent(("N",), tile_n, splits), GridExtent(("M",), tile_m), GridExtent())
    layout = cuda_matmul_layout(fmt, dtype, tile_m, splits)
    shared = layout["shared_bytes"]
    activations = TensorMapRule(tensor=0, box_inner=tile_k, box_rows=tile_m)
    # a group's rows, each as wide as a group needs, where they are whole 16-byte words
    weights = TensorMapRule(1, layout["mapped_group_stride"], tile_n, swizzle=0, optional=True)
    return LaunchRule(MATMUL_THREADS["cuda", dtype], grid, shared, (activations, weights))


def _cuda_matmul_values(fmt: str, dtype: str, tile_m: int, splits: int) -> dict:
    """The template values of that matmul: tiles, threads, shared-memory layout."""
    _, tile_n, tile_k = MATMUL_TILES["cuda", dtype]
    return {
        "tile_m": tile_m,
        "tile_n": tile_n,
        "tile_k": tile_k,
        "splits": splits,
        "mma_ptx_type": CUDA_MMA[dtype][1],
        "tf32": False,
        "threads": MATMUL_THREADS["cuda", dtype],
        "consumer_threads": MATMUL_CONSUMER_THREADS,
        "register_split": MATMUL_REGISTER_SPLIT.get(tile_m),
        **cuda_matmul_layout(fmt, dtype, tile_m, splits),
    }


def _check_geometry(backend: str, fmt: str, kind: str, dtype: str, geometry: str) -> None:
    available = geometries(backend, fmt, kind, dtype)
    if geometry not in available:
        raise UnsupportedError(
            f"{backend} {kind} of {fmt} with {dtype} activations has no {geometry!r} geometry "
            f"(expected one of {available})"
        )


def _matvec_launch(rows_per_warp: int, group_warps: int, stream_groups: int = 1) -> LaunchRule:
    """The (staged) matvec's launch: each row group of ``rows_per_warp`` rows is shared by
    ``group_warps`` warps of the block, and each warp takes ``stream_groups`` groups in turn."""
    rows = WARPS // group_warps * rows_per_warp * stream_groups
    return LaunchRule(THREADS, (GridExtent(("N",), rows), GridExtent(("M",), 1), GridExtent()))


_GROUP_WARPS_OF_GEOMETRY = {
    **{name: g for g, name in MATVEC_GROUP_GEOMETRIES.items()},
    **{name: 4 for fmt in MATVEC_QUAD_STREAM_FORMATS for name in quad_stream_geometries(fmt)},
}
# the other counts' streamed quads: geometry -> row groups in turn
_QUAD_STREAM_GROUPS_OF_GEOMETRY = {
    _quad_stream_name(fmt, g): g
    for fmt, counts in MATVEC_QUAD_STREAM_GROUP_CHOICES.items()
    for g in counts
    if g != MATVEC_QUAD_STREAM_GROUPS[fmt]
}


def _matvec_group_warps(geometry: str) -> int:
    return _GROUP_WARPS_OF_GEOMETRY.get(geometry, 1)


def _activation_class(dtype: str) -> str:
    """The key of the register tables (MATVEC_BOUNDED_GEOMETRIES, MATVEC_SPLIT_K_BLOCKS_PER_SM):
    "float32", or "16-bit" for float16 and bfloat16, whose kernels move the same bytes."""
    return "float32" if dtype == "float32" else "16-bit"


def _matvec_min_blocks(fmt: str, geometry: str, dtype: str) -> int:
    """The blocks an SM a matvec's __launch_bounds__ asks for (0: none): see
    MATVEC_BOUNDED_GEOMETRIES."""
    bounded = geometry in MATVEC_BOUNDED_GEOMETRIES.get((_activation_class(dtype), fmt), ())
    return MATVEC_WAVE_BLOCKS_PER_SM if bounded else 0


def _matvec_stream_groups(geometry: str, fmt: str) -> int:
    if geometry == "quad_stream":
        return MATVEC_QUAD_STREAM_GROUPS[fmt]
    if geometry in _QUAD_STREAM_GROUPS_OF_GEOMETRY:
        return _QUAD_STREAM_GROUPS_OF_GEOMETRY[geometry]
    return MATVEC_STREAM_GROUPS if geometry == "stream" else 1


def _matvec_rows_per_warp(backend: str, geometry: str) -> int:
    if backend != "cuda":
        return 1
    return MATVEC_NARROW_ROWS_PER_WARP if geometry == "narrow" else MATVEC_ROWS_PER_WARP


def uses_tensor_core_matvec(backend: str, kind: str, dtype: str) -> bool:
    return (
        backend == "cuda"
        and kind in TENSOR_CORE_MATVEC_KINDS
        and dtype in TENSOR_CORE_MATVEC_DTYPES
    )


def _check(backend: str, fmt: str, kind: str, dtype: str) -> None:
    for value, allowed, what in (
        (backend, BACKENDS, "backend"),
        (fmt, FORMAT_NAMES, "format"),
        (kind, KINDS, "kernel kind"),
        (dtype, DTYPES, "activation dtype"),
    ):
        if value not in allowed:
            raise UnsupportedError(
                f"no kernel for {what} {value!r}; supported: {', '.join(allowed)}"
            )


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(path: str, **values) -> str:
    return _environment().get_template(path).render(**values)


@cache
def emit_header(backend: str, fmt: str) -> str:
    """Prelude + dequantize helper of ``fmt`` for ``backend`` (shared by all its kernels).
    CUDA's also holds the tensor-core operand helpers its format helpers build on."""
    _check(backend, fmt, "matvec", "float32")
    suffix = SYNTAX[backend].header_suffix
    parts = [f"{backend}/prelude{suffix}"]
    if backend == "cuda":
        parts.append("cuda/tensor_core.cuh")
    if fmt in KQUANT_SCALE_FORMATS:
        parts.append(f"{backend}/formats/kquant_scales{suffix}")
    parts.append(f"{backend}/formats/{fmt.lower()}{suffix}")
    return "\n".join(render_template(part) for part in parts)


def _kind_values(
    backend: str, fmt: str, kind: str, dtype: str, geometry: str = DEFAULT_GEOMETRY
) -> tuple[str, dict]:
    """Template path and values of one kernel."""
    syntax = SYNTAX[backend]
    values = {
        "entry": entry_name(fmt, kind, dtype, geometry),
        "format": fmt,
        "kind": kind,
        "dtype": dtype,
        "act_type": syntax.act_types[dtype],
        "threads": THREADS,
    }
    splits = _split_k_splits(geometry)
    if splits is not None:
        values.update(_cuda_matmul_values(fmt, dtype, SPLIT_K_BATCHED_TILE_M, splits))
        return f"{backend}/matmul{syntax.source_suffix}", values
    if geometry in MATVEC_MMA_FORMS:
        values.update(
            one_row="true" if kind == "matvec" else "false",
            tile_m=MATVEC_MMA_MAX_M,
            **matvec_mma_staged_layout(fmt, dtype, geometry, kind),
        )
        return f"{backend}/matvec_mma_staged{syntax.source_suffix}", values
    if geometry == MATVEC_MMA_LOADED:
        values.update(
            threads=MATVEC_MMA_LOADED_WARPS * WARP_SIZE,
            warps=MATVEC_MMA_LOADED_WARPS,
            tile_n=MATVEC_MMA_ROWS,
            tile_m=MATVEC_MMA_MAX_M,
            min_blocks_per_sm=MATVEC_MMA_LOADED_MIN_BLOCKS_PER_SM,
            depth=MATVEC_MMA_LOADED_DEPTH,
            stage_x=fmt in MATVEC_MMA_LOADED_STAGE_X_FORMATS,
        )
        return f"{backend}/matvec_mma{syntax.source_suffix}", values
    if uses_tensor_core_matvec(backend, kind, dtype):
        values.update(
            threads=32 * TENSOR_CORE_MATVEC_WARPS,
            warps_per_block=TENSOR_CORE_MATVEC_WARPS,
            min_blocks_per_sm=TENSOR_CORE_MATVEC_MIN_BLOCKS_PER_SM,
            accumulators=TENSOR_CORE_MATVEC_ACCUMULATORS,
            pair_type="__half2" if dtype == "float16" else "__nv_bfloat162",
            pair_from_float="__float2half2_rn" if dtype == "float16" else "__float2bfloat162_rn",
            tile=TENSOR_CORE_MATVEC_TILE,
            stages=TENSOR_CORE_MATVEC_STAGES,
            step_blocks=TENSOR_CORE_MATVEC_STEP_BLOCKS[fmt],
            mma_ptx_type=CUDA_MMA[dtype][1],
        )
        return f"{backend}/matvec_tensor_core{syntax.source_suffix}", values
    if backend == "cuda" and kind == "matvec":
        values["stage_x"] = "true" if dtype in MATVEC_STAGED_X_DTYPES else "false"
        values["integer_x"] = "true" if takes_integer_x(fmt, dtype) else "false"
    if geometry in MATVEC_SPLIT_K_WARPS:
        values.update(
            threads=MATVEC_SPLIT_K_WARPS[geometry] * WARP_SIZE,
            rows=MATVEC_SPLIT_K_ROWS,
            min_blocks_per_sm=_split_k_min_blocks(fmt, dtype, geometry),
        )
        return f"{backend}/matvec_split_k{syntax.source_suffix}", values
    if kind == "matvec":
        values["warps_per_block"] = WARPS
        values["rows_per_warp"] = _matvec_rows_per_warp(backend, geometry)
        values["group_warps"] = _matvec_group_warps(geometry)
        values["min_blocks_per_sm"] = _matvec_min_blocks(fmt, geometry, dtype)
        values["stream_groups"] = _matvec_stream_groups(geometry, fmt)
        values["wave_blocks_per_sm"] = (
            0 if geometry in MATVEC_LATE_TRIGGER_GEOMETRIES else MATVEC_WAVE_BLOCKS_PER_SM
        )
        values["max_rows"] = 1
        if takes_lane_words(fmt, dtype, geometry):
            return f"{backend}/matvec_lanes{syntax.source_suffix}", values
        return f"{backend}/matvec{syntax.source_suffix}", values
    if kind == "matvec_batched":
        values["warps_per_block"] = WARPS
        values["max_rows"] = MATVEC_BATCHED_ROWS
        # Metal shares one template for both (one weight row per simdgroup)
        template = "matvec_batched" if backend == "cuda" else "matvec"
        return f"{backend}/{template}{syntax.source_suffix}", values
    if kind == "matmul":
        tile_m, tile_n, tile_k = MATMUL_TILES[backend, dtype]
        values.update(tile_m=tile_m, tile_n=tile_n, tile_k=tile_k, splits=1)
        if backend == "cuda":
            storage, ptx_type, frag_k, tf32 = CUDA_MMA[dtype]
            values.update(mma_storage=storage, mma_ptx_type=ptx_type, frag_k=frag_k, tf32=tf32)
            if (backend, dtype) in MATMUL_THREADS:
                values.update(_cuda_matmul_values(fmt, dtype, *MATMUL_GEOMETRY_TILES[geometry]))
        else:
            values["simdgroup_matrix"] = METAL_SIMDGROUP_MATRIX[dtype]
        return f"{backend}/matmul{syntax.source_suffix}", values
    values["gather"] = kind == "embedding"  # else dequantize: the same kernel over every row
    values["thread_parts"] = embedding_thread_parts(backend, fmt)
    wide_loads = backend == "cuda" and fmt in EMBEDDING_WIDE_LOAD_FORMATS
    values["wide_loads"] = "true" if wide_loads else "false"
    return f"{backend}/embedding{syntax.source_suffix}", values


@cache
def emit(
    backend: str, fmt: str, kind: str, dtype: str, geometry: str = DEFAULT_GEOMETRY
) -> KernelSource:
    """The kernel of ``kind`` for ``fmt`` weights and ``dtype`` activations on ``backend``.

    ``dtype`` is the activation (and output) dtype by torch name; embedding's is the output
    dtype.  ``geometry``: one of `geometries` (the lowering picks it by `pick_geometry`).
    UnsupportedError for anything outside BACKENDS x FORMAT_NAMES x KINDS x DTYPES x
    geometries."""
    _check(backend, fmt, kind, dtype)
    _check_geometry(backend, fmt, kind, dtype, geometry)
    template, values = _kind_values(backend, fmt, kind, dtype, geometry)
    return KernelSource(
        backend=backend,
        format=fmt,
        kind=kind,
        dtype=dtype,
        entry=values["entry"],
        header=emit_header(backend, fmt),
        source=render_template(template, **values),
        launch=launch_rule(backend, fmt, kind, dtype, geometry),
    )


def _check_group_warps(fmt: str, dtype: str, group_warps: int) -> None:
    """Warps a row group of a benchmark's matvec variant: a divisor of the block's warps."""
    choices = [d for d in range(1, WARPS + 1) if WARPS % d == 0]
    if group_warps not in choices:
        raise UnsupportedError(
            f"CUDA matvec {fmt} {dtype}: {group_warps} warps a row group; expected one of "
            f"{choices} (divisors of the {WARPS} warps a block)"
        )


def cuda_matvec_with_group_warps(fmt: str, dtype: str, group_warps: int) -> KernelSource:
    """The CUDA matvec of the default geometry with ``group_warps`` warps a row group (the
    paired and quad geometries are 2 and 4, with their __launch_bounds__): what
    `benchmarks/cuda_matvec_geometry.py` weighs against each other.  Not used by the
    lowering."""
    _check_group_warps(fmt, dtype, group_warps)
    launch = _matvec_launch(MATVEC_ROWS_PER_WARP, group_warps)
    return _cuda_matvec_variant(
        fmt,
        dtype,
        DEFAULT_GEOMETRY,
        f"w{group_warps}",
        launch,
        group_warps=group_warps,
        min_blocks_per_sm=_matvec_min_blocks(
            fmt, MATVEC_GROUP_GEOMETRIES.get(group_warps, DEFAULT_GEOMETRY), dtype
        ),
    )


def cuda_matvec_streamed(
    fmt: str, dtype: str, stream_groups: int, group_warps: int = 1
) -> KernelSource:
    """The CUDA matvec of the streamed geometry with ``stream_groups`` row groups a warp (the
    lowering's is MATVEC_STREAM_GROUPS), each shared by ``group_warps`` warps (quad_stream: 4
    and MATVEC_QUAD_STREAM_GROUPS): what `benchmarks/cuda_matvec_geometry.py` tries."""
    if stream_groups < 1:
        raise UnsupportedError(
            f"CUDA matvec {fmt} {dtype}: {stream_groups} row groups a warp; expected >= 1"
        )
    _check_group_warps(fmt, dtype, group_warps)
    launch = _matvec_launch(MATVEC_ROWS_PER_WARP, group_warps, stream_groups)
    suffix = f"g{stream_groups}" if group_warps == 1 else f"w{group_warps}g{stream_groups}"
    return _cuda_matvec_variant(
        fmt,
        dtype,
        "stream",
        suffix,
        launch,
        stream_groups=stream_groups,
        group_warps=group_warps,
    )


def _cuda_matvec_variant(
    fmt: str, dtype: str, geometry: str, suffix: str, launch: LaunchRule, **values
) -> KernelSource:
    """`cuda/matvec.cu` of ``geometry`` with some template values replaced (a benchmark's
    variant, its entry name ending in ``_suffix``)."""
    _check("cuda", fmt, "matvec", dtype)
    _, defaults = _kind_values("cuda", fmt, "matvec", dtype, geometry)
    values = {**defaults, **values, "entry": f"{defaults['entry']}_{suffix}"}
    return KernelSource(
        backend="cuda",
        format=fmt,
        kind="matvec",
        dtype=dtype,
        entry=values["entry"],
        header=emit_header("cuda", fmt),
        source=render_template("cuda/matvec.cu", **values),
        launch=launch,
    )


def all_kernels(backend: str) -> list[KernelSource]:
    """Every kernel of ``backend``, in a fixed order (format, kind, dtype, geometry)."""
    return [
        emit(backend, fmt, kind, dtype, geometry)
        for fmt in FORMAT_NAMES
        for kind in KINDS
        for dtype in DTYPES
        for geometry in geometries(backend, fmt, kind, dtype)
    ]


def translation_unit(kernels: list[KernelSource]) -> str:
    """One compilable text holding ``kernels`` (headers are include-guarded)."""
    return "\n".join(kernel.text for kernel in kernels)
