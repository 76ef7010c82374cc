"""``rumpfs mount MOUNTPOINT --image disk.img``: an ext4 image (bare, or a
partition of a GPT disk) served to the host through FUSE; what the host
writes is on the image, which e2fsck calls clean after the unmount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conformance.fuse.test_cli import finish, mountpoint, run_cli, start_mount
from tests.unit.frontends.test_image import mkfs, partitioned, tmp, tree

__all__ = ["mountpoint", "tmp"]     # fixtures used here


def fsck_clean(img: Path) -> None:
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_serve_a_bare_ext4_image(mountpoint: str, tmp: Path) -> None:
    img = mkfs(tmp / "e.img", "ext4", 32 * 1024 * 1024, tree(tmp / "src"))
    proc = start_mount(mountpoint, "--image", str(img))
    try:
        assert sorted(os.listdir(mountpoint)) == ["hello.txt", "lost+found", "sub"]
        assert Path(mountpoint, "sub", "deep").read_bytes() == b"deep" * 1000
        Path(mountpoint, "made").mkdir()
        Path(mountpoint, "made", "by-host").write_bytes(b"h" * 70000)
        os.symlink("made/by-host", os.path.join(mountpoint, "link"))
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=True, timeout=60)
    code, err = finish(proc)
    assert code == 0, err
    fsck_clean(img)
    out = subprocess.run(["debugfs", "-R", "cat /made/by-host", str(img)], check=True,
                         capture_output=True).stdout
    assert out == b"h" * 70000


def test_serve_a_partition_read_only(mountpoint: str, tmp: Path) -> None:
    img = partitioned(tmp, tree(tmp / "src"))
    before = img.read_bytes()
    proc = start_mount(mountpoint, "--image", str(img), "--partition", "2", "--fs", "ext2",
                       "--read-only")
    try:
        assert Path(mountpoint, "hello.txt").read_text() == "hello\n"
        with pytest.raises(OSError) as ei:
            Path(mountpoint, "x").write_text("no")
        assert ei.value.errno == 30             # EROFS
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=True, timeout=60)
    code, err = finish(proc)
    assert code == 0, err
    assert img.read_bytes() == before


def test_image_argument_errors(tmp: Path) -> None:
    img = partitioned(tmp, tree(tmp / "src"))
    mnt = tmp / "mnt"
    mnt.mkdir()
    r = run_cli("mount", str(mnt), "--partition", "1")
    assert r.returncode == 2 and "--partition and --fs go with --image" in r.stderr
    r = run_cli("mount", str(mnt), "--image", str(img), "--etfs", "/a=/tmp")
    assert r.returncode == 2 and "no --etfs" in r.stderr
    r = run_cli("mount", str(mnt), "--image", str(img), "--partition", "7")
    assert r.returncode == 2 and "has no partition 7" in r.stderr
    r = run_cli("mount", str(mnt), "--image", str(img), "--partition", "1")
    assert r.returncode == 2 and "found no file system" in r.stderr
    r = run_cli("mount", str(mnt), "--image", str(tmp / "missing.img"))
    assert r.returncode == 2 and "No such file or directory" in r.stderr
    bad = tmp / "bad.img"
    bad.write_bytes(bytes(4096))
    r = run_cli("mount", str(mnt), "--image", str(bad), "--fs", "ext2")
    assert r.returncode == 1 and "--image" in r.stderr
