"""Extended attributes and POSIX ACLs, against the host's tmpfs as the reference.

Root (``fs``) sets trees up; ``user`` (uid 1000) and ``as_user`` probe the
namespace rules (user/trusted/security/system), Linux's limits and errno
order, and ACL enforcement, chmod interplay and inheritance.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

from tests.contract.helpers import RDONLY, RDWR, expect_errno, mkfile

ACL_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEF = 0xFFFFFFFF
ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"


def acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def parse(value: bytes) -> list[tuple[int, int, int]]:
    return [struct.unpack_from("<HHI", value, 4 + 8 * i) for i in range((len(value) - 4) // 8)]


def named_user_acl(uid: int = 1000, perm: int = 6, mask: int = 6) -> bytes:
    return acl((USER_OBJ, 6, UNDEF), (USER, perm, uid), (GROUP_OBJ, 4, UNDEF), (MASK, mask, UNDEF),
               (OTHER, 0, UNDEF))


# -- user.* --------------------------------------------------------------------------------

def test_user_xattr_roundtrip(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.setxattr("/f", "user.a", b"1")
    fs.setxattr("/f", "user.b", b"")
    fs.setxattr("/f", b"user.c", b"x" * 65536)
    assert fs.getxattr("/f", "user.a") == b"1"
    assert fs.getxattr("/f", "user.b") == b""
    assert fs.getxattr("/f", "user.c") == b"x" * 65536
    assert sorted(fs.listxattr("/f")) == ["user.a", "user.b", "user.c"]   # order unspecified
    fs.setxattr("/f", "user.a", b"2")
    assert fs.getxattr("/f", "user.a") == b"2"
    fs.removexattr("/f", "user.b")
    assert sorted(fs.listxattr("/f")) == ["user.a", "user.c"]
    expect_errno(errno.ENODATA, fs.getxattr, "/f", "user.b", filename="/f")
    expect_errno(errno.ENODATA, fs.removexattr, "/f", "user.b", filename="/f")


def test_xattr_flags(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.setxattr("/f", "user.a", b"1", os.XATTR_CREATE)
    expect_errno(errno.EEXIST, fs.setxattr, "/f", "user.a", b"2", os.XATTR_CREATE, filename="/f")
    expect_errno(errno.ENODATA, fs.setxattr, "/f", "user.b", b"2", os.XATTR_REPLACE)
    fs.setxattr("/f", "user.a", b"3", os.XATTR_REPLACE)
    expect_errno(errno.ENODATA, fs.setxattr, "/f", "user.b", b"2", 3)
    expect_errno(errno.EINVAL, fs.setxattr, "/f", "user.b", b"2", 4)
    assert fs.getxattr("/f", "user.a") == b"3"


def test_xattr_limits_and_namespaces(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ERANGE, fs.setxattr, "/f", "user." + "a" * 251, b"1")
    fs.setxattr("/f", "user." + "a" * 250, b"1")
    expect_errno(errno.ERANGE, fs.setxattr, "/f", "", b"1")
    expect_errno(errno.ERANGE, fs.getxattr, "/f", "")
    expect_errno(errno.E2BIG, fs.setxattr, "/f", "user.big", b"1" * 65537)
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/f", "bogus.x", b"1")
    expect_errno(errno.EOPNOTSUPP, fs.getxattr, "/f", "bogus.x")
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/f", "user", b"1")
    expect_errno(errno.EINVAL, fs.setxattr, "/f", "user.", b"1")
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/f", "system.foo", b"1")
    expect_errno(errno.ENOENT, fs.getxattr, "/nope", "user.a", filename="/nope")


def test_xattr_on_descriptor_and_symlink(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fd = fs.open("/f", RDONLY)
    try:
        fs.setxattr(fd, "user.fd", b"v")
        assert fs.getxattr(fd, "user.fd") == b"v"
        assert "user.fd" in fs.listxattr(fd)
        fs.removexattr(fd, "user.fd")
        expect_errno(errno.ENODATA, fs.getxattr, fd, "user.fd", filename=fd)
    finally:
        fs.close(fd)
    fs.setxattr("/l", "user.through", b"1")              # follows the link
    assert fs.getxattr("/f", "user.through") == b"1"
    assert fs.listxattr("/l", follow_symlinks=False) == []
    expect_errno(errno.EPERM, fs.setxattr, "/l", "user.x", b"1", follow_symlinks=False)
    expect_errno(errno.ENODATA, fs.getxattr, "/l", "user.x", follow_symlinks=False)
    fs.setxattr("/l", "trusted.x", b"1", follow_symlinks=False)
    assert fs.listxattr("/l", follow_symlinks=False) == ["trusted.x"]


def test_user_xattr_only_on_files_and_directories(fs: Any) -> None:
    fs.mkfifo("/p")
    fs.mkdir("/d")
    expect_errno(errno.EPERM, fs.setxattr, "/p", "user.x", b"1", filename="/p")
    expect_errno(errno.ENODATA, fs.getxattr, "/p", "user.x")
    fs.setxattr("/d", "user.x", b"1")
    assert fs.listxattr("/d") == ["user.x"]


def test_unprivileged_namespaces(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", mode=0o644)
    fs.setxattr("/f", "trusted.t", b"1")
    fs.setxattr("/f", "security.s", b"1")
    fs.setxattr("/f", "user.u", b"1")
    assert sorted(user.listxattr("/f")) == ["security.s", "user.u"]
    assert user.getxattr("/f", "security.s") == b"1"
    assert user.getxattr("/f", "user.u") == b"1"
    expect_errno(errno.ENODATA, user.getxattr, "/f", "trusted.t")
    expect_errno(errno.EPERM, user.setxattr, "/f", "trusted.t", b"2")
    expect_errno(errno.EPERM, user.setxattr, "/f", "security.s", b"2")
    expect_errno(errno.EPERM, user.removexattr, "/f", "security.s")
    expect_errno(errno.EACCES, user.setxattr, "/f", "user.u", b"2", filename="/f")
    expect_errno(errno.EACCES, user.removexattr, "/f", "user.u")
    expect_errno(errno.EACCES, user.setxattr, "/f", "bogus.x", b"1")   # permission first
    expect_errno(errno.EOPNOTSUPP, user.setxattr, "/f", "system.foo", b"1")
    fs.chown("/f", 1000, 1000)
    user.setxattr("/f", "user.u", b"mine")
    expect_errno(errno.EPERM, user.setxattr, "/f", "security.s", b"2")
    fs.chmod("/f", 0o200)
    expect_errno(errno.EACCES, user.getxattr, "/f", "user.u")
    assert fs.getxattr("/f", "user.u") == b"mine"


def test_sticky_directory_xattrs(fs: Any, user: Any) -> None:
    fs.mkdir("/s")
    fs.chmod("/s", 0o1777)
    expect_errno(errno.EPERM, user.setxattr, "/s", "user.x", b"1")
    fs.chown("/s", 1000, 1000)
    user.setxattr("/s", "user.x", b"1")


# -- POSIX ACLs ---------------------------------------------------------------------------

def test_no_acl_reads_enodata(fs: Any, user: Any) -> None:
    mkfile(fs, "/f")
    fs.mkdir("/d")
    expect_errno(errno.ENODATA, fs.getxattr, "/f", ACCESS, filename="/f")
    expect_errno(errno.ENODATA, user.getxattr, "/d", DEFAULT)
    fs.removexattr("/f", ACCESS)                     # nothing to remove: no error
    assert fs.listxattr("/f") == []


def test_access_acl_grants_named_user(fs: Any, user: Any, as_user: Any) -> None:
    mkfile(fs, "/f", b"data", 0o600)
    expect_errno(errno.EACCES, user.open, "/f", RDONLY)
    fs.setxattr("/f", ACCESS, named_user_acl())
    assert fs.stat("/f").st_mode & 0o777 == 0o660      # group bits are the mask
    assert parse(fs.getxattr("/f", ACCESS)) == parse(named_user_acl())
    assert fs.listxattr("/f") == [ACCESS]
    user.close(user.open("/f", RDWR))
    other = as_user(2000, 2000)
    expect_errno(errno.EACCES, other.open, "/f", RDONLY)
    group = as_user(2001, 0)
    group.close(group.open("/f", RDONLY))               # GROUP_OBJ r--
    expect_errno(errno.EACCES, group.open, "/f", RDWR)


def test_mask_limits_named_entries_and_chmod_moves_it(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", b"data", 0o600)
    fs.setxattr("/f", ACCESS, named_user_acl(perm=6, mask=4))
    assert fs.stat("/f").st_mode & 0o777 == 0o640
    expect_errno(errno.EACCES, user.open, "/f", RDWR)
    user.close(user.open("/f", RDONLY))
    fs.chmod("/f", 0o670)                               # group bits -> mask rwx
    got = parse(fs.getxattr("/f", ACCESS))
    assert (MASK, 7, UNDEF) in got and (GROUP_OBJ, 4, UNDEF) in got and (USER, 6, 1000) in got
    user.close(user.open("/f", RDWR))
    fs.chmod("/f", 0o600)
    expect_errno(errno.EACCES, user.open, "/f", RDONLY)
    assert (MASK, 0, UNDEF) in parse(fs.getxattr("/f", ACCESS))


def test_minimal_acl_is_just_mode(fs: Any) -> None:
    mkfile(fs, "/f", mode=0o600)
    fs.setxattr("/f", ACCESS, acl((USER_OBJ, 7, UNDEF), (GROUP_OBJ, 5, UNDEF), (OTHER, 1, UNDEF)))
    assert fs.stat("/f").st_mode & 0o777 == 0o751
    expect_errno(errno.ENODATA, fs.getxattr, "/f", ACCESS)
    assert fs.listxattr("/f") == []


def test_acl_errors(fs: Any, user: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/f", ACCESS, b"\x01\0\0\0")
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS, b"\x02\0\0\0\0")
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/f", ACCESS, b"\x00\xff\x00\xff\x00\xff")
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS, b"\x02\0")
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS,
                 acl((USER_OBJ, 6, UNDEF), (OTHER, 4, UNDEF)))             # no GROUP_OBJ
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS,
                 acl((USER_OBJ, 6, UNDEF), (USER, 6, 1000), (GROUP_OBJ, 4, UNDEF),
                     (OTHER, 4, UNDEF)))                                  # named, no mask
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS,
                 acl((GROUP_OBJ, 4, UNDEF), (USER_OBJ, 6, UNDEF), (OTHER, 4, UNDEF)))
    expect_errno(errno.EINVAL, fs.setxattr, "/f", ACCESS,
                 acl((USER_OBJ, 6, UNDEF), (USER, 6, 7), (GROUP_OBJ, 4, UNDEF), (USER, 6, 8),
                     (MASK, 6, UNDEF), (OTHER, 4, UNDEF)))                # tags out of order
    dup = acl((USER_OBJ, 6, UNDEF), (USER, 6, 7), (USER, 4, 7), (GROUP_OBJ, 4, UNDEF),
              (MASK, 6, UNDEF), (OTHER, 4, UNDEF))
    fs.setxattr("/f", ACCESS, dup)              # Linux no longer checks named ids
    assert fs.getxattr("/f", ACCESS) == dup
    expect_errno(errno.EOPNOTSUPP, fs.setxattr, "/l", ACCESS, named_user_acl(),
                 follow_symlinks=False)
    expect_errno(errno.EOPNOTSUPP, fs.getxattr, "/l", ACCESS, follow_symlinks=False)
    expect_errno(errno.EOPNOTSUPP, fs.removexattr, "/l", DEFAULT, follow_symlinks=False)
    expect_errno(errno.EACCES, fs.setxattr, "/f", DEFAULT, named_user_acl())
    fs.setxattr("/f", DEFAULT, b"\x02\0\0\0")            # an empty default: nothing to do
    expect_errno(errno.EPERM, user.setxattr, "/f", ACCESS, named_user_acl(), filename="/f")
    expect_errno(errno.EPERM, user.removexattr, "/f", ACCESS)
    expect_errno(errno.EOPNOTSUPP, user.setxattr, "/f", ACCESS, b"\x01\0\0\0")


def test_owner_sets_acl_and_loses_setgid_outside_group(fs: Any, user: Any) -> None:
    mkfile(fs, "/f", mode=0o640)
    fs.chown("/f", 1000, 0)
    fs.chmod("/f", 0o2640)
    user.setxattr("/f", ACCESS, named_user_acl(uid=1234))
    mode = fs.stat("/f").st_mode
    assert mode & 0o7777 == 0o660
    user.removexattr("/f", ACCESS)
    expect_errno(errno.ENODATA, fs.getxattr, "/f", ACCESS)
    assert fs.stat("/f").st_mode & 0o777 == 0o660


def test_default_acl_is_inherited(fs: Any, user: Any) -> None:
    fs.mkdir("/d")
    fs.chmod("/d", 0o777)
    dacl = acl((USER_OBJ, 7, UNDEF), (USER, 7, 1000), (GROUP_OBJ, 5, UNDEF), (MASK, 7, UNDEF),
               (OTHER, 5, UNDEF))
    fs.setxattr("/d", DEFAULT, dacl)
    assert parse(fs.getxattr("/d", DEFAULT)) == parse(dacl)
    fs.umask(0o077)                                   # ignored under a default ACL
    try:
        mkfile(fs, "/d/f", mode=0o666)
        fs.mkdir("/d/sub", 0o755)
        fs.mkfifo("/d/p", 0o640)
    finally:
        fs.umask(0o022)
    assert fs.stat("/d/f").st_mode & 0o777 == 0o664
    assert parse(fs.getxattr("/d/f", ACCESS)) == [
        (USER_OBJ, 6, UNDEF), (USER, 7, 1000), (GROUP_OBJ, 5, UNDEF), (MASK, 6, UNDEF),
        (OTHER, 4, UNDEF)]
    expect_errno(errno.ENODATA, fs.getxattr, "/d/f", DEFAULT)
    assert fs.stat("/d/sub").st_mode & 0o777 == 0o755
    assert parse(fs.getxattr("/d/sub", DEFAULT)) == parse(dacl)
    assert (MASK, 5, UNDEF) in parse(fs.getxattr("/d/sub", ACCESS))
    assert fs.stat("/d/p").st_mode & 0o777 == 0o640
    user.close(user.open("/d/f", RDWR))
    fs.removexattr("/d", DEFAULT)
    mkfile(fs, "/d/g", mode=0o666)
    assert fs.stat("/d/g").st_mode & 0o777 == 0o644
    expect_errno(errno.ENODATA, fs.getxattr, "/d/g", ACCESS)


def test_default_acl_without_named_entries_gives_plain_mode(fs: Any) -> None:
    fs.mkdir("/d")
    fs.setxattr("/d", DEFAULT, acl((USER_OBJ, 7, UNDEF), (GROUP_OBJ, 0, UNDEF), (OTHER, 0, UNDEF)))
    mkfile(fs, "/d/f", mode=0o666)
    assert fs.stat("/d/f").st_mode & 0o777 == 0o600
    assert fs.listxattr("/d/f") == []


def test_acl_on_directory_controls_search(fs: Any, user: Any) -> None:
    fs.mkdir("/d", 0o700)
    mkfile(fs, "/d/f", b"x", 0o644)
    expect_errno(errno.EACCES, user.stat, "/d/f")
    fs.setxattr("/d", ACCESS, named_user_acl(perm=5, mask=5))
    assert user.stat("/d/f").st_size == 1
    assert user.listdir("/d") == ["f"]
    expect_errno(errno.EACCES, user.unlink, "/d/f")
