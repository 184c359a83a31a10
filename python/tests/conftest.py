import os
import shutil
import sys

import pytest

pytest_plugins = ["pytester"]
sys.path.insert(0, os.path.dirname(__file__))  # kernels.py


@pytest.fixture(scope="session")
def gnv_bin():
    """The gnv executable installed with the package (beside this Python), or $GNV_BIN."""
    path = os.environ.get("GNV_BIN") or shutil.which("gnv", path=os.path.dirname(sys.executable))
    if not path:
        pytest.fail("no gnv executable beside the package's Python (pip install . installs one); set GNV_BIN")
    return path
