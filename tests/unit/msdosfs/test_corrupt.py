"""Untrusted FAT images: targeted damage fails the one call (EUCLEAN/EIO), and a
fuzz of the metadata only ever raises OSError, never hangs, never writes
outside the partition window."""

from __future__ import annotations

import errno
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.ext2fuzz import exercise, fill_pattern, place_in_window, run_case
from tests.unit.msdosfs.support import make_image, mounted

import rumpfs
from rumpfs.fs.msdosfs.bootsect import parse_bpb

BAD = (errno.EUCLEAN, errno.EIO)


def _populated(tmp_path: Path, fat: int) -> Path:
    img = make_image(tmp_path / "c.img", {12: 4, 16: 20, 32: 40}[fat] << 20, fat=fat,
                     spc=1 if fat == 32 else None)
    with mounted(img) as k:
        k.mkdir("/mnt/dir")
        k.mkdir("/mnt/dir/sub")
        for i in range(8):
            with k.open_file(f"/mnt/dir/file {i}.txt", "wb") as f:
                f.write(bytes([i]) * (3000 * i + 100))
        with k.open_file("/mnt/big.bin", "wb") as f:
            f.write(os.urandom(50_000))
    return img


def _locate(k: rumpfs.Kernel, img: Path, path: str) -> tuple[int, int]:
    """(byte offset of the 8.3 entry of ``path`` in the image, its first cluster)."""
    raw = img.read_bytes()
    g = parse_bpb(raw[:512])
    ino = k.stat(path).st_ino                  # the entry's slot number on the volume
    off = ino * 32
    d = raw[off:off + 32]
    cl = struct.unpack_from("<H", d, 26)[0] | (struct.unpack_from("<H", d, 20)[0] << 16
                                                if g.fat_bits == 32 else 0)
    return off, cl


def _fat_entry_offsets(img: Path, cluster: int) -> list[int]:
    g = parse_bpb(img.read_bytes()[:512])
    assert g.fat_bits in (16, 32)
    w = g.fat_bits // 8
    return [(g.fat_start + i * g.fat_sectors) * g.bps + cluster * w for i in range(g.nfats)]


def _patch(img: Path, offsets: list[int], value: bytes) -> None:
    raw = bytearray(img.read_bytes())
    for off in offsets:
        raw[off:off + len(value)] = value
    img.write_bytes(raw)


def _expect_bad(fn: Callable[[], object]) -> None:
    with pytest.raises(OSError) as e:
        fn()
    assert e.value.errno in BAD, e.value


@pytest.mark.parametrize("fat", [16, 32])
def test_chain_loop_out_of_range_free_and_short(tmp_path: Path, fat: int) -> None:
    img = _populated(tmp_path, fat)
    with mounted(img, read_only=True) as k:
        _, cl = _locate(k, img, "/mnt/big.bin")
    w = fat // 8
    cases = [
        (cl, cl.to_bytes(w, "little")),                     # points at itself: a loop
        (cl, (0x0FFFFFF0 if fat == 32 else 0xFFF0).to_bytes(w, "little")),   # out of range
        (cl, bytes(w)),                                     # a free cluster inside the chain
        (cl, (0x0FFFFFFF if fat == 32 else 0xFFFF).to_bytes(w, "little")),   # ends too soon
    ]
    for n, (where, value) in enumerate(cases):
        case = tmp_path / "case.img"
        case.write_bytes(img.read_bytes())
        _patch(case, _fat_entry_offsets(case, where), value)
        with mounted(case) as k:
            fd = k.open("/mnt/big.bin", os.O_RDWR)
            _expect_bad(lambda fd=fd: k.pread(fd, 50_000, 0))
            if n < 3:      # a chain that merely ends too soon is extended by a write
                _expect_bad(lambda fd=fd: k.pwrite(fd, b"x" * 100_000, 0))
            k.close(fd)
            # the mount stays usable
            assert k.open_file("/mnt/dir/file 3.txt", "rb").read() == bytes([3]) * 9100
            with k.open_file("/mnt/new", "wb") as f:
                f.write(b"fine")


@pytest.mark.parametrize("fat", [12, 32])
def test_directory_pointing_at_itself_or_parent(tmp_path: Path, fat: int) -> None:
    img = _populated(tmp_path, fat)
    with mounted(img, read_only=True) as k:
        sub_off, _ = _locate(k, img, "/mnt/dir/sub")
        _, dir_cl = _locate(k, img, "/mnt/dir")
    for target in (dir_cl, 0):
        case = tmp_path / "case.img"
        raw = bytearray(img.read_bytes())
        struct.pack_into("<H", raw, sub_off + 26, target & 0xFFFF)
        struct.pack_into("<H", raw, sub_off + 20, target >> 16 if fat == 32 else 0)
        case.write_bytes(raw)
        with mounted(case, read_only=True) as k:
            _expect_bad(lambda: k.stat("/mnt/dir/sub"))
            _expect_bad(lambda: k.listdir("/mnt/dir/sub"))
            assert "sub" in k.listdir("/mnt/dir")
            assert k.stat("/mnt/dir/file 1.txt").st_size == 3100


def test_size_beyond_chain(tmp_path: Path) -> None:
    img = _populated(tmp_path, 16)
    with mounted(img, read_only=True) as k:
        off, _ = _locate(k, img, "/mnt/dir/file 2.txt")
    _patch(img, [off + 28], struct.pack("<I", 10_000_000))
    with mounted(img, read_only=True) as k:
        assert k.stat("/mnt/dir/file 2.txt").st_size == 10_000_000
        fd = k.open("/mnt/dir/file 2.txt", os.O_RDONLY)
        assert k.pread(fd, 100, 0) == bytes([2]) * 100      # inside the chain: fine
        _expect_bad(lambda: k.pread(fd, 100, 5_000_000))
        k.close(fd)


def _fuzz_once(window: Path, begin: int, size: int) -> list[str]:
    with rumpfs.Kernel() as k:
        k.etfs_register("/dev/fat", str(window), rumpfs.EtfsType.BLK, begin=begin, size=size)
        k.mkdir("/mnt")
        try:
            k.mount("msdos", "/mnt", device="/dev/fat")
        except OSError:
            return ["mount"]
        errs = exercise(k, "/mnt")
        try:
            k.unmount("/mnt")
        except OSError as e:
            errs.append(f"unmount {e.errno}")
        return errs


@pytest.mark.parametrize("fat", [12, 16, 32])
def test_fuzz_metadata(tmp_path: Path, fat: int) -> None:
    img = _populated(tmp_path, fat)
    base = img.read_bytes()
    g = parse_bpb(base[:512])
    meta_end = g.data_start * g.bps + (4 * g.cluster_size if fat == 32 else 0)
    # directory clusters too: the first clusters of the data area hold dir and sub
    meta_end += 3 * g.cluster_size
    rng = random.Random(int(os.environ.get("RUMPFS_FUZZ_SEED", "1234")) + fat)
    cases = int(os.environ.get("RUMPFS_FUZZ_CASES", "12"))
    window = tmp_path / "window.img"
    for case in range(cases):
        raw = bytearray(base)
        for _ in range(rng.randrange(1, 12)):
            off = rng.randrange(0, meta_end)
            if rng.random() < 0.5:
                raw[off] ^= 1 << rng.randrange(8)
            else:
                raw[off] = rng.choice((0, 0xFF, 0xE5, 0x0F, 0x10, rng.randrange(256)))
        begin, size = place_in_window(bytes(raw), window, margin=1 << 16)
        result = run_case(lambda b=begin, s=size: _fuzz_once(window, b, s), timeout=60,
                          as_limit=2 << 30)
        assert result[0] == "ok", (case, result)
        after = window.read_bytes()
        guard = fill_pattern(1 << 16)
        assert after[:begin] == guard and after[begin + size:] == guard, (
            f"case {case} wrote outside the partition")
