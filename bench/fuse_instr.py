#!/usr/bin/env python3
"""Instructions per FUSE request handler, counted by callgrind (no mount needed).

A benchmark, not a test. The FUSE frontend's handlers are called directly
(``RumpOperations``, a channel that drops replies), 500 requests of each kind,
each kind inside ``sorted()``'s key function so that callgrind counts exactly
its instructions (as ``bench/instr.py`` does for kernel calls). Repeatable on
a loaded machine, where round-trip timings swing 2-5x.

    .venv/bin/python bench/fuse_instr.py                      # this tree
    .venv/bin/python bench/fuse_instr.py --base /tmp/old/src  # old vs new

``--base`` is the ``src`` directory of another checkout (``git worktree add
--detach /tmp/old <commit>``). Needs valgrind. The readdir rows are per entry
(a 500-entry directory listed with 32 KiB requests, as glibc asks).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ["lookup (miss)", "create", "release", "getattr", "lookup (hit)", "setattr (chmod)",
         "rename", "readdir (per entry)", "readdirplus (per entry)", "unlink"]

CHILD = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
from rumpfs import Kernel
from rumpfs.frontends import fuse as F, fuse_proto as fp

class Drop:
    def send(self, parts): return True
    def backing_open(self, fd): raise OSError(1, "no passthrough here")
    def backing_close(self, backing): pass

k = Kernel()
k.chmod("/", 0o777)
ops = F.RumpOperations(k.node_handles(), Drop(), 3600.0)     # exclusive mode's timeouts
ops.init(0, 0, 0, 0, memoryview(fp.INIT_IN.pack(7, 40, 131072, 0xFFFFFFFF) + b"\0" * 48))
n, uid, pid = int(sys.argv[2]), 0, os.getpid()
names = [memoryview(f"f{i}".encode() + b"\0") for i in range(n)]
renamed = [f"g{i}".encode() + b"\0" for i in range(n)]
create_in = fp.CREATE_IN.pack(os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o100644, 0o022, 0)
chmod_in = memoryview(fp.SETATTR_IN.pack(fp.FATTR_MODE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0o100600, 0, 0, 0, 0))
no_fh = memoryview(bytes(16))
fhs, ids = [], []

def misses():
    for name in names:
        try:
            ops.lookup(1, uid, uid, pid, name)
        except OSError:
            pass

def creates():
    for name in names:
        reply = ops.create(1, uid, uid, pid, memoryview(create_in + bytes(name)))
        ids.append(fp.ENTRY_OUT.unpack_from(reply[0])[0])
        fhs.append(fp.OPEN_OUT.unpack(reply[1])[0])

def releases():
    for fh in fhs:
        ops.release(0, uid, uid, pid, memoryview(fp.RELEASE_IN.pack(fh, 0, 0, 0)))

def getattrs():
    for _ in names:
        ops.getattr(1, uid, uid, pid, no_fh)

def hits():
    for name in names:
        ops.lookup(1, uid, uid, pid, name)

def chmods():
    for nid in ids:
        ops.setattr(nid, uid, uid, pid, chmod_in)

def renames():
    for a, b in zip(names, renamed):
        ops.rename(1, uid, uid, pid, memoryview(fp.RENAME_IN.pack(1) + bytes(a) + b))

def forget_all():
    """The host forgets every file (a READDIRPLUS batch ends before an entry it holds)."""
    for nid, held in list(ops._lookups.items()):
        ops.forget(nid, uid, uid, pid, memoryview(fp.FORGET_IN.pack(held)))

def listing(op):
    """One listing with 32 KiB requests: the offsets first (not measured), then
    the same requests again, measured (READDIRPLUS: of entries the host does
    not hold, as a cold listing)."""
    dh = fp.OPEN_OUT.unpack(ops.opendir(1, uid, uid, pid, memoryview(fp.OPEN_IN.pack(0, 0)))[0])[0]
    plus = op == ops.readdirplus
    if plus:
        forget_all()
    offs, off = [], 0
    while True:
        offs.append(off)
        req = memoryview(fp.READ_IN.pack(dh, off, 32768, 0, 0, 0, 0))
        out = b"".join(op(1, uid, uid, pid, req))
        if not out:
            break
        p = 0
        while p < len(out):
            q = p + (fp.ENTRY_OUT.size if op == ops.readdirplus else 0)
            _, off, namelen, _ = fp.DIRENT.unpack_from(out, q)
            p = (q + 24 + namelen + 7) & ~7
    reqs = [memoryview(fp.READ_IN.pack(dh, o, 32768, 0, 0, 0, 0)) for o in offs]
    if plus:
        forget_all()
    sorted([0], key=lambda _: [op(1, uid, uid, pid, r) for r in reqs])
    ops.releasedir(1, uid, uid, pid, memoryview(fp.RELEASE_IN.pack(dh, 0, 0, 0)))

def unlinks():
    for name in renamed:
        ops.unlink(1, uid, uid, pid, memoryview(name))

for fn in (misses, creates, releases, getattrs, hits, chmods, renames):
    sorted([0], key=lambda _: fn())
listing(ops.readdir)
listing(ops.readdirplus)
sorted([0], key=lambda _: unlinks())
'''


def counts(src: Path, n: int) -> list[float]:
    """Instructions per request of each kind in ``KINDS``, for the tree at ``src``."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no",
             "--toggle-collect=builtin_sorted", "--dump-after=builtin_sorted",
             f"--callgrind-out-file={out}", sys.executable, "-c", CHILD, str(src), str(n)],
            check=True, capture_output=True)
        dumps = sorted(glob.glob(out + ".*"), key=lambda f: int(f.rsplit(".", 1)[1]))
        totals = []
        for f in dumps:
            with open(f) as fh:
                for line in fh:
                    if line.startswith(("totals:", "summary:")):
                        totals.append(int(line.split()[1]))
    # sorted() inside the handlers (small dumps) and each dump's twin are not ours
    big = [t for t in totals if t > 200_000]
    seen: list[int] = []
    for t in big:
        if not seen or t != seen[-1]:
            seen.append(t)
    return [t / n for t in seen[-len(KINDS):]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, help="src directory of another checkout")
    ap.add_argument("-n", type=int, default=500)
    args = ap.parse_args()
    trees = {"this tree": REPO / "src"}
    if args.base:
        trees = {"base": args.base, **trees}
    rows = {name: counts(src, args.n) for name, src in trees.items()}
    print("| request | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for i, kind in enumerate(KINDS):
        print(f"| {kind} | " + " | ".join(f"{r[i]:,.0f}" for r in rows.values()) + " |")


if __name__ == "__main__":
    main()
