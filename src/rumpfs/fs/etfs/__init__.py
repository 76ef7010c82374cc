"""etfs, the Extra Terrestrial File System: host files and directories in the namespace.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.
"""

from rumpfs.fs.etfs.registry import EtfsRegistry
from rumpfs.fs.etfs.vnops import EtfsType

__all__ = ["EtfsRegistry", "EtfsType"]
