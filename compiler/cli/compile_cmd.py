"""`ggufc compile MODEL -o OUT.ggufc [...]`: compile a GGUF model into a program file.

MODEL is a `.gguf` path or a bundled model name (`ggufc compile gemma3-270m -o g.ggufc`).
A progress bar over the stages (load / export / passes / codegen / write) goes to stderr,
then one line per stage with its time; `--time-passes` / `--pass-statistics` add the pass
manager's reports, `--dump-dir` its per-pass IR dumps.  `--tuning FILE` (from `ggufc tune`)
sets split-dynamic-m's M buckets.  See `compiler.driver` and `compiler.tuning`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.errors import UnsupportedError

KNOWN_BACKENDS = ("metal", "cuda")
PROGRAM_SUFFIX = ".ggufc"


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in KNOWN_BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_BACKENDS)}"
        )
    return names


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compile",
        help="compile a GGUF model into a .ggufc program",
        description="Compile a GGUF model (a path or a bundled model name) into one program "
        "file: export, the pass pipeline, Metal and CUDA kernels, FlatBuffers.",
    )
    parser.add_argument("model", help="a .gguf file or a bundled model name (gemma3-270m)")
    parser.add_argument(
        "-o", "--output", help=f"the program file (default: MODEL's name with {PROGRAM_SUFFIX})"
    )
    parser.add_argument(
        "--backends",
        type=_backends,
        default=KNOWN_BACKENDS,
        metavar="LIST",
        help="kernel backends to emit, comma-separated (default: metal,cuda; '' for none)",
    )
    parser.add_argument(
        "--pipeline",
        default=None,
        metavar="TEXT",
        help="pass pipeline (default: `ggufc passes --default`)",
    )
    parser.add_argument(
        "--tuning",
        metavar="FILE.json",
        help="M-bucket thresholds from `ggufc tune`: split-dynamic-m gets those of the format "
        "holding most of the model's linear-weight bytes (the file's overall ones if that "
        "format was not tuned) as the buckets of the file's activation dtype (buckets= for "
        "float16 / bfloat16, float32-buckets= for float32); an error with a --pipeline that "
        "sets that option itself or has no split-dynamic-m, or for a model with no linear of "
        "that dtype",
    )
    parser.add_argument(
        "--max-seq",
        type=int,
        default=None,
        metavar="N",
        help="KV-cache length and largest tokens per call (default: 1024, at most the context)",
    )
    parser.add_argument(
        "--weights",
        choices=("embed", "external"),
        default="embed",
        help="embed the weights, or reference the .gguf file (default: embed); with "
        "external the default pipeline leaves out fuse-sibling-linears, whose stacked "
        "weights the file does not hold",
    )
    parser.add_argument("--dump-dir", metavar="DIR", help="write the IR after each pass here")
    parser.add_argument("--time-passes", action="store_true", help="report the time of each pass")
    parser.add_argument(
        "--pass-statistics", action="store_true", help="report each pass's statistics"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def default_output(model: str) -> Path:
    return Path(Path(model).stem + PROGRAM_SUFFIX)


def run(args) -> int:
    from compiler.driver import compile_gguf

    output = Path(args.output) if args.output else default_output(args.model)
    if output.suffix != PROGRAM_SUFFIX:
        raise UnsupportedError(f"{output}: the program file must end in {PROGRAM_SUFFIX}")
    result = compile_gguf(
        args.model,
        backends=args.backends,
        pipeline=args.pipeline,
        max_seq=args.max_seq,
        weights=args.weights,
        output=output,
        dump_dir=args.dump_dir,
        time_passes=args.time_passes,
        pass_statistics=args.pass_statistics,
        progress=not args.no_progress,
        tuning=args.tuning,
    )
    for stage, seconds in result.stage_seconds.items():
        sys.stderr.write(f"  {stage:<8} {seconds:8.2f} s\n")
    if args.tuning:
        from compiler.generate import KEY_PIPELINE, KEY_ROUTE_MODEL

        metadata = dict(result.program.metadata)
        sys.stderr.write(
            f"  pipeline {metadata.get(KEY_PIPELINE, '')} (buckets from {args.tuning})\n"
        )
        if KEY_ROUTE_MODEL in metadata:
            sys.stderr.write(f"  matmul routes: {metadata[KEY_ROUTE_MODEL]} (from {args.tuning})\n")
    size = output.stat().st_size
    sys.stderr.write(
        f"  {'total':<8} {result.total_seconds:8.2f} s  -> {output} ({size / 2**20:.1f} MiB)\n"
    )
    return 0
