"""The ggufc exception hierarchy.

Every failure a user can cause (bad input file, unsupported model, a pass that breaks the
graph, a damaged program file) raises a subclass of :class:`GgufcError`.  Messages name the
file, tensor, node or pass involved and say what was expected, so the CLI can print them as
they are, without a traceback.
"""

from __future__ import annotations


class GgufcError(Exception):
    """Base class of every error ggufc raises on purpose."""


class GgufFileError(GgufcError):
    """A `.gguf` file is malformed: truncated, bad magic/version, tensor out of bounds, ..."""


class UnsupportedError(GgufcError):
    """A model architecture, tensor layout or quantization format ggufc does not handle."""


class FormatError(GgufcError):
    """Quantized data that does not fit its format: wrong row length, non-finite scales, ..."""


class PipelineParseError(GgufcError):
    """Malformed pipeline text; the message points at the column."""


class IRParseError(GgufcError):
    """Malformed textual IR; the message names the line and column."""


class PassError(GgufcError):
    """A pass raised or produced a graph it should not have; names the pass."""


class VerificationError(GgufcError):
    """The graph program failed verification (after a pass, or on load)."""


class ProgramFormatError(GgufcError):
    """A `.ggufc` program file is damaged or not one ggufc can load; names the field."""
