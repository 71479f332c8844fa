"""Verification of a graph program (after every pass unless `--no-verify`).

Checks, each failing with VerificationError naming the pass and the node:

1. `Graph.lint()`: well-formed FX (defs before uses, one output, known targets);
2. every node but `output` carries `meta["val"]` (None only for ops that return nothing);
3. ggufc ops agree with their format: for `ggufc.dequantize/linear/embedding(..., fmt, n, k)`
   the format is known, `blocks` is uint8 `[n, row_bytes(fmt, k)]` and the result has the
   documented shape (`[n, k]`, `[..., n]` with `x` of `[..., k]`, `[..., k]`);
4. no new dangling constant: a `get_attr` without users, or a tensor on the graph module that
   no `get_attr` reads.  Constants already dangling in the input are not blamed on a pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.fx

from compiler.errors import GgufcError, VerificationError
from passes.instrumentation.base import PassInstrumentation
from passes.rewrite.listener import describe_target
from passes.shape_facts import same_dims, tensor_value

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram

GGUF_OPS = ("ggufc.dequantize", "ggufc.linear", "ggufc.embedding")


def verify_program(program: GraphProgram, where: str, allowed_dangling: frozenset = frozenset()):
    """Raise VerificationError (message starts with `where`) if the program is malformed."""
    _verify_graph(program.graph_module, where, "")
    dangling = dangling_constants(program) - allowed_dangling
    if dangling:
        raise VerificationError(
            f"{where}: dangling constant(s) {', '.join(sorted(dangling))}: a constant must be "
            "read by some node (erase it with the rewriter, which deletes unused constants)"
        )


def _verify_graph(graph_module: torch.fx.GraphModule, where: str, region: str) -> None:
    """Lint and check the nodes of one graph; branch subgraphs (torch.cond) recursively.
    `region` names the subgraph in messages ("" for the top level)."""
    try:
        graph_module.graph.lint()
    except Exception as exc:
        raise VerificationError(f"{where}: malformed graph{region}: {exc}") from exc
    for node in graph_module.graph.nodes:
        if node.op == "output":
            continue
        if node.op == "get_attr":
            attribute = _attribute(graph_module, node.target)
            if isinstance(attribute, torch.fx.GraphModule):
                # A branch reference: export gives it no value; its body is checked instead.
                _verify_graph(attribute, where, f"{region} in branch {node.target}")
                continue
        if "val" not in node.meta:
            raise VerificationError(
                f"{where}: node %{node.name}{region} ({describe_target(node)}) has no meta['val']"
            )
        if node.meta["val"] is None and _returns_value(node):
            raise VerificationError(
                f"{where}: node %{node.name} ({describe_target(node)}) has meta['val'] = None "
                "but its op returns a value"
            )
        if node.op == "call_function" and str(node.target).startswith(GGUF_OPS):
            problem = _gguf_op_problem(node)
            if problem:
                raise VerificationError(
                    f"{where}: node %{node.name}{region} ({node.target}): {problem}"
                )


def _attribute(root: torch.nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


def _returns_value(node: torch.fx.Node) -> bool:
    schema = getattr(node.target, "_schema", None)
    return node.op != "call_function" or schema is None or len(schema.returns) > 0


def dangling_constants(program: GraphProgram) -> frozenset[str]:
    referenced: set[str] = set()
    unused: set[str] = set()
    for node in program.graph.nodes:
        if node.op == "get_attr":
            referenced.add(node.target)
            if not node.users:
                unused.add(f"{node.target} (get_attr %{node.name} has no users)")
    unread = {
        f"{name} (no get_attr reads it)"
        for name in tensor_attributes(program.graph_module)
        if name not in referenced
    }
    return frozenset(unused | unread)


def tensor_attributes(root: torch.nn.Module) -> list[str]:
    """Dotted names of every tensor held by `root` and its (non-graph) submodules."""
    names: list[str] = []

    def visit(module: torch.nn.Module, prefix: str) -> None:
        for key, value in module._parameters.items():
            if value is not None:
                names.append(prefix + key)
        for key, value in module._buffers.items():
            if value is not None:
                names.append(prefix + key)
        for key, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not key.startswith("_"):
                names.append(prefix + key)
        for key, child in module._modules.items():
            if child is not None and not isinstance(child, torch.fx.GraphModule):
                visit(child, f"{prefix}{key}.")

    visit(root, "")
    return names


def _bind(node: torch.fx.Node) -> dict | None:
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return None
    bound = {}
    for i, argument in enumerate(schema.arguments):
        if i < len(node.args):
            bound[argument.name] = node.args[i]
        elif argument.name in node.kwargs:
            bound[argument.name] = node.kwargs[argument.name]
    return bound


def _gguf_op_problem(node: torch.fx.Node) -> str | None:
    from compiler import formats

    bound = _bind(node)
    if bound is None:
        return "op has no schema"
    fmt, n, k = bound.get("fmt"), bound.get("n"), bound.get("k")
    if fmt not in formats.FORMATS:
        return f"unknown format {fmt!r}; expected one of {', '.join(formats.FORMATS)}"
    if isinstance(k, int):
        try:
            expected_row_bytes = formats.row_bytes(fmt, k)
        except GgufcError as exc:
            return f"k={k} does not fit {fmt}: {exc}"
    else:
        return f"k must be an int, got {k!r}"
    blocks = tensor_value(bound.get("blocks"))
    if blocks is None:
        return "blocks is not a tensor"
    if blocks.dtype != torch.uint8:
        return f"blocks must be uint8, got {blocks.dtype}"
    if not same_dims(blocks.shape, [n, expected_row_bytes]):
        return (
            f"blocks has shape {list(blocks.shape)}; {fmt} with n={n}, k={k} needs "
            f"[{n}, {expected_row_bytes}]"
        )
    out = tensor_value(node)
    if out is None:
        return "result is not a tensor"
    name = str(node.target)
    if name.startswith("ggufc.dequantize") and not same_dims(out.shape, [n, k]):
        return f"result has shape {list(out.shape)}, expected [{n}, {k}]"
    if name.startswith("ggufc.linear"):
        x = tensor_value(bound.get("x"))
        if x is None or not same_dims(x.shape[-1:], [k]):
            return f"x must end in k={k}, got {None if x is None else list(x.shape)}"
        if not same_dims(out.shape[-1:], [n]):
            return f"result must end in n={n}, got {list(out.shape)}"
    if name.startswith("ggufc.embedding") and not same_dims(out.shape[-1:], [k]):
        return f"result must end in k={k}, got {list(out.shape)}"
    return None


class VerifyInstrumentation(PassInstrumentation):
    def __init__(self) -> None:
        self._allowed: frozenset[str] = frozenset()

    def before_pipeline(self, program, pipeline) -> None:
        self._allowed = dangling_constants(program)
        verify_program(program, "verification of the input program", self._allowed)

    def before_pass(self, index, pass_, program, context) -> None:
        self._allowed = dangling_constants(program)

    def after_pass(self, index, pass_, program, changed) -> None:
        verify_program(program, f"verification after pass '{pass_.name}' (#{index})", self._allowed)


__all__ = ["VerifyInstrumentation", "dangling_constants", "tensor_attributes", "verify_program"]
