"""`ggufc run PROGRAM.ggufc (--prompt TEXT | --tokens 2,818,...) [...]`: greedy generation.

Prints the generated text (the prompt is not repeated), or with `--json` one document
``{"tokens": [generated ids], "text": "..."}``.  `--dump-logits FILE.npy` writes the prefill
logits as float32 ``[prompt_len, vocab]``.  The tokenizer comes from the program's metadata
(see `compiler.generate`); `--prompt` gets the model's BOS token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_MAX_TOKENS = 32


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="generate text with a compiled .ggufc program",
        description="Greedy generation with a compiled program on CPU (reference "
        "interpreter) or CUDA (the program's generated kernels).",
    )
    parser.add_argument("program", help="a .ggufc file written by `ggufc compile`")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="prompt text (tokenized with the model's vocabulary)")
    prompt.add_argument("--tokens", help="prompt token ids, comma-separated")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        metavar="N",
        help=f"tokens to generate (default: {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="on CUDA, launch every node of each decode step from Python instead of replaying "
        "the step captured once as a CUDA graph (slower; for debugging)",
    )
    parser.add_argument(
        "--no-dependent-launch",
        action="store_true",
        help="on CUDA, launch every kernel after the one before it has finished, instead of "
        "letting it start its weight loads while that kernel ends (programmatic dependent "
        "launch, compute capability 9.0+; the same as GGUFC_DEPENDENT_LAUNCH=0)",
    )
    parser.add_argument(
        "--dump-logits", metavar="FILE.npy", help="write the prefill logits [prompt_len, vocab]"
    )
    parser.add_argument("--json", action="store_true", help="print {tokens, text} as JSON")
    parser.set_defaults(run=run)
    return parser


def _save_npy(path: Path, array) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args) -> int:
    from compiler.generate import (
        eos_token_id,
        generate,
        parse_token_list,
        program_metadata,
        tokenizer_from_metadata,
    )
    from runtime_schema import load_program

    if args.no_dependent_launch:
        from runtime_schema.cuda_launcher import DEPENDENT_LAUNCH_ENV

        os.environ[DEPENDENT_LAUNCH_ENV] = "0"  # read by every CUDA launcher made after this
    loaded = load_program(args.program)
    metadata = program_metadata(loaded.program)
    tokenizer = None
    if args.prompt is not None:
        tokenizer = tokenizer_from_metadata(metadata)
        prompt = tokenizer.encode(args.prompt)
    else:
        prompt = parse_token_list(args.tokens)
    result = generate(
        loaded,
        prompt,
        args.max_tokens,
        device=args.device,
        eos_id=eos_token_id(metadata),
        cuda_graph=not args.no_cuda_graph,
    )
    if args.dump_logits:
        _save_npy(Path(args.dump_logits), result.prefill_logits.float().numpy())
    if tokenizer is None and "ggufc.tokenizer" in metadata:
        tokenizer = tokenizer_from_metadata(metadata)
    text = tokenizer.decode(result.tokens) if tokenizer is not None else None
    if args.json:
        sys.stdout.write(json.dumps({"tokens": result.tokens, "text": text}) + "\n")
    else:
        sys.stdout.write((text if text is not None else ",".join(map(str, result.tokens))) + "\n")
    return 0
