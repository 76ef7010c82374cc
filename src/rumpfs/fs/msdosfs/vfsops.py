"""msdosfs vfs operations: mount (options, checks), the denode cache, statvfs, sync, unmount.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

NetBSD's ``msdosfs_vfsops.c``. Mount options are vfat's: ``uid``, ``gid``,
``umask``, ``dmask``, ``fmask`` (octal strings or ints), ``tz=UTC``,
``tz=local`` (the default, as vfat: the host's local time at mount) or
``time_offset`` (minutes east of UTC) for the on-disk local time,
``shortname`` (``mixed``, the default, or ``winnt``), ``quiet``. An unknown
option is EINVAL, as vfat says "Unrecognized mount option".

Denodes are cached weakly by where their entry lives (see ``denode``);
inode numbers are the entry's slot number on the volume (the root is 1), kept
by a denode across renames for as long as it lives.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.bootsect import BadVolume, parse_bpb
from rumpfs.fs.msdosfs.denode import Denode
from rumpfs.fs.msdosfs.direntry import ATTR_DIRECTORY, Dirent, date_time_to_ns
from rumpfs.fs.msdosfs.lookup import Entry, read_dirent, write_dirent
from rumpfs.fs.msdosfs.vnops import MsdosOps
from rumpfs.fs.msdosfs.volume import BufCache, Volume
from rumpfs.vfs import bio
from rumpfs.vfs.mount import Mount, MountArgs, Vfs

__all__ = ["MountOpts", "MsdosMount", "MsdosVfsOps", "mount_volume", "msdosfs_mount",
           "parse_options"]

_LOG = logging.getLogger("rumpfs.msdosfs")
ROOT_INO = 1
RECENT = 1024
_FRESH_INO = 1 << 40


def _octal(v: object) -> int:
    if isinstance(v, bool):
        raise_errno(errno.EINVAL)
    if isinstance(v, int):
        return v & 0o777
    try:
        return int(str(v), 8) & 0o777
    except ValueError:
        raise_errno(errno.EINVAL)


def _int(v: object) -> int:
    if isinstance(v, bool):
        raise_errno(errno.EINVAL)
    try:
        return int(str(v), 10) if not isinstance(v, int) else v
    except ValueError:
        raise_errno(errno.EINVAL)


@dataclass(slots=True)
class MountOpts:
    """vfat's mount options."""

    uid: int = 0
    gid: int = 0
    fmask: int = 0o022
    dmask: int = 0o022
    tz_offset: int | None = None    # seconds east of UTC; None: the host's local time
    winnt: bool = False
    quiet: bool = False


def parse_options(opts: Mapping[str, object] | None) -> MountOpts:
    """vfat's options, checked and defaulted."""
    out = MountOpts()
    for key, val in (opts or {}).items():
        if key == "uid":
            out.uid = _int(val)
        elif key == "gid":
            out.gid = _int(val)
        elif key == "umask":
            out.fmask = out.dmask = _octal(val)
        elif key == "fmask":
            out.fmask = _octal(val)
        elif key == "dmask":
            out.dmask = _octal(val)
        elif key == "tz":
            if str(val) == "UTC":
                out.tz_offset = 0
            elif str(val) == "local":
                out.tz_offset = None
            else:
                raise_errno(errno.EINVAL)
        elif key == "time_offset":
            minutes = _int(val)
            if not -24 * 60 <= minutes <= 24 * 60:
                raise_errno(errno.EINVAL)
            out.tz_offset = minutes * 60
        elif key == "shortname":
            if val not in ("mixed", "winnt", "win95", "lower"):
                raise_errno(errno.EINVAL)
            out.winnt = val == "winnt"
        elif key == "quiet":
            out.quiet = val not in (False, "0", "no", "false")
        else:
            _LOG.warning("msdosfs: unrecognized mount option %r", key)
            raise_errno(errno.EINVAL)
    return out


class MsdosMount(Mount):
    """A mounted FAT volume."""

    __slots__ = ("_cache", "_ino_at", "_kept", "_next_ino", "_recent", "dmask", "fmask", "gid",
                 "quiet", "uid", "vnops", "vol", "winnt")

    def __init__(self, vfs: Vfs, dev: int, vol: Volume, read_only: bool,
                 opts: MountOpts) -> None:
        super().__init__("msdos", MsdosVfsOps(), dev, read_only)
        self.vol = vol
        self.uid, self.gid = opts.uid, opts.gid
        self.fmask, self.dmask = opts.fmask, opts.dmask
        self.quiet, self.winnt = opts.quiet, opts.winnt
        vol.tz_offset = vfs.clock.utc_offset() if opts.tz_offset is None else opts.tz_offset
        self.vnops = MsdosOps(vfs.clock, self)
        self._cache: weakref.WeakValueDictionary[tuple[int, int], Denode] = (
            weakref.WeakValueDictionary())
        # Inode numbers kept across renames: new entry place -> the number its
        # file had before (Linux keeps a renamed inode's number too).
        self._ino_at: dict[tuple[int, int], int] = {}
        self._kept: set[int] = set()
        self._next_ino = _FRESH_INO
        # The last RECENT denodes looked up stay even without references (Linux's
        # inode cache): their in-memory change time and chains survive a call.
        self._recent: OrderedDict[tuple[int, int], Denode] = OrderedDict()
        geo = vol.geo
        rootent = Dirent(attr=ATTR_DIRECTORY)
        rootent.set_cluster(geo.root_cluster, vol.fat32)
        self.root = Denode(self.vnops, self, vol, None, rootent, (-1, -1), -1, -1, "",
                           ROOT_INO, 0)
        self.root.clusters()              # a broken FAT32 root chain fails the mount

    # -- denodes --------------------------------------------------------------

    def _default_ino(self, d: Denode, offset: int) -> int:
        vol = self.vol
        geo = vol.geo
        if d.fixed_root():
            return (geo.root_start * geo.bps + offset) // 32
        cs = vol.cluster_size
        cl = d.clusters()
        idx = offset // cs
        if idx >= len(cl):
            return self._fresh()
        return ((geo.data_start * geo.bps) + (cl[idx] - 2) * cs + offset % cs) // 32

    def _fresh(self) -> int:
        self._next_ino += 1
        return self._next_ino

    def ino_of(self, d: Denode, e: Entry) -> int:
        key = (d.start, e.offset)
        live = self._cache.get(key)
        if live is not None:
            return live.ino
        kept = self._ino_at.get(key)
        if kept is not None:
            return kept
        return self._default_ino(d, e.offset)

    def get_denode(self, d: Denode, e: Entry, new: Dirent | None = None) -> Denode:
        """The denode of entry ``e`` of directory ``d`` (``new``: the entry just
        written, so it need not be read back)."""
        key = (d.start, e.offset)
        dn = self._cache.get(key)
        if dn is not None:
            self._remember(dn)
            return dn
        vol = self.vol
        de = read_dirent(d, e.offset) if new is None else new
        if de.name != e.name11:
            vol.corrupt("directory entry changed under its index")
        if de.attr & ATTR_DIRECTORY:
            c = de.cluster(vol.fat32)
            if not vol.fat.valid(c):
                vol.corrupt(f"directory {e.name!r} at invalid cluster {c}")
            a: Denode | None = d
            while a is not None:
                if a.start == c:
                    vol.corrupt(f"directory {e.name!r} points at itself or an ancestor")
                a = a.parent
        kept = self._ino_at.get(key)
        if kept is not None:
            ino = kept
        else:
            ino = self._default_ino(d, e.offset)
            if ino in self._kept:                  # a renamed file carries this number
                ino = self._fresh()
        ctime = date_time_to_ns(de.mdate, de.mtime, 0, vol.tz_offset)
        dn = Denode(self.vnops, self, vol, d, de, key, e.first, e.offset, e.name, ino, ctime)
        self._cache[key] = dn
        self._remember(dn)
        return dn

    def _remember(self, dn: Denode) -> None:
        recent = self._recent
        recent[dn.key] = dn
        recent.move_to_end(dn.key)
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def _unplace(self, f: Denode) -> None:
        if self._cache.get(f.key) is f:
            del self._cache[f.key]
        if self._recent.get(f.key) is f:
            del self._recent[f.key]
        kept = self._ino_at.pop(f.key, None)
        if kept is not None:
            self._kept.discard(kept)

    def forget(self, f: Denode) -> None:
        """``f``'s entry is gone: it lives on (unlinked) only through references."""
        self._unplace(f)
        f.unlinked = True

    def rekey(self, f: Denode, parent: Denode, e: Entry, de: Dirent) -> None:
        """``f``'s entry moved to ``e`` of ``parent``: same denode, same number."""
        self._unplace(f)
        f.parent = parent
        f.first, f.offset, f.name, f.dirent = e.first, e.offset, e.name, de
        f.key = (parent.start, e.offset)
        self._cache[f.key] = f
        self._remember(f)
        self._ino_at[f.key] = f.ino
        self._kept.add(f.ino)

    def write_back(self, f: Denode) -> None:
        if f.parent is not None and not f.unlinked:
            write_dirent(f.parent, f.offset, f.dirent)


class MsdosVfsOps:
    """Mount-level operations of msdosfs."""

    def vfs_root(self, mp: Mount) -> Denode:
        assert isinstance(mp, MsdosMount)
        return mp.root  # type: ignore[return-value]

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        assert isinstance(mp, MsdosMount)
        vol = mp.vol
        free = vol.fat.free
        return os.statvfs_result((
            vol.cluster_size, vol.cluster_size, vol.geo.clusters, free, free, 0, 0, 0, 0, 255,
        ))

    def vfs_sync(self, mp: Mount) -> None:
        assert isinstance(mp, MsdosMount)
        mp.vol.sync()

    def vfs_unmount(self, mp: Mount) -> None:
        assert isinstance(mp, MsdosMount)
        mp.vol.unmount(mp.read_only)


class _DevBufs:
    """The kernel's buffer cache bound to one device (what ``Volume`` uses)."""

    __slots__ = ("bc", "dev")

    def __init__(self, bc: bio.BufCache, dev: bio.BlockDev) -> None:
        self.bc = bc
        self.dev = dev

    def read(self, offset: int, size: int) -> bytes:
        return self.dev.read(offset, size)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.dev.write(offset, data)

    def incore(self, blkno: int) -> bio.Buf | None:
        return self.bc.incore(self.dev, blkno)

    def bread(self, blkno: int, size: int) -> bio.Buf:
        return self.bc.bread(self.dev, blkno, size)

    def getblk(self, blkno: int, size: int) -> bio.Buf:
        return self.bc.getblk(self.dev, blkno, size)

    def brelse(self, bp: bio.Buf) -> None:
        self.bc.brelse(bp)

    def bdwrite(self, bp: bio.Buf) -> None:
        self.bc.bdwrite(bp)

    def bwrite(self, bp: bio.Buf) -> None:
        self.bc.bwrite(bp)


def msdosfs_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    """The ``msdos`` fs-type factory: FAT12/16/32 on ``args.device``."""
    bdev = args.device
    if bdev is None:
        raise_errno(errno.ENOTBLK)
    opts = {k: v for k, v in (args.options or {}).items() if k != "bufcache"}
    try:
        return mount_volume(vfs, dev, _DevBufs(vfs.bufcache, bdev), bdev.size, args.read_only,
                            opts)
    except BaseException:
        vfs.bufcache.invalidate(bdev)
        raise


def mount_volume(vfs: Vfs, dev: int, bc: BufCache, size: int, read_only: bool,
                 options: Mapping[str, object] | None = None) -> MsdosMount:
    """Mount the FAT volume on the device behind ``bc`` (``size`` bytes).
    EINVAL for a boot sector that is not FAT (the reason is logged) or bad options."""
    opts = parse_options(options)
    if size < 512:
        raise_errno(errno.EINVAL)
    try:
        geo = parse_bpb(bc.read(0, 512), size)
    except BadVolume as e:
        _LOG.warning("msdosfs: not mountable: %s", e)
        raise_errno(errno.EINVAL)
    if geo.cluster_size > bio.MAXBSIZE:
        _LOG.warning("msdosfs: clusters of %d bytes are larger than the buffer cache's %d",
                     geo.cluster_size, bio.MAXBSIZE)
        raise_errno(errno.EINVAL)
    vol = Volume(bc, geo, read_only)
    try:
        return MsdosMount(vfs, dev, vol, read_only, opts)
    except OSError:
        vol.unmount(read_only)
        raise
