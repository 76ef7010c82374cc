"""Benchmark the FAT driver (a benchmark, not a test: no asserts on times).

One run, one base image (``mkfs.fat -F 32``, 128 MiB: 512-byte clusters, as
mkfs.fat picks them for that size), a fresh copy per peer. The tree: 1,000
files, 12 MiB, long names, in 20 directories, on /dev/shm.

- copy-in: the tree into the empty image (and the image flushed);
- read-back: every file of the image read (to /dev/shm for mtools' and the
  in-process run, through ``tar -cf - | cat > /dev/null`` for FUSE mounts).

Peers:

- ``rumpfs-inproc``: ``rumpfs.Kernel()``, the image as an etfs block device
  mounted as ``msdos``, driven through the kernel's os-like calls; against
  ``mcopy -s`` (mtools: C, one process);
- ``rumpfs-fuse``: ``python -m rumpfs mount MP --image IMG`` (``cp -r`` in,
  ``tar`` out); against ``fusefat`` (Debian's C FUSE driver, ``-o rw+``).

The in-process and mcopy rows take the median of ROUNDS runs (each on a
fresh copy of the image): they last well under a second, where the shared
machine's noise is largest. Targets (issue 14): in-process copy-in >= 0.5x
mcopy's speed; through FUSE >= 3x fusefat on copy-in and >= 1x on read-back.
Output: a Markdown table on stdout and in ``bench/results/msdos.md``, numbers
in ``bench/results/msdos.json``.
Needs FUSE. The machine is shared: compare ratios within one run.

Usage::

    .venv/bin/python bench/msdos.py
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
sys.path.insert(0, str(SRC))
RESULTS = REPO / "bench" / "results"
MIB = 1 << 20
ROUNDS = 5            # in-process and mcopy rows: median of this many (they take < 1 s)

from rumpfs import EtfsType, Kernel  # noqa: E402  (imported before any timing)


def make_tree(root: Path) -> int:
    """1,000 files, 12 MiB, long names, 20 directories; returns the byte count."""
    rng = random.Random(14)
    total = 12 * MIB
    sizes = [rng.randrange(1, 2 * total // 1000) for _ in range(1000)]
    scale = total / sum(sizes)
    sizes = [max(1, int(s * scale)) for s in sizes]
    blob = rng.randbytes(max(sizes))
    n = 0
    for d in range(20):
        sub = root / f"Directory number {d:02d} with a long name"
        sub.mkdir(parents=True)
        for i in range(50):
            size = sizes[d * 50 + i]
            (sub / f"a rather long file name {d:02d}-{i:03d}.data").write_bytes(blob[:size])
            n += size
    return n


def _env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "TZ": "UTC",
            "PYTHONPATH": str(SRC)}


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def inproc_in(img: Path, src: Path) -> None:
    with Kernel() as k:
        k.etfs_register("/dev/fat", str(img), EtfsType.BLK)
        k.mkdir("/m")
        k.mount("msdos", "/m", device="/dev/fat")
        for d in sorted(src.iterdir()):
            k.mkdir(f"/m/{d.name}")
            for f in sorted(d.iterdir()):
                fd = k.open(f"/m/{d.name}/{f.name}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
                k.write(fd, f.read_bytes())
                k.close(fd)
        k.unmount("/m")


def inproc_out(img: Path, dest: Path) -> None:
    with Kernel() as k:
        k.etfs_register("/dev/fat", str(img), EtfsType.BLK)
        k.mkdir("/m")
        k.mount("msdos", "/m", device="/dev/fat", read_only=True)
        for d in k.listdir("/m"):
            (dest / d).mkdir()
            for name in k.listdir(f"/m/{d}"):
                fd = k.open(f"/m/{d}/{name}", os.O_RDONLY)
                size = k.fstat(fd).st_size
                (dest / d / name).write_bytes(k.read(fd, size))
                k.close(fd)
        k.unmount("/m")


def mcopy_in(img: Path, src: Path) -> None:
    subprocess.run(["mcopy", "-s", "-i", str(img), *map(str, sorted(src.iterdir())), "::/"],
                   check=True, env=_env())


def mcopy_out(img: Path, dest: Path) -> None:
    subprocess.run(["mcopy", "-s", "-i", str(img), "::/*", str(dest)], check=True, env=_env())


class FuseMount:
    def __init__(self, kind: str, img: Path, mp: Path) -> None:
        self.kind, self.img, self.mp = kind, img, mp
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FuseMount:
        if self.kind == "fusefat":
            subprocess.run(["fusefat", "-o", "rw+", str(self.img), str(self.mp)], check=True)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rumpfs", "mount", str(self.mp), "--image",
                 str(self.img), "--fs", "msdos"], env=_env(), stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not os.path.ismount(self.mp):
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise RuntimeError(f"{self.kind} did not mount")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["fusermount3", "-u", str(self.mp)], check=False)
        if self.proc is not None:
            self.proc.wait(300)
        deadline = time.monotonic() + 120
        while os.path.ismount(self.mp) and time.monotonic() < deadline:
            time.sleep(0.02)


def fuse_in(kind: str, img: Path, src: Path, mp: Path) -> float:
    t0 = time.perf_counter()
    with FuseMount(kind, img, mp):
        subprocess.run(["cp", "-r", *map(str, sorted(src.iterdir())), str(mp)], check=True)
    return time.perf_counter() - t0          # mount, copy, unmount (everything on the image)


def fuse_out(kind: str, img: Path, mp: Path) -> float:
    with FuseMount(kind, img, mp):
        t0 = time.perf_counter()
        subprocess.run(f"tar -cf - -C '{mp}' . | cat > /dev/null", shell=True, check=True)
        return time.perf_counter() - t0


def check_tree(img: Path, src: Path, work: Path) -> bool:
    out = work / "check"
    out.mkdir()
    mcopy_out(img, out)
    ok = all((out / p.relative_to(src)).read_bytes() == p.read_bytes()
             for p in src.rglob("*") if p.is_file())
    shutil.rmtree(out)
    return ok and subprocess.run(["fsck.fat", "-n", str(img)], capture_output=True).returncode == 0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="rumpfs-bench-msdos-", dir="/dev/shm"))
    try:
        src = work / "src"
        nbytes = make_tree(src)
        base = work / "base.img"
        with open(base, "wb") as f:
            f.truncate(128 * MIB)
        subprocess.run(["mkfs.fat", "-F", "32", str(base)], check=True, capture_output=True)
        mp = work / "mp"
        mp.mkdir()
        rows: dict[str, dict[str, float | bool]] = {}

        def fresh(name: str) -> Path:
            img = work / f"{name}.img"
            shutil.copyfile(base, img)
            return img

        def outdir() -> Path:
            d = Path(tempfile.mkdtemp(dir=work))
            return d

        for name, copy_in, read_out in [
            ("rumpfs-inproc", lambda i: _timed(lambda: inproc_in(i, src)),
             lambda i: _timed(lambda: inproc_out(i, outdir()))),
            ("mcopy", lambda i: _timed(lambda: mcopy_in(i, src)),
             lambda i: _timed(lambda: mcopy_out(i, outdir()))),
            ("rumpfs-fuse", lambda i: fuse_in("rumpfs", i, src, mp),
             lambda i: fuse_out("rumpfs", i, mp)),
            ("fusefat", lambda i: fuse_in("fusefat", i, src, mp),
             lambda i: fuse_out("fusefat", i, mp)),
        ]:
            rounds = ROUNDS if name in ("rumpfs-inproc", "mcopy") else 1
            ins, outs, ok = [], [], True
            for _ in range(rounds):
                img = fresh(name)
                ins.append(copy_in(img))
                ok = ok and check_tree(img, src, work)
                outs.append(read_out(img))
            t_in, t_out = statistics.median(ins), statistics.median(outs)
            rows[name] = {"copy_in_s": t_in, "read_back_s": t_out, "correct": ok,
                          "rounds": rounds}
            print(f"{name}: in {t_in:.3f} s, out {t_out:.3f} s, correct={ok}", file=sys.stderr)
        r_in = rows["mcopy"]["copy_in_s"] / rows["rumpfs-inproc"]["copy_in_s"]  # type: ignore[operator]
        f_in = rows["fusefat"]["copy_in_s"] / rows["rumpfs-fuse"]["copy_in_s"]  # type: ignore[operator]
        f_out = rows["fusefat"]["read_back_s"] / rows["rumpfs-fuse"]["read_back_s"]  # type: ignore[operator]
        load = os.getloadavg()
        md = [
            f"FAT32 (128 MiB, 512-byte clusters), 1,000 files, {nbytes / MIB:.1f} MiB, "
            f"20 directories, long names; one run (in-process and mcopy: median of "
            f"{ROUNDS}); load average {load[0]:.1f} on {os.cpu_count()} cores (shared machine).",
            "",
            "| peer | copy-in (s) | read-back (s) | fsck.fat + mcopy check |",
            "| --- | --- | --- | --- |",
            *(f"| {n} | {r['copy_in_s']:.3f} | {r['read_back_s']:.3f} | "
              f"{'ok' if r['correct'] else 'WRONG'} |" for n, r in rows.items()),
            "",
            "| target | measured | met |",
            "| --- | --- | --- |",
            f"| in-process copy-in >= 0.5x mcopy | {r_in:.2f}x | "
            f"{'yes' if r_in >= 0.5 else 'no'} |",
            f"| FUSE copy-in >= 3x fusefat | {f_in:.2f}x | {'yes' if f_in >= 3 else 'no'} |",
            f"| FUSE read-back >= 1x fusefat | {f_out:.2f}x | {'yes' if f_out >= 1 else 'no'} |",
        ]
        text = "\n".join(md) + "\n"
        print(text)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "msdos.md").write_text(text)
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        (RESULTS / "msdos.json").write_text(json.dumps({
            "commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.platform(), "loadavg": load, "bytes": nbytes, "rows": rows,
            "ratios": {"inproc_copy_in_vs_mcopy": r_in, "fuse_copy_in_vs_fusefat": f_in,
                       "fuse_read_back_vs_fusefat": f_out},
        }, indent=2) + "\n")
    finally:
        if os.path.ismount(work / "mp"):
            subprocess.run(["fusermount3", "-u", "-z", str(work / "mp")], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
