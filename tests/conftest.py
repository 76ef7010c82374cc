"""Top-level test configuration: makes ``tests.support`` and ``rumpfs`` importable.

``tests`` is a package, so pytest's default ("prepend") import mode already puts
the repository root on ``sys.path``; this keeps that true under other import
modes and lets the suite run against ``src/`` before the package is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
if importlib.util.find_spec("rumpfs") is None:
    sys.path.insert(0, str(_ROOT / "src"))
