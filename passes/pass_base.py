"""What a pass is: a frozen dataclass whose fields are its options.

    @dataclass(frozen=True)
    class FuseGguf(Pass):
        \"\"\"Fuse ggufc.dequantize + aten.linear into ggufc.linear.\"\"\"
        name: ClassVar[str] = "fuse-gguf"
        formats: tuple[str, ...] = option((), "formats to fuse; empty means all")

        def run(self, program, context) -> bool: ...

From that one definition come the Python constructor (`FuseGguf(formats=("Q6_K",))`), the
pipeline text (`fuse-gguf{formats=Q6_K}`), the `ggufc passes` listing (name, option names,
types, defaults, the docstring's first line) and the round trip text -> pipeline -> text.

Option types are `int`, `float`, `bool`, `str` and `tuple[T, ...]` of one of those.
Option values in pipeline text:

* bool: `true` / `false`;   int: `-12`, `0x1f`;   float: `0.5`, `1e-3`, `inf`;
* str: a bare word of letters, digits and `_ . - / : + *`, or a double-quoted string with
  backslash escapes (`"a,b"`);
* tuple: comma-separated elements (`formats=Q6_K,Q4_K`), an empty tuple is written `{}`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from compiler.errors import PassError

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram
    from passes.context import PassContext

# kebab-case: lower-case words of letters and digits joined by single dashes.
PASS_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Strings made only of these characters print without quotes.
BARE_STRING_PATTERN = re.compile(r"^[A-Za-z0-9_./:+*-]+$")
SCALAR_OPTION_TYPES: tuple[type, ...] = (bool, int, float, str)
OPTION_DOC_KEY = "doc"


def option(default: Any, doc: str) -> Any:
    """A pass option with its default value and a one-line description."""
    return dataclasses.field(default=default, metadata={OPTION_DOC_KEY: doc})


@dataclass(frozen=True)
class PassOption:
    """One option of a pass class, as the listing and the pipeline parser see it."""

    name: str
    element_type: type  # bool, int, float or str
    is_tuple: bool
    default: Any
    doc: str

    @property
    def text_name(self) -> str:
        """The option's name in pipeline text: the field name with `-` for `_`."""
        return self.name.replace("_", "-")

    @property
    def type_text(self) -> str:
        base = self.element_type.__name__
        return f"list<{base}>" if self.is_tuple else base

    def parse_value(self, words: list[str]) -> Any:
        """Convert the already split words of `opt=a,b` to the option's Python value.
        Raises ValueError with a message saying what was expected."""
        if self.is_tuple:
            return tuple(parse_scalar(self.element_type, w) for w in words)
        if len(words) != 1:
            raise ValueError(f"expected one {self.type_text} value, got {len(words)}")
        return parse_scalar(self.element_type, words[0])

    def format_value(self, value: Any) -> str:
        if self.is_tuple:
            if not value:
                return "{}"
            return ",".join(format_scalar(v) for v in value)
        return format_scalar(value)


def parse_scalar(kind: type, word: str) -> Any:
    if kind is bool:
        if word in ("true", "false"):
            return word == "true"
        raise ValueError(f"expected true or false, got {word!r}")
    if kind is int:
        try:
            return int(word, 0)
        except ValueError:
            raise ValueError(f"expected an integer, got {word!r}") from None
    if kind is float:
        try:
            return float(word)
        except ValueError:
            raise ValueError(f"expected a number, got {word!r}") from None
    return word


def format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if BARE_STRING_PATTERN.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True)
class Pass:
    """Base of every pass. Subclasses are `@dataclass(frozen=True)`, set a class-level
    kebab-case `name`, have a docstring whose first line says what the pass does, and
    implement `run`."""

    name: ClassVar[str] = ""

    def run(self, program: GraphProgram, context: PassContext) -> bool:
        """Transform `program` in place; return whether anything changed."""
        raise NotImplementedError(f"pass {self.name!r} does not implement run()")

    # ---- the definition as data --------------------------------------------------------
    @classmethod
    def options(cls) -> tuple[PassOption, ...]:
        return pass_options(cls)

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = cls.__doc__ or ""
        return doc.strip().splitlines()[0].strip() if doc.strip() else ""

    def option_values(self) -> dict[str, Any]:
        return {opt.name: getattr(self, opt.name) for opt in self.options()}

    def to_text(self) -> str:
        """Pipeline text for this pass; options equal to their default are left out, so a
        pass with defaults prints as its bare name."""
        parts = [
            f"{opt.text_name}={opt.format_value(getattr(self, opt.name))}"
            for opt in self.options()
            if getattr(self, opt.name) != opt.default
        ]
        return f"{self.name}{{{','.join(parts)}}}" if parts else self.name

    def __str__(self) -> str:
        return self.to_text()


_OPTIONS_CACHE: dict[type, tuple[PassOption, ...]] = {}


def pass_options(cls: type) -> tuple[PassOption, ...]:
    cached = _OPTIONS_CACHE.get(cls)
    if cached is not None:
        return cached
    check_pass_class(cls)
    hints = typing.get_type_hints(cls)
    result = []
    for field in dataclasses.fields(cls):
        element, is_tuple = _option_type(cls, field.name, hints[field.name])
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            raise PassError(f"pass {cls.name!r}: option {field.name!r} has no default value")
        doc = field.metadata.get(OPTION_DOC_KEY, "")
        result.append(PassOption(field.name, element, is_tuple, default, doc))
    _OPTIONS_CACHE[cls] = tuple(result)
    return _OPTIONS_CACHE[cls]


def check_pass_class(cls: type) -> None:
    """Raise PassError unless `cls` is a well-formed pass class."""
    label = getattr(cls, "__qualname__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise PassError(f"{label} is not a subclass of passes.Pass")
    # The decorator must be on the class itself: an undecorated subclass would inherit its
    # base's fields and silently ignore its own option annotations.
    if "__dataclass_fields__" not in cls.__dict__ or not cls.__dataclass_params__.frozen:
        raise PassError(f"pass class {label} must be decorated with @dataclass(frozen=True)")
    if not isinstance(cls.name, str) or not PASS_NAME_PATTERN.match(cls.name):
        raise PassError(
            f"pass class {label} has name {cls.name!r}; expected a kebab-case name such as "
            "'fuse-gguf'"
        )


def _option_type(cls: type, field_name: str, hint: Any) -> tuple[type, bool]:
    if hint in SCALAR_OPTION_TYPES:
        return hint, False
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in SCALAR_OPTION_TYPES:
            return args[0], True
    raise PassError(
        f"pass {cls.name!r}: option {field_name!r} has type {hint!r}; options must be int, "
        "float, bool, str or tuple[T, ...] of one of them"
    )


__all__ = ["Pass", "PassOption", "check_pass_class", "option", "pass_options"]
