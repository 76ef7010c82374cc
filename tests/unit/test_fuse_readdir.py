"""FUSE READDIR/READDIRPLUS replies, handlers called directly: each record is
what ``fuse_dirent`` says (ino, offset, name, NUL padding to 8 bytes); a
READDIRPLUS batch ends before the first entry the host already holds (the rest
of the listing then comes as plain READDIRs) but never before its first
record; every entry a READDIRPLUS reply hands out takes exactly one lookup
count, and offsets resume the listing with nothing lost or repeated."""

from __future__ import annotations

import os

import pytest

import rumpfs
from rumpfs.frontends import fuse_proto as fp
from rumpfs.frontends.fuse import RumpOperations


class Drop:
    def send(self, parts: list[bytes]) -> bool:
        return True


def setup(exclusive: bool, names: list[str]) -> tuple[RumpOperations, int, int]:
    k = rumpfs.Kernel()
    ops = RumpOperations(k.node_handles(), Drop(),  # type: ignore[arg-type]
                         3600.0 if exclusive else 0.0, notify=not exclusive)
    ops.init(0, 0, 0, 0, memoryview(fp.INIT_IN.pack(7, 40, 131072, 0) + bytes(48)))
    k.mkdir("/d")
    for name in names:
        k.close(k.open("/d/" + name, os.O_CREAT | os.O_WRONLY, 0o644))
    nid = fp.ENTRY_OUT.unpack_from(ops.lookup(1, 0, 0, 1, memoryview(b"d\0"))[0])[0]
    dh = fp.OPEN_OUT.unpack(ops.opendir(nid, 0, 0, 1, memoryview(fp.OPEN_IN.pack(0, 0)))[0])[0]
    return ops, nid, dh


def records(out: bytes, plus: bool) -> list[tuple[int, int, bytes]]:
    """(ino, next offset, name) of each record, checking the padding."""
    recs, p = [], 0
    while p < len(out):
        if plus:
            entry = fp.ENTRY_OUT.unpack_from(out, p)
            p += fp.ENTRY_OUT.size
        ino, off, namelen, _ = fp.DIRENT.unpack_from(out, p)
        end = (p + 24 + namelen + 7) & ~7
        name = out[p + 24:p + 24 + namelen]
        assert out[p + 24 + namelen:end] == bytes(end - p - 24 - namelen)
        if plus:
            assert entry[0] == ino
        recs.append((ino, off, name))
        p = end
    return recs


def request(ops: RumpOperations, nid: int, dh: int, off: int, plus: bool,
            size: int = 32768) -> list[tuple[int, int, bytes]]:
    op = ops.readdirplus if plus else ops.readdir
    out = b"".join(op(nid, 0, 0, 1, memoryview(fp.READ_IN.pack(dh, off, size, 0, 0, 0, 0))))
    assert len(out) <= size - 8
    return records(out, plus)


@pytest.mark.parametrize("exclusive", [True, False])
def test_plus_batch_stops_before_a_known_entry_and_counts_what_it_hands_out(
        exclusive: bool) -> None:
    names = [f"n{i:03d}" + "x" * (i % 13) for i in range(60)]
    ops, nid, dh = setup(exclusive, names)
    # the host holds names[5] (a LOOKUP) and nothing else of the directory
    body = memoryview(names[5].encode() + b"\0")
    known = fp.ENTRY_OUT.unpack_from(ops.lookup(nid, 0, 0, 1, body)[0])[0]
    first = request(ops, nid, dh, 0, True)
    assert [r[2] for r in first] == [b".", b".."] + [n.encode() for n in names[:5]]
    counted = {ino: n for ino, n in ops._lookups.items() if ino != nid}
    assert counted == {**{r[0]: 1 for r in first[2:]}, known: 1}
    # a batch that would start at the known entry still hands it out (never empty)
    again = request(ops, nid, dh, first[-1][1], True)
    assert again[0][2] == names[5].encode()
    assert ops._lookups[known] == 2
    # the rest, plain, resumes where each reply ended: every name once
    seen = [r[2] for r in first + again]
    off = again[-1][1]
    while batch := request(ops, nid, dh, off, False, size=300):
        seen += [r[2] for r in batch]
        off = batch[-1][1]
    assert seen == [b".", b".."] + [n.encode() for n in names]


def test_plain_records_match_the_names_and_fill_what_linux_takes() -> None:
    names = [f"{'y' * (i % 40 + 1)}{i}" for i in range(500)]
    ops, nid, dh = setup(True, names)
    got: list[bytes] = []
    off = 0
    while batch := request(ops, nid, dh, off, False, size=4096):
        got += [r[2] for r in batch]
        off = batch[-1][1]
    assert got == [b".", b".."] + [n.encode() for n in names]
