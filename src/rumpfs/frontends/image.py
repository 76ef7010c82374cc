"""Mount a disk image's file system in a kernel (``rumpfs mount --image``, the
pytest plugin's ``rumpfs_image``): rump_ext2fs for Linux.

Allowed imports: ``rumpfs`` (the public API), ``rumpfs.sbin.fstyp``,
``rumpfs.dev.dkwedge`` (the Partition record).

:func:`mount_image` attaches the image as ``/dev/rumpdisk0`` (each partition
of its MBR/GPT as ``/dev/rumpdisk0pN``), picks the device, finds the file
system type from the on-disk magic and mounts it on a kernel directory
(``/image``). Which device:

- ``partition=N``: that partition (``0``: the whole disk, table or not);
- otherwise the first partition, in index order, holding a file system
  fstyp recognises and this kernel has a type for (with ``fstype``: one of
  that type); an image without a table is its own file system.

``fstype`` given with a device skips detection (the user's word). A
read-write mount of a write-protected image is retried read-only with a
warning, as mount(8) does. User mistakes (no such partition, nothing known
on the image) are ValueError with a message; kernel errors stay OSError.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rumpfs.sbin.fstyp import describe, fstyp

if TYPE_CHECKING:
    from rumpfs import Kernel
    from rumpfs.dev.dkwedge import Partition

__all__ = ["IMAGE_DISK", "IMAGE_ROOT", "ImageMount", "mount_image"]

IMAGE_DISK = "/dev/rumpdisk0"
IMAGE_ROOT = "/image"


@dataclass(slots=True)
class ImageMount:
    """What :func:`mount_image` mounted, and where in the kernel."""

    device: str                       # the kernel's device node
    fstype: str                       # the kernel fs type ("ext2", "msdos")
    kind: str                         # what is on it, for people ("ext4", "fat32")
    mountpoint: str                   # the kernel directory it is mounted on
    read_only: bool
    partition: Partition | None       # None: the whole disk
    partitions: list[Partition] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _probe(k: Kernel, device: str) -> tuple[str | None, str | None]:
    try:
        return fstyp(k, device), describe(k, device)
    except OSError:
        return None, None


def _table(parts: list[Partition]) -> str:
    return ", ".join(f"{p.index} ({p.type}{', ' + repr(p.name) if p.name else ''})"
                     for p in parts) or "none"


def mount_image(k: Kernel, image: str | os.PathLike[str], *, partition: int | None = None,
                fstype: str | None = None, read_only: bool = False,
                at: str = IMAGE_ROOT, disk: str = IMAGE_DISK,
                options: dict[str, object] | None = None) -> ImageMount:
    """Attach ``image`` to ``k`` and mount its file system on ``at`` (module docstring)."""
    parts = k.attach_disk(disk, image, read_only=read_only)
    chosen: tuple[str, Partition | None] | None = None
    found: list[str] = []
    if partition is not None:
        if partition == 0:
            chosen = (disk, None)
        else:
            match = [p for p in parts if p.index == partition]
            if not match:
                raise ValueError(f"{os.fspath(image)} has no partition {partition} "
                                 f"(partitions: {_table(parts)})")
            chosen = (match[0].path, match[0])
    every: list[tuple[str, Partition | None]] = [(p.path, p) for p in parts]
    candidates = [chosen] if chosen is not None else every or [(disk, None)]
    kind: str | None = None
    picked: tuple[str, Partition | None, str] | None = None
    for device, part in candidates:
        t, kind = _probe(k, device)
        found.append(f"{device}: {kind or 'unknown'}")
        if fstype is not None and (t == fstype or chosen is not None or not parts):
            picked = (device, part, fstype)
            break
        if fstype is None and t is not None and t in k.vfs.fstypes:
            picked = (device, part, t)
            break
    if picked is None:
        want = f"an {fstype} file system" if fstype else "a file system rumpfs knows"
        raise ValueError(f"found no {want[want.index(' ') + 1:]} on {os.fspath(image)} "
                         f"({'; '.join(found)})")
    device, part, t = picked
    k.makedirs(at, exist_ok=True)
    im = ImageMount(device, t, kind or t, at, read_only, part, parts)
    try:
        k.mount(t, at, read_only, device=device, options=options)
    except OSError as e:
        if e.errno != errno.EACCES or read_only:
            raise
        im.warnings.append(f"{os.fspath(image)} is write-protected, mounted read-only")
        k.mount(t, at, True, device=device, options=options)
        im.read_only = True
    if k.statvfs(at).f_flag & os.ST_RDONLY and not im.read_only:
        im.read_only = True             # the driver chose read-only (a feature, a journal)
        im.warnings.append(f"{device}: the {im.kind} file system was mounted read-only "
                           "by its driver (see the log for why)")
    return im
