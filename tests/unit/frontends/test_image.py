"""Mounting disk images in a kernel (frontends/image.py, sbin/fstyp.py): type
detection from the magic, partition choice, errors, write-protected images,
and an image that e2fsck calls clean after the kernel's shutdown."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.dev.test_dkwedge import tool

from rumpfs import Kernel
from rumpfs.frontends.image import mount_image
from rumpfs.sbin.fstyp import probe

MiB = 1024 * 1024


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rumpfs-img-", dir="/dev/shm"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tree(d: Path) -> Path:
    (d / "sub").mkdir(parents=True)
    (d / "hello.txt").write_text("hello\n")
    (d / "sub" / "deep").write_bytes(b"deep" * 1000)
    return d


def mkfs(img: Path, kind: str, size: int = 8 * MiB, src: Path | None = None) -> Path:
    with open(img, "wb") as f:
        f.truncate(size)
    if kind.startswith("ext"):
        args = [f"mkfs.{kind}", "-q", "-F"] + (["-d", str(src)] if src else []) + [str(img)]
    else:
        args = ["mkfs.fat", "-F", kind[3:], str(img)]
    subprocess.run(args, check=True, capture_output=True)
    return img


def head(img: Path) -> bytes:
    with open(img, "rb") as f:
        return f.read(64 * 1024)


@pytest.mark.parametrize("kind", ["ext2", "ext3", "ext4"])
def test_fstyp_ext(tmp: Path, kind: str) -> None:
    assert probe(head(mkfs(tmp / "e.img", kind))) == ("ext2", kind)


@pytest.mark.parametrize("bits, size", [("12", 4 * MiB), ("16", 32 * MiB), ("32", 64 * MiB)])
def test_fstyp_fat(tmp: Path, bits: str, size: int) -> None:
    assert probe(head(mkfs(tmp / "f.img", "fat" + bits, size))) == ("msdos", "fat" + bits)


def test_fstyp_unknown() -> None:
    assert probe(bytes(64 * 1024)) is None
    ntfs = bytearray(4096)
    ntfs[0:3] = b"\xeb\x52\x90"
    ntfs[3:11] = b"NTFS    "
    ntfs[510:512] = b"\x55\xaa"
    assert probe(bytes(ntfs)) is None
    bad_ext = bytearray(4096)
    bad_ext[1080:1082] = b"\x53\xef"
    bad_ext[1024 + 24] = 40                     # log block size out of range
    assert probe(bytes(bad_ext)) is None


def test_bare_ext4_image(tmp: Path) -> None:
    img = mkfs(tmp / "e.img", "ext4", src=tree(tmp / "src"))
    with Kernel() as k:
        im = mount_image(k, img)
        assert (im.device, im.fstype, im.kind, im.partition, im.read_only) == (
            "/dev/rumpdisk0", "ext2", "ext4", None, False)
        assert sorted(k.listdir("/image")) == ["hello.txt", "lost+found", "sub"]
        with k.open_file("/image/sub/deep", "rb") as f:
            assert f.read() == b"deep" * 1000


def partitioned(tmp: Path, src: Path) -> Path:
    """GPT: p1 empty (zeros), p2 ext2 with the tree, p3 FAT16."""
    img = tmp / "disk.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run([tool("sgdisk"), "-n", "1:2048:+4M", "-n", "2:0:+8M", "-c", "2:linux",
                    "-n", "3:0:+32M", str(img)], check=True, capture_output=True)
    fs = mkfs(tmp / "p2.img", "ext2", 8 * MiB, src)
    fat = mkfs(tmp / "p3.img", "fat16", 32 * MiB)
    with Kernel() as k:
        parts = {p.index: p for p in k.attach_disk("/dev/d", img)}
    with open(img, "r+b") as f:
        f.seek(parts[2].start)
        f.write(fs.read_bytes())
        f.seek(parts[3].start)
        f.write(fat.read_bytes())
    return img


def test_first_known_partition_is_chosen(tmp: Path) -> None:
    img = partitioned(tmp, tree(tmp / "src"))
    with Kernel() as k:
        im = mount_image(k, img)
        assert im.device == "/dev/rumpdisk0p2" and im.partition is not None
        assert im.partition.name == "linux" and im.kind == "ext2"
        assert [p.index for p in im.partitions] == [1, 2, 3]
        assert k.open_file("/image/hello.txt").read() == "hello\n"


def test_partition_choice_and_errors(tmp: Path) -> None:
    img = partitioned(tmp, tree(tmp / "src"))
    with Kernel() as k, pytest.raises(ValueError, match=r"no partition 9 \(partitions: 1 "):
        mount_image(k, img, partition=9)
    with Kernel() as k, pytest.raises(ValueError, match=r"found no file system rumpfs knows"):
        mount_image(k, img, partition=1)
    with Kernel() as k, pytest.raises(ValueError, match="rumpdisk0: unknown"):
        mount_image(k, img, partition=0)        # the whole disk: a GPT, no fs
    with Kernel() as k:
        im = mount_image(k, img, partition=2, read_only=True, at="/mnt/x")
        assert im.read_only and k.listdir("/mnt/x/sub") == ["deep"]
    with Kernel() as k:
        im = mount_image(k, img, fstype="ext2")
        assert im.device == "/dev/rumpdisk0p2"
    with Kernel() as k, pytest.raises(ValueError, match="found no nosuchfs file system"):
        mount_image(k, img, fstype="nosuchfs")


def test_fs_type_given_for_a_bare_image_is_the_users_word(tmp: Path) -> None:
    img = mkfs(tmp / "e.img", "ext2")
    with Kernel() as k, pytest.raises(OSError) as ei:
        mount_image(k, img, fstype="nosuchfs")
    assert ei.value.errno == 19                     # ENODEV


def test_write_protected_image_is_mounted_read_only(tmp: Path) -> None:
    img = mkfs(tmp / "e.img", "ext2", src=tree(tmp / "src"))
    os.chmod(img, 0o444)
    before = img.read_bytes()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # a user who may read but not write it
        os.close(r)
        code = 1
        try:
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
            with Kernel() as k:
                im = mount_image(k, img)
                msg = f"{im.read_only} {im.warnings} {k.open_file('/image/hello.txt').read()!r}"
                os.write(w, msg.encode())
            code = 0
        except BaseException as e:
            os.write(w, repr(e).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out.startswith("True [") and "write-protected, mounted read-only" in out
    assert out.endswith("'hello\\n'")
    assert img.read_bytes() == before


def test_shutdown_leaves_a_clean_image(tmp: Path) -> None:
    img = mkfs(tmp / "e.img", "ext4", src=tree(tmp / "src"))
    k = Kernel()
    mount_image(k, img)
    k.mkdir("/image/new")
    with k.open_file("/image/new/file", "wb") as f:
        f.write(b"x" * 100_000)
    k.shutdown()                                    # no unmount: shutdown flushes
    fsck = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    out = subprocess.run(["debugfs", "-R", "cat /new/file", str(img)], capture_output=True,
                         check=True).stdout
    assert out == b"x" * 100_000


def test_bare_fat_image(tmp: Path) -> None:
    img = mkfs(tmp / "f.img", "fat16", 32 * MiB)
    subprocess.run(["mcopy", "-i", str(img), str(tree(tmp / "src") / "hello.txt"), "::HELLO.TXT"],
                   check=True)
    with Kernel() as k:
        im = mount_image(k, img)
        assert (im.fstype, im.kind, im.device) == ("msdos", "fat16", "/dev/rumpdisk0")
        assert k.open_file("/image/hello.txt").read() == "hello\n"


def test_first_partition_wins_whatever_its_type(tmp: Path) -> None:
    """MBR: p1 FAT16, p2 ext2: p1 is chosen; --fs ext2 picks p2."""
    img = tmp / "disk.img"
    with open(img, "wb") as f:
        f.truncate(48 * MiB)
    subprocess.run([tool("sfdisk"), "-q", str(img)], check=True,
                   input=b"label: dos\nstart=2048, size=32M, type=6\nsize=8M, type=83\n")
    fat = mkfs(tmp / "p1.img", "fat16", 32 * MiB)
    ext = mkfs(tmp / "p2.img", "ext2", 8 * MiB, tree(tmp / "src"))
    with open(img, "r+b") as f:
        f.seek(MiB)
        f.write(fat.read_bytes())
        f.write(ext.read_bytes())
    with Kernel() as k:
        im = mount_image(k, img)
        assert (im.device, im.fstype) == ("/dev/rumpdisk0p1", "msdos")
    with Kernel() as k:
        im = mount_image(k, img, fstype="ext2")
        assert (im.device, im.kind) == ("/dev/rumpdisk0p2", "ext2")
        assert k.listdir("/image/sub") == ["deep"]
