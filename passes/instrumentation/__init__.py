"""Pass instrumentation: hooks the `PassManager` calls around every pass.  Each concern is a
small module: `verify`, `print_ir`, `dump_dir`, `timing`, `statistics`, `reproducer`,
`numerics`, `print_rewrites`.  Before-hooks run in the order instrumentations were added,
after-hooks in reverse, so an instrumentation added last (timing) wraps the pass tightest."""

from passes.instrumentation.base import PassInstrumentation

__all__ = ["PassInstrumentation"]
