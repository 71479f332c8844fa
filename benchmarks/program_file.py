"""Program-file benchmark: what string interning saves, load time, resident memory.

    python benchmarks/program_file.py [--layers 62] [--repeats 5] [--program GEMMA.ggufc]

Two programs, each measured for metadata bytes (the file minus its constant segment) written
with interning and without, kernel-source (+ header) bytes stored vs referenced, load time
(median of ``--repeats`` `load_program` calls) and resident memory (anonymous vs
file-backed) before and after loading and after reading every constant:

1. A Gemma-4-31B-shaped synthetic program (`runtime_schema.synthetic.layered_program`):
   ``--layers`` layers, hidden 5376, FFN 21504, vocab 262144, 7 linears per layer in each of
   3 M buckets, a Q4_K_M-like format mix (`q4_k_m_formats`), and REAL kernel sources and
   headers from `codegen.kernels.emit` for Metal and CUDA (float32 activations).  Weights are
   small dummies (`DUMMY_WEIGHT_ROWS` rows per tensor; the kernels' n / k keep the full
   sizes), so the constant segment is not a 31B model's; the metadata is.  Kernel-source
   bytes are also shown against the layer count (1, 8, 31, 62): they must stay flat.
2. The real Gemma 3 270M Q4_K_M program: ``--program PATH`` to an existing ``.ggufc``, else
   compiled here with `compile_gguf` (max_seq 256, weights embedded).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine_info import describe_machine

from codegen.kernels import emit
from runtime_schema import load_program, save_program
from runtime_schema.program import Backend, KernelKind, KernelSource
from runtime_schema.reader import read_program_flatbuffer
from runtime_schema.synthetic import layered_program
from runtime_schema.writer import encode_program

KERNEL_SAVING_TARGET = 0.95
LAYER_COUNTS = (1, 8, 31, 62)
# Gemma 4 31B-like sizes.
HIDDEN = 5376
FFN = 21504
VOCAB = 262144
DUMMY_WEIGHT_ROWS = 1
ACTIVATION_DTYPE = "float32"
BACKENDS = {"metal": Backend.METAL, "cuda": Backend.CUDA}
GEMMA_MODEL = "gemma3-270m"
GEMMA_MAX_SEQ = 256
KIB = 1024


def real_kernel_sources(fmt: str, kind: KernelKind) -> tuple[KernelSource, ...]:
    """The generated Metal and CUDA kernels of (fmt, kind), as the program stores them."""
    out = []
    for name, backend in BACKENDS.items():
        generated = emit(name, fmt, kind.name.lower(), ACTIVATION_DTYPE)
        out.append(
            KernelSource(
                backend=backend,
                entry=generated.entry,
                source=generated.source,
                header=generated.header,
            )
        )
    return tuple(out)


def q4_k_m_formats(layers: int):
    """llama.cpp's Q4_K_M mix: Q4_K everywhere except attn_v and ffn_down, which get Q6_K
    in the first and last eighth of the layers and every third layer in between."""

    def more_bits(i: int) -> bool:
        eighth = layers // 8
        return i < eighth or i >= 7 * layers // 8 or (i - eighth) % 3 == 2

    def formats_of_layer(i: int) -> dict[str, str]:
        wide = "Q6_K" if more_bits(i) else "Q4_K"
        return {
            "attn_q": "Q4_K",
            "attn_k": "Q4_K",
            "attn_v": wide,
            "attn_output": "Q4_K",
            "ffn_gate": "Q4_K",
            "ffn_up": "Q4_K",
            "ffn_down": wide,
        }

    return formats_of_layer


def gemma4_like(layers: int):
    return layered_program(
        layers,
        hidden=HIDDEN,
        ffn=FFN,
        vocab=VOCAB,
        embedding_format="Q6_K",  # tied token_embd / output, as in Q4_K_M files
        layer_formats=q4_k_m_formats(layers),
        kernel_sources=real_kernel_sources,
        weight_rows=DUMMY_WEIGHT_ROWS,
    )


def rss_kib() -> dict[str, int]:
    """RssAnon / RssFile of this process in KiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("RssAnon", "RssFile"):
                out[key] = int(line.split()[1])
    return out


def string_figures(program, program_dir=".") -> dict:
    interned = encode_program(program, program_dir=program_dir)
    plain = encode_program(program, program_dir=program_dir, intern_strings=False)
    stats = read_program_flatbuffer(interned.flatbuffer).strings
    return {
        # the file minus the constant segment: header + flatbuffer + alignment padding
        "metadata_interned": interned.header.segment_offset,
        "metadata_plain": plain.header.segment_offset,
        "kernel_stored": stats.kernel_stored_bytes,
        "kernel_referenced": stats.kernel_uninterned_bytes,
        "kernel_unique": stats.kernel_unique,
        "kernel_references": stats.kernel_references,
        "strings_unique": stats.unique,
        "strings_references": stats.references,
        "strings_stored": stats.stored_bytes,
        "strings_referenced": stats.uninterned_bytes,
        "segment": interned.header.segment_size,
    }


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def saved(before: int, after: int) -> str:
    return f"{1 - after / before:.1%}" if before else "-"


def interning_table(f: dict) -> str:
    return table(
        ["figure", "without interning", "with interning", "saved"],
        [
            [
                "metadata bytes (file minus constant segment)",
                f["metadata_plain"],
                f["metadata_interned"],
                saved(f["metadata_plain"], f["metadata_interned"]),
            ],
            [
                "kernel source + header bytes",
                f["kernel_referenced"],
                f["kernel_stored"],
                saved(f["kernel_referenced"], f["kernel_stored"]),
            ],
            ["kernel source + header strings", f["kernel_references"], f["kernel_unique"], ""],
            [
                "all string bytes",
                f["strings_referenced"],
                f["strings_stored"],
                saved(f["strings_referenced"], f["strings_stored"]),
            ],
            ["all strings", f["strings_references"], f["strings_unique"], ""],
        ],
    )


def load_table(path: Path, repeats: int) -> str:
    """Load time and resident memory of the program at `path`."""
    timings = {}
    for verify in (True, False):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            loaded = load_program(path, verify_segment=verify)
            samples.append(time.perf_counter() - start)
            del loaded
        timings[verify] = statistics.median(samples)
    before = rss_kib()
    loaded = load_program(path, verify_segment=False)
    after = rss_kib()
    constants = loaded.program.constants
    views = sum(
        1
        for index, offset, _ in loaded.segment_constants
        if constants[index].data.data_ptr() == loaded.segment_address + offset
    )
    constant_bytes = sum(c.data.nbytes for c in constants)
    # touching every constant maps its pages: file-backed, not anonymous, memory grows
    checksum = sum(int(c.data.reshape(-1).view(torch.uint8).sum()) for c in constants)
    touched = rss_kib()
    rows = [
        ["file bytes", path.stat().st_size],
        ["constant bytes referenced", constant_bytes],
        [f"load time, segment CRC checked (median of {repeats}, ms)", f"{timings[True] * 1e3:.1f}"],
        [
            f"load time, segment CRC skipped (median of {repeats}, ms)",
            f"{timings[False] * 1e3:.1f}",
        ],
        ["RssAnon growth at load (KiB)", after["RssAnon"] - before["RssAnon"]],
        ["RssFile growth at load (KiB)", after["RssFile"] - before["RssFile"]],
        [
            "RssAnon growth after reading every constant (KiB)",
            touched["RssAnon"] - before["RssAnon"],
        ],
        [
            "RssFile growth after reading every constant (KiB)",
            touched["RssFile"] - before["RssFile"],
        ],
        ["constant bytes (KiB), for comparison", constant_bytes // KIB],
        [
            "constants that are views of the mapped file",
            f"{views} of {len(loaded.segment_constants)} (in segment)",
        ],
    ]
    return table(["figure", "value"], rows) + f"\n\n(byte checksum of all constants: {checksum})"


def synthetic_section(layers: int, repeats: int) -> None:
    print(
        f"## Synthetic Gemma-4-31B-like program: {layers} layers\n\n"
        f"hidden {HIDDEN}, FFN {FFN}, vocab {VOCAB}; 7 linears per layer x 3 M buckets; "
        f"Q4_K_M-like mix (Q4_K, attn_v / ffn_down Q6_K on 'more bits' layers, tied Q6_K "
        f"embedding); real Metal + CUDA kernel sources ({ACTIVATION_DTYPE}); weights are "
        f"dummies of {DUMMY_WEIGHT_ROWS} row per tensor (the constant segment is not a 31B "
        f"model's, the metadata is).\n"
    )
    program = gemma4_like(layers)
    f = string_figures(program)
    print(interning_table(f))
    saved_kernel = 1 - f["kernel_stored"] / f["kernel_referenced"]
    verdict = "meets" if saved_kernel >= KERNEL_SAVING_TARGET else "MISSES"
    print(f"\nKernel-source bytes saved: {saved_kernel:.2%} ({verdict} the >= 95% target)\n")

    print("### Kernel-source bytes against layer count\n")
    rows = []
    for count in LAYER_COUNTS:
        g = f if count == layers else string_figures(gemma4_like(count))
        rows.append(
            [
                count,
                g["kernel_references"],
                g["kernel_unique"],
                g["kernel_stored"],
                g["kernel_referenced"],
                g["metadata_interned"],
                g["metadata_plain"],
            ]
        )
    print(
        table(
            [
                "layers",
                "kernel string refs",
                "unique kernel strings",
                "kernel bytes stored",
                "kernel bytes without interning",
                "metadata bytes",
                "metadata bytes without interning",
            ],
            rows,
        )
    )
    stored = [r[3] for r in rows]
    print(
        f"\nKernel bytes stored: {min(stored)} to {max(stored)} over {LAYER_COUNTS[0]}-"
        f"{LAYER_COUNTS[-1]} layers (they change only when a layer count adds a "
        f"(format, kind) pair, never per layer).\n"
    )
    print("### Load\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.ggufc"
        save_program(program, path)
        print(load_table(path, repeats) + "\n")


def gemma_section(program_path: Path | None, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if program_path is None:
            from compiler.bundled import bundled_model_path
            from compiler.driver import compile_gguf

            program_path = Path(tmp) / "gemma3-270m.ggufc"
            result = compile_gguf(
                bundled_model_path(GEMMA_MODEL),
                max_seq=GEMMA_MAX_SEQ,
                weights="embed",
                output=program_path,
            )
            origin = f"compiled here in {result.total_seconds:.1f} s (max_seq {GEMMA_MAX_SEQ})"
        else:
            origin = f"from {program_path}"
        print(f"## Real Gemma 3 270M Q4_K_M program ({origin})\n")
        loaded = load_program(program_path)
        f = string_figures(loaded.program, program_dir=program_path.parent)
        del loaded
        print(interning_table(f))
        print("\n### Load\n")
        print(load_table(program_path, repeats) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=62)
    parser.add_argument("--repeats", type=int, default=5, help="loads timed (median reported)")
    parser.add_argument(
        "--program", type=Path, default=None, help="an existing Gemma 3 270M .ggufc"
    )
    parser.add_argument("--skip-gemma", action="store_true", help="only the synthetic program")
    args = parser.parse_args(argv)

    print(f"# Program file benchmark\n\nMachine: {describe_machine()}\n")
    # the real model first: its RSS figures are then not inflated by the synthetic builds
    if not args.skip_gemma:
        gemma_section(args.program, args.repeats)
    synthetic_section(args.layers, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
