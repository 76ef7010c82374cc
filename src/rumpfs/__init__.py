"""rumpfs: NetBSD's rump-kernel file-system stack in Python.

A :class:`Kernel` is an in-process kernel whose root is an in-memory rumpfs;
its os-like methods work in the kernel's own namespace, etfs maps host files
and directories into it, and ``rumpfs.fuse.serve`` shows it to the host.
"""

from rumpfs import _build
from rumpfs.fs.etfs import EtfsType
from rumpfs.kernel import Kernel, Process

__all__ = ["EtfsType", "Kernel", "Process", "compiled"]

#: True when the hot modules were compiled by mypyc (``RUMPFS_COMPILE=1`` at
#: build time, see docs/performance.md), False for the pure-Python package.
compiled: bool = _build.check_variant()
__version__ = "0.1.0"
