"""Partition tables: Kernel.attach_disk over MBR/GPT images made by sfdisk and
sgdisk (util-linux, gdisk: scripts/bootstrap installs them) and by hand,
damaged ones, windows that hold, names, detach."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumpfs import Kernel
from rumpfs.dev.dkwedge import Partition, partition_name, read_partitions

MiB = 1024 * 1024
LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"
ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"


def tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is missing: run scripts/bootstrap (installs fdisk, gdisk)")
    return path


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rumpfs-dk-", dir="/dev/shm"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def k() -> Iterator[Kernel]:
    with Kernel() as kernel:
        yield kernel


def blank(path: Path, size: int = 8 * MiB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sfdisk(img: Path, script: str) -> list[dict[str, object]]:
    subprocess.run([tool("sfdisk"), "-q", str(img)], input=script.encode(), check=True)
    out = subprocess.run([tool("sfdisk"), "--json", str(img)], check=True,
                         capture_output=True).stdout
    parts: list[dict[str, object]] = json.loads(out)["partitiontable"]["partitions"]
    return parts


# -- hand-made tables -----------------------------------------------------------

def mbr_entry(ptype: int, lba: int, count: int, boot: int = 0) -> bytes:
    return struct.pack("<B3sB3sII", boot, b"\0\0\0", ptype, b"\0\0\0", lba, count)


def put_mbr(buf: bytearray, at: int, entries: list[bytes]) -> None:
    for i, e in enumerate(entries):
        buf[at + 446 + 16 * i:at + 462 + 16 * i] = e
    buf[at + 510:at + 512] = b"\x55\xaa"


def make_gpt(size: int, parts: list[tuple[int, int, str, str]], sector: int = 512,
             nentries: int = 128, pmbr: bool = True) -> bytearray:
    buf = bytearray(size)
    last = size // sector - 1
    if pmbr:
        put_mbr(buf, 0, [mbr_entry(0xEE, 1, min(last, 0xFFFFFFFF))])
    entries = bytearray(nentries * 128)
    for i, (first, end, tguid, name) in enumerate(parts):
        entries[i * 128:(i + 1) * 128] = (
            uuid.UUID(tguid).bytes_le + uuid.uuid4().bytes_le + struct.pack("<QQQ", first, end, 0)
            + name.encode("utf-16-le").ljust(72, b"\0"))
    esect = len(entries) // sector
    disk_guid = uuid.uuid4().bytes_le

    def header(my: int, alt: int, entlba: int) -> bytes:
        h = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, my, alt,
                                  2 + esect, last - 1 - esect, disk_guid, entlba, nentries,
                                  128, zlib.crc32(entries)))
        h[16:20] = struct.pack("<I", zlib.crc32(h))
        return bytes(h)

    buf[sector:sector + 92] = header(1, last, 2)
    buf[2 * sector:2 * sector + len(entries)] = entries
    buf[last * sector:last * sector + 92] = header(last, 1, last - esect)
    buf[(last - esect) * sector:last * sector] = entries
    return buf


def parse(buf: bytes | bytearray) -> list[Partition]:
    return read_partitions(lambda off, n: bytes(buf[off:off + n]), len(buf))


def bad(buf: bytes | bytearray, *words: str) -> None:
    with pytest.raises(OSError) as ei:
        parse(buf)
    assert ei.value.errno == errno.EUCLEAN
    for w in words:
        assert w in str(ei.value)


# -- no table ---------------------------------------------------------------------

def test_no_table_is_one_device(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "d.img", MiB)
    assert k.attach_disk("/dev/rumpdisk0", img) == []
    assert k.listdir("/dev") == ["rumpdisk0"]
    assert k.stat("/dev/rumpdisk0").st_size == MiB


def test_bare_fat_is_no_table(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "fat.img", 4 * MiB)
    subprocess.run(["mkfs.fat", str(img)], check=True, capture_output=True)
    assert img.read_bytes()[510:512] == b"\x55\xaa"
    assert k.attach_disk("/dev/rumpdisk0", img) == []


def test_bare_ext2_is_no_table(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "e.img", 4 * MiB)
    subprocess.run(["mkfs.ext2", "-q", "-F", str(img)], check=True, capture_output=True)
    assert k.attach_disk("/dev/rumpdisk0", img) == []


def test_signature_with_empty_table_is_no_table() -> None:
    buf = bytearray(MiB)
    buf[510:512] = b"\x55\xaa"
    assert parse(buf) == []


# -- MBR ------------------------------------------------------------------------------

SCRIPT = """label: dos
start=2048, size=2048, type=83
size=1024, type=c
size=1024, type=7
size=8192, type=5
size=1024, type=83
size=1024, type=82
"""


def test_mbr_primary_and_logical_match_sfdisk(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "d.img")
    want = [p for p in sfdisk(img, SCRIPT) if p["type"] != "5"]
    parts = k.attach_disk("/dev/rumpdisk0", img)
    assert [p.index for p in parts] == [1, 2, 3, 5, 6]
    for p, w in zip(parts, want, strict=True):
        assert p.path == f"/dev/rumpdisk0p{p.index}" == str(w["node"]).replace(
            str(img), "/dev/rumpdisk0p")
        assert (p.start, p.size) == (int(str(w["start"])) * 512, int(str(w["size"])) * 512)
        assert int(p.type, 16) == int(str(w["type"]), 16) and p.scheme == "mbr"
        assert k.stat(p.path).st_size == p.size
    assert sorted(k.listdir("/dev")) == sorted(
        ["rumpdisk0"] + [f"rumpdisk0p{i}" for i in (1, 2, 3, 5, 6)])


def test_partition_windows_hold(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "d.img")
    sfdisk(img, SCRIPT)
    before = img.read_bytes()
    parts = {p.index: p for p in k.attach_disk("/dev/rumpdisk0", img)}
    p5 = parts[5]
    fd = k.open(p5.path, os.O_RDWR)
    assert k.pwrite(fd, b"\xaa" * (p5.size + 4096), 0) == p5.size        # short at the end
    with pytest.raises(OSError) as ei:
        k.pwrite(fd, b"x", p5.size)
    assert ei.value.errno == errno.ENOSPC
    k.close(fd)
    after = img.read_bytes()
    assert after[p5.start:p5.start + p5.size] == b"\xaa" * p5.size
    assert after[:p5.start] == before[:p5.start]
    assert after[p5.start + p5.size:] == before[p5.start + p5.size:]


def test_mbr_by_hand_and_linux_names(k: Kernel, tmp: Path) -> None:
    buf = bytearray(4 * MiB)
    put_mbr(buf, 0, [mbr_entry(0x83, 2048, 2048, boot=0x80), mbr_entry(0, 0, 0),
                     mbr_entry(0x0C, 4096, 4096)])
    img = tmp / "d.img"
    img.write_bytes(buf)
    parts = k.attach_disk("/dev/sda", img)
    assert [(p.index, p.path, p.start, p.size, p.type) for p in parts] == [
        (1, "/dev/sda1", MiB, MiB, "0x83"), (3, "/dev/sda3", 2 * MiB, 2 * MiB, "0x0c")]
    assert partition_name("/dev/nvme0n1", 2) == "/dev/nvme0n1p2"


def test_mbr_beyond_end_is_an_error(k: Kernel, tmp: Path) -> None:
    buf = bytearray(MiB)
    put_mbr(buf, 0, [mbr_entry(0x83, 2048, 2048)])
    bad(buf, "beyond the end")
    img = tmp / "d.img"
    img.write_bytes(buf)
    with pytest.raises(OSError) as ei:
        k.attach_disk("/dev/rumpdisk0", img)
    assert ei.value.errno == errno.EUCLEAN and ei.value.filename == "/dev/rumpdisk0"
    assert "beyond the end" in str(ei.value)
    assert "rumpdisk0" not in k.listdir("/dev")      # nothing stays registered


def test_mbr_overlap_and_sector_zero_and_boot_flag() -> None:
    buf = bytearray(4 * MiB)
    put_mbr(buf, 0, [mbr_entry(0x83, 2048, 2048), mbr_entry(0x83, 4000, 100)])
    bad(buf, "overlap")
    put_mbr(buf, 0, [mbr_entry(0x83, 0, 2048), mbr_entry(0, 0, 0)])
    bad(buf, "sector 0")
    put_mbr(buf, 0, [mbr_entry(0x83, 2048, 2048, boot=0x12), mbr_entry(0, 0, 0)])
    bad(buf, "boot indicator")


def test_extended_chain_loop_and_escape() -> None:
    buf = bytearray(4 * MiB)
    put_mbr(buf, 0, [mbr_entry(0x05, 2048, 4096)])
    # EBR at 2048: logical at +1..; link back to itself (relative 0)
    put_mbr(buf, 2048 * 512, [mbr_entry(0x83, 1, 100), mbr_entry(0x05, 0, 200)])
    bad(buf, "loops")
    put_mbr(buf, 2048 * 512, [mbr_entry(0x83, 1, 100), mbr_entry(0x05, 5000, 200)])
    bad(buf, "leaves the extended")
    put_mbr(buf, 2048 * 512, [mbr_entry(0x83, 1, 9000), mbr_entry(0, 0, 0)])
    bad(buf, "outside its extended")
    # a long but finite chain is bounded
    put_mbr(buf, 0, [mbr_entry(0x05, 1, 8191)])
    for i in range(1, 8190, 2):
        put_mbr(buf, i * 512, [mbr_entry(0x83, 1, 1), mbr_entry(0x05, i + 1, 2)])
    bad(buf, "more than 256")


# -- GPT ------------------------------------------------------------------------------

def sgdisk_info(img: Path, n: int) -> tuple[int, int, str, str]:
    """(first, last sector, type GUID, name) as sgdisk -i reports partition n."""
    out = subprocess.run([tool("sgdisk"), "-i", str(n), str(img)], check=True,
                         capture_output=True, text=True).stdout
    field = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return (int(field["First sector"].split()[0]), int(field["Last sector"].split()[0]),
            field["Partition GUID code"].split()[0].lower(), field["Partition name"].strip("'"))


def test_gpt_matches_sgdisk(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "g.img")
    subprocess.run([tool("sgdisk"), "-n", "1:2048:4095", "-t", "1:8300", "-c", "1:root",
                    "-n", "3:4096:+1M", "-t", "3:ef00", "-c", "3:EFI system",
                    "-n", "2:8192:0", "-t", "2:8300", str(img)], check=True, capture_output=True)
    parts = k.attach_disk("/dev/rumpdisk1", img)
    assert [p.index for p in parts] == [1, 2, 3]
    for p in parts:
        first, last, tguid, name = sgdisk_info(img, p.index)
        assert (p.start, p.size, p.type, p.name) == (
            first * 512, (last - first + 1) * 512, tguid, name)
        assert p.path == f"/dev/rumpdisk1p{p.index}" and p.scheme == "gpt"
    assert (parts[0].type, parts[2].type) == (LINUX, ESP)


def gpt_image() -> bytearray:
    return make_gpt(4 * MiB, [(2048, 4095, LINUX, "one"), (4096, 6143, ESP, "twö")])


def test_gpt_by_hand() -> None:
    parts = parse(gpt_image())
    assert [(p.index, p.start, p.size, p.type, p.name) for p in parts] == [
        (1, MiB, MiB, LINUX, "one"), (2, 2 * MiB, MiB, ESP, "twö")]


@pytest.mark.parametrize("where", ["header", "entries", "signature"])
def test_gpt_damaged_primary_uses_backup(where: str, caplog: pytest.LogCaptureFixture) -> None:
    buf = gpt_image()
    good = parse(buf)
    if where == "header":
        buf[512 + 40] ^= 1                      # first usable LBA: header CRC fails
    elif where == "entries":
        buf[2 * 512 + 60] ^= 0xFF               # entry 1's name: array CRC fails
    else:
        buf[512:520] = bytes(8)
    assert parse(buf) == good
    assert "using the backup header" in caplog.text


def test_gpt_damaged_sgdisk_image(k: Kernel, tmp: Path) -> None:
    img = blank(tmp / "g.img")
    subprocess.run([tool("sgdisk"), "-n", "1:2048:+2M", "-c", "1:data", str(img)], check=True,
                   capture_output=True)
    with open(img, "r+b") as f:
        f.seek(512 + 24)                       # my_lba: CRC mismatch
        f.write(b"\x07")
    parts = k.attach_disk("/dev/rumpdisk0", img)
    assert [(p.index, p.start, p.size, p.name) for p in parts] == [(1, MiB, 2 * MiB, "data")]


def test_gpt_both_damaged_is_an_error() -> None:
    buf = gpt_image()
    buf[512 + 40] ^= 1
    last = len(buf) // 512 - 1
    buf[last * 512 + 40] ^= 1
    bad(buf, "primary header invalid", "backup header invalid", "CRC32")


def test_gpt_entry_checks() -> None:
    bad(make_gpt(4 * MiB, [(2048, 4095, LINUX, "a"), (4000, 6143, LINUX, "b")]), "overlap")
    bad(make_gpt(4 * MiB, [(2048, 8191, LINUX, "a")]), "outside the usable area")
    bad(make_gpt(4 * MiB, [(4095, 2048, LINUX, "a")]), "outside the usable area")
    bad(make_gpt(8 * MiB, [(8192, 9000, LINUX, "a")], nentries=16384), "16384 entries")


def test_gpt_4k_sectors() -> None:
    buf = make_gpt(8 * MiB, [(256, 511, LINUX, "big")], sector=4096, nentries=128)
    parts = parse(buf)
    assert [(p.start, p.size, p.name) for p in parts] == [(MiB, MiB, "big")]


def test_gpt_without_protective_mbr() -> None:
    buf = make_gpt(4 * MiB, [(2048, 4095, LINUX, "x")], pmbr=False)
    assert [p.index for p in parse(buf)] == [1]


def test_hybrid_mbr_is_read_as_gpt() -> None:
    buf = gpt_image()
    put_mbr(buf, 0, [mbr_entry(0xEE, 1, 2047), mbr_entry(0x83, 2048, 2048)])
    assert [p.scheme for p in parse(buf)] == ["gpt", "gpt"]


# -- the kernel side ------------------------------------------------------------------

def test_read_only_attach(k: Kernel, tmp: Path) -> None:
    img = tmp / "g.img"
    img.write_bytes(gpt_image())
    parts = k.attach_disk("/dev/rumpdisk0", img, read_only=True)
    for path in ("/dev/rumpdisk0", parts[0].path):
        with pytest.raises(OSError) as ei:
            k.open(path, os.O_RDWR)
        assert ei.value.errno == errno.EACCES
        k.close(k.open(path, os.O_RDONLY))


def test_detach_disk(k: Kernel, tmp: Path) -> None:
    img = tmp / "g.img"
    img.write_bytes(gpt_image())
    k.attach_disk("/dev/rumpdisk0", img)
    with pytest.raises(OSError) as ei:
        k.attach_disk("/dev/rumpdisk0", img)
    assert ei.value.errno == errno.EEXIST
    k.detach_disk("/dev/rumpdisk0")
    assert k.listdir("/dev") == []
    with pytest.raises(OSError) as ei:
        k.detach_disk("/dev/rumpdisk0")
    assert ei.value.errno == errno.ENOENT
    k.attach_disk("/dev/rumpdisk0", img)              # again, same names
    assert sorted(k.listdir("/dev")) == ["rumpdisk0", "rumpdisk0p1", "rumpdisk0p2"]


def test_detach_of_a_mounted_disk_is_busy(k: Kernel, tmp: Path) -> None:
    from tests.unit.vfs.test_mount_device import stub_mount
    img = tmp / "g.img"
    img.write_bytes(gpt_image())
    k.vfs.register_fstype("stub", stub_mount)
    k.attach_disk("/dev/rumpdisk0", img)
    k.mkdir("/mnt")
    k.mount("stub", "/mnt", device="/dev/rumpdisk0p2")
    with pytest.raises(OSError) as ei:
        k.detach_disk("/dev/rumpdisk0")
    assert ei.value.errno == errno.EBUSY
    k.unmount("/mnt")
    k.detach_disk("/dev/rumpdisk0")


def test_trailing_partial_sector_is_ignored(k: Kernel, tmp: Path) -> None:
    img = tmp / "odd.img"
    img.write_bytes(bytes(MiB + 100))
    assert k.attach_disk("/dev/rumpdisk0", img) == []
    assert k.stat("/dev/rumpdisk0").st_size == MiB
    with pytest.raises(OSError) as ei:
        k.attach_disk("/dev/rumpdisk1", tmp / "missing.img")
    assert ei.value.errno == errno.ENOENT and ei.value.filename == "/dev/rumpdisk1"


def test_a_disk_and_its_partitions_are_busy_together(k: Kernel, tmp: Path) -> None:
    from tests.unit.vfs.test_mount_device import stub_mount
    img = tmp / "g.img"
    img.write_bytes(gpt_image())
    k.vfs.register_fstype("stub", stub_mount)
    k.attach_disk("/dev/rumpdisk0", img)
    k.mkdir("/mnt")
    k.mkdir("/mnt2")
    k.mount("stub", "/mnt", device="/dev/rumpdisk0p2")
    for dev in ("/dev/rumpdisk0", "/dev/rumpdisk0p2"):
        with pytest.raises(OSError) as ei:
            k.mount("stub", "/mnt2", device=dev)
        assert ei.value.errno == errno.EBUSY
        with pytest.raises(OSError) as ei:
            k.open(dev, os.O_RDWR)
        assert ei.value.errno == errno.EBUSY
        k.close(k.open(dev, os.O_RDONLY))
    k.close(k.open("/dev/rumpdisk0p1", os.O_RDWR))     # its window does not overlap
    k.unmount("/mnt")
    fd = k.open("/dev/rumpdisk0", os.O_RDWR)           # the whole disk open for writing...
    for dev in ("/dev/rumpdisk0p1", "/dev/rumpdisk0p2"):
        with pytest.raises(OSError) as ei:             # ...keeps every partition unmounted
            k.mount("stub", "/mnt", device=dev)
        assert ei.value.errno == errno.EBUSY
    k.close(fd)
    k.mount("stub", "/mnt", device="/dev/rumpdisk0p1")
    k.mount("stub", "/mnt2", device="/dev/rumpdisk0p2")
