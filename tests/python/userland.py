"""The Python suite's userland: Debian trixie's Python and numpy, the GenICam stack installed
with pip when the guest root was built, and the fgrab package built for this run."""

import importlib.metadata
import os
import sys

print(f"python {sys.version.split()[0]} at {sys.executable}")
assert sys.version_info[:2] == (3, 13), f"trixie's python3 is 3.13, this is {sys.version}"

import numpy as np

print(f"numpy {np.__version__} from {np.__file__}")
assert np.__file__.startswith("/usr/lib/python3/dist-packages/"), "numpy is not Debian's"
values = np.arange(1_000_000, dtype=np.uint64)
assert int(values.sum()) == 999_999 * 1_000_000 // 2, f"sum {values.sum()}"
# Through LAPACK: 3x + y = 9, x + 2y = 8.
solution = np.linalg.solve(np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([9.0, 8.0]))
assert np.allclose(solution, [2.0, 3.0]), f"solve gave {solution}"

from genicam.genapi import NodeMap
from harvesters.core import Harvester

for package, wanted in [("harvesters", "1.4.3"), ("genicam", "1.6.0")]:
    version = importlib.metadata.version(package)
    print(f"{package} {version}")
    assert version == wanted, f"{package} {version}, the guest root pins {wanted}"
harvester = Harvester()
assert len(harvester.device_info_list) == 0, "no GenTL producer is loaded yet"
harvester.reset()
assert NodeMap is not None

import fgrab

print(f"fgrab {fgrab.__version__} from {fgrab.__file__}, ABI {fgrab.abi_version()}")
assert fgrab.__file__.startswith("/opt/fgrab/site/fgrab/"), "fgrab is not the unpacked wheel"
expected = int(os.environ["FGRAB_ABI_VERSION"])
assert fgrab.abi_version() == expected, f"ABI {fgrab.abi_version()}, the uapi says {expected}"
