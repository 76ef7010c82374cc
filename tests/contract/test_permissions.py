"""Credentials and permissions: trees are set up by root (``fs``), then probed by
unprivileged processes (``user``: uid 1000, gid 1000; ``as_user(...)`` for others).

The host (Linux) is the reference.  Cases avoid the host's sysctl-dependent
protections (protected_hardlinks/symlinks/regular/fifos), which only act in
sticky world-writable directories or on hard links to other users' files.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import pytest

from tests.contract.helpers import (
    CREAT,
    OLD_NS,
    RDONLY,
    RDWR,
    TRUNC,
    WRONLY,
    exists,
    expect_errno,
    mkfile,
    mode_of,
    readfile,
)


def owned(fs: Any, path: str, uid: int = 1000, gid: int = 1000, *, mode: int | None = None,
          data: bytes = b"", is_dir: bool = False) -> None:
    """Root makes path (file or dir), hands it to uid:gid and sets mode."""
    if is_dir:
        fs.mkdir(path)
    else:
        mkfile(fs, path, data)
    fs.chown(path, uid, gid)
    if mode is not None:
        fs.chmod(path, mode)


def shared_dir(fs: Any, path: str = "/w", mode: int = 0o777) -> None:
    fs.mkdir(path)
    fs.chmod(path, mode)


# -- reading, writing, searching -------------------------------------------------------------


def test_open_without_read_permission_is_eacces(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"secret", 0o600)
    expect_errno(errno.EACCES, user.open, "/f", RDONLY, filename="/f")


def test_open_without_write_permission_is_eacces(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"data", 0o644)
    expect_errno(errno.EACCES, user.open, "/f", WRONLY, filename="/f")
    expect_errno(errno.EACCES, user.open, "/f", RDWR, filename="/f")
    expect_errno(errno.EACCES, user.open, "/f", RDONLY | TRUNC, filename="/f")
    fd = user.open("/f", RDONLY)
    assert user.read(fd, 4) == b"data"
    user.close(fd)
    assert readfile(fs, "/f") == b"data"


def test_other_bits_apply_to_strangers(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"x", 0o604)
    fd = user.open("/f", RDONLY)
    user.close(fd)
    fs.chmod("/f", 0o640)
    expect_errno(errno.EACCES, user.open, "/f", RDONLY)


def test_group_bits_apply_to_primary_group(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 1000, mode=0o460, data=b"g")
    fd = user.open("/f", RDWR)
    user.close(fd)


def test_group_bits_apply_to_supplementary_groups(fs: Any, as_user: Any) -> None:
    owned(fs, "/f", 0, 100, mode=0o640, data=b"g")
    member = as_user(1000, 1000, groups=(100,))
    stranger = as_user(1000, 1000)
    member.close(member.open("/f", RDONLY))
    expect_errno(errno.EACCES, stranger.open, "/f", RDONLY)


def test_owner_bits_take_precedence_over_group_and_other(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o077, data=b"x")
    expect_errno(errno.EACCES, user.open, "/f", RDONLY, filename="/f")


def test_group_bits_take_precedence_over_other(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 1000, mode=0o607, data=b"x")
    expect_errno(errno.EACCES, user.open, "/f", RDONLY, filename="/f")


def test_search_permission_needed_on_every_directory(fs: Any, user: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    mkfile(fs, "/a/b/f", b"x", 0o644)
    fs.chmod("/a", 0o700)
    expect_errno(errno.EACCES, user.stat, "/a/b/f", filename="/a/b/f")
    expect_errno(errno.EACCES, user.open, "/a/b/f", RDONLY, filename="/a/b/f")
    fs.chmod("/a", 0o711)
    assert user.stat("/a/b/f").st_size == 1


def test_read_without_search_lists_but_cannot_stat(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    fs.chmod("/d", 0o744)
    assert user.listdir("/d") == ["f"]
    expect_errno(errno.EACCES, user.stat, "/d/f", filename="/d/f")


def test_search_without_read_cannot_list(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"x")
    fs.chmod("/d", 0o711)
    expect_errno(errno.EACCES, user.listdir, "/d", filename="/d")
    assert readfile(user, "/d/f") == b"x"


def test_open_directory_without_read_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o711)
    expect_errno(errno.EACCES, user.open, "/d", RDONLY, filename="/d")


def test_chdir_without_search_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o700)
    expect_errno(errno.EACCES, user.chdir, "/d", filename="/d")
    fs.chmod("/d", 0o701)
    user.chdir("/d")
    assert user.getcwd() == "/d"


def test_symlink_through_unsearchable_directory_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o700)
    mkfile(fs, "/d/f")
    fs.symlink("/d/f", "/l")
    assert user.readlink("/l") == "/d/f"
    expect_errno(errno.EACCES, user.stat, "/l", filename="/l")


def test_permissions_checked_at_open_not_at_io(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o600)
    fd = user.open("/f", RDWR)
    fs.chmod("/f", 0o000)
    assert user.write(fd, b"still") == 5
    assert user.pread(fd, 5, 0) == b"still"
    user.close(fd)
    expect_errno(errno.EACCES, user.open, "/f", RDONLY)


def test_truncate_without_write_is_eacces(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"abc", 0o644)
    expect_errno(errno.EACCES, user.truncate, "/f", 0, filename="/f")
    assert fs.stat("/f").st_size == 3


def test_readonly_file_owner_cannot_write(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o444)
    expect_errno(errno.EACCES, user.open, "/f", WRONLY)
    user.chmod("/f", 0o644)
    user.close(user.open("/f", WRONLY))


# -- creating and removing names -------------------------------------------------------------


def test_create_in_unwritable_directory_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EACCES, user.open, "/d/f", CREAT | WRONLY, 0o644, filename="/d/f")
    expect_errno(errno.EACCES, user.mkdir, "/d/e", filename="/d/e")
    expect_errno(errno.EACCES, user.symlink, "x", "/d/l")
    expect_errno(errno.EACCES, user.mknod, "/d/p", stat.S_IFIFO | 0o600)
    assert fs.listdir("/d") == []


def test_existence_checked_before_write_permission(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    expect_errno(errno.EEXIST, user.mkdir, "/d/f", filename="/d/f")
    expect_errno(errno.EEXIST, user.open, "/d/f", CREAT | os.O_EXCL | WRONLY, 0o644)


def test_write_without_search_on_directory_is_eacces(fs: Any, user: Any) -> None:
    shared_dir(fs, "/d", 0o766)
    expect_errno(errno.EACCES, user.mkdir, "/d/e", filename="/d/e")


def test_created_file_belongs_to_creator(fs: Any, user: Any) -> None:
    shared_dir(fs)
    user.close(user.open("/w/f", CREAT | WRONLY, 0o666))
    user.mkdir("/w/d")
    user.symlink("f", "/w/l")
    for path in ("/w/f", "/w/d", "/w/l"):
        st = fs.lstat(path)
        assert (st.st_uid, st.st_gid) == (1000, 1000), path
    assert mode_of(fs, "/w/f") == 0o644
    assert mode_of(fs, "/w/d") == 0o755


def test_user_umask(fs: Any, as_user: Any) -> None:
    shared_dir(fs)
    p = as_user(1000, 1000, umask=0o027)
    p.close(p.open("/w/f", CREAT | WRONLY, 0o666))
    p.mkdir("/w/d")
    assert mode_of(fs, "/w/f") == 0o640
    assert mode_of(fs, "/w/d") == 0o750


def test_unlink_in_unwritable_directory_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    owned(fs, "/d/f", 1000, 1000)
    expect_errno(errno.EACCES, user.unlink, "/d/f", filename="/d/f")
    assert exists(fs, "/d/f")


def test_unlink_others_file_in_writable_directory(fs: Any, user: Any) -> None:
    shared_dir(fs)
    mkfile(fs, "/w/f", mode=0o600)
    user.unlink("/w/f")
    assert not exists(fs, "/w/f")


def test_rmdir_in_unwritable_directory_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    owned(fs, "/d/e", 1000, 1000, is_dir=True)
    expect_errno(errno.EACCES, user.rmdir, "/d/e", filename="/d/e")


def test_rename_needs_write_on_both_directories(fs: Any, user: Any) -> None:
    shared_dir(fs, "/w")
    fs.mkdir("/ro")
    owned(fs, "/w/f", 1000, 1000)
    expect_errno(errno.EACCES, user.rename, "/w/f", "/ro/f", filename="/w/f", filename2="/ro/f")
    owned(fs, "/ro/g", 1000, 1000)
    expect_errno(errno.EACCES, user.rename, "/ro/g", "/w/g")
    user.rename("/w/f", "/w/f2")


def test_moving_directory_to_new_parent_needs_write_on_it(fs: Any, user: Any) -> None:
    shared_dir(fs, "/w1")
    shared_dir(fs, "/w2")
    fs.mkdir("/w1/d")  # root's, 0755: its '..' cannot be rewritten by uid 1000
    expect_errno(errno.EACCES, user.rename, "/w1/d", "/w2/d")
    user.rename("/w1/d", "/w1/e")  # same parent: '..' unchanged, allowed
    assert exists(fs, "/w1/e")


def test_link_needs_write_on_target_directory(fs: Any, user: Any) -> None:
    shared_dir(fs)
    fs.mkdir("/ro")
    owned(fs, "/w/f", 1000, 1000)
    expect_errno(errno.EACCES, user.link, "/w/f", "/ro/f")
    user.link("/w/f", "/w/g")
    assert fs.stat("/w/f").st_nlink == 2


# -- the sticky bit --------------------------------------------------------------------------


@pytest.fixture
def sticky(fs: Any) -> str:
    fs.mkdir("/tmp")
    fs.chmod("/tmp", 0o1777)
    return "/tmp"


def test_sticky_dir_others_cannot_unlink(fs: Any, as_user: Any, sticky: str) -> None:
    alice = as_user(1000, 1000)
    bob = as_user(1001, 1001)
    alice.close(alice.open("/tmp/a", CREAT | WRONLY, 0o666))
    expect_errno(errno.EPERM, bob.unlink, "/tmp/a", filename="/tmp/a")
    expect_errno(errno.EPERM, bob.rename, "/tmp/a", "/tmp/b")
    alice.unlink("/tmp/a")


def test_sticky_dir_others_cannot_rmdir(fs: Any, as_user: Any, sticky: str) -> None:
    alice = as_user(1000, 1000)
    bob = as_user(1001, 1001)
    alice.mkdir("/tmp/d")
    expect_errno(errno.EPERM, bob.rmdir, "/tmp/d", filename="/tmp/d")
    assert exists(fs, "/tmp/d")


def test_sticky_dir_others_cannot_be_replaced_by_rename(fs: Any, as_user: Any,
                                                       sticky: str) -> None:
    alice = as_user(1000, 1000)
    bob = as_user(1001, 1001)
    alice.close(alice.open("/tmp/a", CREAT | WRONLY, 0o666))
    bob.close(bob.open("/tmp/b", CREAT | WRONLY, 0o666))
    expect_errno(errno.EPERM, bob.rename, "/tmp/b", "/tmp/a")
    assert fs.stat("/tmp/a").st_uid == 1000


def test_sticky_dir_owner_may_delete(fs: Any, as_user: Any) -> None:
    owned(fs, "/s", 1001, 1001, mode=0o1777, is_dir=True)
    alice = as_user(1000, 1000)
    dirowner = as_user(1001, 1001)
    alice.close(alice.open("/s/a", CREAT | WRONLY, 0o666))
    dirowner.unlink("/s/a")
    assert not exists(fs, "/s/a")


def test_sticky_dir_root_may_delete(fs: Any, user: Any, sticky: str) -> None:
    user.close(user.open("/tmp/a", CREAT | WRONLY, 0o666))
    fs.unlink("/tmp/a")
    assert fs.listdir("/tmp") == []


def test_sticky_dir_others_may_create_and_delete_own(fs: Any, as_user: Any,
                                                     sticky: str) -> None:
    bob = as_user(1001, 1001)
    bob.mkdir("/tmp/mine")
    bob.rmdir("/tmp/mine")
    assert fs.listdir("/tmp") == []


# -- set-id bits -----------------------------------------------------------------------------


def test_setgid_directory_gives_its_group_to_new_files(fs: Any, user: Any) -> None:
    owned(fs, "/g", 0, 100, mode=0o2777, is_dir=True)
    user.close(user.open("/g/f", CREAT | WRONLY, 0o666))
    user.mkdir("/g/d")
    assert fs.stat("/g/f").st_gid == 100
    assert fs.stat("/g/d").st_gid == 100
    assert mode_of(fs, "/g/d") == 0o2755
    assert mode_of(fs, "/g/f") == 0o644


def test_setgid_directory_inheritance_as_root(fs: Any) -> None:
    fs.mkdir("/g")
    fs.chown("/g", 0, 100)
    fs.chmod("/g", 0o2755)
    fs.mkdir("/g/d")
    fs.mknod("/g/p", stat.S_IFIFO | 0o600)
    assert fs.stat("/g/d").st_gid == 100
    assert fs.stat("/g/p").st_gid == 100
    assert mode_of(fs, "/g/d") & stat.S_ISGID


def test_write_by_non_owner_clears_setuid(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"x")
    fs.chmod("/f", 0o4777)
    fd = user.open("/f", WRONLY)
    user.write(fd, b"y")
    user.close(fd)
    assert mode_of(fs, "/f") == 0o777


def test_write_by_unprivileged_owner_clears_setuid(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o4755, data=b"x")
    fd = user.open("/f", WRONLY)
    user.write(fd, b"y")
    user.close(fd)
    assert mode_of(fs, "/f") == 0o755


def test_write_by_non_root_clears_setgid_with_group_exec(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o2775, data=b"x")
    fd = user.open("/f", WRONLY)
    user.pwrite(fd, b"y", 0)
    user.close(fd)
    assert mode_of(fs, "/f") == 0o775


def test_write_by_root_keeps_setuid(fs: Any) -> None:
    mkfile(fs, "/f", b"x")
    fs.chmod("/f", 0o4755)
    fd = fs.open("/f", WRONLY)
    fs.write(fd, b"y")
    fs.close(fd)
    assert mode_of(fs, "/f") == 0o4755


def test_truncate_by_non_root_clears_setuid(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o4755, data=b"abc")
    user.truncate("/f", 1)
    assert mode_of(fs, "/f") == 0o755


def test_chmod_setgid_for_foreign_group_is_silently_dropped(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 100)
    user.chmod("/f", 0o2755)
    assert mode_of(fs, "/f") == 0o755
    owned(fs, "/g", 1000, 1000)
    user.chmod("/g", 0o2755)
    assert mode_of(fs, "/g") == 0o2755


def test_non_root_may_set_sticky_on_own_directory(fs: Any, user: Any) -> None:
    owned(fs, "/d", 1000, 1000, is_dir=True)
    user.chmod("/d", 0o1777)
    assert mode_of(fs, "/d") == 0o1777


# -- chmod / chown / utime permissions -------------------------------------------------------


def test_chmod_others_file_is_eperm(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 0, mode=0o666)
    expect_errno(errno.EPERM, user.chmod, "/f", 0o777, filename="/f")
    fd = user.open("/f", RDWR)
    expect_errno(errno.EPERM, user.fchmod, fd, 0o777)
    user.close(fd)
    assert mode_of(fs, "/f") == 0o666


def test_owner_may_chmod(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000)
    user.chmod("/f", 0o4700)
    assert mode_of(fs, "/f") == 0o4700


def test_chown_others_file_is_eperm(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 0, mode=0o666)
    expect_errno(errno.EPERM, user.chown, "/f", 1000, 1000, filename="/f")


def test_chown_own_file_to_other_uid_is_eperm(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000)
    expect_errno(errno.EPERM, user.chown, "/f", 1001, -1, filename="/f")
    assert fs.stat("/f").st_uid == 1000


def test_chown_own_file_to_own_uid_and_groups(fs: Any, as_user: Any) -> None:
    owned(fs, "/f", 1000, 100)
    p = as_user(1000, 1000, groups=(200,))
    p.chown("/f", 1000, 1000)
    assert fs.stat("/f").st_gid == 1000
    p.chown("/f", -1, 200)
    assert fs.stat("/f").st_gid == 200
    p.chown("/f", -1, -1)
    expect_errno(errno.EPERM, p.chown, "/f", -1, 300, filename="/f")
    assert fs.stat("/f").st_gid == 200


def test_chown_by_non_root_clears_setuid(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o4755)
    user.chown("/f", -1, 1000)
    assert mode_of(fs, "/f") == 0o755


def test_lchown_own_symlink(fs: Any, user: Any) -> None:
    shared_dir(fs)
    user.symlink("nowhere", "/w/l")
    user.lchown("/w/l", -1, 1000)
    expect_errno(errno.EPERM, user.lchown, "/w/l", 0, -1)


def test_utime_now_needs_write_access_or_ownership(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 0, mode=0o666)
    fs.utime("/f", ns=(OLD_NS, OLD_NS))
    user.utime("/f")  # not the owner, but may write: "now" is allowed
    assert fs.stat("/f").st_mtime_ns != OLD_NS
    fs.chmod("/f", 0o644)
    expect_errno(errno.EACCES, user.utime, "/f")


def test_utime_explicit_times_need_ownership(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 0, mode=0o666)
    expect_errno(errno.EPERM, user.utime, "/f", ns=(1, 2))
    expect_errno(errno.EPERM, user.utime, "/f", (1, 2))
    owned(fs, "/g", 1000, 1000, mode=0o444)
    user.utime("/g", ns=(1, 2))
    assert fs.stat("/g").st_mtime_ns == 2
    user.utime("/g")


# -- access() --------------------------------------------------------------------------------


def test_access_for_unprivileged_user(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", mode=0o644)
    assert user.access("/f", os.R_OK) is True
    assert user.access("/f", os.W_OK) is False
    assert user.access("/f", os.X_OK) is False
    assert user.access("/f", os.R_OK | os.W_OK) is False
    fs.chmod("/f", 0o755)
    assert user.access("/f", os.R_OK | os.X_OK) is True


def test_access_through_unsearchable_directory(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o700)
    owned(fs, "/d/f", 0, 0, mode=0o666)
    assert user.access("/d/f", os.F_OK) is False
    assert user.access("/d", os.F_OK) is True
    assert user.access("/d", os.R_OK) is False


def test_access_uses_group_membership(fs: Any, as_user: Any) -> None:
    owned(fs, "/f", 0, 100, mode=0o640)
    assert as_user(1000, 1000, groups=(100,)).access("/f", os.R_OK) is True
    assert as_user(1000, 1000).access("/f", os.R_OK) is False
    assert as_user(1000, 100).access("/f", os.R_OK) is True


# -- devices ---------------------------------------------------------------------------------


def test_mknod_device_by_non_root_is_eperm(fs: Any, user: Any) -> None:
    shared_dir(fs)
    expect_errno(errno.EPERM, user.mknod, "/w/c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    expect_errno(errno.EPERM, user.mknod, "/w/b", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    user.mknod("/w/p", stat.S_IFIFO | 0o600)
    assert fs.stat("/w/p").st_uid == 1000


# -- processes are independent ----------------------------------------------------------------


def test_processes_have_own_cwd_and_descriptors(fs: Any, user: Any) -> None:
    shared_dir(fs)
    mkfile(fs, "/w/f", b"x", 0o644)
    fs.chdir("/w")
    assert user.getcwd() == "/"
    fd = fs.open("/w/f", RDONLY)
    fd_user = user.open("/w/f", RDONLY)
    assert fs.read(fd, 1) == b"x"
    assert user.read(fd_user, 1) == b"x"
    fs.close(fd)
    fs.chdir("/")
    assert user.pread(fd_user, 1, 0) == b"x"
    user.close(fd_user)


def test_changes_are_visible_across_processes(fs: Any, user: Any) -> None:
    shared_dir(fs)
    fd = user.open("/w/f", CREAT | WRONLY, 0o644)
    user.write(fd, b"shared")
    assert readfile(fs, "/w/f") == b"shared"
    user.close(fd)


# -- more edge cases -------------------------------------------------------------------------


def test_write_search_without_read_directory(fs: Any, user: Any) -> None:
    shared_dir(fs, "/d", 0o333)
    user.close(user.open("/d/f", CREAT | WRONLY, 0o644))
    expect_errno(errno.EACCES, user.listdir, "/d", filename="/d")
    assert user.stat("/d/f").st_uid == 1000


def test_owner_without_permission_bits_is_denied(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o000, data=b"x")
    expect_errno(errno.EACCES, user.open, "/f", RDONLY, filename="/f")
    owned(fs, "/d", 1000, 1000, mode=0o500, is_dir=True)
    expect_errno(errno.EACCES, user.mkdir, "/d/x", filename="/d/x")


def test_rmdir_permission_checked_before_emptiness(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/d/e")
    mkfile(fs, "/d/e/f")
    expect_errno(errno.EACCES, user.rmdir, "/d/e", filename="/d/e")


def test_lookup_checked_before_write_permission(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.ENOENT, user.unlink, "/d/nope", filename="/d/nope")
    expect_errno(errno.ENOENT, user.rmdir, "/d/nope", filename="/d/nope")
    expect_errno(errno.ENOENT, user.rename, "/d/nope", "/d/x")


def test_open_creat_existing_in_unwritable_directory(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    owned(fs, "/d/f", 1000, 1000, mode=0o644)
    fd = user.open("/d/f", CREAT | WRONLY, 0o644)
    user.write(fd, b"ok")
    user.close(fd)
    assert readfile(fs, "/d/f") == b"ok"


def test_rename_to_itself_needs_no_write_permission(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    user.rename("/d/f", "/d/f")
    assert exists(fs, "/d/f")


def test_chmod_in_unsearchable_directory_is_eacces(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o700)
    owned(fs, "/d/f", 1000, 1000)
    expect_errno(errno.EACCES, user.chmod, "/d/f", 0o600, filename="/d/f")


def test_stat_of_unreadable_directory_itself(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o000)
    assert stat.S_ISDIR(user.stat("/d").st_mode)


def test_getcwd_needs_no_permissions_on_ancestors(fs: Any, user: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    user.chdir("/a/b")
    fs.chmod("/a", 0o000)
    assert user.getcwd() == "/a/b"


def test_fchown_by_non_owner_is_eperm(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 0, mode=0o666)
    fd = user.open("/f", RDWR)
    expect_errno(errno.EPERM, user.fchown, fd, 1000, 1000)
    user.close(fd)


def test_ftruncate_on_descriptor_opened_before_chmod(fs: Any, user: Any) -> None:
    owned(fs, "/f", 1000, 1000, mode=0o600, data=b"abc")
    fd = user.open("/f", RDWR)
    fs.chmod("/f", 0o400)
    user.ftruncate(fd, 1)
    user.close(fd)
    assert readfile(fs, "/f") == b"a"


def test_write_by_outsider_clears_setgid_without_group_exec(fs: Any, user: Any) -> None:
    # Linux (setattr_should_drop_sgid): a writer outside the file's group drops S_ISGID
    owned(fs, "/f", 0, 0, mode=0o2666, data=b"x")
    fd = user.open("/f", WRONLY)
    user.write(fd, b"y")
    user.close(fd)
    assert mode_of(fs, "/f") == 0o666


def test_write_by_group_member_keeps_setgid_without_group_exec(fs: Any, user: Any) -> None:
    owned(fs, "/f", 0, 1000, mode=0o2666, data=b"x")
    fd = user.open("/f", WRONLY)
    user.write(fd, b"y")
    user.close(fd)
    assert mode_of(fs, "/f") == 0o2666


def test_access_x_on_directory_for_user(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o711)
    assert user.access("/d", os.X_OK) is True
    assert user.access("/d", os.R_OK) is False
    assert user.access("/d", os.W_OK) is False
