"""Benchmark the FUSE frontend from the host side (a benchmark, not a test: no asserts on times).

Peers, all measured in one run, interleaved (every round runs each workload
on each peer in turn, in a rotating order):

- ``rumpfs``: ``python -m rumpfs mount -f MP`` (this checkout; exclusive: the
  host caches entries, attributes, pages and listings);
- ``rumpfs-serve``: ``rumpfs.fuse.serve()`` (the host caches; every
  in-process change is pushed to it as an invalidation before the call
  returns) while an in-process thread keeps changing the kernel
  (creating, writing and unlinking files in its own directory);
- ``pyfuse3-tmpfs``: ``examples/tmpfs.py`` from pyfuse3's source distribution,
  fetched at run time with ``pip download --no-binary pyfuse3 --no-deps
  pyfuse3==<installed version>`` into the cache directory and extracted there
  (only the pyfuse3 sdist is needed, so its build dependencies stay wheels);
- ``mfusepy-memory``: mfusepy's ``examples/memory.py``; mfusepy is installed
  into the running venv with pip when missing. Its sdists carry no examples,
  so the example is looked up, in order, at ``$RUMPFS_BENCH_MFUSEPY_MEMORY``,
  in the sdist (``pip download --no-binary mfusepy``), in the cache directory
  (``mfusepy-examples/memory.py``), and finally downloaded from GitHub into
  the cache. Without it the peer is reported as unavailable;
- ``tmpfs``: a directory on the host's /dev/shm.

Neither example's code is part of this repository.

Workloads (host-side ``os`` calls from this process, or ``tar`` for the last):

- ``meta``: 10,000 creates, stats, renames, a listing, 10,000 unlinks;
- ``seq``: 256 MiB sequential write then read in 128 KiB blocks with O_DIRECT
  (page-aligned buffers from mmap), so the page cache does not hide the server;
- ``rand``: 20,000 random 4 KiB pwrites, then 20,000 random 4 KiB preads, with
  O_DIRECT over a 64 MiB file (reported separately: issue 11 has a target
  for each);
- ``tar``: extracting a 3,000-file tar (30 directories), then ``rm -rf``.

Every run is bounded (``--budget`` seconds per phase): a peer that is too slow
is cut off and its rate is the one measured on the count it reached (the
report says so). A peer that fails a workload is reported as failed with the
reason. Results: a Markdown table on stdout and in ``bench/results/fuse.md``,
all numbers in ``bench/results/fuse.json``. Ratios compare rumpfs with the best
Python peer and with tmpfs; the issue's targets are >= 3x the best Python peer
everywhere, sequential I/O >= 0.25x tmpfs, metadata >= 0.05x tmpfs.

Usage (root, or a user allowed to mount FUSE)::

    .venv/bin/python bench/fuse.py [--rounds 2] [--budget 20] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import mmap
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
RESULTS = REPO / "bench" / "results"
CACHE = Path(os.environ.get("RUMPFS_BENCH_CACHE", Path.home() / ".cache" / "rumpfs-bench"))
MFUSEPY_MEMORY_URL = "https://raw.githubusercontent.com/mxmlnkn/mfusepy/master/examples/memory.py"
MIB = 1 << 20
O_DIRECT = getattr(os, "O_DIRECT", 0)


# -- fetching the peers ------------------------------------------------------------------------


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=900, check=False)


def _extract_sdist(pattern: str, dest: Path) -> Path | None:
    for tgz in sorted(CACHE.glob(pattern)):
        out = dest / tgz.name.removesuffix(".tar.gz")
        if not out.exists():
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
        return out
    return None


def fetch_pyfuse3_tmpfs() -> Path:
    """examples/tmpfs.py of the installed pyfuse3's sdist (downloaded once into CACHE)."""
    from importlib.metadata import version

    ver = version("pyfuse3")
    CACHE.mkdir(parents=True, exist_ok=True)
    pattern = f"pyfuse3-{ver}.tar.gz"
    if not list(CACHE.glob(pattern)):
        res = _pip("download", "--no-binary", "pyfuse3", "--no-deps", f"pyfuse3=={ver}",
                   "-d", str(CACHE))
        if res.returncode != 0:
            raise RuntimeError(f"pip download pyfuse3 failed: {res.stderr.strip()[-300:]}")
    root = _extract_sdist(pattern, CACHE)
    example = root / "examples" / "tmpfs.py" if root else None
    if example is None or not example.exists():
        raise RuntimeError("pyfuse3's sdist has no examples/tmpfs.py")
    return example


def fetch_mfusepy_memory() -> Path:
    """mfusepy's examples/memory.py (see the module docstring for where it is looked up)."""
    try:
        import mfusepy  # noqa: F401
    except ImportError:
        res = _pip("install", "-q", "mfusepy")
        if res.returncode != 0:
            raise RuntimeError(f"pip install mfusepy failed: {res.stderr.strip()[-300:]}") from None
    env = os.environ.get("RUMPFS_BENCH_MFUSEPY_MEMORY")
    if env:
        return Path(env)
    CACHE.mkdir(parents=True, exist_ok=True)
    if not list(CACHE.glob("mfusepy-*.tar.gz")):
        _pip("download", "--no-binary", "mfusepy", "--no-deps", "mfusepy", "-d", str(CACHE))
    root = _extract_sdist("mfusepy-*.tar.gz", CACHE)
    if root is not None and (root / "examples" / "memory.py").exists():
        return root / "examples" / "memory.py"
    cached = CACHE / "mfusepy-examples" / "memory.py"
    if not cached.exists():
        try:
            with urllib.request.urlopen(MFUSEPY_MEMORY_URL, timeout=30) as r:
                data = r.read()
        except OSError as exc:
            raise RuntimeError(
                f"mfusepy's sdist has no examples and {MFUSEPY_MEMORY_URL} is unreachable "
                f"({exc}); put memory.py at {cached} or set RUMPFS_BENCH_MFUSEPY_MEMORY"
            ) from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached


# -- peers -----------------------------------------------------------------------------------


def is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split()[4] == path.encode() for line in f)


@dataclass
class Peer:
    name: str
    cmd: list[str] | None  # None: a plain host directory
    env: dict[str, str] = field(default_factory=dict)
    root: str = ""
    proc: subprocess.Popen[bytes] | None = None
    error: str | None = None

    def start(self) -> None:
        if self.cmd is None:
            self.root = tempfile.mkdtemp(prefix="rumpfs-bench-tmpfs-", dir="/dev/shm")
            return
        self.root = tempfile.mkdtemp(prefix=f"rumpfs-bench-{self.name}-", dir="/tmp")
        log = open(CACHE / f"{self.name}.log", "wb")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen([*self.cmd, self.root], stdout=log, stderr=log,
                                     env=dict(os.environ, **self.env))
        deadline = time.monotonic() + 60
        while not is_mounted(self.root):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.error = f"did not mount (see {log.name})"
                self.stop()
                return
            time.sleep(0.02)
        os.stat(self.root)  # the first request answered

    def stop(self) -> None:
        if self.cmd is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        if is_mounted(self.root):
            subprocess.run(["fusermount3", "-u", "-z", self.root], check=False, timeout=60)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(self.root)


# -- workloads -------------------------------------------------------------------------------

Result = dict[str, Any]


def _rate(count: float, seconds: float, unit: str, target: float, note: str = "") -> Result:
    cut = count < target
    return {"rate": count / seconds if seconds > 0 else 0.0, "unit": unit, "count": count,
            "seconds": round(seconds, 4), "cut": cut,
            "note": note or (f"cut at {count:g} of {target:g}" if cut else "")}


def _loop(n: int, budget: float, step: Callable[[int], object]) -> tuple[int, float]:
    """Run step(0..n-1) until done or out of budget; (count done, seconds)."""
    t0 = time.perf_counter()
    deadline = t0 + budget
    i = 0
    while i < n:
        step(i)
        i += 1
        if i % 16 == 0 and time.perf_counter() > deadline:
            break
    return i, time.perf_counter() - t0


def w_meta(d: str, tag: str, n: int, budget: float) -> dict[str, Result]:
    names = [os.path.join(d, f"{tag}-f{i}") for i in range(n)]
    renamed = [os.path.join(d, f"{tag}-g{i}") for i in range(n)]
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    out: dict[str, Result] = {}

    def phase(metric: str, count: int, step: Callable[[int], None]) -> int:
        """One bounded phase; a failure is recorded and the workload goes on."""
        try:
            done, t = _loop(count, budget, step)
        except OSError as exc:
            out[metric] = {"failed": repr(exc)}
            return 0
        out[metric] = _rate(done, t, "ops/s", n)
        return done

    made = phase("meta.create", n, lambda i: os.close(os.open(names[i], flags, 0o644)))
    done = phase("meta.stat", made, lambda i: os.stat(names[i]) and None)
    moved = phase("meta.rename", made, lambda i: os.rename(names[i], renamed[i]))
    try:
        t0 = time.perf_counter()
        listed = 0
        with os.scandir(d) as it:
            for _ in it:  # bounded: some peers list in O(n) per readdir request
                listed += 1
                if listed % 64 == 0 and time.perf_counter() - t0 > budget:
                    break
        out["meta.list"] = _rate(listed, time.perf_counter() - t0, "entries/s", made)
    except OSError as exc:
        out["meta.list"] = {"failed": repr(exc)}
    gone = phase("meta.unlink", moved, lambda i: os.unlink(renamed[i]))
    for path in names[moved:made] + renamed[gone:moved]:  # best-effort cleanup
        with contextlib.suppress(OSError):
            os.unlink(path)
    timed = [out[k] for k in ("meta.create", "meta.stat", "meta.rename", "meta.unlink")]
    if all("rate" in r for r in timed):
        out["meta.total"] = _rate(made + done + moved + gone, sum(r["seconds"] for r in timed),
                                  "ops/s", 4 * n)
    else:
        out["meta.total"] = {"failed": "a phase failed"}
    return out


def _open_direct(path: str, flags: int) -> tuple[int, str]:
    try:
        return os.open(path, flags | O_DIRECT, 0o644), ""
    except OSError:
        return os.open(path, flags, 0o644), "no O_DIRECT here"


def w_seq(d: str, tag: str, total: int, bs: int, budget: float) -> dict[str, Result]:
    path = os.path.join(d, f"{tag}-seq")
    buf = mmap.mmap(-1, bs)
    buf.write(os.urandom(bs))
    blocks = total // bs
    fd, note = _open_direct(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    try:
        wrote, tw = _loop(blocks, budget, lambda i: os.write(fd, buf))
    finally:
        os.close(fd)
    out = {"seq.write": _rate(wrote * bs / MIB, tw, "MiB/s", blocks * bs / MIB, note)}
    fd, note = _open_direct(path, os.O_RDONLY)
    try:
        got, tr = _loop(wrote, budget, lambda i: os.readv(fd, [buf]))
    finally:
        os.close(fd)
    out["seq.read"] = _rate(got * bs / MIB, tr, "MiB/s", blocks * bs / MIB, note)
    os.unlink(path)
    return out


def w_rand(d: str, tag: str, size: int, ops: int, budget: float) -> dict[str, Result]:
    """Random 4 KiB preads, then as many random 4 KiB pwrites, over a ``size`` file."""
    path = os.path.join(d, f"{tag}-rand")
    fd0 = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.ftruncate(fd0, size)
    os.close(fd0)
    rng = random.Random(42)
    offsets = [rng.randrange(size // 4096) * 4096 for _ in range(ops)]
    buf = mmap.mmap(-1, 4096)
    buf.write(os.urandom(4096))
    fd, note = _open_direct(path, os.O_RDWR)
    out: dict[str, Result] = {}
    try:
        done, t = _loop(ops, budget, lambda i: os.pwritev(fd, [buf], offsets[i]))
        out["rand.pwrite4k"] = _rate(done, t, "ops/s", ops, note)
        done, t = _loop(ops, budget, lambda i: os.preadv(fd, [buf], offsets[-1 - i]))
        out["rand.pread4k"] = _rate(done, t, "ops/s", ops, note)
    finally:
        os.close(fd)
    os.unlink(path)
    return out


def make_tar(files: int) -> Path:
    path = CACHE / f"tree-{files}.tar"
    if path.exists():
        return path
    rng = random.Random(7)
    with tarfile.open(path, "w") as tf:
        dirs = 30
        for j in range(dirs):
            info = tarfile.TarInfo(f"tree/d{j:02d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        for i in range(files):
            data = rng.randbytes(rng.randrange(0, 8192))
            info = tarfile.TarInfo(f"tree/d{i % dirs:02d}/f{i:05d}")
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def _count_files(d: str, budget: float) -> int:
    n, deadline = 0, time.monotonic() + budget
    for _, _, files in os.walk(d):
        n += len(files)
        if time.monotonic() > deadline:
            break
    return n


def w_tar(d: str, tag: str, archive: Path, files: int, budget: float) -> dict[str, Result]:
    target = os.path.join(d, f"{tag}-tar")
    os.mkdir(target)
    out: dict[str, Result] = {}
    t0 = time.perf_counter()
    try:
        subprocess.run(["tar", "-xf", str(archive), "-C", target], check=True, timeout=budget,
                       capture_output=True)
        out["tar.extract"] = _rate(files, time.perf_counter() - t0, "files/s", files)
    except subprocess.TimeoutExpired:
        t = time.perf_counter() - t0
        out["tar.extract"] = _rate(_count_files(target, budget), t, "files/s", files)
    except subprocess.CalledProcessError as exc:
        out["tar.extract"] = {"failed": exc.stderr.decode(errors="replace").strip()[-200:]}
    t0 = time.perf_counter()
    probe = os.path.join(target, "tree", "d00", "f00000")
    try:
        subprocess.run(["rm", "-rf", target], check=True, timeout=budget, capture_output=True)
        t = time.perf_counter() - t0
        if os.path.lexists(target) or os.path.lexists(probe) or target in os.listdir(d):
            out["tar.remove"] = {"failed": "rm -rf succeeded but files are still there"}
        else:
            out["tar.remove"] = _rate(files, t, "files/s", files)
    except subprocess.TimeoutExpired:
        out["tar.remove"] = {"failed": f"rm -rf did not finish within {budget:g} s"}
    except subprocess.CalledProcessError as exc:
        out["tar.remove"] = {"failed": exc.stderr.decode(errors="replace").strip()[-200:]}
    except OSError as exc:  # listing the peer's root after rm -rf
        out["tar.remove"] = {"failed": f"after rm -rf: {exc!r}"}
    return out


# -- driver ----------------------------------------------------------------------------------


def in_child(fn: Callable[[], dict[str, Result]], timeout: float) -> dict[str, Result]:
    """Run one workload in a forked child, killed after ``timeout`` seconds.

    A single request to a slow peer can block for longer than any budget, and
    only a fatal signal ends a process waiting for a FUSE reply.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            child.send(("ok", fn()))
        except BaseException as exc:
            child.send(("err", repr(exc)))

    proc = ctx.Process(target=target, daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            status, value = parent.recv()
            if status == "ok":
                result: dict[str, Result] = value
                return result
            return {"*": {"failed": value}}
        return {"*": {"failed": f"killed after {timeout:g} s"}}
    except EOFError:
        return {"*": {"failed": "the workload process died"}}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)


SERVE_PEER = """
import os, sys, threading, time
import rumpfs
from rumpfs.fuse import serve
k = rumpfs.Kernel()
k.chmod("/", 0o1777)
k.mkdir("/.inproc")
stop = threading.Event()
def churn():
    i = 0
    while not stop.is_set():
        p = f"/.inproc/f{i % 100}"
        fd = k.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        k.write(fd, b"x" * 4096)
        k.close(fd)
        if i % 2:
            k.unlink(p)
        i += 1
        time.sleep(0.001)
t = threading.Thread(target=churn, daemon=True)
with serve(k, sys.argv[1]) as server:
    t.start()
    server.wait()
stop.set()
"""


def make_peers(python_peers: bool = True) -> list[Peer]:
    peers = [Peer("rumpfs", [sys.executable, "-m", "rumpfs", "mount", "-f", "-q"],
                  env={"PYTHONPATH": str(SRC)}),
             Peer("rumpfs-serve", [sys.executable, "-c", SERVE_PEER],
                  env={"PYTHONPATH": str(SRC)})]
    for name, fetch in (("pyfuse3-tmpfs", fetch_pyfuse3_tmpfs),
                        ("mfusepy-memory", fetch_mfusepy_memory)):
        if not python_peers:
            continue
        try:
            peers.append(Peer(name, [sys.executable, str(fetch())]))
        except (RuntimeError, OSError) as exc:
            p = Peer(name, None)
            p.error = str(exc)
            peers.append(p)
    peers.append(Peer("tmpfs", None))
    return peers


@contextlib.contextmanager
def running(peers: list[Peer]) -> Iterator[list[Peer]]:
    try:
        for p in peers:
            if p.error is None:
                p.start()
        yield [p for p in peers if p.error is None]
    finally:
        for p in peers:
            if p.root:
                p.stop()


def best(results: dict[str, dict[str, list[Result]]], peer: str, metric: str) -> Result | None:
    runs = [r for r in results.get(peer, {}).get(metric, []) if "rate" in r]
    if runs:
        return max(runs, key=lambda r: r["rate"])
    failed = results.get(peer, {}).get(metric, [])
    return failed[0] if failed else None


def fmt(r: Result | None) -> str:
    if r is None:
        return "n/a"
    if "failed" in r:
        return "failed"
    rate = r["rate"]
    text = f"{rate:,.0f}" if rate >= 100 else f"{rate:,.2f}"
    return text + (" (cut)" if r.get("cut") else "")


# Issue 11's targets, as ratios to tmpfs in the same run (what libfuse's C
# passthrough_hp reached); the serve() peer's target is half of each.
ISSUE11_TARGETS = {
    "meta.create": 0.05, "meta.stat": 0.85, "meta.list": 0.45, "meta.rename": 0.045,
    "meta.unlink": 0.07, "seq.write": 0.55, "seq.read": 0.9, "rand.pread4k": 0.8,
    "rand.pwrite4k": 0.03, "tar.extract": 0.06, "tar.remove": 0.13,
}


def _vs_target(ratio: float | None, target: float | None) -> str:
    if ratio is None or target is None:
        return ""
    return f"{ratio:.3f}x {'met' if ratio >= target else 'MISS'}"


def report(results: dict[str, dict[str, list[Result]]], peers: list[Peer],
           params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    metrics = ["meta.create", "meta.stat", "meta.rename", "meta.list", "meta.unlink",
               "meta.total", "seq.write", "seq.read", "rand.pread4k", "rand.pwrite4k",
               "tar.extract", "tar.remove"]
    python_peers = ["pyfuse3-tmpfs", "mfusepy-memory"]
    names = [p.name for p in peers]
    lines = ["| metric | unit | " + " | ".join(names)
             + " | rumpfs / best Python peer | rumpfs / tmpfs | rumpfs-serve / tmpfs"
             + " | issue 11 target (serve: half) |",
             "|---" * (len(names) + 6) + "|"]
    summary: dict[str, Any] = {}
    for m in metrics:
        row = {n: best(results, n, m) for n in names}
        unit = next((r["unit"] for r in row.values() if r and "unit" in r), "")
        rump = row.get("rumpfs")
        py = [row[n]["rate"] for n in python_peers if row.get(n) and "rate" in row[n]]  # type: ignore[index]
        tmp = row.get("tmpfs")
        vs_py = rump["rate"] / max(py) if rump and "rate" in rump and py and max(py) else None
        vs_tmp = (rump["rate"] / tmp["rate"] if rump and "rate" in rump and tmp
                  and tmp.get("rate") else None)
        srv = row.get("rumpfs-serve")
        srv_tmp = (srv["rate"] / tmp["rate"] if srv and "rate" in srv and tmp
                   and tmp.get("rate") else None)
        summary[m] = {"unit": unit, "rates": {n: row[n] for n in names},
                      "rumpfs_vs_best_python": vs_py, "rumpfs_vs_tmpfs": vs_tmp,
                      "rumpfs_serve_vs_tmpfs": srv_tmp}
        target = ISSUE11_TARGETS.get(m)
        summary[m]["issue11_target"] = target
        lines.append(f"| {m} | {unit} | " + " | ".join(fmt(row[n]) for n in names)
                     + f" | {'' if vs_py is None else f'{vs_py:.1f}x'}"
                     + f" | {_vs_target(vs_tmp, target)}"
                     + f" | {_vs_target(srv_tmp, None if target is None else target / 2)}"
                     + f" | {'' if target is None else f'>= {target:g}x ({target / 2:g}x)'} |")
    notes = [f"- {p.name}: unavailable ({p.error})" for p in peers if p.error]
    if "mfusepy-memory" in names:
        notes.append("- mfusepy-memory runs with libfuse's default 1 s entry/attribute caches "
                     "(its stat/list rates are largely the host's cache) and supports one "
                     "directory level only")
    cut = sorted({f"{n}/{m}" for n in names for m in metrics
                  if (r := best(results, n, m)) and r.get("cut")})
    if cut:
        notes.append(f"- cut off at the {params['budget']:g} s budget (rate over the count "
                     f"reached): {', '.join(cut)}")
    failed = {f"{n}/{m}": r["failed"] for n in names for m in metrics
              if (r := best(results, n, m)) and "failed" in r}
    notes += [f"- {k} failed: {v}" for k, v in sorted(failed.items())]
    table = "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
    return table, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best is kept)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per phase and peer")
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes (smoke run)")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results")
    ap.add_argument("--no-python-peers", action="store_true",
                    help="only rumpfs, rumpfs-serve and tmpfs")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    params = {"rounds": args.rounds, "budget": args.budget, "meta_n": 10_000 // scale,
              "seq_bytes": 256 * MIB // scale, "seq_bs": 128 * 1024,
              "rand_bytes": 64 * MIB, "rand_ops": 20_000 // scale, "tar_files": 3000 // scale}
    CACHE.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    archive = make_tar(params["tar_files"])
    peers = make_peers(not args.no_python_peers)
    results: dict[str, dict[str, list[Result]]] = {}
    workloads: list[tuple[str, Callable[[str, str], dict[str, Result]]]] = [
        ("meta", lambda d, t: w_meta(d, t, params["meta_n"], args.budget)),
        ("seq", lambda d, t: w_seq(d, t, params["seq_bytes"], params["seq_bs"], args.budget)),
        ("rand", lambda d, t: w_rand(d, t, params["rand_bytes"], params["rand_ops"],
                                     args.budget)),
        ("tar", lambda d, t: w_tar(d, t, archive, params["tar_files"], args.budget)),
    ]
    with running(peers) as live:
        for rnd in range(args.rounds):
            for wname, fn in workloads:
                order = live[rnd % len(live):] + live[:rnd % len(live)]
                for p in order:
                    tag = f"r{rnd}"
                    res = in_child(lambda fn=fn, p=p, tag=tag: fn(p.root, tag),  # type: ignore[misc]
                                   timeout=6 * args.budget + 60)
                    if "*" in res:
                        res = {f"{wname}.*": res["*"]}
                    for m, r in res.items():
                        results.setdefault(p.name, {}).setdefault(m, []).append(r)
                    shown = ", ".join(f"{m}={fmt(r)}" for m, r in res.items())
                    print(f"round {rnd} {wname:5} {p.name:15} {shown}", flush=True)
    table, summary = report(results, peers, params)
    print("\n" + table)
    if not args.no_save:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
        RESULTS.mkdir(parents=True, exist_ok=True)
        doc = {"benchmark": "fuse", "commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                           "cpus": os.cpu_count(), "loadavg_before": load_before,
                           "loadavg_after": os.getloadavg()},
               "params": params, "peers": {p.name: p.error or "ok" for p in peers},
               "summary": summary, "runs": results}
        (RESULTS / "fuse.json").write_text(json.dumps(doc, indent=1) + "\n")
        (RESULTS / "fuse.md").write_text(f"# FUSE benchmark ({doc['date']}, {commit[:10]})\n\n"
                                         + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
