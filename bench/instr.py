#!/usr/bin/env python3
"""Instructions per kernel call, counted by callgrind: repeatable on a loaded machine.

This is a benchmark, not a test. Wall-clock ratios on the shared machine swing
2-5x; instruction counts do not. Each workload runs once inside ``sorted()``'s
key function, so callgrind (``--toggle-collect=builtin_sorted``, one dump
per call) counts exactly the workload's own instructions, not the setup's.

    .venv/bin/python bench/instr.py                     # this tree, 1000 ops each
    .venv/bin/python bench/instr.py --base /tmp/old/src # old vs new, side by side

``--base`` is the ``src`` directory of another checkout (``git worktree add
--detach /tmp/old <commit>``); with ``scripts/compile`` run here and not
there, it compares the compiled variant with the pure one. Needs valgrind.
Instructions are not time (a memcpy-bound row counts few instructions per
byte), but every Python-level change shows in them. Output: a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WORKLOADS = ["write4k", "read4k", "pwrite+pread", "write1m", "stat", "stat20", "create",
             "create+unlink", "mkdir", "rename"]


def child(n: int) -> None:
    """The measured process: set up a kernel, then each workload in sorted()."""
    from rumpfs import Kernel

    k = Kernel()
    k.mkdir("/b")
    fd = k.open("/b/f", os.O_CREAT | os.O_RDWR, 0o644)
    buf, big = b"x" * 4096, b"z" * (1 << 20)
    k.pwrite(fd, b"y" * (1 << 20), 0)
    deep = "/b" + "/d" * 20
    p = "/b"
    for _ in range(20):
        p += "/d"
        k.mkdir(p)
    for i in range(n):
        k.close(k.open(f"/b/s{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    r = random.Random(1)
    offs = [r.randrange(256) * 4096 for _ in range(n)]
    c_names = [f"/b/c{i}" for i in range(n)]
    m_names = [f"/b/m{i}" for i in range(n)]
    pairs = [(f"/b/s{i}", f"/b/t{i}") for i in range(n)]
    creat = os.O_CREAT | os.O_WRONLY

    def run(w: str) -> int:
        if w == "write4k":
            for _ in range(n):
                k.write(fd, buf)
        elif w == "read4k":
            for _ in range(n):
                k.read(fd, 4096)
        elif w == "pwrite+pread":
            for o in offs:
                k.pwrite(fd, buf, o)
                k.pread(fd, 4096, o)
        elif w == "write1m":
            for _ in range(n // 20):
                k.write(fd, big)
        elif w == "stat":
            for _ in range(n):
                k.stat("/b/f")
        elif w == "stat20":
            for _ in range(n):
                k.stat(deep)
        elif w in ("create", "create+unlink"):
            suffix = "" if w == "create" else "u"
            for name in c_names:
                k.close(k.open(name + suffix, creat, 0o644))
            if suffix:
                for name in c_names:
                    k.unlink(name + suffix)
        elif w == "mkdir":
            for name in m_names:
                k.mkdir(name)
        elif w == "rename":
            for a, b in pairs:
                k.rename(a, b)
        return 0

    for w in WORKLOADS:
        k.lseek(fd, 0, os.SEEK_SET)
        sorted([w], key=run)


def count(src: str, n: int) -> list[int]:
    """Instructions of each workload (in WORKLOADS order) with ``src`` first on the path."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONPATH=src)
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no",
             "--toggle-collect=builtin_sorted", "--dump-after=builtin_sorted",
             f"--callgrind-out-file={out}", sys.executable, __file__, "--child", str(n)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dumps = sorted(glob.glob(out + ".*"), key=lambda f: int(f.rsplit(".", 1)[1]))
        totals = []
        for f in dumps:
            for line in Path(f).read_text().splitlines():
                if line.startswith(("totals:", "summary:")):
                    totals.append(int(line.split()[1]))
                    break
        return totals[-len(WORKLOADS):]    # earlier dumps: sorted() calls in imports


def variant(src: str) -> str:
    """"compiled" if ``src`` holds the extension modules scripts/compile builds, else "pure"."""
    return "compiled" if any(Path(src, "rumpfs").rglob("*.so")) else "pure"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="operations per workload")
    ap.add_argument("--base", help="src directory of the tree to compare against")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child)
        return
    new = count(str(REPO / "src"), a.n)
    base = count(a.base, a.n) if a.base else None
    print(f"rumpfs variants: new {variant(str(REPO / 'src'))}"
          + (f", base {variant(a.base)}" if a.base else "") + "\n")
    per = {w: (a.n // 20 if w == "write1m" else a.n) for w in WORKLOADS}
    if base is None:
        print("| workload | instructions/op |\n|---|---:|")
        for w, x in zip(WORKLOADS, new, strict=True):
            print(f"| {w} | {x / per[w]:,.0f} |")
        return
    print("| workload | base instr/op | new instr/op | new/base |\n|---|---:|---:|---:|")
    for w, b, x in zip(WORKLOADS, base, new, strict=True):
        print(f"| {w} | {b / per[w]:,.0f} | {x / per[w]:,.0f} | {x / b:.3f} |")


if __name__ == "__main__":
    main()
