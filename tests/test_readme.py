"""The README's Python example runs as written (the "Writing a pass" example is run by
tests/passes/test_manager_api.py)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_from_python_example_runs(capsys):
    section = README.read_text(encoding="utf-8").split("## From Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102
    printed = capsys.readouterr().out
    assert "ggufc.dequantize" not in printed
    assert '"matvec"' in printed and '"matmul"' in printed


def test_setup_commands_match_ci():
    """CI runs the README's two set-up commands; keep them in step."""
    readme = README.read_text(encoding="utf-8")
    setup = readme.split("## Set-up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    install, test = setup.strip().splitlines()
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert install.replace("pip install ", "pip install -q ") in ci
    assert test in ci
