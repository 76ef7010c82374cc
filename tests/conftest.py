"""Top-level test configuration: makes ``tests.support`` and ``rumpfs`` importable.

``tests`` is a package, so pytest's default ("prepend") import mode already puts
the repository root on ``sys.path``; this keeps that true under other import
modes and lets the suite run against ``src/`` before the package is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
if importlib.util.find_spec("rumpfs") is None:
    sys.path.insert(0, str(_ROOT / "src"))


# Defaults for suites that reuse the contract tests with their own ``fs``
# (FUSE conformance): tests/contract/conftest.py overrides these per
# implementation (ext2's documented differences).
@pytest.fixture
def time_max_ns() -> int | None:
    """The latest time the implementation stores (None: no limit a test reaches)."""
    return None


@pytest.fixture
def same_size_truncate_stamps_always() -> bool:
    """Whether truncate(2) to the same size stamps a file without pages (ext4)."""
    return False
