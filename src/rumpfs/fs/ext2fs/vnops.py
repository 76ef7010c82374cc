"""ext2 vnode operations: the same contract and policy as rumpfs, on disk.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

Permission policy is the system calls' (see ``vfs.vnode_if``); times follow
rumpfs (Linux): entering or removing a name touches the directory's mtime
and ctime, a link count change the node's ctime, data writes mtime and ctime,
reads atime under relatime rules. Each operation that changes an inode
writes it back (``iupdate``) before it returns.

Untrusted images: every structural problem found on the way raises EUCLEAN
(``ext2fs.corrupt`` logs why); the mount stays usable. Directory cycles are
caught at lookup: a directory reached by a name must name that directory as
its ``..``, so ``..`` chains always lead back the way namei came.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.bmap import HOLE_MAX, bmap_of
from rumpfs.fs.ext2fs.csum import crc32c_raw
from rumpfs.fs.ext2fs.ext2fs import (
    IN_EXTENTS,
    RO_DIR_NLINK,
    RO_HUGE_FILE,
    RO_LARGE_FILE,
    corrupt,
    log,
    put32,
    u32,
)
from rumpfs.fs.ext2fs.inode import (
    ENCRYPT_FL,
    EXTENTS_FL,
    INLINE_DATA_FL,
    Ext2Node,
    iget,
    iupdate,
    new_inode_raw,
)
from rumpfs.fs.ext2fs.lookup import FT_OF, Dir, fsname, vtype_of
from rumpfs.fs.ext2fs.orphan import add_orphan, drop_orphan
from rumpfs.fs.ext2fs.rename import exchange, rename
from rumpfs.kern.clock import Clock
from rumpfs.vfs.genfs import GenfsOps
from rumpfs.vfs.vnode import VBLK, VCHR, VDIR, VFIFO, VLNK, VREG, Vattr, Vnode, VType
from rumpfs.vfs.vnode_if import Dirent

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount

__all__ = ["Ext2Ops"]

_DAY_NS = 86_400 * 1_000_000_000
LINK_MAX = 65000
DIRECT_MIN = 32768          # runs this long bypass the buffer cache (see _read_blocks)
_IFMT = {t: t.ifmt for t in VType}
_XATTR_MAGIC = 0xEA020000


def _mp(vp: Vnode) -> Ext2Mount:
    return vp.mount  # type: ignore[return-value]


def _node(vp: Vnode) -> Ext2Node:
    return vp  # type: ignore[return-value]


class Ext2Ops(GenfsOps):
    """The vnode-operation vector of one ext2 mount."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    # -- helpers -------------------------------------------------------------

    def _relatime(self, vp: Ext2Node) -> None:
        mp = _mp(vp)
        if mp.read_only or mp.forced_ro is not None:
            return
        now = self.clock.now_ns()
        atime = vp.atime
        if atime <= vp.mtime or atime <= vp.ctime or now - atime >= _DAY_NS:
            vp.atime = now
            iupdate(vp)

    @staticmethod
    def _dotdot(vp: Ext2Node) -> int:
        """The inode ``..`` of directory ``vp`` names (block 0, second record)."""
        d = Dir(vp)
        if d.nblocks() == 0:
            corrupt("directory %d is empty", vp.ino)
        recs = d.parse(0, d.read(0))
        first = next(recs, None)
        second = next(recs, None)
        if first is None or second is None or first[3] != b"." or second[3] != b"..":
            corrupt("directory %d does not start with . and ..", vp.ino)
        return second[2]

    def _get(self, mp: Ext2Mount, ino: int, parent: Ext2Node | None) -> Ext2Node:
        vp = iget(mp, ino)
        if parent is not None and vp.type is VDIR and vp is not parent:
            if vp.dcache is not None:
                dd = vp.dcache.get(b"..")
                up = dd[0] if dd else 0
            else:
                up = self._dotdot(vp)
            if up != parent.ino:
                corrupt("directory %d is entered from %d but its .. is %d",
                        vp.ino, parent.ino, up)
        return vp

    def _new_node(self, dvp: Ext2Node, vtype: VType, va: Vattr) -> Ext2Node:
        mp = _mp(dvp)
        mp.writable()
        ino = mp.alloc.alloc_inode(dvp.ino, vtype is VDIR)
        now = self.clock.now_ns()
        raw = new_inode_raw(mp)
        vp = Ext2Node(vtype, self, mp, ino, raw)
        vp.mode = _IFMT[vtype] | ((va.mode or 0) & 0o7777)
        vp.uid = va.uid or 0
        vp.gid = va.gid or 0
        vp.nlink = 1
        vp.atime = vp.mtime = vp.ctime = vp.crtime = now
        vp.generation = (ino * 2654435761 + now) & 0xFFFFFFFF
        vp.csum_seed = crc32c_raw(crc32c_raw(mp.sb.csum_seed, ino.to_bytes(4, "little")),
                                  vp.generation.to_bytes(4, "little"))
        put32(raw, 0x64, vp.generation)
        if vtype in (VREG, VDIR) and mp.sb.incompat & IN_EXTENTS:
            vp.flags |= EXTENTS_FL
            struct.pack_into("<HHHHI", raw, 0x28, 0xF30A, 0, 4, 0, 0)
        if vtype in (VBLK, VCHR):
            major, minor = os.major(va.rdev), os.minor(va.rdev)
            if major < 256 and minor < 256:
                put32(raw, 0x28, (major << 8) | minor)
            else:
                put32(raw, 0x2C, (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12))
        if vtype is VDIR:
            vp.dcache = {}
        mp.cache_vnode(vp)
        iupdate(vp)
        return vp

    def _discard(self, vp: Ext2Node) -> None:
        """Undo a half-made node (its name could not be entered)."""
        vp.nlink = 0
        self.release(vp)

    def _enter(self, dvp: Ext2Node, name: bytes, vp: Ext2Node) -> None:
        try:
            Dir(dvp).enter(name, vp.ino, vp.type)
        except OSError:
            self._discard(vp)
            raise
        dvp.mtime = dvp.ctime = self.clock.now_ns()
        iupdate(dvp)

    def release(self, vp: Ext2Node) -> None:
        """Free unlinked ``vp``; a corrupt block map is logged, not raised (the
        name is already gone; the blocks stay allocated for e2fsck to find)."""
        try:
            self._free(vp)
        except OSError as e:
            log.warning("ext2fs: inode %d could not be freed: %s", vp.ino, e.strerror)
            _mp(vp).uncache_vnode(vp.ino)
            vp.nlink = 0
            vp.ino = -abs(vp.ino)

    def unlinked(self, vp: Ext2Node) -> None:
        """``vp`` lost its last name: free it now, or (while it is referenced:
        open files, a cwd) put it on the orphan list, as Linux does, so that a
        crash before the last close leaves work a mount or e2fsck finishes."""
        if vp.usecount == 0:
            self.release(vp)
        else:
            add_orphan(_mp(vp), vp)

    def _free(self, vp: Ext2Node) -> None:
        """Give back the blocks and the inode of unlinked ``vp``."""
        mp = _mp(vp)
        if mp.read_only or mp.forced_ro is not None:
            return
        drop_orphan(mp, vp)
        if vp.type in (VREG, VDIR) or (vp.type is VLNK and not self._fast_link(vp)):
            bmap_of(vp).truncate(0)
        if vp.file_acl:
            self._free_xattr(vp)
        vp.size = 0
        vp.nblocks = 0
        vp.raw[0x28:0x64] = bytes(60)
        vp.flags &= ~EXTENTS_FL
        vp.bmap = None
        put32(vp.raw, 0x14, max(1, self.clock.now_ns() // 1_000_000_000))   # i_dtime
        iupdate(vp)
        mp.alloc.free_inode(vp.ino, vp.type is VDIR)
        mp.uncache_vnode(vp.ino)
        vp.nlink = 0
        vp.ino = -vp.ino if vp.ino > 0 else vp.ino            # a freed node names no inode

    def _free_xattr(self, vp: Ext2Node) -> None:
        mp = _mp(vp)
        blk = vp.file_acl
        vp.file_acl = 0
        bp = mp.bread(blk)
        data = bp.data
        if u32(data, 0) != _XATTR_MAGIC:
            mp.brelse(bp)
            corrupt("inode %d xattr block %d has no xattr magic", vp.ino, blk)
        refs = u32(data, 4)
        if refs > 1:
            put32(data, 4, refs - 1)
            if mp.sb.metadata_csum:
                put32(data, 0x10, 0)
                crc = crc32c_raw(mp.sb.csum_seed, blk.to_bytes(8, "little"))
                put32(data, 0x10, crc32c_raw(crc, data))
            mp.bdwrite(bp)
        else:
            mp.brelse(bp)
            mp.alloc.free_blocks(blk, 1)
        vp.nblocks = max(0, vp.nblocks - mp.spb)

    @staticmethod
    def _fast_link(vp: Ext2Node) -> bool:
        if vp.flags & (EXTENTS_FL | INLINE_DATA_FL):
            return bool(vp.flags & INLINE_DATA_FL)
        acl_blocks = _mp(vp).spb if vp.file_acl else 0
        return vp.nblocks - acl_blocks == 0

    def _more_links(self, vp: Ext2Node) -> None:
        """Count one more link to ``vp`` (EMLINK at the limit; dir_nlink's 1 for
        a directory past it)."""
        if vp.nlink >= LINK_MAX or (vp.type is VDIR and vp.nlink == 1):
            if vp.type is VDIR and _mp(vp).sb.ro_compat & RO_DIR_NLINK:
                vp.nlink = 1
                return
            raise_errno(errno.EMLINK)
        vp.nlink += 1

    @staticmethod
    def _fewer_links(vp: Ext2Node) -> None:
        if vp.type is VDIR and vp.nlink <= 2:
            return                      # 1 means "too many to count" (dir_nlink)
        vp.nlink -= 1

    # -- names ---------------------------------------------------------------

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        vp = self.vop_probe(dvp, name)
        if vp is None:
            raise_errno(errno.ENOENT)
        return vp

    def vop_probe(self, dvp: Vnode, name: str) -> Vnode | None:
        d = _node(dvp)
        mp = _mp(d)
        if name == "..":
            if d is mp.root:
                return d
            up = d.dcache[b".."][0] if d.dcache and b".." in d.dcache else self._dotdot(d)
            return iget(mp, up)
        got = Dir(d).lookup(fsname(name))
        if got is None:
            return None
        return self._get(mp, got[0], d)

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d = _node(dvp)
        bname = fsname(name)
        vp = self._new_node(d, va.type, va)
        self._enter(d, bname, vp)
        return vp

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d = _node(dvp)
        bname = fsname(name)
        _mp(d).writable()
        if d.nlink >= LINK_MAX and not _mp(d).sb.ro_compat & RO_DIR_NLINK:
            raise_errno(errno.EMLINK)
        vp = self._new_node(d, VDIR, va)
        vp.nlink = 2
        try:
            Dir(vp).init(d.ino)
        except OSError:
            self._discard(vp)
            raise
        self._enter(d, bname, vp)
        self._more_links(d)
        iupdate(d)
        return vp

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        d = _node(dvp)
        bname = fsname(name)
        tb = os.fsencode(target)
        mp = _mp(d)
        if len(tb) >= mp.bs:
            raise_errno(errno.ENAMETOOLONG)
        vp = self._new_node(d, VLNK, va)
        try:
            vp.size = len(tb)
            if len(tb) < 60:
                vp.raw[0x28:0x28 + len(tb)] = tb
                iupdate(vp)
            else:
                if mp.sb.incompat & IN_EXTENTS:
                    vp.flags |= EXTENTS_FL
                    struct.pack_into("<HHHHI", vp.raw, 0x28, 0xF30A, 0, 4, 0, 0)
                bm = bmap_of(vp)
                blk, _ = mp.alloc.alloc_blocks(bm.goal(0), 1)
                bp = mp.getblk(blk)
                bp.data[:] = tb + bytes(mp.bs - len(tb))
                mp.bdwrite(bp)
                bm.insert(0, blk, 1)
                iupdate(vp)
        except OSError:
            self._discard(vp)
            raise
        self._enter(d, bname, vp)
        return vp

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, n = _node(dvp), _node(vp)
        _mp(d).writable()
        if n.nlink >= LINK_MAX:
            raise_errno(errno.EMLINK)
        Dir(d).enter(fsname(name), n.ino, n.type)
        now = self.clock.now_ns()
        n.nlink += 1
        n.ctime = d.mtime = d.ctime = now
        iupdate(n)
        iupdate(d)

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, n = _node(dvp), _node(vp)
        _mp(d).writable()
        Dir(d).remove(fsname(name))
        now = self.clock.now_ns()
        n.nlink = max(0, n.nlink - 1)
        n.ctime = d.mtime = d.ctime = now
        iupdate(d)
        iupdate(n)
        if n.nlink == 0:
            self.unlinked(n)

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, n = _node(dvp), _node(vp)
        _mp(d).writable()
        if not Dir(n).is_empty():
            raise_errno(errno.ENOTEMPTY)
        Dir(d).remove(fsname(name))
        now = self.clock.now_ns()
        self._fewer_links(d)
        d.mtime = d.ctime = now
        n.nlink = 0
        n.ctime = now
        iupdate(d)
        iupdate(n)
        self.unlinked(n)

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        _mp(fdvp).writable()
        rename(self, _node(fdvp), fsname(fname), _node(fvp), _node(tdvp), fsname(tname),
               None if tvp is None else _node(tvp), self.clock.now_ns())

    def vop_exchange(self, fdvp: Vnode, fname: str, tdvp: Vnode, tname: str) -> None:
        _mp(fdvp).writable()
        exchange(self, _node(fdvp), fsname(fname), _node(tdvp), fsname(tname),
                 self.clock.now_ns())

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[Dirent]:
        d = _node(dvp)
        self._relatime(d)
        return self._entries(d, cookie)

    def _entries(self, d: Ext2Node, cookie: int) -> Iterator[Dirent]:
        mp = _mp(d)
        for name, ino, ft, nxt in Dir(d).entries(cookie):
            vt = vtype_of(ft)
            if ft == 0 or vt is VType.VNON:
                vt = iget(mp, ino).type
            yield os.fsdecode(name), ino, vt, nxt

    def vop_readlink(self, vp: Vnode) -> str:
        n = _node(vp)
        mp = _mp(n)
        size = n.size
        if size == 0 or size >= mp.bs or size >= 4096:
            corrupt("symlink %d has size %d", n.ino, size)
        if n.flags & ENCRYPT_FL:
            raise_errno(errno.EOPNOTSUPP)
        if self._fast_link(n):
            if size >= 60:
                corrupt("fast symlink %d has size %d", n.ino, size)
            target = bytes(n.raw[0x28:0x28 + size])
        else:
            pblk, _, _ = bmap_of(n).lookup(0)
            if pblk == 0:
                corrupt("symlink %d has no block", n.ino)
            target = mp.read_block(pblk)[:size]
        if b"\0" in target:
            corrupt("symlink %d target holds a NUL", n.ino)
        self._relatime(n)
        return os.fsdecode(target)

    # -- attributes ----------------------------------------------------------

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        n = _node(vp)
        mp = _mp(n)
        rdev = 0
        if n.type in (VBLK, VCHR):
            old = u32(n.raw, 0x28)
            if old:
                rdev = os.makedev((old >> 8) & 0xFF, old & 0xFF)
            else:
                new = u32(n.raw, 0x2C)
                rdev = os.makedev((new & 0xFFF00) >> 8, (new & 0xFF) | ((new >> 12) & 0xFFF00))
        size = n.size if n.type in (VREG, VDIR, VLNK) else 0
        a, m, c = n.atime, n.mtime, n.ctime
        ns = 1_000_000_000
        return os.stat_result((
            n.mode, n.ino, mp.dev, n.nlink, n.uid, n.gid, size,
            a // ns, m // ns, c // ns, a / 1e9, m / 1e9, c / 1e9, a, m, c,
            mp.bs, n.nblocks, rdev,
        ))

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        n = _node(vp)
        return n.mode, n.uid, n.gid

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        n = _node(vp)
        _mp(n).writable()
        if va.size is not None:
            if n.type is VDIR:
                raise_errno(errno.EISDIR)
            if n.type is not VREG:
                raise_errno(errno.EINVAL)
            if va.size == n.size and va.mtime_ns is None:
                # ext4_setattr stamps whenever the size does not shrink, so also
                # truncate(2) to the same size (which leaves times to the fs)
                n.mtime = n.ctime = self.clock.now_ns()
            self._truncate(n, va.size)
        if va.mode is not None:
            n.mode = n.type.ifmt | (va.mode & 0o7777)
        if va.uid is not None:
            n.uid = va.uid
        if va.gid is not None:
            n.gid = va.gid
        if va.atime_ns is not None:
            n.atime = va.atime_ns
        if va.mtime_ns is not None:
            n.mtime = va.mtime_ns
        if va.ctime_ns is not None:
            n.ctime = va.ctime_ns
        iupdate(n)

    def _max_size(self, n: Ext2Node) -> int:
        mp = _mp(n)
        return min(bmap_of(n).max_blocks() * mp.bs, (1 << 63) - 1)

    def _truncate(self, n: Ext2Node, size: int) -> None:
        mp = _mp(n)
        if size > self._max_size(n):
            raise_errno(errno.EFBIG)
        bs = mp.bs
        if size < n.size:
            keep = -(-size // bs)
            bm = bmap_of(n)
            bm.truncate(keep)
            if size % bs:
                # zero the tail of the last block, so growing again reads zeros
                pblk, _, uninit = bm.lookup(size // bs)
                if pblk and not uninit:
                    bp = mp.bread(pblk)
                    bp.data[size % bs:] = bytes(bs - size % bs)
                    mp.bdwrite(bp)
        n.size = size
        self._large_file(n)
        iupdate(n)

    @staticmethod
    def _large_file(n: Ext2Node) -> None:
        sb = _mp(n).sb
        if n.size > 0x7FFFFFFF and not sb.ro_compat & RO_LARGE_FILE:
            sb.ro_compat |= RO_LARGE_FILE

    # -- data ----------------------------------------------------------------

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        n = _node(vp)
        if n.type is not VREG:
            if n.type is VFIFO:
                return b""
            raise_errno(errno.EISDIR if n.type is VDIR else errno.EINVAL)
        end = min(offset + size, n.size)
        if end <= offset:
            return b""
        if n.flags & (INLINE_DATA_FL | ENCRYPT_FL):
            if n.flags & INLINE_DATA_FL and n.size <= 60:
                data = bytes(n.raw[0x28 + offset:0x28 + end])
                self._relatime(n)
                return data
            raise_errno(errno.EOPNOTSUPP)
        mp = _mp(n)
        bs = mp.bs
        bm = bmap_of(n)
        parts: list[bytes | memoryview] = []
        pos = offset
        bc, bdev, spb = mp.bc, mp.bdev, mp.spb
        while pos < end:
            lblk, boff = divmod(pos, bs)
            pblk, run, uninit = bm.lookup(lblk)
            want_blocks = -(-(end - lblk * bs) // bs)
            run = min(run, want_blocks)
            if pblk == 0 or uninit:
                take = min(run * bs - boff, end - pos)
                parts.append(bytes(take))
                pos += take
                continue
            if run * bs >= DIRECT_MIN:
                raw = self._read_blocks(mp, pblk, run)
                take = min(run * bs - boff, end - pos)
                parts.append(raw if boff == 0 and take == len(raw)
                             else memoryview(raw)[boff:boff + take])
                pos += take
                continue
            for k in range(run):
                bp = bc.bread(bdev, (pblk + k) * spb, bs)
                take = min(bs - boff, end - pos)
                parts.append(bytes(bp.data[boff:boff + take]))
                bc.brelse(bp)
                pos += take
                boff = 0
        self._relatime(n)
        if len(parts) == 1 and type(parts[0]) is bytes:
            return parts[0]                # one device read: no copy
        return b"".join(parts)

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        n = _node(vp)
        if n.type is not VREG:
            raise_errno(errno.EISDIR if n.type is VDIR else errno.EINVAL)
        mp = _mp(n)
        mp.writable()
        if n.flags & (INLINE_DATA_FL | ENCRYPT_FL):
            raise_errno(errno.EOPNOTSUPP)
        if append:
            offset = n.size
        total = len(data)
        if total == 0:
            return 0, offset
        end = offset + total
        if end > self._max_size(n):
            raise_errno(errno.EFBIG)
        if end >= 1 << 41 and not mp.sb.ro_compat & RO_HUGE_FILE:
            # i_blocks in 512-byte units would overflow 32 bits
            raise_errno(errno.EFBIG)
        mv = memoryview(data).cast("B")
        bs = mp.bs
        bm = bmap_of(n)
        pos = offset
        try:
            while pos < end:
                lblk, boff = divmod(pos, bs)
                pblk, run, uninit = bm.lookup(lblk)
                nblk = -(-(end - lblk * bs) // bs)
                run = min(run, nblk)
                if pblk == 0:
                    pblk, run = mp.alloc.alloc_blocks(bm.goal(lblk), run)
                    try:
                        bm.insert(lblk, pblk, run)
                    except OSError:
                        mp.alloc.free_blocks(pblk, run)
                        raise
                    fresh = True
                else:
                    fresh = uninit
                k = 0
                while k < run:
                    take = min(bs - boff, end - pos)
                    whole = min(run - k, (end - pos) // bs) if take == bs else 0
                    if whole * bs >= DIRECT_MIN:
                        self._write_blocks(mp, pblk + k, whole,
                                           mv[pos - offset:pos - offset + whole * bs])
                        pos += whole * bs
                        k += whole
                        continue
                    k += 1
                    src = mv[pos - offset:pos - offset + take]
                    if take == bs:
                        bp = mp.getblk(pblk + k - 1)
                        bp.data[:] = src
                    elif fresh:
                        bp = mp.getblk(pblk + k - 1)
                        bp.data[:] = bytes(bs)
                        bp.data[boff:boff + take] = src
                    else:
                        bp = mp.bread(pblk + k - 1)
                        bp.data[boff:boff + take] = src
                    mp.bdwrite(bp)
                    pos += take
                    boff = 0
                if uninit:
                    bm.mark_init(lblk, run)
        finally:
            written = pos - offset
            if written:
                if pos > n.size:
                    n.size = pos
                    self._large_file(n)
                n.mtime = n.ctime = self.clock.now_ns()
                iupdate(n)
        return written, pos

    @staticmethod
    def _read_blocks(mp: Ext2Mount, pblk: int, n: int) -> bytes:
        """Blocks ``[pblk, pblk+n)``: cached ones from the buffer cache (they may
        be newer than the device), stretches of uncached ones in one device read
        each, bypassing the cache (file data does not crowd out metadata)."""
        bc, dev, spb, bs = mp.bc, mp.bdev, mp.spb, mp.bs
        out: list[bytes] = []
        i = 0
        while i < n:
            bp = bc.incore(dev, (pblk + i) * spb)
            if bp is not None:
                out.append(bytes(bp.data))
                i += 1
                continue
            j = i + 1
            while j < n and bc.incore(dev, (pblk + j) * spb) is None:
                j += 1
            out.append(dev.read((pblk + i) * bs, (j - i) * bs))
            i = j
        return out[0] if len(out) == 1 else b"".join(out)

    @staticmethod
    def _write_blocks(mp: Ext2Mount, pblk: int, n: int, src: memoryview) -> None:
        """Whole blocks ``[pblk, pblk+n)`` from ``src``: into cached buffers where
        there are some (a delayed write there must not overwrite ours later),
        else straight to the device, one write per stretch. Data reaching the
        device before the metadata that points at it is the safe order."""
        bc, dev, spb, bs = mp.bc, mp.bdev, mp.spb, mp.bs
        i = 0
        while i < n:
            if bc.incore(dev, (pblk + i) * spb) is not None:
                bp = mp.getblk(pblk + i)
                bp.data[:] = src[i * bs:(i + 1) * bs]
                mp.bdwrite(bp)
                i += 1
                continue
            j = i + 1
            while j < n and bc.incore(dev, (pblk + j) * spb) is None:
                j += 1
            dev.write((pblk + i) * bs, src[i * bs:j * bs])
            i = j

    def vop_seekhole(self, vp: Vnode, offset: int, data: bool) -> int:
        n = _node(vp)
        if n.type is not VREG or n.flags & INLINE_DATA_FL:
            return super().vop_seekhole(vp, offset, data)
        size = n.size
        if offset >= size or offset < 0:
            raise_errno(errno.ENXIO)
        bs = _mp(n).bs
        bm = bmap_of(n)
        pos = offset
        while pos < size:
            pblk, run, uninit = bm.lookup(pos // bs)
            is_data = pblk != 0 and not uninit
            if is_data == data:
                return pos
            pos = (pos // bs + min(run, HOLE_MAX)) * bs
        if data:
            raise_errno(errno.ENXIO)
        return size

    def vop_fsync(self, vp: Vnode, datasync: bool) -> None:
        """The VFS flushes the device after this (``Vfs.sync_mount``)."""

    def vop_pathconf(self, vp: Vnode, name: str) -> int:
        if name == "PC_LINK_MAX":
            return LINK_MAX
        return super().vop_pathconf(vp, name)

    def vop_inactive(self, vp: Vnode) -> None:
        n = _node(vp)
        if n.nlink == 0 and n.ino > 0:
            self.release(n)

    def vop_reclaim(self, vp: Vnode) -> None:
        n = _node(vp)
        _mp(n).uncache_vnode(n.ino)


__all__ += ["FT_OF"]
