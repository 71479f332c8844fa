"""`ggufc opt INPUT -p PIPELINE [-o OUT] [instrumentation flags]`: run a pass pipeline on
a `.ir` text program or a `torch.export` `.pt2` file, like mlir-opt.

The result goes to OUT (`.ir` or `.pt2`, by extension, written via a temporary file and a
rename) or, without `-o`, to stdout as text IR.  Instrumentation output (IR dumps, timing,
statistics, rewrite logs) goes to stderr.  `--run-reproducer FILE` replays a reproducer
written by `--reproducer-dir`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.errors import GgufcError, IRParseError

TEXT_SUFFIX = ".ir"
EXPORT_SUFFIX = ".pt2"


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "opt",
        help="run a pass pipeline on a .ir or .pt2 program",
        description="Run a pass pipeline (see `ggufc passes`) on one program.",
    )
    parser.add_argument("input", nargs="?", help="the program: a .ir text file or a .pt2 file")
    parser.add_argument(
        "-p",
        "--pipeline",
        default="",
        help="pipeline text, e.g. 'canonicalize{max-iterations=4},cse,dce'",
    )
    parser.add_argument("-o", "--output", help="write the result here (.ir or .pt2)")
    parser.add_argument(
        "--load-pass",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="load and register a pass class from a module or a .py file",
    )
    verify = parser.add_argument_group("verification")
    verify.add_argument(
        "--no-verify", action="store_true", help="do not verify the program after each pass"
    )
    verify.add_argument(
        "--verify-numerics",
        action="store_true",
        help="run the program before and after each pass on generated inputs "
        "and fail the pass that changes a result",
    )
    verify.add_argument(
        "--numerics-atol",
        type=float,
        default=None,
        metavar="X",
        help="absolute tolerance of --verify-numerics",
    )
    verify.add_argument(
        "--numerics-rtol",
        type=float,
        default=None,
        metavar="X",
        help="relative tolerance of --verify-numerics",
    )
    printing = parser.add_argument_group("IR printing")
    printing.add_argument(
        "--print-ir-before",
        type=_names,
        default=[],
        metavar="P,Q",
        help="print the IR before the named passes",
    )
    printing.add_argument(
        "--print-ir-after",
        type=_names,
        default=[],
        metavar="P,Q",
        help="print the IR after the named passes",
    )
    printing.add_argument(
        "--print-ir-before-all", action="store_true", help="print the IR before every pass"
    )
    printing.add_argument(
        "--print-ir-after-all", action="store_true", help="print the IR after every pass"
    )
    printing.add_argument(
        "--print-ir-after-change",
        action="store_true",
        help="print after a pass only if it changed the IR",
    )
    printing.add_argument(
        "--print-ir-after-failure",
        action="store_true",
        help="print the IR a failing pass left behind",
    )
    printing.add_argument(
        "--print-rewrites",
        action="store_true",
        help="log every node inserted, replaced or erased, with its pattern",
    )
    printing.add_argument(
        "--dump-dir",
        metavar="DIR",
        help="write NN-PASS.ir and NN-PASS.dot for the input and each pass",
    )
    report = parser.add_argument_group("reports and debugging")
    report.add_argument(
        "--time-passes", action="store_true", help="print wall and CPU time per pass"
    )
    report.add_argument(
        "--pass-statistics", action="store_true", help="print per-pass and per-pattern counters"
    )
    report.add_argument(
        "--debug-counter",
        action="append",
        default=[],
        metavar="NAME-skip=N,NAME-count=M",
        help="apply only some matches of a pattern (bisecting a bad rewrite)",
    )
    report.add_argument(
        "--reproducer-dir",
        metavar="DIR",
        help="when a pass fails, write its input and the rest of the pipeline here",
    )
    report.add_argument(
        "--run-reproducer", metavar="FILE", help="replay a reproducer written by --reproducer-dir"
    )
    parser.set_defaults(run=run)
    return parser


def load_program(path: str):
    suffix = Path(path).suffix
    if suffix == TEXT_SUFFIX:
        from compiler.ir.parser import parse_program

        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise IRParseError(f"{path}: cannot read: {exc.strerror}") from exc
        return parse_program(text, filename=path)
    if suffix == EXPORT_SUFFIX:
        from compiler.ir.pt2 import load_pt2

        return load_pt2(path)
    raise GgufcError(f"{path}: unknown input kind {suffix!r}; expected .ir or .pt2")


def save_program(program, path: str) -> None:
    suffix = Path(path).suffix
    if suffix == TEXT_SUFFIX:
        from compiler.ir.printer import print_program
        from passes.instrumentation.files import write_atomic

        write_atomic(path, print_program(program))
    elif suffix == EXPORT_SUFFIX:
        from compiler.ir.pt2 import save_pt2

        save_pt2(program, path)
    else:
        raise GgufcError(f"{path}: unknown output kind {suffix!r}; expected .ir or .pt2")


def run(args) -> int:
    from passes.manager import PassManager
    from passes.registry import load_pass_class

    pipeline_text, verify_numerics = args.pipeline, args.verify_numerics
    load_passes = list(args.load_pass)
    verify = not args.no_verify
    if args.run_reproducer:
        from compiler.ir.parser import parse_program
        from passes.instrumentation.reproducer import read_reproducer

        if args.input:
            raise GgufcError(
                "--run-reproducer takes the program from the reproducer file; give no INPUT"
            )
        reproducer = read_reproducer(args.run_reproducer)
        load_passes += reproducer.load_passes
        for reference in load_passes:
            load_pass_class(reference)
        program = parse_program(reproducer.program_text, filename=args.run_reproducer)
        pipeline_text = reproducer.pipeline
        verify, verify_numerics = reproducer.verify, reproducer.verify_numerics or verify_numerics
    else:
        if not args.input:
            raise GgufcError("missing INPUT (a .ir or .pt2 file), or --run-reproducer FILE")
        for reference in load_passes:
            load_pass_class(reference)
        if args.output and Path(args.output).suffix not in (TEXT_SUFFIX, EXPORT_SUFFIX):
            raise GgufcError(f"{args.output}: unknown output kind; expected .ir or .pt2")
        program = load_program(args.input)

    manager = PassManager(
        pipeline_text,
        verify=verify,
        print_ir_before=args.print_ir_before,
        print_ir_after=args.print_ir_after,
        print_ir_before_all=args.print_ir_before_all,
        print_ir_after_all=args.print_ir_after_all,
        print_ir_after_change=args.print_ir_after_change,
        print_ir_after_failure=args.print_ir_after_failure,
        print_rewrites=args.print_rewrites,
        dump_dir=args.dump_dir,
        time_passes=args.time_passes,
        pass_statistics=args.pass_statistics,
        reproducer_dir=args.reproducer_dir,
        verify_numerics=verify_numerics,
        numerics_atol=args.numerics_atol,
        numerics_rtol=args.numerics_rtol,
        debug_counter=",".join(args.debug_counter) or None,
        load_passes=load_passes,
        stream=sys.stderr,
    )
    manager.run(program)
    if args.output:
        save_program(program, args.output)
    else:
        from compiler.ir.printer import print_program

        text = print_program(program)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
