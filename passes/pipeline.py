"""Pipeline text <-> `Pipeline`.

Grammar (whitespace allowed between tokens):

    pipeline := [ pass { "," pass } ]
    pass     := NAME [ "{" [ option { "," option } ] "}" ]
    option   := NAME "=" value
    value    := element { "," element }     -- a "," followed by `NAME =` starts the next option
    element  := BARE | QUOTED | "{}"         -- "{}" is the empty tuple

`NAME` is kebab-case or snake_case; `BARE` is a word of letters, digits and `_ . - / : + *`;
`QUOTED` is a double-quoted string with backslash escapes.  Example:
`canonicalize{max-iterations=4},fuse-gguf{formats=Q6_K,Q4_K},dce`.
Option names may be written with `-` or `_` (`max-iterations` = `max_iterations`); they print
with `-`.  `str(pipeline)` prints each pass with its non-default options, so
`parse_pipeline(str(p)) == p` for every pipeline and `str(parse_pipeline(t)) == t` for text
in that canonical form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from compiler.errors import PassError, PipelineParseError
from passes.pass_base import Pass
from passes.registry import lookup_pass, pass_names

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
BARE_PATTERN = re.compile(r"[A-Za-z0-9_./:+*-]+")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


@dataclass(frozen=True)
class Pipeline:
    """An ordered tuple of configured passes."""

    passes: tuple[Pass, ...] = ()

    def __iter__(self) -> Iterator[Pass]:
        return iter(self.passes)

    def __len__(self) -> int:
        return len(self.passes)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Pipeline(self.passes[index])
        return self.passes[index]

    def __add__(self, other: Pipeline) -> Pipeline:
        return Pipeline(self.passes + tuple(other))

    def to_text(self) -> str:
        return ",".join(p.to_text() for p in self.passes)

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def of(cls, passes: Iterable[Pass] | str | Pipeline) -> Pipeline:
        """A pipeline from text, a Pipeline, or an iterable of pass instances."""
        if isinstance(passes, Pipeline):
            return passes
        if isinstance(passes, str):
            return parse_pipeline(passes)
        items = tuple(passes)
        for item in items:
            if not isinstance(item, Pass):
                raise PassError(f"pipeline element {item!r} is not a pass instance")
        return cls(items)


def parse_pipeline(text: str) -> Pipeline:
    """Parse pipeline text; raises PipelineParseError pointing at the column."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # ---- errors --------------------------------------------------------------------------
    def error(self, message: str, pos: int | None = None) -> PipelineParseError:
        pos = self.pos if pos is None else pos
        caret = " " * pos + "^"
        return PipelineParseError(f"pipeline column {pos + 1}: {message}\n  {self.text}\n  {caret}")

    # ---- scanning ------------------------------------------------------------------------
    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of text"
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1

    def name(self, what: str) -> tuple[str, int]:
        self.skip_ws()
        match = NAME_PATTERN.match(self.text, self.pos)
        if not match:
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of text"
            raise self.error(f"expected {what}, found {found}")
        self.pos = match.end()
        return match.group(), match.start()

    def at_option_start(self) -> bool:
        """Is the text after the current position `NAME =` (the start of the next option)?"""
        save = self.pos
        self.skip_ws()
        match = NAME_PATTERN.match(self.text, self.pos)
        result = False
        if match:
            self.pos = match.end()
            result = self.peek() == "="
        self.pos = save
        return result

    # ---- grammar -------------------------------------------------------------------------
    def parse(self) -> Pipeline:
        passes: list[Pass] = []
        if self.peek() == "":
            return Pipeline(())
        while True:
            passes.append(self.parse_pass())
            char = self.peek()
            if char == "":
                return Pipeline(tuple(passes))
            if char != ",":
                raise self.error(f"expected ',' or end of pipeline, found {char!r}")
            self.pos += 1

    def parse_pass(self) -> Pass:
        pass_name, start = self.name("a pass name")
        cls = self.resolve(pass_name, start)
        by_name = {opt.name: opt for opt in cls.options()}
        values: dict[str, object] = {}
        if self.peek() == "{":
            self.pos += 1
            if self.peek() == "}":
                self.pos += 1
            else:
                while True:
                    option_name, option_start = self.name(f"an option name of pass {pass_name!r}")
                    key = option_name.replace("-", "_")
                    opt = by_name.get(key)
                    if opt is None:
                        known = ", ".join(o.text_name for o in cls.options())
                        raise self.error(
                            f"pass {pass_name!r} has no option {option_name!r}"
                            + (f"; its options: {known}" if known else "; it takes no options"),
                            option_start,
                        )
                    if key in values:
                        raise self.error(f"option {option_name!r} given twice", option_start)
                    self.expect("=", f"'=' after option {option_name!r}")
                    self.skip_ws()
                    value_start = self.pos
                    words = self.parse_value()
                    try:
                        values[key] = opt.parse_value(words)
                    except ValueError as exc:
                        raise self.error(
                            f"option {option_name!r} of pass {pass_name!r} "
                            f"({opt.type_text}): {exc}",
                            value_start,
                        ) from None
                    char = self.peek()
                    if char == "}":
                        self.pos += 1
                        break
                    if char != ",":
                        found = repr(char) if char else "end of text"
                        raise self.error(f"expected ',' or '}}' after option value, found {found}")
                    self.pos += 1
        try:
            return cls(**values)
        except (TypeError, ValueError, PassError) as exc:
            raise self.error(f"cannot build pass {pass_name!r}: {exc}", start) from None

    def resolve(self, pass_name: str, start: int) -> type[Pass]:
        try:
            cls = lookup_pass(pass_name)
        except PassError as exc:
            raise self.error(str(exc), start) from None
        if cls is None:
            raise self.error(
                f"unknown pass {pass_name!r}; known passes: {', '.join(pass_names())}", start
            )
        return cls

    def parse_value(self) -> list[str]:
        """The words of one option value, up to (not including) the ',' before the next
        option or the closing '}'."""
        if self.peek() == "{":
            self.pos += 1
            self.expect("}", "'}' (an empty list is written {})")
            return []
        words = [self.element()]
        while self.peek() == ",":
            save = self.pos
            self.pos += 1
            if self.at_option_start():
                self.pos = save
                break
            words.append(self.element())
        return words

    def element(self) -> str:
        char = self.peek()
        if char == '"':
            return self.quoted()
        match = BARE_PATTERN.match(self.text, self.pos)
        if not match:
            found = repr(char) if char else "end of text"
            raise self.error(f"expected a value, found {found}")
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped not in _ESCAPES:
                    raise self.error(f"unknown escape '\\{escaped}' in string", self.pos)
                out.append(_ESCAPES[escaped])
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise self.error("unterminated string", start)


__all__ = ["Pipeline", "parse_pipeline"]
