#!/usr/bin/env python3
"""In-process file-system benchmark: rumpfs against in-memory peers and os on tmpfs.

This is a benchmark, not a test: it measures and reports, it never fails a build.
Each implementation is driven through a thin adapter with the same methods, so
every workload is written once.  Implementations run interleaved (for each
workload, for each repetition, each implementation in turn, rotating the start)
so that a noisy machine affects them alike; the median of the repetitions is
reported.

    .venv/bin/python bench/inproc.py            # full run (~15 min budget)
    .venv/bin/python bench/inproc.py --quick    # smaller sizes, 3 repetitions
    .venv/bin/python bench/inproc.py --impl os-tmpfs,pyfakefs --workload metadata

Prints a Markdown table (value and ratio to os-tmpfs) and writes JSON to
bench/results/inproc.json (inproc-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import starmap
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
TMPFS = "/dev/shm"
KiB = 1 << 10
MiB = 1 << 20
SPARSE_OFFSET = 1 << 40

# The benchmark measures the working tree, installed or not.
sys.path.insert(0, str(REPO / "src"))


# --------------------------------------------------------------------------- adapters


class Adapter:
    """One fresh file-system instance, seen through os-like callables.

    The operations are instance attributes bound straight to the peer's own
    functions wherever possible, so the harness adds no call layer of its own.
    ``base`` is an existing, empty directory in which the workloads work.
    A *handle* is whatever the peer uses for an open file (an fd or a file object).
    """

    name: ClassVar[str]
    base: str
    create: Callable[[str], None]  # open(O_CREAT|O_WRONLY) + close, or nearest equivalent
    stat: Callable[[str], object]
    rename: Callable[[str, str], object]
    unlink: Callable[[str], object]
    listdir: Callable[[str], list[str]]
    mkdir: Callable[[str], object]
    open_rw: Callable[[str, bool], Any]  # (path, create) -> handle; create truncates
    write: Callable[[Any, bytes], int]
    read: Callable[[Any, int], bytes]
    pwrite: Callable[[Any, bytes, int], int]
    pread: Callable[[Any, int, int], bytes]
    seek: Callable[[Any, int], int]
    close: Callable[[Any], None]

    def size(self, path: str) -> int:
        """The size of the file at ``path``."""
        return int(self.stat(path).st_size)  # type: ignore[attr-defined]

    def outside_bytes(self, path: str) -> int:
        """Memory the file takes outside this process (tmpfs pages); 0 for in-process peers."""
        return 0

    def shutdown(self) -> None:
        """Release the instance."""


class OsAdapter(Adapter):
    """Python's ``os`` on a fresh directory under /dev/shm (tmpfs)."""

    name = "os-tmpfs"
    RW = os.O_RDWR | os.O_CLOEXEC
    NEW = os.O_CREAT | os.O_TRUNC | RW

    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="rumpfs-bench-", dir=TMPFS)

        def create(path: str, _open: Any = os.open, _close: Any = os.close) -> None:
            _close(_open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))

        def open_rw(path: str, create: bool) -> int:
            return os.open(path, self.NEW if create else self.RW, 0o644)

        self.create = create
        self.stat = os.stat
        self.rename = os.rename
        self.unlink = os.unlink
        self.listdir = os.listdir
        self.mkdir = os.mkdir
        self.open_rw = open_rw
        self.write = os.write
        self.read = os.read
        self.pwrite = os.pwrite
        self.pread = os.pread
        self.seek = lambda fd, pos: os.lseek(fd, pos, os.SEEK_SET)
        self.close = os.close

    def outside_bytes(self, path: str) -> int:
        return os.stat(path).st_blocks * 512

    def shutdown(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class RumpfsAdapter(Adapter):
    """``rumpfs.Kernel`` used through its os-like system calls."""

    name = "rumpfs"

    def __init__(self) -> None:
        from rumpfs import Kernel

        self.kernel = k = Kernel()
        self.base = "/bench"
        k.mkdir(self.base)
        rw = os.O_RDWR
        new = os.O_CREAT | os.O_TRUNC | rw

        def create(path: str, _open: Any = k.open, _close: Any = k.close) -> None:
            _close(_open(path, os.O_CREAT | os.O_WRONLY, 0o644))

        def open_rw(path: str, create: bool) -> int:
            return int(k.open(path, new if create else rw, 0o644))

        self.create = create
        self.stat = k.stat
        self.rename = k.rename
        self.unlink = k.unlink
        self.listdir = k.listdir
        self.mkdir = k.mkdir
        self.open_rw = open_rw
        self.write = k.write
        self.read = k.read
        self.pwrite = k.pwrite
        self.pread = k.pread
        self.seek = lambda fd, pos: k.lseek(fd, pos, os.SEEK_SET)
        self.close = k.close

    def shutdown(self) -> None:
        self.kernel.shutdown()


class PyfakefsAdapter(Adapter):
    """pyfakefs' ``FakeFilesystem`` through ``FakeOsModule``, without patching.

    FakeOsModule forwards functions it does not fake (pread, pwrite) to the real
    ``os``, so those are built here from lseek + read/write.
    """

    name = "pyfakefs"

    def __init__(self) -> None:
        from pyfakefs import fake_filesystem, fake_os

        self.filesystem = fake_filesystem.FakeFilesystem()
        fos = fake_os.FakeOsModule(self.filesystem)
        self.base = "/bench"
        fos.mkdir(self.base)
        rw = os.O_RDWR
        new = os.O_CREAT | os.O_TRUNC | rw

        def create(path: str, _open: Any = fos.open, _close: Any = fos.close) -> None:
            _close(_open(path, os.O_CREAT | os.O_WRONLY, 0o644))

        def open_rw(path: str, create: bool) -> int:
            return int(fos.open(path, new if create else rw, 0o644))

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            fos.lseek(fd, offset, os.SEEK_SET)
            return int(fos.write(fd, data))

        def pread(fd: int, n: int, offset: int) -> bytes:
            fos.lseek(fd, offset, os.SEEK_SET)
            return bytes(fos.read(fd, n))

        self.create = create
        self.stat = fos.stat
        self.rename = fos.rename
        self.unlink = fos.unlink
        self.listdir = fos.listdir
        self.mkdir = fos.mkdir
        self.open_rw = open_rw
        self.write = fos.write
        self.read = fos.read
        self.pwrite = pwrite
        self.pread = pread
        self.seek = lambda fd, pos: fos.lseek(fd, pos, os.SEEK_SET)
        self.close = fos.close


class PyFilesystem2Adapter(Adapter):
    """PyFilesystem2's ``MemoryFS`` through its own API (openbin, getinfo, move, ...)."""

    name = "pyfs2"

    def __init__(self) -> None:
        from fs.memoryfs import MemoryFS

        self.fs = mfs = MemoryFS()
        self.base = "/bench"
        mfs.makedir(self.base)
        details = ("details",)  # size and times, as stat has

        def create(path: str, _openbin: Any = mfs.openbin) -> None:
            _openbin(path, "w").close()

        def pwrite(f: Any, data: bytes, offset: int) -> int:
            f.seek(offset)
            return int(f.write(data))

        def pread(f: Any, n: int, offset: int) -> bytes:
            f.seek(offset)
            return bytes(f.read(n))

        self.create = create
        self.stat = lambda path: mfs.getinfo(path, details)
        self.rename = lambda src, dst: mfs.move(src, dst, overwrite=True)
        self.unlink = mfs.remove
        self.listdir = mfs.listdir
        self.mkdir = mfs.makedir
        self.open_rw = lambda path, create: mfs.openbin(path, "w+" if create else "r+")
        self.write = lambda f, data: f.write(data)
        self.read = lambda f, n: f.read(n)
        self.pwrite = pwrite
        self.pread = pread
        self.seek = lambda f, pos: f.seek(pos)
        self.close = lambda f: f.close()

    def size(self, path: str) -> int:
        return int(self.fs.getsize(path))

    def shutdown(self) -> None:
        self.fs.close()


class FsspecAdapter(Adapter):
    """fsspec's ``MemoryFileSystem`` (open, info, mv, rm_file, ls, mkdir).

    Its store is class-global by default: each instance works under a unique
    root, uses a private store where the installed fsspec offers one, and
    empties the store it used on shutdown.
    """

    name = "fsspec"

    def __init__(self) -> None:
        from fsspec.implementations.memory import MemoryFileSystem

        try:
            mfs = MemoryFileSystem(global_store=False, skip_instance_cache=True)
        except TypeError:  # older fsspec: one global store
            mfs = MemoryFileSystem(skip_instance_cache=True)
        self.fs = mfs
        self.base = f"/bench-{uuid.uuid4().hex}"
        mfs.mkdir(self.base)

        def create(path: str, _open: Any = mfs.open) -> None:
            _open(path, "wb").close()

        def pwrite(f: Any, data: bytes, offset: int) -> int:
            f.seek(offset)
            return int(f.write(data))

        def pread(f: Any, n: int, offset: int) -> bytes:
            f.seek(offset)
            return bytes(f.read(n))

        self.create = create
        self.stat = mfs.info
        self.rename = mfs.mv
        self.unlink = mfs.rm_file
        self.listdir = lambda path: mfs.ls(path, detail=False)
        self.mkdir = mfs.mkdir
        self.open_rw = lambda path, create: mfs.open(path, "w+b" if create else "r+b")
        self.write = lambda f, data: f.write(data)
        self.read = lambda f, n: f.read(n)
        self.pwrite = pwrite
        self.pread = pread
        self.seek = lambda f, pos: f.seek(pos)
        self.close = lambda f: f.close()

    def size(self, path: str) -> int:
        return int(self.fs.info(path)["size"])

    def shutdown(self) -> None:
        prefix = self.base + "/"
        store, dirs = self.fs.store, self.fs.pseudo_dirs
        for key in [k for k in store if k == self.base or k.startswith(prefix)]:
            del store[key]
        dirs[:] = [d for d in dirs if not (d == self.base or d.startswith(prefix))]


ADAPTERS: dict[str, type[Adapter]] = {
    a.name: a
    for a in (RumpfsAdapter, OsAdapter, PyfakefsAdapter, PyFilesystem2Adapter, FsspecAdapter)
}
BASELINE = OsAdapter.name


def available(name: str) -> str | None:
    """None if the implementation can be instantiated here, else why not."""
    try:
        ADAPTERS[name]().shutdown()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """``done`` of ``total`` operations in ``elapsed`` seconds (cut if done < total)."""

    done: int
    total: int
    elapsed: float

    @property
    def cut(self) -> bool:
        return self.done < self.total

    def rate(self, per_op: float = 1.0) -> float:
        return self.done * per_op / self.elapsed if self.elapsed > 0 else float("inf")


_consume: Callable[[Iterable[object]], None] = deque(maxlen=0).extend


def timed(
    op: Callable[..., object], args: Sequence[Any], budget: float, *, star: bool = False
) -> Timing:
    """Apply ``op`` to every item of ``args`` (unpacked if ``star``) and time it.

    Stops early (a *cut*) once ``budget`` seconds have passed. Items are fed in
    chunks that grow while they take under 10 ms, so the clock is read rarely
    and the loop itself is C-level ``map``.
    """
    apply = starmap if star else map
    n = len(args)
    done, chunk = 0, 1
    start = time.perf_counter()
    deadline = start + budget
    while done < n:
        t0 = time.perf_counter()
        _consume(apply(op, args[done : done + chunk]))
        done = min(n, done + chunk)
        now = time.perf_counter()
        if now > deadline:
            break
        if now - t0 < 0.01:
            chunk = min(chunk * 2, 4096)
    return Timing(done, n, time.perf_counter() - start)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    vs_baseline: bool = True  # show the ratio to os-tmpfs


@dataclass
class Sample:
    """One measurement; value None means the operation failed (see note)."""

    value: float | None
    note: str = ""  # "cut" (partial run, rate of the completed part), "fails: ..."
    extra: dict[str, Any] = field(default_factory=dict)


def sample(t: Timing, per_op: float = 1.0) -> Sample:
    return Sample(t.rate(per_op), "cut" if t.cut else "", {"done": t.done, "total": t.total})


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Config:
    quick: bool
    reps: int
    budget: float  # seconds per timed phase before it is cut
    n_files: int
    deep_stats: int
    seq_bytes: int
    rand_file: int
    rand_ops: int
    dir_small: int
    dir_large: int

    @classmethod
    def make(cls, quick: bool, reps: int | None) -> Config:
        if quick:
            return cls(
                quick=True,
                reps=reps or 3,
                budget=4.0,
                n_files=2_000,
                deep_stats=5_000,
                seq_bytes=64 * MiB,
                rand_file=64 * MiB,
                rand_ops=5_000,
                dir_small=5_000,
                dir_large=50_000,
            )
        return cls(
            quick=False,
            reps=reps or 5,
            budget=15.0,
            n_files=10_000,
            deep_stats=20_000,
            seq_bytes=256 * MiB,
            rand_file=64 * MiB,
            rand_ops=20_000,
            dir_small=20_000,
            dir_large=200_000,
        )


Result = dict[str, Sample]


def w_metadata(fs: Adapter, cfg: Config) -> Result:
    """Creates, stats, renames, unlinks, one listing and mkdirs in a single directory."""
    d = f"{fs.base}/d"
    fs.mkdir(d)
    n = cfg.n_files
    names = [f"{d}/file-{i:06d}" for i in range(n)]
    renamed = [f"{d}/renamed-{i:06d}" for i in range(n)]
    out: Result = {}
    t = timed(fs.create, names, cfg.budget)
    out["md.create"] = sample(t)
    names, renamed = names[: t.done], renamed[: t.done]
    out["md.stat"] = sample(timed(fs.stat, names, cfg.budget))
    start = time.perf_counter()
    listing = fs.listdir(d)
    out["md.list"] = Sample(1 / (time.perf_counter() - start), extra={"entries": len(listing)})
    if len(listing) != len(names):
        out["md.list"].note = f"wrong: {len(listing)} entries, expected {len(names)}"
    t = timed(fs.rename, list(zip(names, renamed, strict=True)), cfg.budget, star=True)
    out["md.rename"] = sample(t)
    out["md.unlink"] = sample(timed(fs.unlink, renamed[: t.done], cfg.budget))
    dirs = [f"{d}/dir-{i:06d}" for i in range(n)]
    out["md.mkdir"] = sample(timed(fs.mkdir, dirs, cfg.budget))
    return out


DEEP = 20


def w_deep_stat(fs: Adapter, cfg: Config) -> Result:
    """Stat of a file 20 directories below the base directory."""
    path = fs.base
    for i in range(DEEP):
        path = f"{path}/dir{i:02d}"
        fs.mkdir(path)
    path += "/file"
    fs.create(path)
    return {"deep.stat": sample(timed(fs.stat, [path] * cfg.deep_stats, cfg.budget))}


def w_sequential(fs: Adapter, cfg: Config) -> Result:
    """Sequential write then read of one file, in 1 MiB and in 4 KiB chunks."""
    out: Result = {}
    for chunk, tag in ((MiB, "1m"), (4 * KiB, "4k")):
        path = f"{fs.base}/seq-{tag}"
        n = cfg.seq_bytes // chunk
        buf = os.urandom(chunk)
        h = fs.open_rw(path, True)
        t = timed(fs.write, [(h, buf)] * n, cfg.budget, star=True)
        fs.close(h)
        out[f"seq.write.{tag}"] = sample(t, chunk / 1e6)
        written = t.done * chunk
        if fs.size(path) != written:
            out[f"seq.write.{tag}"].note = f"wrong: size {fs.size(path)}, expected {written}"
        h = fs.open_rw(path, False)
        t = timed(fs.read, [(h, chunk)] * t.done, cfg.budget, star=True)
        fs.seek(h, 0)
        if fs.read(h, chunk) != buf:
            out[f"seq.read.{tag}"] = Sample(None, "wrong: data read back differs")
        else:
            out[f"seq.read.{tag}"] = sample(t, chunk / 1e6)
        fs.close(h)
        fs.unlink(path)
    return out


def w_random(fs: Adapter, cfg: Config) -> Result:
    """Random 4 KiB pwrite + pread pairs over a preallocated file."""
    path = f"{fs.base}/random"
    h = fs.open_rw(path, True)
    zeros = bytes(MiB)
    for _ in range(cfg.rand_file // MiB):
        fs.write(h, zeros)
    rng = random.Random(1234)
    offsets = [rng.randrange(cfg.rand_file // (4 * KiB)) * 4 * KiB for _ in range(cfg.rand_ops)]
    buf = os.urandom(4 * KiB)
    pwrite, pread = fs.pwrite, fs.pread

    def pair(offset: int) -> None:
        pwrite(h, buf, offset)
        pread(h, 4 * KiB, offset)

    t = timed(pair, offsets, cfg.budget)
    out = {"rand.pair": sample(t)}
    if pread(h, 4 * KiB, offsets[0]) != buf:
        out["rand.pair"] = Sample(None, "wrong: data read back differs")
    fs.close(h)
    return out


def make_w_directory(size_key: str) -> Callable[[Adapter, Config], Result]:
    def w_directory(fs: Adapter, cfg: Config) -> Result:
        """Create N entries in one directory, then stat each of them."""
        n = getattr(cfg, size_key)
        d = f"{fs.base}/big"
        fs.mkdir(d)
        names = [f"{d}/entry-{i:07d}" for i in range(n)]
        t = timed(fs.create, names, cfg.budget)
        tag = "small" if size_key == "dir_small" else "large"
        out = {f"dir.{tag}.create": sample(t)}
        lookups = names[: t.done]
        random.Random(99).shuffle(lookups)
        out[f"dir.{tag}.stat"] = sample(timed(fs.stat, lookups, cfg.budget))
        return out

    return w_directory


SPARSE_TIMEOUT = 60.0
SPARSE_HEADROOM = 2 << 30  # address space the child may add before MemoryError


def w_sparse(name: str, cfg: Config) -> Result:
    """A 1-byte write at offset 2**40, in a child process capped in address space."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sparse-child", name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SPARSE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"sparse.growth": Sample(None, f"timeout ({SPARSE_TIMEOUT:.0f} s)")}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        why = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"sparse.growth": Sample(None, f"fails: {why[0][:80]}")}
    report = json.loads(lines[-1])
    if not report["ok"]:
        return {"sparse.growth": Sample(None, f"fails: {report['error']}", report)}
    return {"sparse.growth": Sample(float(report["growth"]), extra=report)}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sparse_child(name: str) -> dict[str, Any]:
    """Body of the --sparse-child process: write, verify, report growth as JSON."""
    fs = ADAPTERS[name]()
    path = f"{fs.base}/sparse"
    try:
        h = fs.open_rw(path, True)
        gc.collect()
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm + SPARSE_HEADROOM, vm + SPARSE_HEADROOM))
        tracemalloc.start()
        rss0 = rss_bytes()
        traced0 = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            written = fs.pwrite(h, b"x", SPARSE_OFFSET)
            error = None if written == 1 else f"wrote {written} bytes"
        except (MemoryError, OSError, OverflowError, ValueError) as e:
            error = f"{type(e).__name__} {e}".strip()[:80]
        traced, peak = tracemalloc.get_traced_memory()
        rss1 = rss_bytes()
        tracemalloc.stop()
        report: dict[str, Any] = {
            "ok": error is None,
            "error": error,
            "traced_growth": traced - traced0,
            "traced_peak_growth": peak - traced0,
            "rss_growth": rss1 - rss0,
        }
        if error is None:
            if fs.pread(h, 1, SPARSE_OFFSET) != b"x" or fs.size(path) != SPARSE_OFFSET + 1:
                report.update(ok=False, error="wrong: read-back or size differs")
            report["outside_bytes"] = fs.outside_bytes(path)
            report["growth"] = (
                max(report["traced_peak_growth"], report["rss_growth"]) + report["outside_bytes"]
            )
        fs.close(h)
        return report
    finally:
        fs.shutdown()


@dataclass(frozen=True)
class Workload:
    key: str
    run: Callable[[Adapter, Config], Result] | None
    rows: tuple[Row, ...]
    reps: int | None = None  # None: cfg.reps
    run_isolated: Callable[[str, Config], Result] | None = None  # makes its own instance


def workloads(cfg: Config) -> list[Workload]:
    small, large = f"{cfg.dir_small // 1000}k", f"{cfg.dir_large // 1000}k"
    n = f"{cfg.n_files // 1000}k"
    seq = f"{cfg.seq_bytes // MiB} MiB"
    return [
        Workload(
            "metadata",
            w_metadata,
            (
                Row("md.create", f"create {n} files in one dir", "ops/s"),
                Row("md.stat", f"stat {n} files", "ops/s"),
                Row("md.rename", f"rename {n} files", "ops/s"),
                Row("md.unlink", f"unlink {n} files", "ops/s"),
                Row("md.list", f"list a {n}-entry dir", "lists/s"),
                Row("md.mkdir", f"mkdir {n} dirs in one dir", "ops/s"),
            ),
        ),
        Workload(
            "deep", w_deep_stat, (Row("deep.stat", f"stat a path {DEEP} dirs deep", "ops/s"),)
        ),
        Workload(
            "sequential",
            w_sequential,
            (
                Row("seq.write.1m", f"seq write {seq}, 1 MiB chunks", "MB/s"),
                Row("seq.read.1m", f"seq read {seq}, 1 MiB chunks", "MB/s"),
                Row("seq.write.4k", f"seq write {seq}, 4 KiB chunks", "MB/s"),
                Row("seq.read.4k", f"seq read {seq}, 4 KiB chunks", "MB/s"),
            ),
        ),
        Workload(
            "random",
            w_random,
            (
                Row(
                    "rand.pair",
                    f"random 4 KiB pwrite+pread, {cfg.rand_file // MiB} MiB file",
                    "pairs/s",
                ),
            ),
        ),
        Workload(
            "sparse",
            None,
            (
                Row(
                    "sparse.growth",
                    "1 B write at 2**40: memory growth",
                    "bytes",
                    higher_is_better=False,
                    vs_baseline=False,
                ),
            ),
            reps=1,
            run_isolated=w_sparse,
        ),
        Workload(
            "dir-small",
            make_w_directory("dir_small"),
            (
                Row("dir.small.create", f"create {small} entries in one dir", "ops/s"),
                Row("dir.small.stat", f"stat each of {small} entries", "ops/s"),
            ),
        ),
        Workload(
            "dir-large",
            make_w_directory("dir_large"),
            (
                Row("dir.large.create", f"create {large} entries in one dir", "ops/s"),
                Row("dir.large.stat", f"stat each of {large} entries", "ops/s"),
            ),
        ),
    ]


def scaling_rows(cfg: Config) -> tuple[Row, ...]:
    label = f"per-op cost {cfg.dir_large // 1000}k / {cfg.dir_small // 1000}k"
    return (
        Row("dir.scale.create", f"create: {label}", "x", False, False),
        Row("dir.scale.stat", f"stat: {label}", "x", False, False),
    )


# --------------------------------------------------------------------------- runner


def run_cell(impl: str, wl: Workload, cfg: Config) -> Result:
    gc.collect()
    if wl.run_isolated is not None:
        return wl.run_isolated(impl, cfg)
    assert wl.run is not None
    fs = ADAPTERS[impl]()
    try:
        return wl.run(fs, cfg)
    except Exception as e:  # a peer's failure is a result, not a crash
        return {r.key: Sample(None, f"fails: {type(e).__name__} {e}"[:90]) for r in wl.rows}
    finally:
        with contextlib.suppress(Exception):
            fs.shutdown()
        gc.collect()


def median_sample(samples: list[Sample]) -> Sample:
    values = [s.value for s in samples if s.value is not None]
    notes = sorted({s.note for s in samples if s.note})
    if len(values) < len(samples):  # any failure makes the cell a failure
        return Sample(None, "; ".join(notes) or "fails")
    return Sample(statistics.median(values), "; ".join(notes))


def run_all(
    impls: list[str], wls: list[Workload], cfg: Config, log: Callable[[str], None]
) -> dict[str, dict[str, list[Sample]]]:
    """samples[row_key][impl] -> one Sample per repetition, run round-robin."""
    samples: dict[str, dict[str, list[Sample]]] = {}
    for wl in wls:
        reps = wl.reps or cfg.reps
        dropped: set[str] = set()  # cut or failed once: not repeated
        for rep in range(reps):
            order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
            for impl in order:
                if impl in dropped:
                    continue
                t0 = time.perf_counter()
                result = run_cell(impl, wl, cfg)
                for key, s in result.items():
                    samples.setdefault(key, {}).setdefault(impl, []).append(s)
                    if s.value is None or "cut" in s.note:
                        dropped.add(impl)
                log(
                    f"  {wl.key:<10} rep {rep + 1}/{reps} {impl:<9} "
                    f"{time.perf_counter() - t0:6.1f} s  "
                    + ", ".join(
                        f"{k}={fmt_value(s.value, '')}{'*' if s.note else ''}"
                        for k, s in result.items()
                    )
                )
    return samples


def add_scaling(medians: dict[str, dict[str, Sample]]) -> None:
    """Per-op cost ratio large/small = rate(small) / rate(large)."""
    for op in ("create", "stat"):
        small = medians.get(f"dir.small.{op}", {})
        large = medians.get(f"dir.large.{op}", {})
        for impl in small.keys() & large.keys():
            out = medians.setdefault(f"dir.scale.{op}", {})
            s, lg = small[impl], large[impl]
            note = "; ".join(sorted({n for n in (s.note, lg.note) if n}))
            if s.value is None or lg.value is None:
                out[impl] = Sample(None, note or "fails")
            else:
                out[impl] = Sample(s.value / lg.value, note)


# --------------------------------------------------------------------------- reporting


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "bytes":
        for div, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if v >= div:
                return f"{v / div:.1f} {suffix}"
        return f"{v:.0f} B"
    if unit == "x":
        return f"{v:.2f}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def ratio(row: Row, impl: str, medians: dict[str, dict[str, Sample]]) -> float | None:
    cells = medians.get(row.key, {})
    mine, base = cells.get(impl), cells.get(BASELINE)
    if not row.vs_baseline or mine is None or base is None:
        return None
    if mine.value is None or not base.value:
        return None
    return mine.value / base.value


def fmt_cell(row: Row, impl: str, medians: dict[str, dict[str, Sample]]) -> str:
    s = medians.get(row.key, {}).get(impl)
    if s is None:
        return "n/a"
    if s.value is None:
        return s.note.split(":")[0] if s.note else "fails"
    text = fmt_value(s.value, row.unit)
    if "cut" in s.note:
        text = f"≤{text} (cut)"
    elif s.note.startswith("wrong"):
        text += " (wrong!)"
    r = ratio(row, impl, medians)
    if r is not None and impl != BASELINE:
        text += f" ({fmt_ratio(r)})"
    return text


def markdown_table(
    rows: Sequence[Row], impls: list[str], medians: dict[str, dict[str, Sample]]
) -> str:
    head = ["workload", "unit", *impls]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.key in medians:
            cells = [row.label, row.unit, *(fmt_cell(row, i, medians) for i in impls)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Target:
    text: str
    row: str
    passed: bool | None  # None: not measured
    detail: str


def evaluate_targets(
    rows: Sequence[Row], impls: list[str], medians: dict[str, dict[str, Sample]]
) -> list[Target]:
    me = RumpfsAdapter.name
    if me not in impls:
        return []
    out: list[Target] = []
    by_key = {r.key: r for r in rows}

    def value(key: str, impl: str) -> float | None:
        s = medians.get(key, {}).get(impl)
        return None if s is None or "wrong" in s.note else s.value

    def vs_os(key: str, floor: float) -> None:
        r = ratio(by_key[key], me, medians) if BASELINE in impls else None
        passed = None if r is None else r >= floor and value(key, me) is not None
        shown = "n/a" if r is None else f"{r:.3f}x"
        out.append(Target(f"≥ {floor:g}x os-tmpfs", key, passed, shown))

    single_dir_io = [
        "md.create",
        "md.stat",
        "md.rename",
        "md.unlink",
        "md.list",
        "md.mkdir",
        "seq.write.1m",
        "seq.read.1m",
        "seq.write.4k",
        "seq.read.4k",
        "rand.pair",
    ]
    for key in single_dir_io:
        if key in medians:
            vs_os(key, 1.0)
    if "deep.stat" in medians:
        vs_os("deep.stat", 1.0)             # issue 12: every row at host speed
    for key, row in by_key.items():
        if not row.vs_baseline or key not in medians:
            continue
        for peer in ("pyfakefs", "pyfs2"):
            if peer not in impls:
                continue
            mine, theirs = value(key, me), value(key, peer)
            ok = mine is not None and (theirs is None or mine > theirs)
            detail = f"{fmt_value(mine, row.unit)} vs {fmt_value(theirs, row.unit)}"
            out.append(Target(f"ahead of {peer}", key, ok, detail))
    if "sparse.growth" in medians:
        g = value("sparse.growth", me)
        out.append(
            Target(
                "sparse write succeeds, growth < 1 MiB",
                "sparse.growth",
                g is not None and g < MiB,
                fmt_value(g, "bytes") if g is not None else medians["sparse.growth"][me].note,
            )
        )
    for key in ("dir.scale.create", "dir.scale.stat"):
        if me in medians.get(key, {}):
            v = value(key, me)
            out.append(
                Target(
                    "per-op cost large/small ≤ 1.2",      # issue 12's target
                    key,
                    v is not None and v <= 1.2,
                    fmt_value(v, "x"),
                )
            )
    return out


def targets_markdown(targets: list[Target], rows: Sequence[Row]) -> str:
    labels = {r.key: r.label for r in rows}
    lines = ["| target | workload | rumpfs | result |", "|---|---|---|---|"]
    for t in targets:
        verdict = {True: "pass", False: "**miss**", None: "n/a"}[t.passed]
        lines.append(f"| {t.text} | {labels.get(t.row, t.row)} | {t.detail} | {verdict} |")
    passed = sum(t.passed is True for t in targets)
    lines.append(f"\n{passed}/{len(targets)} targets met.")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["mem_total_bytes"] = int(mem[1]) * 1024
    versions = {}
    for dist in ("pyfakefs", "fs", "fsspec"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    info["peer_versions"] = versions
    return info


def rumpfs_variant() -> str:
    """Which rumpfs was measured: "compiled" (scripts/compile built the hot
    modules with mypyc) or "pure" (the pure-Python package)."""
    import rumpfs

    return "compiled" if rumpfs.compiled else "pure"


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": bool(git("status", "--porcelain", "--", "src")),
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, 3 repetitions")
    ap.add_argument("--reps", type=int, help="repetitions per workload (default 5, quick 3)")
    ap.add_argument("--impl", help=f"comma-separated subset of {','.join(ADAPTERS)}")
    ap.add_argument("--workload", help="comma-separated subset of workloads")
    ap.add_argument("--json", type=Path, help="where to write JSON results")
    ap.add_argument("--sparse-child", metavar="IMPL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.sparse_child:
        print(json.dumps(sparse_child(args.sparse_child)))
        return 0

    cfg = Config.make(args.quick, args.reps)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.impl:
        impls = [i.strip() for i in args.impl.split(",") if i.strip()]
        unknown = [i for i in impls if i not in ADAPTERS]
        if unknown:
            ap.error(f"unknown implementation(s): {', '.join(unknown)}")
        for impl in impls:
            if why := available(impl):
                ap.error(f"{impl} is not usable: {why}")
    else:
        impls = []
        for impl in ADAPTERS:
            if why := available(impl):
                log(f"skipping {impl}: {why}")
            else:
                impls.append(impl)
    all_wls = workloads(cfg)
    if args.workload:
        chosen = {w.strip() for w in args.workload.split(",")}
        unknown = chosen - {w.key for w in all_wls}
        if unknown:
            ap.error(
                f"unknown workload(s): {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(w.key for w in all_wls)}"
            )
        all_wls = [w for w in all_wls if w.key in chosen]

    log(
        f"implementations: {', '.join(impls)}; {cfg.reps} reps; "
        f"{'quick' if cfg.quick else 'full'} run; rumpfs {rumpfs_variant()} "
        "(scripts/compile builds the compiled variant, scripts/compile --clean removes it)"
    )
    started = time.time()
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    samples = run_all(impls, all_wls, cfg, log)
    runtime = time.perf_counter() - t0

    medians = {
        key: {impl: median_sample(s) for impl, s in per.items()} for key, per in samples.items()
    }
    add_scaling(medians)
    rows = [r for w in all_wls for r in w.rows] + list(scaling_rows(cfg))
    targets = evaluate_targets(rows, impls, medians)

    variant = rumpfs_variant()
    print(
        f"## In-process benchmark ({'quick' if cfg.quick else 'full'}, "
        f"median of {cfg.reps}, {runtime:.0f} s; rumpfs {variant})\n"
    )
    print(markdown_table(rows, impls, medians))
    print(
        f"\nValues are medians; (nx) is the ratio to {BASELINE} (higher is better "
        "except for bytes and cost ratios). ≤x (cut): stopped after "
        f"{cfg.budget:.0f} s, rate of the part done, run once. "
        "fails/timeout: the operation raised, was killed, or gave wrong data."
    )
    if targets:
        print("\n## Targets (rumpfs)\n")
        print(targets_markdown(targets, rows))

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "runtime_s": round(runtime, 1),
        "rumpfs_variant": variant,
        "config": cfg.__dict__,
        **git_info(),
        "machine": {**machine_info(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
    }
    doc = {
        "meta": meta,
        "implementations": impls,
        "baseline": BASELINE,
        "rows": {
            r.key: {
                "label": r.label,
                "unit": r.unit,
                "higher_is_better": r.higher_is_better,
                "results": {
                    impl: {
                        "median": s.value,
                        "ratio_to_baseline": ratio(r, impl, medians),
                        "note": s.note,
                        "samples": [x.value for x in samples.get(r.key, {}).get(impl, [])],
                        "extra": [x.extra for x in samples.get(r.key, {}).get(impl, [])],
                    }
                    for impl, s in medians.get(r.key, {}).items()
                },
            }
            for r in rows
            if r.key in medians
        },
        "targets": [t.__dict__ for t in targets],
    }
    out = args.json or RESULTS_DIR / ("inproc-quick.json" if cfg.quick else "inproc.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out)
    log(f"wrote {out} ({runtime:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
