"""``rumpfs mount MNT --image sdcard.img --partition 1 --fs msdos``: the EFI
system partition of a GPT image served through FUSE; the host copies a tree
in with ``cp -r``, and mtools and fsck.fat find it on the image afterwards."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import rumpfs
from rumpfs.sbin.newfs_msdos import newfs_msdos
from tests.conformance.fuse.test_cli import finish, mountpoint, run_cli, start_mount
from tests.unit.frontends.test_image import tmp
from tests.unit.msdosfs.support import fsck, mtools

__all__ = ["mountpoint", "tmp"]     # fixtures used here

MIB = 1 << 20


def _unmount(mp: str) -> None:
    """fusermount3 -u, retried while the host still reports the mount busy
    (bounded: a loaded machine can be slow to let go of the last file)."""
    for _ in range(100):
        r = subprocess.run(["fusermount3", "-u", mp], capture_output=True, text=True,
                           timeout=60)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"fusermount3 -u {mp}: {r.stderr}")


def _esp_image(tmp: Path) -> Path:
    img = tmp / "sdcard.img"
    with open(img, "wb") as f:
        f.truncate(80 * MIB)
    subprocess.run(["sfdisk", "-q", str(img)], check=True,
                   input=b"label: gpt\nstart=2048, size=64M, type=uefi, name=ESP\n")
    with rumpfs.Kernel() as k:
        (esp,) = k.attach_disk("/dev/sda", str(img))
        assert esp.path is not None
        newfs_msdos(k, esp.path, fat_type=32, label="ESP")
    return img


def _tree(root: Path) -> dict[str, str]:
    files = {"EFI/BOOT/BOOTX64.EFI": 70000, "config.txt": 14, "overlays/a long name.dtbo": 5000,
             "Kernel8.img": 300000}
    out = {}
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = (rel.encode() * (size // len(rel) + 1))[:size]
        p.write_bytes(data)
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def test_serve_the_esp_of_a_gpt_image(mountpoint: str, tmp: Path) -> None:
    img = _esp_image(tmp)
    want = _tree(tmp / "build")
    proc = start_mount(mountpoint, "--image", str(img), "--partition", "1", "--fs", "msdos")
    try:
        for entry in sorted((tmp / "build").iterdir()):
            subprocess.run(["cp", "-r", str(entry), mountpoint], check=True, timeout=120)
        assert _hashes(Path(mountpoint)) == want
        assert sorted(os.listdir(mountpoint)) == ["EFI", "Kernel8.img", "config.txt",
                                                  "overlays"]
    finally:
        _unmount(mountpoint)
    code, err = finish(proc)
    assert code == 0, err
    part = tmp / "esp.img"                  # the partition alone, for fsck.fat
    with open(img, "rb") as f:
        f.seek(MIB)
        part.write_bytes(f.read(64 * MIB))
    fsck(part)
    out = tmp / "out"
    out.mkdir()
    mtools(img, "mcopy", "-s", "-i", f"{img}@@1M", "::/*", str(out))
    assert _hashes(out) == want


def test_type_found_from_the_boot_sector(mountpoint: str, tmp: Path) -> None:
    img = _esp_image(tmp)
    proc = start_mount(mountpoint, "--image", str(img), "--read-only")
    try:
        assert os.listdir(mountpoint) == []
        assert os.statvfs(mountpoint).f_bsize == 512
    finally:
        _unmount(mountpoint)
    code, err = finish(proc)
    assert code == 0, err


def test_background_server_writes_the_image(mountpoint: str, tmp: Path) -> None:
    """Without -f the server runs in a forked child: what the host wrote must
    reach the image when it stops, and the parent must not write it."""
    img = _esp_image(tmp)
    r = run_cli("mount", mountpoint, "--image", str(img), "--partition", "1")
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"pid (\d+)", r.stderr).group(1))   # type: ignore[union-attr]
    try:
        Path(mountpoint, "config.txt").write_text("enable_uart=1\n")
        Path(mountpoint, "EFI").mkdir()
    finally:
        _unmount(mountpoint)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:          # bounded wait for the server to exit
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the server did not exit")
    listing = mtools(img, "mdir", "-i", f"{img}@@1M", "::/").stdout.decode()
    assert "config.txt" in listing and "EFI" in listing
    part = tmp / "esp.img"
    with open(img, "rb") as f:
        f.seek(MIB)
        part.write_bytes(f.read(64 * MIB))
    fsck(part)
