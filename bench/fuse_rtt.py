"""One FUSE round trip: a no-op GETATTR (``fstat`` of an open file, attribute
timeout 0), served by this tree's frontend and by another tree's (e.g. the
pyfuse3 + trio one of an older commit), alternating in one run.

    python bench/fuse_rtt.py [--other-src DIR] [--calls N] [--rounds R]

``--other-src`` is the ``src`` directory of the other tree (``git archive
<commit> src | tar -x -C /tmp/old`` gives one). Each server runs in its own
process, the client in a third; the figure is the median of per-call times
over all rounds. Needs root (allow_other is not needed: the client is root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"

SERVER = """
import os, sys, time, rumpfs
from rumpfs.fuse import serve
k = rumpfs.Kernel()
fd = k.open("/f", os.O_CREAT | os.O_WRONLY, 0o644); k.write(fd, b"x"); k.close(fd)
with serve(k, sys.argv[1]):
    print("up", flush=True)
    sys.stdin.read()
"""

CLIENT = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
n = int(sys.argv[2])
for _ in range(200):
    os.fstat(fd)
out = []
clock = time.perf_counter_ns
for _ in range(n):
    t = clock(); os.fstat(fd); out.append(clock() - t)
print(" ".join(map(str, out)))
"""


def measure(src: Path, calls: int) -> list[int]:
    mp = tempfile.mkdtemp(prefix="rumpfs-rtt-", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=str(src))
    server = subprocess.Popen([sys.executable, "-c", SERVER, mp], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        res = subprocess.run([sys.executable, "-c", CLIENT, os.path.join(mp, "f"), str(calls)],
                             check=True, capture_output=True, text=True)
        return [int(x) for x in res.stdout.split()]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(60)
        os.rmdir(mp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other-src", type=Path)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = {"this tree": HERE}
    if args.other_src:
        trees["other tree"] = args.other_src
    times: dict[str, list[int]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            times[name] += measure(src, args.calls)
            time.sleep(0.5)
    for name, ts in times.items():
        print(f"{name:12s} GETATTR round trip: median {statistics.median(ts) / 1000:.1f} us, "
              f"p10 {statistics.quantiles(ts, n=10)[0] / 1000:.1f} us "
              f"({len(ts)} calls)")


if __name__ == "__main__":
    main()
