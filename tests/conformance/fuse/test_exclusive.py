"""An exclusive mount (the CLI's): the host caches, and stays right about what
the mount itself changes -- negative entries, renames, unlinks, listings, pages."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def test_negative_entry_then_create(exclusive_mnt: Path) -> None:
    p = exclusive_mnt / "later"
    for _ in range(3):
        with pytest.raises(FileNotFoundError):
            os.stat(p)
    p.write_bytes(b"now")
    assert os.stat(p).st_size == 3
    assert os.listdir(exclusive_mnt) == ["later"]


def test_rename_unlink_and_listing_stay_right(exclusive_mnt: Path) -> None:
    d = exclusive_mnt / "d"
    d.mkdir()
    for i in range(20):
        (d / f"f{i}").write_text(str(i))
    assert sorted(os.listdir(d)) == sorted(f"f{i}" for i in range(20))
    os.rename(d / "f0", d / "g0")
    os.unlink(d / "f1")
    names = set(os.listdir(d))
    assert "g0" in names and "f0" not in names and "f1" not in names
    with pytest.raises(FileNotFoundError):
        os.stat(d / "f0")
    assert (d / "g0").read_text() == "0"
    with pytest.raises(OSError) as ei:
        os.rmdir(d)
    assert ei.value.errno == errno.ENOTEMPTY


def test_pages_follow_writes_and_truncates(exclusive_mnt: Path) -> None:
    p = exclusive_mnt / "f"
    p.write_bytes(b"a" * 10000)
    assert p.read_bytes() == b"a" * 10000
    with open(p, "r+b") as f:
        f.seek(5000)
        f.write(b"b" * 10)
    assert p.read_bytes()[4995:5015] == b"a" * 5 + b"b" * 10 + b"a" * 5
    os.truncate(p, 100)
    assert p.read_bytes() == b"a" * 100
    os.link(p, exclusive_mnt / "h")
    assert os.stat(p).st_nlink == 2
    os.unlink(exclusive_mnt / "h")
    assert os.stat(p).st_nlink == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 1000")
def test_search_permission_holds_on_cached_paths(exclusive_mnt: Path) -> None:
    """Cached dentries let the host walk a path without LOOKUPs: it must then
    check search permission itself (default_permissions), as tmpfs does."""
    import subprocess

    d = exclusive_mnt / "closed"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_bytes(b"x")
    os.chmod(d / "sub" / "f", 0o666)
    os.stat(d / "sub" / "f")              # root caches every component
    os.chmod(d, 0o700)                    # uid 1000 may not search it
    res = subprocess.run(["/bin/cat", str(d / "sub" / "f")], capture_output=True,
                         user=1000, group=1000, extra_groups=[], check=False)
    assert res.returncode != 0 and b"Permission denied" in res.stderr


FIFO_OPEN = ("import errno, os, sys\n"
             "try:\n"
             "    os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)); print('ok')\n"
             "except OSError as e:\n"
             "    print(errno.errorcode[e.errno])\n")


def _fifo_open_as_1000(root: Path) -> str:
    import subprocess

    fifo = root / "fifo"
    os.mkfifo(fifo, 0o600)
    os.chmod(root, 0o755)
    res = subprocess.run(["/usr/bin/python3", "-c", FIFO_OPEN, str(fifo)], capture_output=True,
                         text=True, user=1000, group=1000, extra_groups=[], check=True)
    return res.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 1000")
def test_fifo_open_is_checked_like_tmpfs_on_an_exclusive_mount(exclusive_mnt: Path,
                                                               shm: Path) -> None:
    """The host opens FIFOs itself, without asking the server; with
    default_permissions (exclusive mode) it checks the mode first, as tmpfs."""
    assert _fifo_open_as_1000(shm) == "EACCES"
    assert _fifo_open_as_1000(exclusive_mnt) == "EACCES"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 1000")
def test_fifo_open_is_checked_under_serve_too(mnt: Path) -> None:
    """serve() caches too (its changes pushed as invalidations), so it mounts
    with default_permissions: the host checks a FIFO's mode before opening it,
    as on an exclusive mount and tmpfs."""
    assert _fifo_open_as_1000(mnt) == "EACCES"


def test_listing_a_big_directory_twice(exclusive_mnt: Path) -> None:
    """For a plain READDIR the host asks for more than it accepts, which once
    made a listing fail with EIO (here and under serve(): test_os)."""
    d = exclusive_mnt / "big"
    d.mkdir()
    names = {f"file-with-a-longish-name-{i:05d}" for i in range(3000)}
    for n in names:
        os.close(os.open(d / n, os.O_CREAT | os.O_WRONLY, 0o644))
    assert set(os.listdir(d)) == names
    assert set(os.listdir(d)) == names
    os.unlink(d / "file-with-a-longish-name-00000")
    assert len(os.listdir(d)) == 2999
