"""Copy host files into a kernel: ``rumpfs.hostcopy.copy_in(k, hostpath, path)``.

The implementation lives in :mod:`rumpfs.frontends.hostcopy` (a frontend: it
reads the host); this module is the public name.
"""

from rumpfs.frontends.hostcopy import copy_in

__all__ = ["copy_in"]
