"""etfs and rumpblk I/O against the host's own os.pread/os.pwrite on the same file.

Sequential 1 MiB reads and writes through a REG mapping and a BLK device, and
4 KiB random reads and writes through BLK, each as a ratio to os.pread /
os.pwrite on the same host file in the same run. Runs are interleaved
(host, etfs, host, ...) and medians are compared. Never asserts times.

    .venv/bin/python bench/etfs.py [--rounds N] [--dir /dev/shm]

Writes bench/results/etfs.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rumpfs import EtfsType, Kernel  # noqa: E402

MIB = 1 << 20
FILE_SIZE = 64 * MIB
SMALL = 4096


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def _time(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "etfs.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rumpfs-bench-etfs-", dir=args.dir))
    img = tmp / "disk.img"
    with img.open("wb") as fh:
        fh.write(os.urandom(MIB) * (FILE_SIZE // MIB))
    hfd = os.open(img, os.O_RDWR)
    buf = os.urandom(MIB)
    small = os.urandom(SMALL)
    rnd = random.Random(1)
    offsets = [rnd.randrange(0, FILE_SIZE // SMALL) * SMALL for _ in range(20000)]
    results: list[dict[str, object]] = []
    try:
        with Kernel() as k:
            k.etfs_register("/reg", img)
            k.etfs_register("/dev/blk", img, EtfsType.BLK)
            rfd = k.open("/reg", os.O_RDWR)
            bfd = k.open("/dev/blk", os.O_RDWR)

            def seq_read(read: Callable[[int, int, int], bytes], fd: int) -> Callable[[], None]:
                def run() -> None:
                    for off in range(0, FILE_SIZE, MIB):
                        read(fd, MIB, off)

                return run

            def seq_write(write: Callable[[int, bytes, int], int], fd: int) -> Callable[[], None]:
                def run() -> None:
                    for off in range(0, FILE_SIZE, MIB):
                        write(fd, buf, off)

                return run

            def rand_read(read: Callable[[int, int, int], bytes], fd: int) -> Callable[[], None]:
                def run() -> None:
                    for off in offsets:
                        read(fd, SMALL, off)

                return run

            def rand_write(write: Callable[[int, bytes, int], int], fd: int) -> Callable[[], None]:
                def run() -> None:
                    for off in offsets:
                        write(fd, small, off)

                return run

            cases = [
                ("seq read 1 MiB", "REG", seq_read, k.pread, rfd, os.pread, FILE_SIZE, 0.8),
                ("seq write 1 MiB", "REG", seq_write, k.pwrite, rfd, os.pwrite, FILE_SIZE, 0.8),
                ("seq read 1 MiB", "BLK", seq_read, k.pread, bfd, os.pread, FILE_SIZE, 0.8),
                ("seq write 1 MiB", "BLK", seq_write, k.pwrite, bfd, os.pwrite, FILE_SIZE, 0.8),
                (
                    "random read 4 KiB",
                    "BLK",
                    rand_read,
                    k.pread,
                    bfd,
                    os.pread,
                    len(offsets) * SMALL,
                    0.5,
                ),
                (
                    "random write 4 KiB",
                    "BLK",
                    rand_write,
                    k.pwrite,
                    bfd,
                    os.pwrite,
                    len(offsets) * SMALL,
                    0.5,
                ),
            ]
            for name, via, make, kcall, kfd, hcall, nbytes, target in cases:
                host_run = make(hcall, hfd)  # type: ignore[operator]
                kern_run = make(kcall, kfd)  # type: ignore[operator]
                host_run()
                kern_run()  # warm up
                ht: list[float] = []
                kt: list[float] = []
                for _ in range(args.rounds):
                    ht.append(_time(host_run))
                    kt.append(_time(kern_run))
                hm, km = statistics.median(ht), statistics.median(kt)
                results.append(
                    {
                        "case": name,
                        "via": via,
                        "bytes": nbytes,
                        "host_MBps": nbytes / hm / 1e6,
                        "rumpfs_MBps": nbytes / km / 1e6,
                        "ratio": hm / km,
                        "target": target,
                    }
                )
            k.close(rfd)
            k.close(bfd)
    finally:
        os.close(hfd)
        shutil.rmtree(tmp, ignore_errors=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "etfs",
                "commit": _commit(),
                "python": sys.version.split()[0],
                "rounds": args.rounds,
                "file_size": FILE_SIZE,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print("| case | via | host MB/s | rumpfs MB/s | ratio | target |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['case']} | {r['via']} | {r['host_MBps']:.0f} | {r['rumpfs_MBps']:.0f} "
            f"| {r['ratio']:.2f}x | >= {r['target']}x |"
        )


if __name__ == "__main__":
    main()
