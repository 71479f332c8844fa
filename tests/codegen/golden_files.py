"""Golden files of the generated kernels: tests/golden/{cuda,metal}/<name>.{cu,metal}.

One file per kernel source (named by its entry) and one per header (``header_<format>``).
Compared by syrupy; regenerate after an intended change with

    pytest tests/codegen --snapshot-update

and review the diff.  A golden no kernel produces any more is reported as unused (and
deleted by ``--snapshot-update``).
"""

from __future__ import annotations

from pathlib import Path

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"


class _KernelGolden(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    backend = ""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(GOLDEN_DIR / cls.backend)

    @classmethod
    def get_snapshot_name(cls, *, test_location, index=0) -> str:
        if not isinstance(index, str):
            raise TypeError("kernel goldens are named: snapshot(name=...)")
        return index


class CudaGolden(_KernelGolden):
    backend = "cuda"
    file_extension = "cu"


class MetalGolden(_KernelGolden):
    backend = "metal"
    file_extension = "metal"


GOLDEN_EXTENSIONS = {"cuda": CudaGolden, "metal": MetalGolden}
