"""Coherence under fire: host processes read, list and stat a served kernel while
in-process threads write, truncate, rename and unlink, for a fixed number of
rounds. Every host observation must be one that some order of the in-process
calls allows: nothing older than what had been returned before the
observation began (no stale bytes, no stale size, no ghost entries).

serve() runs with the host caching entries, negative entries, attributes,
pages and listings, every in-process change pushed to it as an invalidation
before the call returns; the same hammer on an exclusive mount (caching,
never told of in-process changes) must find stale observations, which shows
the hammer can see them.

Ordering across processes uses CLOCK_MONOTONIC (one clock for the machine):
an in-process call's return time is taken after it returned, a host
observation's start time before its system call, so "returned before the
observation began" is never claimed wrongly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROUNDS = 1500

READER = textwrap.dedent("""
    import json, os, select, sys, time
    d = sys.argv[1]
    clock = time.monotonic_ns
    out = []
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:   # until the parent closes stdin
        t = clock()
        try:
            with open(os.path.join(d, "f"), "rb") as fh:
                out.append(("f", t, int(fh.read(12)[1:])))
        except (OSError, ValueError):
            pass
        t = clock()
        try:
            out.append(("s", t, os.stat(os.path.join(d, "s")).st_size))
        except OSError:
            pass
    print(json.dumps(out))
""")

LISTER = textwrap.dedent("""
    import json, os, select, sys, time
    d = sys.argv[1]
    clock = time.monotonic_ns
    out = []
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:   # until the parent closes stdin
        t = clock()
        names = os.listdir(d)
        out.append(("ls", t, [n for n in names if n[0] in "gr"]))
        # a name the listing showed must still answer stat unless removed since
        for n in names:
            if n[0] == "r":
                t = clock()
                try:
                    os.stat(os.path.join(d, n))
                    out.append(("stat", t, n))
                except FileNotFoundError:
                    pass
    print(json.dumps(out))
""")


def fmt_version(v: int) -> bytes:
    return b"v%011d" % v


def hammer(k: Any, mp: Path, rounds: int, pace: float = 0.0) -> list[str]:
    """Run both sides at once for ``rounds``; the stale observations. ``pace``
    seconds between an in-process thread's rounds make the host observe between
    most of them."""
    clock = time.monotonic_ns
    log: list[tuple[str, int, int]] = []     # (kind, version, returned at)
    log_mu = threading.Lock()

    def done(kind: str, v: int) -> None:
        t = clock()
        with log_mu:
            log.append((kind, v, t))

    fd = k.open("/f", os.O_CREAT | os.O_RDWR, 0o644)
    k.pwrite(fd, fmt_version(0) * 100, 0)
    k.path("/s").write_bytes(b"")
    k.path("/r0").write_bytes(b"r")
    readers = [subprocess.Popen([sys.executable, "-c", src, str(mp)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
               for src in (READER, LISTER)]
    for p in readers:   # both sides run at once: the host side is up first
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def data_thread() -> None:
        for v in range(1, rounds + 1):
            k.pwrite(fd, fmt_version(v) * 100, 0)
            done("f", v)
            k.truncate("/s", 100 + v)
            done("s", 100 + v)
            time.sleep(pace)

    def names_thread() -> None:
        for v in range(1, rounds + 1):
            k.path(f"/g{v}").write_bytes(b"g")
            k.unlink(f"/g{v}")
            done("g", v)                 # g{v} is gone from here on
            k.rename(f"/r{v - 1}", f"/r{v}")
            done("r", v)                 # r{v-1} is gone from here on
            time.sleep(pace)

    threads = [threading.Thread(target=data_thread), threading.Thread(target=names_thread)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        k.close(fd)
        outs = [json.loads(p.communicate("", timeout=300)[0]) for p in readers]

    def committed(kind: str, before: int) -> int:
        """The highest version of ``kind`` returned before time ``before``."""
        return max((v for kd, v, t in log if kd == kind and t < before), default=0)

    stale: list[str] = []
    for kind, t, val in outs[0]:
        want = committed(kind, t)
        if val < want:
            stale.append(f"{kind}: saw {val}, {want} had returned before the read began")
    for kind, t, val in outs[1]:
        if kind == "ls":
            for name in val:
                n = int(name[1:])
                if name[0] == "g" and committed("g", t) >= n:
                    stale.append(f"ghost {name} listed after its unlink returned")
                if name[0] == "r" and committed("r", t) > n:
                    stale.append(f"ghost {name} listed after its rename returned")
        else:
            n = int(val[1:])
            if committed("r", t) > n:
                stale.append(f"stat found {val} after its rename returned")
    # the hammer really hammered: each host process observed while in-process
    # calls were still being made
    last = max(t for _, _, t in log)
    assert all(any(t < last for _, t, _ in out) for out in outs)
    assert sorted(k.listdir("/")) == sorted(["f", "s", f"r{rounds}"])
    return stale


@pytest.mark.parametrize("pages", [False, True], ids=["as-served", "page-cache"])
def test_host_never_sees_stale_state(fuse_kernel: Any, fuse_server: Any, pages: bool) -> None:
    """``page-cache``: no FUSE passthrough even as root, so the host reads through
    its own (kept) page cache, which only the notifications keep right."""
    assert fuse_server.ops.inval is not None        # caching, with pushed invalidation
    if pages:
        fuse_server.ops.passthrough = False
    stale = hammer(fuse_kernel, Path(fuse_server.mountpoint), ROUNDS)
    assert not stale, f"{len(stale)} stale observations, e.g. {stale[:5]}"


def test_a_caching_mount_never_told_fails_the_hammer(fuse_kernel: Any,
                                                     exclusive_mnt: Path) -> None:
    """Paced: the compiled kernel runs 300 unpaced rounds before the host has
    looked twice, and passthrough data is coherent anyway; the attributes and
    names the host keeps for an hour are not."""
    stale = hammer(fuse_kernel, exclusive_mnt, ROUNDS // 5, pace=0.001)
    assert stale
