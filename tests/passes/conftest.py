"""Runs the FileCheck-style `.ir` tests of this folder (mlir-opt / lit style).

A test file holds RUN lines and CHECK lines in `//` comments:

    // RUN: ggufc opt %s -p cse | filecheck %s
    // CHECK: aten.add.Tensor

Each RUN line (a trailing `\\` continues it on the next line) is a pipeline of commands
separated by `|`, run in order; the test passes when every command of every RUN line
succeeds.  Substitutions: `%s` this file, `%S` its folder, `%t` a fresh temporary folder of
the test.  Commands:

* `ggufc ARGS` runs the CLI in this process (no 5-second torch import per line);
* `not CMD` succeeds when CMD fails with a ggufc error (exit status 1);
* `filecheck ARGS` runs the `filecheck` package's tool on the previous command's output;
* `cat FILE...` and `ls DIR` (sorted names, one per line).

Redirections after a command: `2>&1` (stderr joins stdout, for checking instrumentation
output), `2>/dev/null`, `> FILE`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

RUN_PREFIX = "// RUN:"
CONTINUATION = "\\"
EXIT_GGUFC_ERROR = 1
FILECHECK = str(Path(sys.executable).with_name("filecheck"))


def pytest_collect_file(parent, file_path: Path):
    if file_path.suffix == ".ir" and RUN_PREFIX in file_path.read_text(encoding="utf-8"):
        return IRTestFile.from_parent(parent, path=file_path)
    return None


class IRTestFile(pytest.File):
    def collect(self):
        yield IRTestItem.from_parent(self, name=self.path.name)


class RunLineFailure(Exception):
    pass


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped.startswith(RUN_PREFIX):
            continue
        body = stripped[len(RUN_PREFIX) :].strip()
        if body.endswith(CONTINUATION):
            pending += body[: -len(CONTINUATION)] + " "
            continue
        lines.append(pending + body)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def substitute(line: str, path: Path, temp_dir: Path) -> str:
    return (
        line.replace("%s", shlex.quote(str(path)))
        .replace("%S", shlex.quote(str(path.parent)))
        .replace("%t", shlex.quote(str(temp_dir)))
    )


def _split_pipeline(tokens: list[str]) -> list[list[str]]:
    commands, current = [], []
    for token in tokens:
        if token == "|":
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return commands


def run_ggufc(argv: list[str]) -> Result:
    from compiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse errors
            status = exc.code if isinstance(exc.code, int) else 2
    return Result(status, out.getvalue(), err.getvalue())


def run_command(argv: list[str], stdin: str) -> Result:
    if not argv:
        raise RunLineFailure("empty command in RUN line")
    name, args = argv[0], argv[1:]
    if name == "not":
        inner = run_command(args, stdin)
        ok = inner.status == EXIT_GGUFC_ERROR
        return Result(0 if ok else 1, inner.stdout, inner.stderr)
    if name == "ggufc":
        return run_ggufc(args)
    if name == "filecheck":
        done = subprocess.run(
            [FILECHECK, *args], input=stdin, capture_output=True, text=True, check=False
        )
        return Result(done.returncode, done.stdout, done.stderr)
    if name == "cat":
        return Result(0, "".join(Path(a).read_text(encoding="utf-8") for a in args), "")
    if name == "ls":
        return Result(0, "".join(f"{p}\n" for p in sorted(os.listdir(args[0]))), "")
    raise RunLineFailure(f"unsupported command {name!r} in RUN line")


PIPE, STDERR, DEV_NULL = "<pipe>", "<stderr>", "/dev/null"


def _parse_redirections(argv: list[str]) -> tuple[list[str], str, str]:
    """Strip `2>&1`, `>FILE`, `> FILE`, `2>FILE`, `2> FILE` from argv, applied left to right
    as a shell does; return (argv, stdout target, stderr target)."""
    out_target, err_target, words = PIPE, STDERR, []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "2>&1":
            err_target = out_target
        elif token in (">", "2>"):
            if i + 1 >= len(argv):
                raise RunLineFailure(f"redirection {token!r} without a file")
            i += 1
            if token == ">":
                out_target = argv[i]
            else:
                err_target = argv[i]
        elif token.startswith("2>"):
            err_target = token[2:]
        elif token.startswith(">"):
            out_target = token[1:]
        else:
            words.append(token)
        i += 1
    return words, out_target, err_target


def run_pipeline(line: str) -> list[tuple[list[str], Result]]:
    stdin = ""
    results = []
    for argv in _split_pipeline(shlex.split(line)):
        argv, out_target, err_target = _parse_redirections(argv)
        result = run_command(argv, stdin)
        piped, files = "", {}
        for text, target in ((result.stdout, out_target), (result.stderr, err_target)):
            if target == PIPE:
                piped += text
            elif target not in (STDERR, DEV_NULL):
                files[target] = files.get(target, "") + text
        for target, text in files.items():
            Path(target).write_text(text, encoding="utf-8")
        results.append((argv, result))
        stdin = piped
    return results


class IRTestItem(pytest.Item):
    def runtest(self):
        text = self.path.read_text(encoding="utf-8")
        lines = run_lines(text)
        if not lines:
            raise RunLineFailure(f"{self.path}: no RUN line")
        with tempfile.TemporaryDirectory(prefix="ggufc-irtest-") as temp:
            for line in lines:
                command_line = substitute(line, self.path, Path(temp))
                for argv, result in run_pipeline(command_line):
                    if result.status != 0:
                        raise RunLineFailure(
                            f"RUN: {line}\ncommand {shlex.join(argv)} exited with "
                            f"{result.status}\n--- stdout ---\n{result.stdout}"
                            f"--- stderr ---\n{result.stderr}"
                        )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RunLineFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"ir test: {self.name}"
