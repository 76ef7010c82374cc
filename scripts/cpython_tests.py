"""CPython's own file-system regression tests, with cwd and TMPDIR on a rumpfs mount.

    python scripts/cpython_tests.py [--jobs N] [--users root,nobody] [--modules ...]

For each user (root, then ``nobody``) the interpreter's ``python -m test``
runs the modules below twice: in a directory on the host's tmpfs
(``/dev/shm``), and in one on a ``rumpfs mount`` (served by the CLI in its
own process, ``--allow-other``). Every test case that passes on tmpfs must
pass on the mount; the script prints the wall times side by side and exits 1
if some test passed on tmpfs only.

The interpreter must ship ``Lib/test`` (``python3 -m test --list-tests``) and
be runnable by ``nobody``: ``/usr/bin/python3`` is preferred (Debian ships
the tests as ``libpython3.X-testsuite``, which ``scripts/bootstrap``
installs), else this interpreter's base. Needs root (mounting, dropping to
nobody). Nothing is fetched at run time.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

MODULES = [
    "test_os", "test_shutil", "test_tempfile", "test_pathlib", "test_glob", "test_tarfile",
    "test_zipfile", "test_io", "test_fileio", "test_posix", "test_posixpath", "test_stat",
    "test_filecmp", "test_fileinput", "test_genericpath",
]
ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 1200


def has_tests(python: str, user: str | None) -> bool:
    cmd = [python, "-c", "import importlib.util as u, test.libregrtest; "
           "assert u.find_spec('test.test_os')"]
    kw = {"user": user} if user else {}
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60, cwd="/", **kw).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def pick_python() -> str:
    base = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}."
                        f"{sys.version_info[1]}")
    for cand in ("/usr/bin/python3", base, sys.executable):
        if os.path.exists(cand) and has_tests(cand, None) and has_tests(cand, "nobody"):
            return cand
    sys.exit("no interpreter with Lib/test that nobody can run (Debian: apt install "
             "libpython3.X-testsuite)")


def is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split()[4] == os.fsencode(path) for line in f)


class Mount:
    """``rumpfs mount -f MP --allow-other`` in its own process (this interpreter's
    rumpfs: set PYTHONPATH to serve another tree's)."""

    def __init__(self) -> None:
        self.mp = tempfile.mkdtemp(prefix="rumpfs-cpython-", dir="/tmp")
        os.chmod(self.mp, 0o755)
        self.proc = subprocess.Popen([sys.executable, "-m", "rumpfs", "mount", "-f", "-q",
                                      "--mode", "1777", "--allow-other", self.mp],
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not is_mounted(self.mp):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rumpfs mount did not come up")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if is_mounted(self.mp):
            subprocess.run(["umount", "-l", self.mp], check=False)
        os.rmdir(self.mp)


def results(xml_path: Path) -> dict[str, str]:
    """test id -> 'pass' | 'fail' | 'skip' from regrtest's JUnit XML."""
    out: dict[str, str] = {}
    if not xml_path.exists():
        return out
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            out[name] = "fail"
        elif "skipped" in kinds:
            out[name] = "skip"
        else:
            out[name] = "pass"
    return out


def run(python: str, base: str, user: str, modules: list[str], jobs: int,
        label: str) -> tuple[dict[str, str], float, int]:
    pw = pwd.getpwnam(user)
    work = Path(base, f"work-{user}")
    tmp = Path(base, f"tmp-{user}")
    for d in (work, tmp):
        d.mkdir()
        os.chown(d, pw.pw_uid, pw.pw_gid)
    xml = tmp / "junit.xml"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
    cmd = [python, "-m", "test", f"-j{jobs}", "--junit-xml", str(xml), *modules]
    start = time.monotonic()
    res = subprocess.run(cmd, cwd=work, env=env, user=pw.pw_uid, group=pw.pw_gid,
                         extra_groups=[], capture_output=True, text=True,
                         timeout=RUN_TIMEOUT, check=False)
    wall = time.monotonic() - start
    tail = "\n".join(res.stdout.splitlines()[-12:])
    print(f"--- {label} as {user}: {wall:.1f} s, exit {res.returncode}\n{tail}", flush=True)
    got = results(xml)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return got, wall, res.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--users", default="root,nobody")
    ap.add_argument("--modules", nargs="*", default=MODULES)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (mounting, running as nobody)")
    python = pick_python()
    print(f"interpreter: {python}", flush=True)
    worse: list[str] = []
    table: list[tuple[str, float, float, int, int]] = []
    for user in args.users.split(","):
        shm = tempfile.mkdtemp(prefix="rumpfs-cpython-ref-", dir="/dev/shm")
        os.chmod(shm, 0o1777)
        try:
            ref, ref_wall, _ = run(python, shm, user, args.modules, args.jobs, "tmpfs")
        finally:
            shutil.rmtree(shm, ignore_errors=True)
        mount = Mount()
        try:
            got, wall, _ = run(python, mount.mp, user, args.modules, args.jobs, "rumpfs mount")
        finally:
            mount.close()
        if not ref:
            worse.append(f"{user}: no results from the tmpfs run")
        lost = sorted(t for t, r in ref.items() if r == "pass" and got.get(t) != "pass")
        worse += [f"{user}: {t} ({got.get(t, 'missing')} on the mount)" for t in lost]
        table.append((user, ref_wall, wall, sum(r == "pass" for r in ref.values()),
                      sum(r == "pass" for r in got.values())))
    print("\n| user | tmpfs wall | mount wall | passed on tmpfs | passed on mount |")
    print("|---|---|---|---|---|")
    for user, rw, mw, rp, mp_ in table:
        print(f"| {user} | {rw:.0f} s | {mw:.0f} s | {rp} | {mp_} |")
    if worse:
        print("\npassed on tmpfs, not on the mount:")
        for line in worse:
            print("  " + line)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
