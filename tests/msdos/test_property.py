"""Property test: random operation sequences on a FAT mount against a model.

A hypothesis state machine creates, writes (appends, sparse pwrites),
truncates, renames (files over files, across directories; directories),
removes (also while open) files and directories under names that collide
case-insensitively and in their 8.3 forms. A model (case-folded name ->
shown name and bytes) predicts every result and listing. After each
sequence the volume is unmounted and must be clean for ``fsck.fat -n``, and
``mcopy -s`` must extract exactly the model's tree (names with their case,
contents). ``RUMPFS_MSDOS_EXAMPLES`` sets the number of sequences."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import rumpfs
from rumpfs.sbin.newfs_msdos import newfs_msdos
from tests.unit.msdosfs.support import fsck, mtools

NAMES = ["a", "A", "readme.txt", "README.TXT", "Long File Name.dat", "long file name.DAT",
         "x" * 20, "caf\u00e9.txt", "b.c.d", "foo~1", "FOO~1.", "ALONGF~1.TXT"]
DIRS = ["/", "/d1", "/d1/sub", "/D2"]
EXAMPLES = int(os.environ.get("RUMPFS_MSDOS_EXAMPLES", "30"))


def _key(path: str) -> str:
    return "/".join(part.rstrip(".").upper() for part in path.split("/"))


class FatMachine(RuleBasedStateMachine):
    fat = 16

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="rumpfs-msdos-sm-", dir="/dev/shm"))
        self.img = self.tmp / "fat.img"
        with open(self.img, "wb") as f:
            f.truncate((20 if self.fat == 16 else 40) << 20)
        self.k = rumpfs.Kernel()
        self.k.etfs_register("/dev/fat", str(self.img), rumpfs.EtfsType.BLK)
        newfs_msdos(self.k, "/dev/fat", fat_type=self.fat,
                    sectors_per_cluster=1 if self.fat == 32 else 4)
        self.k.mkdir("/m")
        self.k.mount("msdos", "/m", device="/dev/fat")
        # model: folded path -> (shown path, bytes | None for a directory)
        self.model: dict[str, tuple[str, bytes | None]] = {"": ("", None)}
        self.open: list[tuple[int, str, bytes]] = []   # fd, folded path, expected content

    # -- helpers --------------------------------------------------------------

    def _parent_ok(self, d: str) -> bool:
        return _key(d.rstrip("/")) in self.model and self.model[_key(d.rstrip("/"))][1] is None

    def _path(self, d: str, name: str) -> str:
        return f"{d.rstrip('/')}/{name}"

    def _files(self) -> list[str]:
        return sorted(k for k, (_, v) in self.model.items() if v is not None)

    # -- rules ------------------------------------------------------------------

    @rule(d=st.sampled_from(DIRS), name=st.sampled_from(NAMES),
          data=st.binary(max_size=9000))
    def write_file(self, d: str, name: str, data: bytes) -> None:
        p = self._path(d, name)
        key = _key(p)
        try:
            with self.k.open_file("/m" + p, "wb") as f:
                f.write(data)
        except OSError as e:
            if not self._parent_ok(d):
                assert e.errno in (errno.ENOENT, errno.ENOTDIR)
            else:
                assert key in self.model and self.model[key][1] is None
                assert e.errno == errno.EISDIR
            return
        assert self._parent_ok(d)
        shown = self.model[key][0] if key in self.model else p.rstrip(".")
        self.model[key] = (shown, data)

    @rule(i=st.integers(0, 50), off=st.integers(0, 40000), data=st.binary(min_size=1,
                                                                           max_size=3000))
    def pwrite(self, i: int, off: int, data: bytes) -> None:
        files = self._files()
        if not files:
            return
        key = files[i % len(files)]
        shown, old = self.model[key]
        assert old is not None
        fd = self.k.open("/m" + shown, os.O_RDWR)
        assert self.k.pwrite(fd, data, off) == len(data)
        self.k.close(fd)
        new = bytearray(old)
        if off > len(new):
            new += bytes(off - len(new))
        new[off:off + len(data)] = data
        self.model[key] = (shown, bytes(new))

    @rule(i=st.integers(0, 50), size=st.integers(0, 30000))
    def truncate(self, i: int, size: int) -> None:
        files = self._files()
        if not files:
            return
        key = files[i % len(files)]
        shown, old = self.model[key]
        assert old is not None
        self.k.truncate("/m" + shown, size)
        self.model[key] = (shown, old[:size] + bytes(max(0, size - len(old))))

    @rule(d=st.sampled_from(DIRS[1:]))
    def mkdir(self, d: str) -> None:
        key = _key(d)
        parent = d.rsplit("/", 1)[0] or "/"
        try:
            self.k.mkdir("/m" + d)
        except FileExistsError:
            assert key in self.model
            return
        except OSError as e:
            assert not self._parent_ok(parent) and e.errno in (errno.ENOENT, errno.ENOTDIR)
            return
        assert key not in self.model and self._parent_ok(parent)
        self.model[key] = (d, None)

    @rule(i=st.integers(0, 50), keep_open=st.booleans())
    def unlink(self, i: int, keep_open: bool) -> None:
        files = self._files()
        if not files:
            return
        key = files[i % len(files)]
        shown, data = self.model[key]
        assert data is not None
        if keep_open:
            fd = self.k.open("/m" + shown, os.O_RDONLY)
            self.open.append((fd, key, data))
        self.k.unlink("/m" + shown)
        del self.model[key]

    @rule(d=st.sampled_from(DIRS[1:]))
    def rmdir(self, d: str) -> None:
        key = _key(d)
        try:
            self.k.rmdir("/m" + d)
        except OSError as e:
            if key not in self.model:
                assert e.errno in (errno.ENOENT, errno.ENOTDIR)
            else:
                assert e.errno == errno.ENOTEMPTY
                assert any(k.startswith(key + "/") for k in self.model)
            return
        assert not any(k.startswith(key + "/") for k in self.model)
        del self.model[key]

    @rule(i=st.integers(0, 50), d=st.sampled_from(DIRS), name=st.sampled_from(NAMES))
    def rename_file(self, i: int, d: str, name: str) -> None:
        files = self._files()
        if not files or not self._parent_ok(d):
            return
        src = files[i % len(files)]
        shown, data = self.model[src]
        dst = self._path(d, name)
        dkey = _key(dst)
        if dkey in self.model and self.model[dkey][1] is None:
            with pytest.raises(IsADirectoryError):
                self.k.rename("/m" + shown, "/m" + dst)
            return
        self.k.rename("/m" + shown, "/m" + dst)
        if dkey == src:
            return                      # the same file (maybe another case): nothing moves
        del self.model[src]
        self.model[dkey] = (dst.rstrip("."), data)

    @precondition(lambda self: _key("/d1/sub") in self.model and _key("/D2") in self.model)
    @rule()
    def rename_dir(self) -> None:
        self.k.rename("/m/d1/sub", "/m/D2/moved")
        old, new = _key("/d1/sub"), _key("/D2/moved")
        moved = {}
        for k in list(self.model):
            if k == old or k.startswith(old + "/"):
                shown, v = self.model.pop(k)
                moved[new + k[len(old):]] = ("/D2/moved" + shown[len("/d1/sub"):], v)
        self.model.update(moved)
        # put it back under its old name so that the DIRS universe stays useful
        self.k.rename("/m/D2/moved", "/m/d1/sub")
        for k in list(self.model):
            if k == new or k.startswith(new + "/"):
                shown, v = self.model.pop(k)
                self.model[old + k[len(new):]] = ("/d1/sub" + shown[len("/D2/moved"):], v)

    @rule()
    def close_one(self) -> None:
        if self.open:
            fd, _, data = self.open.pop()
            assert self.k.pread(fd, len(data) + 10, 0) == data
            self.k.close(fd)

    # -- checks -----------------------------------------------------------------

    @invariant()
    def tree_matches(self) -> None:
        got: dict[str, tuple[str, bytes | None]] = {"": ("", None)}
        for dirpath, dirs, files in self.k.walk("/m"):
            rel = dirpath[2:]
            for n in dirs:
                got[_key(f"{rel}/{n}")] = (f"{rel}/{n}", None)
            for n in files:
                with self.k.open_file(f"{dirpath}/{n}", "rb") as f:
                    got[_key(f"{rel}/{n}")] = (f"{rel}/{n}", f.read())
        assert got == self.model

    def teardown(self) -> None:
        try:
            for fd, _, data in self.open:
                assert self.k.pread(fd, len(data) + 10, 0) == data
                self.k.close(fd)
            self.open = []
            self.k.unmount("/m")
            self.k.shutdown()
            fsck(self.img)
            out = self.tmp / "out"
            out.mkdir()
            if len(self.model) > 1:
                mtools(self.img, "mcopy", "-s", "-i", str(self.img), "::/*", str(out))
            got = {"": ("", None)}
            for p in out.rglob("*"):
                rel = "/" + str(p.relative_to(out))
                got[_key(rel)] = (rel, None if p.is_dir() else p.read_bytes())
            assert got == self.model
        finally:
            self.k.shutdown()
            shutil.rmtree(self.tmp, ignore_errors=True)


class Fat32Machine(FatMachine):
    fat = 32


_SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                     derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestFat16 = FatMachine.TestCase
TestFat16.settings = _SETTINGS
TestFat32 = Fat32Machine.TestCase
TestFat32.settings = _SETTINGS
