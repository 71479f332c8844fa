"""The `ggufc` command line.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` whose defaults carry ``run(args) -> int``.
The list below is the one place subcommands are named; modules are imported only when the
command line is built, so `ggufc --help` never pays for torch unless a command needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (subcommand, module under compiler.cli) in the order `ggufc --help` lists them.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("inspect", "inspect_cmd"),
    ("passes", "passes_cmd"),
    ("opt", "opt_cmd"),
    ("tune", "tune_cmd"),
    ("compile", "compile_cmd"),
    ("run", "run_cmd"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ggufc",
        description=(
            "ggufc compiles GGUF-quantized PyTorch models: torch.export, an MLIR-style pass "
            "pipeline over the FX graph, Metal and CUDA kernels, one FlatBuffers program file."
        ),
        epilog="Run `ggufc COMMAND --help` for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _name, module_name in SUBCOMMANDS:
        module = importlib.import_module(f"compiler.cli.{module_name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from compiler.errors import GgufcError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GgufcError as exc:
        print(f"ggufc {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `ggufc inspect ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
