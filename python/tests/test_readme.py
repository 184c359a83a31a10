"""docs/python.md "From Python": its pytest file, copied out of the README, passes as written."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_pytest_example(pytester):
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### 1. From Python, with pytest"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10, "the README promises a pytest file of at most 10 lines"
    pytester.makepyfile(test_readme=block)
    r = pytester.runpytest_subprocess("-q")
    r.assert_outcomes(passed=178)  # every f32 case of smoke


def test_readme_torch_example(tmp_path):
    pytest.importorskip("torch")
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### 1. From Python, with pytest"):text.index("### 2. A C plugin")]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    assert "gnv.torch.wrap" in block
    # as written, then: PyTorch 1.13's channels_last CPU kernel fails smoke in f32 (docs/findings.md)
    code = block + "\nassert not result.passed and result.returncode == 1, result\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "out" / "torch-cl" / "report.html").exists() or (tmp_path / "out" / "torch-cl" / "report.md").exists()
