"""Benchmark the ext2 driver (a benchmark, not a test: no asserts on times).

One run, one base image (``mkfs.ext2``, 1 GiB, 4 KiB blocks, sparse), a fresh
copy of it per peer and round:

- ``rumpfs-inproc``: ``rumpfs.Kernel()`` with the image as an etfs block
  device mounted as ext2, driven through the kernel's os-like calls;
- ``rumpfs-fuse``: ``python -m rumpfs mount MP --image IMG`` (this checkout),
  driven from the host;
- ``fuse2fs``: Debian's C FUSE driver for the same images (the peer a user
  would pick), ``fuse2fs IMG MP -o fakeroot``;
- ``linux``: Linux's own driver on a loop device (the limit);
- ``image-file``: the image file itself, read and written with ``os`` at the
  same sizes: the baseline for in-process sequential I/O.

Workloads (host side through the mount point; in-process through the kernel):

- ``create``: 10,000 empty files created (open O_CREAT + close) in 10 directories;
- ``stat``: the same 10,000 files stat'ed (after a remount: cold caches);
- ``seq-write`` / ``seq-read``: 256 MiB in 1 MiB chunks, written then fsync'ed,
  then read back after a remount;
- ``rand``: 20,000 random 4 KiB-aligned preads and pwrites (alternating) over
  a 64 MiB file;
- ``tar``: extracting a tar of the Python standard library (without
  ``__pycache__`` and ``site-packages``) and syncing.

Targets (issue 8): rumpfs-fuse >= 1x fuse2fs on every row; rumpfs-inproc
sequential >= 0.5x image-file. Every phase is bounded by ``--budget`` seconds
(the rate of the part done is shown, marked "cut"). Output: a Markdown table on
stdout and in ``bench/results/ext2.md``, numbers in ``bench/results/ext2.json``.
Needs root (loop mounts, FUSE). The machine is shared: compare ratios within
one run.

Usage::

    .venv/bin/python bench/ext2.py [--rounds 1] [--budget 60] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
sys.path.insert(0, str(SRC))
RESULTS = REPO / "bench" / "results"
MIB = 1 << 20
PEERS = ("rumpfs-inproc", "rumpfs-fuse", "fuse2fs", "linux", "image-file")
WORKLOADS = ("create", "stat", "seq-write", "seq-read", "rand", "tar")


@dataclass
class Result:
    value: float  # ops/s or MB/s
    unit: str
    cut: bool = False
    error: str = ""


def _timed(n: int, budget: float, step: Callable[[int], None]) -> tuple[int, float, bool]:
    t0 = time.perf_counter()
    i = 0
    while i < n:
        step(i)
        i += 1
        if i % 64 == 0 and time.perf_counter() - t0 > budget:
            return i, time.perf_counter() - t0, True
    return i, time.perf_counter() - t0, False


# -- the drivers: something with os-like calls, plus remount -------------------------------


class Target:
    """One peer under test: ``fs`` has os's calls on paths under ``root``."""

    fs: Any
    root: str

    def remount(self) -> None: ...

    def sync(self) -> None: ...

    def extract(self, archive: Path, dest: str) -> None:
        subprocess.run(["tar", "-xf", str(archive), "-C", dest], check=True)


class HostMount(Target):
    def __init__(self, image: Path, kind: str, mp: Path) -> None:
        self.image, self.kind, self.root, self.fs = image, kind, str(mp), os
        self.proc: subprocess.Popen[bytes] | None = None
        self.mount()

    def mount(self) -> None:
        if self.kind == "linux":
            subprocess.run(["mount", "-o", "loop", str(self.image), self.root], check=True)
        elif self.kind == "fuse2fs":
            subprocess.run(["fuse2fs", str(self.image), self.root, "-o", "fakeroot"],
                           check=True, capture_output=True)
        else:
            env = {**os.environ, "PYTHONPATH": str(SRC)}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rumpfs", "mount", "-f", "-q", self.root, "--image",
                 str(self.image)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while not os.path.ismount(self.root):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"rumpfs mount failed: {err[-2000:]}")
                time.sleep(0.05)

    def unmount(self) -> None:
        if self.kind == "linux":
            subprocess.run(["umount", self.root], check=True)
            return
        subprocess.run(["fusermount3", "-u", self.root], check=False)
        if self.proc is not None:
            self.proc.wait(120)
            self.proc = None
        else:  # fuse2fs daemonizes: wait until it has let go of the image
            deadline = time.monotonic() + 120
            while os.path.ismount(self.root) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)

    def remount(self) -> None:
        self.unmount()
        self.mount()

    def sync(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.sync()


class InProc(Target):
    def __init__(self, image: Path) -> None:
        from rumpfs import EtfsType, Kernel

        self.k = Kernel()
        self.k.etfs_register("/dev/img", image, EtfsType.BLK)
        self.k.mkdir("/mnt")
        self.fs, self.root = self.k, "/mnt"
        self.remount(first=True)

    def remount(self, first: bool = False) -> None:
        if not first:
            self.k.unmount("/mnt")
        self.k.mount("ext2", "/mnt", device="/dev/img")

    def sync(self) -> None:
        self.k.sync()

    def extract(self, archive: Path, dest: str) -> None:
        k = self.k
        with tarfile.open(archive) as tar:
            for m in tar:
                path = f"{dest}/{m.name}"
                if m.isdir():
                    with contextlib.suppress(FileExistsError):
                        k.mkdir(path, m.mode)
                elif m.issym():
                    k.symlink(m.linkname, path)
                elif m.isfile():
                    src = tar.extractfile(m)
                    assert src is not None
                    fd = k.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, m.mode)
                    k.write(fd, src.read())
                    k.close(fd)
                    k.utime(path, (m.mtime, m.mtime))

    def close(self) -> None:
        self.k.unmount("/mnt")
        self.k.shutdown()


class ImageFile(Target):
    """Only sequential I/O: on the image file itself, as a host file."""

    def __init__(self, image: Path) -> None:
        self.fs, self.root = os, str(image.parent)


# -- workloads ----------------------------------------------------------------------------


def w_create_stat(t: Target, n: int, budget: float) -> dict[str, Result]:
    fs = t.fs
    dirs = [f"{t.root}/c{i}" for i in range(10)]
    for d in dirs:
        fs.mkdir(d)

    def create(i: int) -> None:
        fs.close(fs.open(f"{dirs[i % 10]}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))

    done, secs, cut = _timed(n, budget, create)
    out = {"create": Result(done / secs, "ops/s", cut)}
    t.sync()
    t.remount()
    done2, secs2, cut2 = _timed(done, budget, lambda i: fs.stat(f"{dirs[i % 10]}/f{i}"))
    out["stat"] = Result(done2 / secs2, "ops/s", cut2)
    return out


def w_seq(t: Target, total: int, budget: float, path: str | None = None) -> dict[str, Result]:
    fs = t.fs
    p = path or f"{t.root}/seq"
    chunk = os.urandom(MIB)
    fd = fs.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    n = total // MIB
    off = 0 if path is None else 64 * MIB  # inside the image file: past its metadata

    def write(i: int) -> None:
        fs.pwrite(fd, chunk, off + i * MIB)

    done, secs, cut = _timed(n, budget, write)
    t0 = time.perf_counter()
    fs.fsync(fd)
    secs += time.perf_counter() - t0
    fs.close(fd)
    out = {"seq-write": Result(done * MIB / secs / 1e6, "MB/s", cut)}
    if path is None:
        t.remount()
    fd = fs.open(p, os.O_RDONLY)

    def read(i: int) -> None:
        if len(fs.pread(fd, MIB, off + i * MIB)) != MIB:
            raise RuntimeError("short read")

    done2, secs2, cut2 = _timed(done, budget, read)
    fs.close(fd)
    out["seq-read"] = Result(done2 * MIB / secs2 / 1e6, "MB/s", cut2)
    return out


def w_rand(t: Target, size: int, ops: int, budget: float) -> dict[str, Result]:
    fs = t.fs
    p = f"{t.root}/rand"
    fd = fs.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    block = os.urandom(MIB)
    for i in range(size // MIB):
        fs.pwrite(fd, block, i * MIB)
    fs.fsync(fd)
    rng = random.Random(7)
    offsets = [rng.randrange(size // 4096) * 4096 for _ in range(ops)]
    data = os.urandom(4096)

    def step(i: int) -> None:
        if i % 2:
            fs.pwrite(fd, data, offsets[i])
        else:
            fs.pread(fd, 4096, offsets[i])

    done, secs, cut = _timed(ops, budget, step)
    fs.close(fd)
    return {"rand": Result(done / secs, "ops/s", cut)}


def make_tar(cache: Path) -> tuple[Path, int]:
    archive = cache / "stdlib.tar"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    with tarfile.open(archive, "w") as tar:
        for dirpath, dirnames, filenames in os.walk(stdlib):
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in ("__pycache__", "site-packages", "test"))
            rel = Path(dirpath).relative_to(stdlib.parent)
            tar.add(dirpath, arcname=str(rel), recursive=False)
            for f in sorted(filenames):
                full = Path(dirpath) / f
                if full.is_file() and not full.is_symlink():
                    tar.add(full, arcname=str(rel / f))
                    count += 1
    return archive, count


def w_tar(t: Target, archive: Path, files: int) -> dict[str, Result]:
    t0 = time.perf_counter()
    t.fs.mkdir(f"{t.root}/tar")
    t.extract(archive, f"{t.root}/tar")
    t.sync()
    secs = time.perf_counter() - t0
    return {"tar": Result(files / secs, "files/s")}


# -- driving ------------------------------------------------------------------------------


def make_base(work: Path, size: int) -> Path:
    base = work / "base.img"
    with open(base, "wb") as f:
        f.truncate(size)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096", "-E", "root_owner=0:0",
                    str(base)], check=True)
    return base


@contextlib.contextmanager
def target(peer: str, image: Path, mp: Path) -> Iterator[Target]:
    if peer == "rumpfs-inproc":
        t = InProc(image)
        try:
            yield t
        finally:
            t.close()
    elif peer == "image-file":
        yield ImageFile(image)
    else:
        h = HostMount(image, peer.replace("rumpfs-fuse", "rumpfs"), mp)
        try:
            yield h
        finally:
            h.unmount()


def run_peer(peer: str, base: Path, work: Path, args: argparse.Namespace, archive: Path,
             files: int) -> dict[str, Result]:
    image = work / f"{peer}.img"
    subprocess.run(["cp", "--sparse=always", str(base), str(image)], check=True)
    mp = work / f"mnt-{peer}"
    mp.mkdir(exist_ok=True)
    out: dict[str, Result] = {}
    total = args.seq_mib * MIB
    try:
        with target(peer, image, mp) as t:
            if peer == "image-file":
                out.update(w_seq(t, total, args.budget, path=str(image)))
                return out
            out.update(w_create_stat(t, args.files, args.budget))
            out.update(w_seq(t, total, args.budget))
            out.update(w_rand(t, 64 * MIB, args.rand_ops, args.budget))
            out.update(w_tar(t, archive, files))
    except Exception as e:
        for w in WORKLOADS:
            out.setdefault(w, Result(0, "", error=f"{type(e).__name__}: {e}"[:200]))
    finally:
        image.unlink(missing_ok=True)
    return out


def fmt(r: Result | None) -> str:
    if r is None:
        return "—"
    if r.error:
        return "fails"
    v = f"{r.value:,.0f}" if r.value >= 100 else f"{r.value:.1f}"
    return v + (" (cut)" if r.cut else "")


def report(res: dict[str, dict[str, Result]], args: argparse.Namespace) -> str:
    peers = [p for p in PEERS if p in res]
    lines = [
        f"ext2 benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared machine: compare within the run)",
        "",
        "| workload | unit | " + " | ".join(peers) + " | rumpfs-fuse / fuse2fs |",
        "| --- | --- | " + " | ".join("---:" for _ in peers) + " | ---: |",
    ]
    misses = []
    for w in WORKLOADS:
        row = [res[p].get(w) for p in peers]
        unit = next((r.unit for r in row if r is not None and r.unit), "")
        fz, f2 = res.get("rumpfs-fuse", {}).get(w), res.get("fuse2fs", {}).get(w)
        ratio = "—"
        if fz and f2 and not fz.error and not f2.error and f2.value:
            ratio = f"{fz.value / f2.value:.2f}x"
            if fz.value < f2.value:
                misses.append(f"{w}: rumpfs-fuse {fz.value / f2.value:.2f}x fuse2fs (target 1x)")
        lines.append(f"| {w} | {unit} | " + " | ".join(fmt(r) for r in row) + f" | {ratio} |")
    img = res.get("image-file", {})
    inp = res.get("rumpfs-inproc", {})
    for w in ("seq-write", "seq-read"):
        a, b = inp.get(w), img.get(w)
        if a and b and not a.error and b.value:
            r = a.value / b.value
            lines.append(f"\nrumpfs-inproc {w}: {r:.2f}x the image file (target 0.5x)")
            if r < 0.5:
                misses.append(f"{w}: rumpfs-inproc {r:.2f}x image-file (target 0.5x)")
    errors = [f"- {p} {w}: {r.error}" for p in peers for w, r in res[p].items() if r.error]
    if errors:
        lines += ["", "Failures:", *sorted(set(errors))]
    lines += ["", "Misses: " + ("none" if not misses else ""), *[f"- {m}" for m in misses]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per phase")
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--work", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args(argv)
    args.files = 2000 if args.quick else 10_000
    args.seq_mib = 64 if args.quick else 256
    args.rand_ops = 4000 if args.quick else 20_000
    work = Path(args.work or tempfile.mkdtemp(prefix="rumpfs-bench-ext2-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        base = make_base(work, 1 << 30)
        archive, files = make_tar(work)
        res: dict[str, dict[str, Result]] = {}
        for peer in args.peers.split(","):
            print(f"== {peer}", file=sys.stderr, flush=True)
            res[peer] = run_peer(peer, base, work, args, archive, files)
            print({w: fmt(r) for w, r in res[peer].items()}, file=sys.stderr, flush=True)
        text = report(res, args)
        print(text)
        if not args.quick:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "ext2.md").write_text(text)
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
            (RESULTS / "ext2.json").write_text(json.dumps(
                {"commit": commit, "date": time.time(), "loadavg": os.getloadavg(),
                 "tar_files": files,
                 "results": {p: {w: asdict(r) for w, r in v.items()} for p, v in res.items()}},
                indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
