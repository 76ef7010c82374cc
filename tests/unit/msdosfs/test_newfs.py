"""newfs_msdos: layouts as mkfs.fat chooses them; images fsck.fat and mtools accept."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from tests.unit.msdosfs.support import fsck, make_image, mtools

import rumpfs
from rumpfs.fs.msdosfs.bootsect import parse_bpb
from rumpfs.sbin.newfs_msdos import newfs_msdos, plan

KIB = 1024


@pytest.mark.parametrize("kib", [1440, 3000, 16384, 300000, 524288])
@pytest.mark.parametrize(("fat", "spc"), [(None, None), (12, None), (16, None), (32, None),
                                          (None, 1), (16, 2)])
def test_layout_as_mkfs_fat(tmp_path: Path, kib: int, fat: int | None, spc: int | None) -> None:
    img = tmp_path / "m.img"
    with open(img, "wb") as f:
        f.truncate(kib * KIB)
    args = (["-F", str(fat)] if fat else []) + (["-s", str(spc)] if spc else [])
    r = subprocess.run(["mkfs.fat", *args, str(img)], capture_output=True)
    try:
        lay = plan(kib * KIB, fat_type=fat, sectors_per_cluster=spc)
    except ValueError:
        assert r.returncode != 0, "mkfs.fat made one where we refused"
        return
    assert r.returncode == 0, r.stderr
    g = parse_bpb(img.read_bytes()[:512])
    assert (lay.fat_bits, lay.spc, lay.reserved, lay.nfats, lay.root_entries, lay.media) == (
        g.fat_bits, g.spc, g.reserved, g.nfats, g.root_entries, g.media)
    # mkfs.fat also rounds the sector count down to its geometry (< 64 sectors less)
    assert 0 <= lay.total_sectors - g.total_sectors < 64
    assert abs(lay.fat_sectors - g.fat_sectors) <= 1


@pytest.mark.parametrize(("size", "fat", "spc"), [
    (1440 * KIB, None, None), (8 << 20, 12, None), (32 << 20, 16, None), (16 << 20, 16, 1),
    (40 << 20, 32, 1), (300 << 20, 32, None),
])
def test_our_images_are_clean(tmp_path: Path, size: int, fat: int | None, spc: int | None) -> None:
    img = make_image(tmp_path / "o.img", size, fat=fat, spc=spc, label="MY DISK")
    out = fsck(img)
    g = parse_bpb(img.read_bytes()[:512], size)
    assert f"/{g.clusters} clusters" in out
    listing = mtools(img, "mdir", "-i", str(img), "::/").stdout.decode()
    assert "Volume in drive : is MY DISK" in listing
    if fat:
        assert g.fat_bits == fat


def test_newfs_in_a_kernel_on_a_block_device(tmp_path: Path) -> None:
    img = tmp_path / "dev.img"
    with open(img, "wb") as f:
        f.truncate(20 << 20)
    with rumpfs.Kernel() as k:
        k.etfs_register("/dev/fat", str(img), rumpfs.EtfsType.BLK)
        g = newfs_msdos(k, "/dev/fat", label="EFI", fat_type=16)
        assert g.fat_bits == 16 and g.label == b"EFI        "
        with pytest.raises(OSError) as e:
            newfs_msdos(k, "/dev/fat", fat_type=12, sectors_per_cluster=1)
        assert e.value.errno == errno.EINVAL
    fsck(img)


def test_label_checks() -> None:
    with pytest.raises(ValueError, match="longer than 11"):
        plan(8 << 20, label="x" * 12)
    with pytest.raises(ValueError, match="does not allow"):
        plan(8 << 20, label="a*b")
    assert plan(8 << 20, label="efi").label == b"EFI        "
