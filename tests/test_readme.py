"""The README's Python examples import what they say: every `import` and
`from ... import` line of every ```python block runs (no BPF needed)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def import_lines() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [line for block in blocks for line in block.splitlines()
            if re.match(r"(from \S+ )?import ", line)]


def test_readme_imports_resolve():
    lines = import_lines()
    assert any("pyusdt.aggregate" in line for line in lines)  # the blocks were found
    # Run outside the source tree: the installed package, as a user has it.
    res = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, cwd="/",
                         timeout=60)
    assert res.returncode == 0, res.stderr


def test_readme_names_exist():
    """pyusdt.to_pandas / to_arrow / export.plot.* as the README calls them."""
    code = ("import pyusdt, pyusdt.export.plot as plot\n"
            "assert callable(pyusdt.to_pandas) and callable(pyusdt.to_arrow)\n"
            "assert callable(plot.histogram) and callable(plot.heatmap) and plot.Heatmap\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert res.returncode == 0, res.stderr
