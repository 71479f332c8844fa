"""`ggufc passes [--default]`: list every pass with its options, their types and defaults,
and the pass's one-line description; `--default` prints the default pipeline text."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "passes",
        help="list the passes and their options",
        description="List every pass usable in a pipeline (built-in, registered, or from the "
        "'ggufc.passes' entry point group) with its options, types, defaults and description.",
    )
    parser.add_argument(
        "--default", action="store_true", help="print the default pipeline text instead"
    )
    parser.add_argument(
        "--load-pass",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="also load a pass class from a module or a .py file",
    )
    parser.set_defaults(run=run)
    return parser


def describe_passes() -> str:
    from passes.registry import all_pass_classes

    lines = []
    for cls in all_pass_classes():
        lines.append(f"{cls.name}: {cls.summary()}")
        for opt in cls.options():
            default = opt.format_value(opt.default)
            lines.append(f"  {opt.text_name}: {opt.type_text} = {default}  -- {opt.doc}")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from passes import default_pipeline
    from passes.registry import load_pass_class

    for reference in args.load_pass:
        load_pass_class(reference)
    if args.default:
        sys.stdout.write(default_pipeline().to_text() + "\n")
    else:
        sys.stdout.write(describe_passes())
    return 0
