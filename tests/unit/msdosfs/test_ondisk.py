"""msdosfs on-disk structures: BPB checks, FAT entries and chains, names and times."""

from __future__ import annotations

import errno
import struct
import subprocess
from pathlib import Path

import pytest

from rumpfs.fs.msdosfs.bootsect import BadVolume, FsInfo, pack_fsinfo, parse_bpb, parse_fsinfo
from rumpfs.fs.msdosfs.direntry import (
    CASE_LOWER_BASE,
    CASE_LOWER_EXT,
    Dirent,
    check_name,
    date_time_to_ns,
    fold,
    lfn_checksum,
    lfn_decode,
    lfn_part,
    lfn_slots,
    make_short_name,
    ns_to_date_time,
    short_display,
)
from rumpfs.fs.msdosfs.fat import Fat

NS = 1_000_000_000


@pytest.mark.parametrize(("fat", "mb", "spc"), [
    (12, 4, None), (12, 8, 4), (12, 2, 1), (16, 32, None), (16, 64, 8), (32, 40, 1),
    (32, 600, None),
])
def test_bpb_of_mkfs_images(tmp_path: Path, fat: int, mb: int, spc: int | None) -> None:
    img = tmp_path / "f.img"
    with open(img, "wb") as f:
        f.truncate(mb << 20)
    args = ["mkfs.fat", "-F", str(fat), "-n", "LBL"] + (["-s", str(spc)] if spc else [])
    subprocess.run([*args, str(img)], check=True, capture_output=True)
    boot = img.read_bytes()[:4096]
    g = parse_bpb(boot, mb << 20)
    bps, spc_, res, nfats, rootents, ts16, _media, fs16 = struct.unpack_from("<HBHBHHBH", boot, 11)
    assert (g.fat_bits, g.bps, g.spc, g.reserved, g.nfats, g.root_entries) == (
        fat, bps, spc_, res, nfats, rootents)
    assert g.total_sectors == (ts16 or struct.unpack_from("<I", boot, 32)[0])
    assert g.label == b"LBL        "
    if fat == 32:
        assert g.root_cluster == 2 and g.fsinfo_sector == 1
        info = parse_fsinfo(boot[512:1024])
        assert info is not None and info.free == g.clusters - 1
    else:
        assert g.fat_sectors == fs16
    if spc:
        assert g.spc == spc


def _good_boot() -> bytearray:
    b = bytearray(512)
    b[0:3] = b"\xeb\x3c\x90"
    struct.pack_into("<HBHBHHBH", b, 11, 512, 4, 1, 2, 512, 8192, 0xF8, 6)
    b[38] = 0x29
    b[510:512] = b"\x55\xaa"
    return b


@pytest.mark.parametrize(("field", "value", "why"), [
    (0, b"\x00", "jump"), (11, struct.pack("<H", 513), "bytes per sector"),
    (13, b"\x03", "sectors per cluster"), (14, struct.pack("<H", 0), "reserved"),
    (16, b"\x00", "FAT copies"), (17, struct.pack("<H", 0), "root directory"),
    (19, struct.pack("<H", 0), "total sector"), (21, b"\x12", "media"),
    (22, struct.pack("<H", 1), "too small"),
])
def test_bpb_rejects(field: int, value: bytes, why: str) -> None:
    parse_bpb(_good_boot())
    b = _good_boot()
    b[field:field + len(value)] = value
    with pytest.raises(BadVolume, match=why):
        parse_bpb(b)


def test_bpb_volume_larger_than_device() -> None:
    with pytest.raises(BadVolume, match="larger than its device"):
        parse_bpb(_good_boot(), 8191 * 512)


def test_fsinfo_roundtrip() -> None:
    sec = bytearray(512)
    assert parse_fsinfo(sec) is None
    pack_fsinfo(sec, FsInfo(1234, 99))
    assert parse_fsinfo(sec) == FsInfo(1234, 99)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_fat_entries_chains_and_allocation(bits: int) -> None:
    clusters = 100
    fat = Fat(bits, bytearray((clusters + 2) * bits // 8 + 8), clusters)
    assert fat.free == clusters
    fat.set(2, 0xFFFFFFFF & fat.mask)
    a = fat.alloc(5)
    assert a == [3, 4, 5, 6, 7] and fat.free == clusters - 5
    assert fat.chain(3) == a and fat.get(7) >= fat.eoc_min
    for n in range(3, 8):                     # odd and even FAT12 neighbours keep each other
        assert fat.get(n) == (n + 1 if n < 7 else fat.eoc)
    fat.release(a[2:])
    fat.terminate(a[1])
    assert fat.chain(3) == [3, 4] and fat.free == clusters - 2
    with pytest.raises(OSError) as e:
        fat.alloc(clusters)
    assert e.value.errno == errno.ENOSPC
    fat.set(4, 3)                             # a loop
    with pytest.raises(OSError) as e:
        fat.chain(3)
    assert e.value.errno == errno.EUCLEAN
    fat.set(4, clusters + 5)                  # out of range
    with pytest.raises(OSError) as e:
        fat.chain(3)
    assert e.value.errno == errno.EUCLEAN
    fat.set(4, 0)                             # a free cluster inside a chain
    with pytest.raises(OSError) as e:
        fat.chain(3)
    assert e.value.errno == errno.EUCLEAN
    assert fat.take_dirty() and not fat.take_dirty()


def test_fat32_keeps_reserved_bits() -> None:
    raw = bytearray(4 * 20)
    struct.pack_into("<I", raw, 4 * 5, 0xF0000000)
    fat = Fat(32, raw, 18)
    fat.set(5, 7)
    assert struct.unpack_from("<I", raw, 20)[0] == 0xF0000007 and fat.get(5) == 7


@pytest.mark.parametrize(("name", "taken", "want"), [
    ("README.TXT", (), (b"README  TXT", 0, False)),
    ("readme.txt", (), (b"README  TXT", 0, True)),
    ("Makefile", (), (b"MAKEFILE   ", 0, True)),
    ("A long file name.txt", (), (b"ALONGF~1TXT", 0, True)),
    ("A long file name.txt", (b"ALONGF~1TXT",), (b"ALONGF~2TXT", 0, True)),
    (".bashrc", (), (b"BASHRC~1   ", 0, True)),
    ("foo.tar.gz", (), (b"FOOTAR~1GZ ", 0, True)),
    ("a+b=c.d", (), (b"A_B_C~1 D  ", 0, True)),
    ("verylongextension.html", (), (b"VERYLO~1HTM", 0, True)),
    ("123.456", (), (b"123     456", 0, False)),
    ("caf\u00e9.txt", (), (b"CAF\x90    TXT", 0, True)),
])
def test_short_names_as_linux_vfat(name: str, taken: tuple[bytes, ...],
                                   want: tuple[bytes, int, bool]) -> None:
    assert make_short_name(name, set(taken).__contains__) == want


def test_short_name_hex_tail_after_nine() -> None:
    taken = {b"ALONGF~%dTXT" % i for i in range(1, 10)}
    n11, _, lfn = make_short_name("A long file name.txt", taken.__contains__, 0x12345)
    assert lfn and n11[:2] == b"AL" and n11[6:8] == b"~2" and n11[8:] == b"TXT"
    assert n11[2:6] == b"2345"


def test_short_name_winnt_case_flags() -> None:
    assert make_short_name("readme.txt", set().__contains__, winnt=True) == (
        b"README  TXT", CASE_LOWER_BASE | CASE_LOWER_EXT, False)
    assert make_short_name("readme.TXT", set().__contains__, winnt=True) == (
        b"README  TXT", CASE_LOWER_BASE, False)
    assert short_display(b"README  TXT", CASE_LOWER_BASE | CASE_LOWER_EXT) == "readme.txt"
    assert short_display(b"README  TXT", CASE_LOWER_EXT) == "README.txt"
    assert short_display(b"\x05BC     TXT", 0) == "\u03c3BC.TXT"     # 0x05 stands for 0xE5


@pytest.mark.parametrize(("name", "code"), [
    ("a*b", errno.EINVAL), ("a?", errno.EINVAL), ("a:b", errno.EINVAL), ('a"b', errno.EINVAL),
    ("a\\b", errno.EINVAL), ("a<b", errno.EINVAL), ("a|b", errno.EINVAL), ("x\x01", errno.EINVAL),
    ("trailing ", errno.EINVAL), ("...", errno.EINVAL), ("x" * 256, errno.ENAMETOOLONG),
    ("\U0001f600" * 128, errno.ENAMETOOLONG),
])
def test_check_name_refuses(name: str, code: int) -> None:
    with pytest.raises(OSError) as e:
        check_name(name)
    assert e.value.errno == code


def test_check_name_accepts() -> None:
    assert check_name("foo.") == "foo"
    assert check_name("x" * 255) == "x" * 255
    assert check_name("[a];b,c+d=e") == "[a];b,c+d=e"
    assert fold("readme.TXT") == fold("README.txt")


def test_lfn_slots_roundtrip() -> None:
    name = "A long file name with \u00fcml\u00e4uts and 13 chars x"
    n11 = b"ALONGF~1   "
    slots = lfn_slots(name, n11)
    assert len(slots) == (len(name) + 12) // 13
    assert slots[0][0] == 0x40 | len(slots) and slots[-1][0] == 1
    assert all(s[13] == lfn_checksum(n11) and s[11] == 0x0F for s in slots)
    parts = [lfn_part(s) for s in reversed(slots)]
    assert lfn_decode(parts) == name
    exact = lfn_slots("x" * 26, n11)              # no terminator when it fills the slots
    assert len(exact) == 2 and lfn_decode([lfn_part(s) for s in reversed(exact)]) == "x" * 26


def test_lfn_checksum_known_value() -> None:
    # The checksum of an 8.3 name as Microsoft's specification computes it.
    s = 0
    for b in b"FOO     BAR":
        s = ((s >> 1) | ((s & 1) << 7)) + b & 0xFF
    assert lfn_checksum(b"FOO     BAR") == s


def test_times() -> None:
    t = (1_700_000_001 * NS) + 123_456_789          # 2023-11-14 22:13:21.123 UTC
    date, time, cs = ns_to_date_time(t, 0)
    assert date_time_to_ns(date, time, 0, 0) == 1_700_000_000 * NS    # 2 s resolution
    assert date_time_to_ns(date, time, cs, 0) == 1_700_000_001 * NS + 120_000_000  # 10 ms
    d2, t2, _ = ns_to_date_time(t, 3600)                                # local = UTC + 1h
    assert date_time_to_ns(d2, t2, 0, 3600) == 1_700_000_000 * NS
    assert t2 >> 11 == (time >> 11) + 1
    assert ns_to_date_time(0, 0) == (1 << 5 | 1, 0, 0)                  # clamped to 1980-01-01
    hi = ns_to_date_time(10**19, 0)
    assert hi[0] >> 9 == 127 and date_time_to_ns(*hi, 0) // NS == 4354819198 + 1
    d = Dirent(name=b"A          ", cluster_hi=1, cluster_lo=2, size=7)
    assert Dirent.unpack(d.pack()) == d and d.cluster(True) == 65538 and d.cluster(False) == 2
