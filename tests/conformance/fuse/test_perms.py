"""A non-root host process gets EACCES/EPERM exactly where Linux would.

The same tree is made on the mount and on a host tmpfs directory; a child that
runs as uid 1000 (gid 1000, no supplementary groups, or with group 2000) tries
the same operations on both, and the outcomes must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conformance.fuse.conftest import ROOT

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root to set up and drop to uid 1000")

CHILD = textwrap.dedent("""
    import errno, json, os, sys
    root = sys.argv[1]
    out = {}
    def attempt(name, fn, *args):
        try:
            r = fn(*args)
            out[name] = "ok" if not isinstance(r, (bytes, list, bool)) else repr(r)
        except OSError as e:
            out[name] = errno.errorcode.get(e.errno, str(e.errno))
    def p(x): return os.path.join(root, x)
    def write(path):
        fd = os.open(path, os.O_WRONLY); os.close(fd)
    def read(path):
        with open(path, "rb") as f: return f.read()
    def create(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    attempt("read public", read, p("pub/file"))
    attempt("write public", write, p("pub/file"))
    attempt("read secret", read, p("pub/secret"))
    attempt("list private", os.listdir, p("private"))
    attempt("stat in private", os.stat, p("private/x"))
    attempt("create in pub", create, p("pub/new"))
    attempt("mkdir in pub", os.mkdir, p("pub/newdir"))
    attempt("unlink in pub", os.unlink, p("pub/file"))
    attempt("rename in pub", os.rename, p("pub/file"), p("pub/file2"))
    attempt("create in sticky", create, p("sticky/mine"))
    attempt("unlink own in sticky", os.unlink, p("sticky/mine"))
    attempt("unlink root's in sticky", os.unlink, p("sticky/roots"))
    attempt("rename root's in sticky", os.rename, p("sticky/roots"), p("sticky/r2"))
    attempt("chmod root's", os.chmod, p("pub/file"), 0o777)
    attempt("chown root's", os.chown, p("pub/file"), 1000, 1000)
    attempt("chown own to root", os.chown, p("group/own"), 0, 0)
    attempt("chgrp own to other group", os.chown, p("group/own"), -1, 2000)
    attempt("chmod own", os.chmod, p("group/own"), 0o600)
    attempt("write group file", write, p("group/groupw"))
    attempt("touch group-writable (now)", os.utime, p("group/groupw"), None)
    attempt("utime group-writable explicit", os.utime, p("group/groupw"), (1, 1))
    attempt("touch read-only", os.utime, p("pub/file"), None)
    attempt("truncate read-only", os.truncate, p("pub/file"), 0)
    attempt("create in group dir", create, p("group/mine"))
    attempt("read 2000-group file", read, p("group/g2000"))
    attempt("exec noexec", os.access, p("pub/file"), os.X_OK)
    attempt("access read", os.access, p("pub/file"), os.R_OK)
    attempt("access write", os.access, p("pub/file"), os.W_OK)
    attempt("link root's", os.link, p("pub/file"), p("sticky/hl"))
    attempt("mkfifo in sticky", os.mkfifo, p("sticky/fifo"))
    attempt("symlink in pub", os.symlink, "x", p("pub/sl"))
    attempt("rmdir private", os.rmdir, p("private"))
    print(json.dumps(out, sort_keys=True))
""")


def make_tree(root: Path) -> None:
    (root / "pub").mkdir(mode=0o755)
    (root / "pub" / "file").write_bytes(b"public")
    os.chmod(root / "pub" / "file", 0o644)
    (root / "pub" / "secret").write_bytes(b"secret")
    os.chmod(root / "pub" / "secret", 0o600)
    (root / "private").mkdir(mode=0o700)
    (root / "private" / "x").write_bytes(b"")
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "sticky" / "roots").write_bytes(b"")
    (root / "group").mkdir()
    os.chown(root / "group", 0, 1000)
    os.chmod(root / "group", 0o775)
    (root / "group" / "groupw").write_bytes(b"")
    os.chown(root / "group" / "groupw", 0, 1000)
    os.chmod(root / "group" / "groupw", 0o664)
    (root / "group" / "own").write_bytes(b"")
    os.chown(root / "group" / "own", 1000, 1000)
    (root / "group" / "g2000").write_bytes(b"2000")
    os.chown(root / "group" / "g2000", 0, 2000)
    os.chmod(root / "group" / "g2000", 0o640)


def outcomes(root: Path, extra_groups: list[int]) -> dict[str, str]:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
    res = subprocess.run(
        [python, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=120,
        user=1000, group=1000, extra_groups=extra_groups, cwd="/", check=False,
    )
    assert res.returncode == 0, res.stderr
    result: dict[str, str] = json.loads(res.stdout)
    return result


# Outcomes that hang on a host sysctl, with what the kernel answers (its
# option's default, the distributions' setting): compared with the host only
# when the host has that setting too.
HOST_POLICY = {"link root's": ("/proc/sys/fs/protected_hardlinks", "1", "EPERM")}


def host_policy_differs(knob: str, value: str) -> bool:
    try:
        return Path(knob).read_text().strip() != value
    except OSError:
        return True


@pytest.mark.parametrize("extra_groups", [[], [2000]], ids=["no-groups", "group-2000"])
def test_uid_1000_gets_linux_errors(mnt: Path, shm: Path, extra_groups: list[int]) -> None:
    make_tree(mnt)
    make_tree(shm)
    got = outcomes(mnt, extra_groups)
    want = outcomes(shm, extra_groups)
    for key, (knob, value, kernel_answer) in HOST_POLICY.items():
        assert got[key] == kernel_answer
        if host_policy_differs(knob, value):
            del want[key]
    diff = {k: (got[k], want[k]) for k in want if got.get(k) != want[k]}
    assert not diff, f"rumpfs vs Linux differ: {diff}"
    assert want["write public"] == "EACCES"  # the test really exercises refusals
    assert want["read 2000-group file"] == ("b'2000'" if extra_groups else "EACCES")


def test_umask_of_caller_applies(mnt: Path, shm: Path) -> None:
    script = ("import os; os.umask(0o077); os.close(os.open('f', os.O_CREAT|os.O_WRONLY, 0o666));"
              "os.mkdir('d', 0o777); os.mkfifo('p', 0o666)")
    modes = []
    for root in (mnt, shm):
        os.chmod(root, 0o777)
        subprocess.run(["/usr/bin/python3", "-c", script], cwd=root, check=True, timeout=60,
                       user=1000, group=1000, extra_groups=[])
        modes.append({n: (os.stat(root / n).st_mode, os.stat(root / n).st_uid,
                          os.stat(root / n).st_gid) for n in ("f", "d", "p")})
    assert modes[0] == modes[1]
    assert modes[0]["f"][1:] == (1000, 1000)
