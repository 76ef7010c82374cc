"""RumpPath.create_file (parents made, as pyfakefs' create_file) and hostcopy.copy_in."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from rumpfs import Kernel
from rumpfs.hostcopy import copy_in


def test_create_file_makes_parents() -> None:
    with Kernel() as k:
        k.umask(0o022)
        p = k.path("/a/b/c.txt").create_file("hello")
        assert p == k.path("/a/b/c.txt")
        assert p.read_text() == "hello"
        assert stat.S_IMODE(k.stat("/a/b").st_mode) == 0o755
        assert stat.S_IMODE(k.stat("/a/b/c.txt").st_mode) == 0o644
        k.path("/a/bin").create_file(b"\x00\x01", mode=0o700)
        assert k.path("/a/bin").read_bytes() == b"\x00\x01"
        assert stat.S_IMODE(k.stat("/a/bin").st_mode) == 0o700
        with pytest.raises(FileExistsError):
            k.path("/a/b/c.txt").create_file("again")
        k.path("/a/b/c.txt").create_file("again", exist_ok=True)
        assert k.path("/a/b/c.txt").read_text() == "again"
        k.path("/e.txt").create_file("é", encoding="latin-1")
        assert k.path("/e.txt").read_bytes() == b"\xe9"


def test_create_file_as_a_process_checks_permissions() -> None:
    with Kernel() as k:
        alice = k.process(uid=1000, gid=1000)
        with pytest.raises(PermissionError):
            alice.path("/x/y").create_file("no")
        k.mkdir("/home")
        k.mkdir("/home/alice")
        k.chown("/home/alice", 1000, 1000)
        alice.path("/home/alice/deep/notes").create_file("mine")
        assert k.stat("/home/alice/deep/notes").st_uid == 1000


def test_copy_in_copies_a_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A" * 3_000_000)
    (src / "sub" / "b.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "sub" / "b.sh", 0o750)
    os.utime(src / "a.txt", (1_000_000, 2_000_000))
    (src / "sub" / "link").symlink_to("b.sh")
    (src / "sub" / "deeper" / "c").write_text("c")
    os.chmod(src / "sub" / "deeper", 0o711)
    with Kernel() as k:
        copy_in(k, src, "/data/copy")
        assert k.path("/data/copy/a.txt").read_bytes() == b"A" * 3_000_000
        assert k.stat("/data/copy/a.txt").st_mtime == 2_000_000
        assert stat.S_IMODE(k.stat("/data/copy/sub/b.sh").st_mode) == 0o750
        assert stat.S_IMODE(k.stat("/data/copy/sub/deeper").st_mode) == 0o711
        assert k.readlink("/data/copy/sub/link") == "b.sh"
        assert k.path("/data/copy/sub/link").read_text() == "#!/bin/sh\n"
        assert sorted(k.listdir("/data/copy")) == ["a.txt", "sub"]
        k.path("/data/copy/a.txt").write_text("changed in the kernel")
        with pytest.raises(FileExistsError):
            copy_in(k, src, "/data/copy")
        copy_in(k, src / "sub" / "b.sh", "/one/file")
        assert k.path("/one/file").read_text() == "#!/bin/sh\n"
        copy_in(k, src / "sub" / "link", "/followed", follow_symlinks=True)
        assert k.path("/followed").is_file() and not k.path("/followed").is_symlink()
    assert (src / "a.txt").read_bytes() == b"A" * 3_000_000  # the host is untouched


def test_copy_in_host_errors_name_the_host_path(tmp_path: Path) -> None:
    with Kernel() as k, pytest.raises(FileNotFoundError) as ei:
        copy_in(k, tmp_path / "missing", "/x")
    assert ei.value.errno == errno.ENOENT and ei.value.filename == str(tmp_path / "missing")
