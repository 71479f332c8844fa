"""One decode step's attention on CUDA: the front end's ops against torch's fused attention.

    python benchmarks/cuda_attention_decode.py [--slots 256,1024] [--layers 18]
        [--kv-heads 1] [--group 4] [--head-dim 256] [--out FILE.md]

The defaults are Gemma 3 270M's attention (one KV head shared by 4 query heads, head dim
256, 18 layers, float32).  For each cache length (``--slots``) a CUDA graph of ``--layers``
attention calls on their own caches (one query token at position slots / 2) is timed by
device events around 200 replays after warm-up; the figure is us a layer.  Rows:

* the front end's ops: `compiler.architectures.layers.cached_attention` (the two cache
  writes, scores, scale, mask, softmax, weighted sum: what the exported graph holds);
* the two cache writes alone (out of place, as the front end writes them: each copies its
  cache), the part of every other row that is not attention;
* the same cache writes, then ggufc's fused attention kernel (`codegen.kernels.attention`,
  what `fuse-attention` makes of those ops) on the grouped queries;
* the same cache writes, then torch's `scaled_dot_product_attention` on the same queries,
  caches and mask (4-D, one float mask shared by the layers), with torch's own choice of
  kernel and with each backend forced; backends that refuse the inputs are reported so.

Each fused result is checked against the front end's (max abs difference).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.architectures.layers import cached_attention, default_attention_scale

REPLAYS = 200
WARMUP_REPLAYS = 10


def graph_us_per_call(calls) -> tuple[float, list]:
    """Captures ``calls`` (no-argument callables) in one CUDA graph; us per call."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # cuBLAS workspaces and lazy inits before capture
            outs = [call() for call in calls]
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = [call() for call in calls]
    for _ in range(WARMUP_REPLAYS):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(REPLAYS):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / REPLAYS / len(calls), outs


def ggufc_attention(kv_heads: int, group: int, dim: int, slots: int, scale: float, position):
    """The cache writes, then ggufc's attention kernel, as a callable on one layer's tensors."""
    from codegen.kernels.attention import (
        ATTENTION_THREADS,
        attention_grid,
        attention_shared_bytes,
        emit_attention,
    )
    from runtime_schema.cuda_launcher import CudaLauncher
    from runtime_schema.program import Backend, KernelSource

    generated = emit_attention("cuda", dim, dim)
    source = KernelSource(
        backend=Backend.CUDA,
        entry=generated.entry,
        source=generated.source,
        header=generated.header,
    )
    launcher = CudaLauncher()
    visible = torch.arange(slots, device="cuda")[None, :] <= position[:, None]  # [1, S]
    rows = group  # one token

    def call(q, k, v, k_cache, v_cache):
        new_k = k_cache.index_copy(1, position, k[0])
        new_v = v_cache.index_copy(1, position, v[0])
        out = torch.empty(kv_heads, rows, dim, device="cuda")
        launcher.launch(
            source,
            grid=attention_grid(rows, kv_heads),
            block=(ATTENTION_THREADS, 1, 1),
            shared_memory_bytes=attention_shared_bytes(slots, dim),
            tensors=[q.reshape(kv_heads, rows, dim), new_k, new_v, visible, out],
            scalars=[rows, 1, slots, scale],
        )
        return out.reshape(1, 1, kv_heads * rows * dim)

    return call


def attention_rows(slots: int, args) -> list[tuple[str, str, str]]:
    heads, dim = args.kv_heads * args.group, args.head_dim
    scale = default_attention_scale(dim)
    position = torch.tensor([slots // 2], device="cuda")
    layers = []
    for _ in range(args.layers):
        q = torch.randn(1, heads, 1, dim, device="cuda")
        k = torch.randn(1, args.kv_heads, 1, dim, device="cuda")
        v = torch.randn(1, args.kv_heads, 1, dim, device="cuda")
        k_cache = torch.randn(args.kv_heads, slots, dim, device="cuda")
        v_cache = torch.randn(args.kv_heads, slots, dim, device="cuda")
        layers.append((q, k, v, k_cache, v_cache))

    def front_end(q, k, v, k_cache, v_cache):
        return cached_attention(q, k, v, k_cache, v_cache, position, scale, None)[0]

    visible = torch.arange(slots, device="cuda")[None, :] <= position[:, None]  # [1, S]
    mask = torch.zeros(args.group, slots, device="cuda").masked_fill(~visible, float("-inf"))

    def fused(q, k, v, k_cache, v_cache):
        # the same cache writes as the front end, then one fused attention
        new_k = k_cache.index_copy(1, position, k[0])
        new_v = v_cache.index_copy(1, position, v[0])
        queries = q.reshape(1, args.kv_heads, args.group, dim)
        out = F.scaled_dot_product_attention(
            queries, new_k[None], new_v[None], attn_mask=mask, scale=scale
        )
        return out.reshape(1, 1, heads * dim)

    def cache_writes(q, k, v, k_cache, v_cache):
        return k_cache.index_copy(1, position, k[0]), v_cache.index_copy(1, position, v[0])

    us, expected = graph_us_per_call([lambda a=a: front_end(*a) for a in layers])
    rows = [("front end's ops (`cached_attention`)", f"{us:.1f}", "")]
    us, _ = graph_us_per_call([lambda a=a: cache_writes(*a) for a in layers])
    rows.append(("the two cache writes alone (in every row)", f"{us:.1f}", ""))
    kernel = ggufc_attention(args.kv_heads, args.group, dim, slots, scale, position)
    us, outs = graph_us_per_call([lambda a=a: kernel(*a) for a in layers])
    diff = max(float((o - e).abs().max()) for o, e in zip(outs, expected))
    rows.append(("ggufc attention kernel", f"{us:.1f}", f"{diff:.1e}"))
    backends = [("torch's choice", None)] + [
        (name, getattr(SDPBackend, name))
        for name in ("EFFICIENT_ATTENTION", "MATH", "FLASH_ATTENTION", "CUDNN_ATTENTION")
    ]
    for name, backend in backends:
        label = f"scaled_dot_product_attention ({name})"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                calls = [lambda a=a: fused(*a) for a in layers]
                if backend is None:
                    us, outs = graph_us_per_call(calls)
                else:
                    with sdpa_kernel(backend):
                        us, outs = graph_us_per_call(calls)
        except RuntimeError as error:
            rows.append((label, "refused", str(error).splitlines()[0][:60]))
            continue
        diff = max(float((o - e).abs().max()) for o, e in zip(outs, expected))
        rows.append((label, f"{us:.1f}", f"{diff:.1e}"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="256,1024", help="KV-cache lengths, comma-separated")
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--group", type=int, default=4, help="query heads per KV head")
    parser.add_argument("--head-dim", type=int, default=256)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    try:
        slot_counts = [int(s) for s in args.slots.split(",")]
    except ValueError:
        parser.error(f"--slots: expected comma-separated integers, got {args.slots!r}")
    if min(slot_counts) < 2 or min(args.layers, args.kv_heads, args.group, args.head_dim) < 1:
        parser.error("--slots must be >= 2 and the other sizes >= 1")
    if not torch.cuda.is_available():
        print("cuda_attention_decode.py: needs a CUDA device", file=sys.stderr)
        return 2
    lines = [
        (
            f"Card: {torch.cuda.get_device_name()}; float32; {args.kv_heads} KV head(s) x "
            f"{args.group} query heads, head dim {args.head_dim}; a CUDA graph of "
            f"{args.layers} layers, us a layer."
        ),
        "",
        "| cache slots | attention | us a layer | max abs diff |",
        "|---|---|---:|---:|",
    ]
    for slots in slot_counts:
        for label, us, diff in attention_rows(slots, args):
            lines.append(f"| {slots} | {label} | {us} | {diff} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
