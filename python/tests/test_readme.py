"""README "From Python": its pytest file, copied out of the README, passes as written."""
import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_pytest_example(pytester):
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## From Python"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10, "the README promises a pytest file of at most 10 lines"
    pytester.makepyfile(test_readme=block)
    r = pytester.runpytest_subprocess("-q")
    r.assert_outcomes(passed=178)  # every f32 case of smoke
