"""The VFS's view of a process, and the argument types system calls share.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors`` (and ``rumpfs.vfs``'s
own vnode, file and mount modules, which import nothing above them).

``kern.proc.Proc`` is generic over what a process holds; the VFS fixes it as
:data:`VProc` (cwd and root are vnodes, descriptors open files, the context
the kernel's :class:`~rumpfs.vfs.mount.Vfs`). It lives here, below namei,
genfs and the system-call modules, so that all of them can import it without
an import cycle.
"""

from __future__ import annotations

import os
from typing import TypeAlias

from rumpfs.kern.proc import Proc
from rumpfs.vfs.file import File
from rumpfs.vfs.mount import Vfs
from rumpfs.vfs.vnode import Vnode

__all__ = ["DirFd", "StrOrBytesPath", "VProc"]

VProc: TypeAlias = Proc[Vnode, File, Vfs]
StrOrBytesPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
DirFd: TypeAlias = int | Vnode | None    # a descriptor, or a directory vnode (handle API)
