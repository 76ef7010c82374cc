"""Edge cases where rumpfs once differed from Linux (issue 9), on the host and the kernel.

Each test runs the same calls on the host's ``os`` (a tmpfs in a chroot, as
root and as uid 1000) and on ``rumpfs.Kernel``, and asserts Linux's answer.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

import pytest

from tests.contract.helpers import (
    CREAT,
    DIRECTORY,
    EXCL,
    OLD_NS,
    RDONLY,
    WRONLY,
    age,
    expect_errno,
    mkfile,
    readfile,
)

# -- 1. a removed directory takes no new entries: ENOENT before anything else ------------------

# Calls that would enter the name "b" in the start directory. Each gets ENOENT
# on Linux when that directory was removed, whatever else is wrong: the
# dead-directory check comes first (lookup_one_qstr_excl, lookup_open).
_ENTER: dict[str, Callable[[Any, dict[str, Any]], object]] = {
    "mkdir": lambda p, kw: p.mkdir("b", 0o755, **kw),
    "open_creat": lambda p, kw: p.open("b", CREAT | WRONLY, 0o644, **kw),
    "open_creat_excl": lambda p, kw: p.open("b", CREAT | EXCL | WRONLY, 0o644, **kw),
    "symlink": lambda p, kw: p.symlink("/t", "b", **kw),
    "mknod_fifo": lambda p, kw: p.mknod("b", stat.S_IFIFO | 0o644, **kw),
    # link of a file the caller may not hard-link (fs.protected_hardlinks: EPERM)
    "link_protected": lambda p, kw: p.link("/rootfile", "b", **_dst(kw)),
    # link of the caller's own file into a directory it may not write (EACCES)
    "link_own": lambda p, kw: p.link("/w/own", "b", **_dst(kw)),
    # the reported loss: a rename into the removed directory
    "rename_dir": lambda p, kw: p.rename("/w/c", "b", **_dst(kw)),
    "rename_file": lambda p, kw: p.rename("/w/own", "b", **_dst(kw)),
}


def _dst(kw: dict[str, Any]) -> dict[str, Any]:
    return {"dst_dir_fd": kw["dir_fd"]} if kw else {}


def _removed_start(fs: Any, p: Any, how: str) -> dict[str, Any]:
    """Make /a (root's, 0755), let ``p`` stand in it (cwd) or hold it (dir_fd),
    then remove it. Returns the keyword arguments naming the start directory."""
    fs.mkdir("/a", 0o755)
    kw: dict[str, Any] = {}
    if how == "cwd":
        p.chdir("/a")
    else:
        kw["dir_fd"] = p.open("/a", RDONLY | DIRECTORY)
    fs.rmdir("/a")
    return kw


def _entering_tree(fs: Any, p: Any) -> None:
    """/w (0777) holding the caller's own file and directory; root's /rootfile."""
    fs.mkdir("/w", 0o777)
    fs.chmod("/w", 0o777)
    mkfile(p, "/w/own", b"data")
    p.mkdir("/w/c")
    mkfile(fs, "/rootfile", b"root", 0o600)


@pytest.mark.parametrize("how", ["cwd", "dir_fd"])
@pytest.mark.parametrize("who", ["root", "user"])
@pytest.mark.parametrize("call", sorted(_ENTER))
def test_entering_a_removed_directory_is_enoent(fs: Any, as_user: Any, call: str, who: str,
                                                how: str) -> None:
    p = fs if who == "root" else as_user()
    _entering_tree(fs, p)
    kw = _removed_start(fs, p, how)
    expect_errno(errno.ENOENT, _ENTER[call], p, kw)
    # nothing was lost or made: the sources are where they were, / is unchanged
    assert sorted(fs.listdir("/")) == ["rootfile", "w"]
    assert sorted(fs.listdir("/w")) == ["c", "own"]
    assert fs.stat("/w/own").st_nlink == 1


@pytest.mark.parametrize("how", ["cwd", "dir_fd"])
def test_rename_an_ancestor_into_its_removed_descendant_is_enoent(fs: Any, how: str) -> None:
    # /x/a removed while standing in it: renaming /x into it is ENOENT (not
    # EINVAL, "a directory into itself"), and /x stays where it was.
    fs.mkdir("/x")
    fs.mkdir("/x/a")
    kw: dict[str, Any] = {}
    if how == "cwd":
        fs.chdir("/x/a")
    else:
        kw["dst_dir_fd"] = fs.open("/x/a", RDONLY | DIRECTORY)
    fs.rmdir("/x/a")
    expect_errno(errno.ENOENT, fs.rename, "/x", "b", **kw)
    assert fs.listdir("/") == ["x"]
    assert fs.listdir("/x") == []


@pytest.mark.parametrize("who", ["root", "user"])
def test_removed_cwd_dots_and_lookups(fs: Any, as_user: Any, who: str) -> None:
    p = fs if who == "root" else as_user()
    _removed_start(fs, p, "cwd")
    expect_errno(errno.EEXIST, p.mkdir, ".")
    expect_errno(errno.EEXIST, p.mkdir, "..")
    expect_errno(errno.ENOENT, p.open, "b", RDONLY)
    expect_errno(errno.ENOENT, p.unlink, "b")
    expect_errno(errno.ENOENT, p.rmdir, "b")
    expect_errno(errno.ENOENT, p.rename, "b", "/c")
    assert p.listdir(".") == []
    expect_errno(errno.ENOENT, p.getcwd)
    # ".." of a removed directory is still its old parent
    assert sorted(p.listdir("..")) == sorted(fs.listdir("/"))


# -- 2. symlinks count together across the whole path, the last component too ---------------

@pytest.mark.parametrize(("loops", "code"), [(39, 0), (40, errno.ELOOP)])
@pytest.mark.parametrize("creat", [True, False], ids=["creat", "existing"])
@pytest.mark.parametrize("who", ["root", "user"])
def test_links_in_path_and_last_component_count_together(fs: Any, as_user: Any, loops: int,
                                                         code: int, creat: bool,
                                                         who: str) -> None:
    # b -> "." loops; c -> "new" is one more, in the last component: 40 + 1 > 40
    p = fs if who == "root" else as_user()
    fs.mkdir("/a", 0o777)
    fs.chmod("/a", 0o777)
    p.symlink(".", "/a/b")
    p.symlink("new", "/a/c")
    if not creat:
        mkfile(p, "/a/new")
    flags = CREAT | WRONLY if creat else WRONLY
    path = "/a/" + "b/" * loops + "c"
    if code:
        expect_errno(code, p.open, path, flags, 0o644, filename=path)
        assert ("new" in fs.listdir("/a")) is not creat
    else:
        p.close(p.open(path, flags, 0o644))
        assert stat.S_ISREG(fs.lstat("/a/new").st_mode)


@pytest.mark.parametrize(("chain", "code"), [(40, 0), (41, errno.ELOOP)])
def test_a_chain_of_links_to_a_new_file(fs: Any, chain: int, code: int) -> None:
    # l0 -> l1 -> ... -> l{chain-1} -> "new": `chain` links, all in the last component
    fs.mkdir("/a")
    for i in range(chain):
        fs.symlink(f"l{i + 1}" if i + 1 < chain else "new", f"/a/l{i}")
    if code:
        expect_errno(code, fs.open, "/a/l0", CREAT | WRONLY, 0o644, filename="/a/l0")
        assert "new" not in fs.listdir("/a")
    else:
        fs.close(fs.open("/a/l0", CREAT | WRONLY, 0o644))
        assert stat.S_ISREG(fs.lstat("/a/new").st_mode)


# -- 3. DirEntry.is_dir()/is_file() answer False only for a dangling link ------------------

def test_direntry_type_tests_raise_all_but_enoent(fs: Any, as_user: Any) -> None:
    fs.mkdir("/d", 0o755)
    mkfile(fs, "/f")
    fs.mkdir("/priv", 0o700)
    mkfile(fs, "/priv/x")
    fs.symlink("loop", "/d/loop")               # ELOOP
    fs.symlink("/f/x", "/d/notdir")             # ENOTDIR
    fs.symlink("/priv/x", "/d/private")         # EACCES for uid 1000, a file for root
    fs.symlink("/nowhere", "/d/dangling")       # ENOENT: False, no error
    fs.symlink("/" + "x" * 300, "/d/long")      # ENAMETOOLONG
    user = as_user()
    with user.scandir("/d") as it:
        entries = {e.name: e for e in it}
    for name, code in [("loop", errno.ELOOP), ("notdir", errno.ENOTDIR),
                       ("private", errno.EACCES), ("long", errno.ENAMETOOLONG)]:
        e = entries[name]
        expect_errno(code, e.is_dir)
        expect_errno(code, e.is_file)
        assert not e.is_dir(follow_symlinks=False) and not e.is_file(follow_symlinks=False)
        assert e.is_symlink()
    assert not entries["dangling"].is_dir() and not entries["dangling"].is_file()
    with fs.scandir("/d") as it:
        assert {e.name: e.is_file() for e in it if e.name == "private"} == {"private": True}


# -- 4. listdir()/scandir() without an argument: errors carry no filename ---------------------

def test_listdir_and_scandir_of_the_cwd_set_no_filename(fs: Any, as_user: Any) -> None:
    fs.mkdir("/d", 0o711)                       # searchable, not readable, by uid 1000
    user = as_user()
    user.chdir("/d")
    expect_errno(errno.EACCES, user.listdir, filename=None)
    expect_errno(errno.EACCES, user.scandir, filename=None)
    expect_errno(errno.EACCES, user.listdir, ".", filename=".")
    expect_errno(errno.EACCES, user.scandir, ".", filename=".")
    expect_errno(errno.EACCES, user.listdir, b".", filename=b".")
    fs.chmod("/d", 0o755)
    mkfile(fs, "/d/f")
    assert user.listdir() == ["f"]
    with user.scandir() as it:
        assert [(e.name, e.path) for e in it] == [("f", "./f")]


# -- 5. a whiteout (character device 0:0) needs no privilege ------------------------------

def test_unprivileged_mknod_of_a_whiteout(fs: Any, user: Any) -> None:
    fs.mkdir("/w", 0o777)
    fs.chmod("/w", 0o777)
    user.mknod("/w/wh", stat.S_IFCHR | 0o600, 0)
    st = user.lstat("/w/wh")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and st.st_uid == 1000
    expect_errno(errno.EPERM, user.mknod, "/w/c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    expect_errno(errno.EPERM, user.mknod, "/w/b", stat.S_IFBLK | 0o600, 0)
    # may_create comes first: no write permission is EACCES, even for a whiteout
    expect_errno(errno.EACCES, user.mknod, "/wh", stat.S_IFCHR | 0o600, 0)
    expect_errno(errno.EACCES, user.mknod, "/c", stat.S_IFCHR | 0o600, os.makedev(1, 3))


# -- 6. ftruncate checks the length before the descriptor --------------------------------

def test_ftruncate_checks_length_before_descriptor(fs: Any) -> None:
    expect_errno(errno.EINVAL, fs.ftruncate, 999, -1)
    expect_errno(errno.EBADF, fs.ftruncate, 999, 0)
    expect_errno(errno.EINVAL, fs.truncate, 999, -1)
    fd = fs.open("/f", CREAT | RDONLY, 0o644)
    expect_errno(errno.EINVAL, fs.ftruncate, fd, -1)
    expect_errno(errno.EINVAL, fs.ftruncate, fd, 0)         # not open for writing
    fs.close(fd)


# -- 7. truncate(2) to the same size: a file with data gets new mtime and ctime ------------

def _times(fs: Any, path: str) -> tuple[int, int]:
    st = fs.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns


@pytest.mark.parametrize("who", ["root", "user"])
def test_truncate_to_same_size_stamps_a_file_with_data(fs: Any, as_user: Any, who: str) -> None:
    mkfile(fs, "/f", b"data")
    fs.chown("/f", 1000, 1000)
    age(fs, "/f")
    (fs if who == "root" else as_user()).truncate("/f", 4)
    mtime, ctime = _times(fs, "/f")
    assert mtime != OLD_NS and mtime == ctime
    assert fs.stat("/f").st_size == 4 and readfile(fs, "/f") == b"data"


def test_truncate_to_same_size_leaves_a_file_without_pages_alone(
        fs: Any, same_size_truncate_stamps_always: bool) -> None:
    mkfile(fs, "/empty")
    mkfile(fs, "/sparse")
    fs.truncate("/sparse", 1 << 20)             # a hole, no pages
    for path, size in [("/empty", 0), ("/sparse", 1 << 20)]:
        age(fs, path)
        before = _times(fs, path)
        fs.truncate(path, size)
        if same_size_truncate_stamps_always:    # ext4 stamps any file (conftest)
            mtime, ctime = _times(fs, path)
            assert mtime != OLD_NS and mtime == ctime, path
        else:
            assert _times(fs, path) == before, path


def test_ftruncate_to_same_size_always_stamps(fs: Any) -> None:
    mkfile(fs, "/empty")
    age(fs, "/empty")
    fd = fs.open("/empty", WRONLY)
    fs.ftruncate(fd, 0)
    fs.close(fd)
    assert _times(fs, "/empty")[0] != OLD_NS
