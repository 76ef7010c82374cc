"""POSIX ACLs through an exclusive mount (the CLI's) agree with tmpfs.

An exclusive mount uses ``default_permissions``: the host checks permissions
itself. Without ``FUSE_POSIX_ACL`` it would check the mode bits only and ignore
named-user and named-group entries; with it, it reads the ACLs through the
mount (GETXATTR ``system.posix_acl_*``) and decides as on tmpfs. The same
steps run on the mount and on a tmpfs directory, as root and as uid 1000
(which sets an ACL on a file of its own for uid 1001); outcomes, ``getfacl``
output and modes must agree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conformance.fuse.conftest import ROOT

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root to set up and drop to other users")

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

CHILD = textwrap.dedent("""
    import errno, json, os, sys
    root = sys.argv[1]
    out = {}
    def attempt(name, fn, *args):
        try:
            r = fn(*args)
            out[name] = repr(r) if isinstance(r, bytes) else "ok"
        except OSError as e:
            out[name] = errno.errorcode.get(e.errno, str(e.errno))
    def p(x): return os.path.join(root, x)
    def read(path):
        with open(path, "rb") as f: return f.read()
    def write(path):
        os.close(os.open(path, os.O_WRONLY))
    def create(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    for name in sorted(os.listdir(root)):
        if name.startswith("f-"):
            attempt("read " + name, read, p(name))
            attempt("write " + name, write, p(name))
    attempt("list acldir", os.listdir, p("acldir"))
    attempt("create in acldir", create, p("acldir/by-" + str(os.getuid())))
    attempt("create in denydir", create, p("denydir/by-" + str(os.getuid())))
    attempt("access rw f-user", os.access, p("f-user"), os.R_OK | os.W_OK)
    print(json.dumps(out, sort_keys=True))
""")


@pytest.fixture(autouse=True)
def acl_tools() -> None:
    for tool in ("setfacl", "getfacl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/bootstrap installs it)")


def facl(root: Path, *args: str) -> None:
    subprocess.run(["setfacl", *args], cwd=root, check=True, timeout=60)


def getfacl(root: Path, *names: str) -> str:
    res = subprocess.run(["getfacl", "-p", "-n", *names], cwd=root, check=True, timeout=60,
                         capture_output=True, text=True)
    return res.stdout


def make_tree(root: Path) -> None:
    os.chmod(root, 0o755)
    for name, mode in (("f-user", 0o600), ("f-group", 0o600), ("f-deny", 0o666),
                       ("f-mask", 0o600)):
        (root / name).write_bytes(name.encode())
        os.chmod(root / name, mode)
    facl(root, "-m", "u:1000:rw", "f-user")             # a named user entry grants
    facl(root, "-m", "g:2000:r", "f-group")             # a named group entry grants
    facl(root, "-m", "u:1000:---", "f-deny")            # ... or denies what other allows
    facl(root, "-m", "u:1000:rw", "f-mask")
    os.chmod(root / "f-mask", 0o600)                    # chmod sets the mask: rw masked off
    (root / "acldir").mkdir(mode=0o700)
    facl(root, "-m", "u:1000:rwx", "acldir")
    facl(root, "-d", "-m", "u:1000:rwx,g:2000:rx", "acldir")   # inherited by new entries
    (root / "denydir").mkdir(mode=0o777)
    facl(root, "-m", "u:1000:r-x", "denydir")


def outcomes(root: Path, uid: int, groups: list[int]) -> dict[str, str]:
    res = subprocess.run([PYTHON, "-c", CHILD, str(root)], capture_output=True, text=True,
                         timeout=120, user=uid, group=uid, extra_groups=groups, cwd="/",
                         check=False)
    assert res.returncode == 0, res.stderr
    result: dict[str, str] = json.loads(res.stdout)
    return result


def run_both(exclusive_mnt: Path, shm: Path, uid: int, groups: list[int]) -> dict[str, str]:
    make_tree(exclusive_mnt)
    make_tree(shm)
    got = outcomes(exclusive_mnt, uid, groups)
    want = outcomes(shm, uid, groups)
    assert got == want, {k: (got.get(k), want[k]) for k in want if got.get(k) != want[k]}
    return want


def test_named_entries_grant_and_deny_as_on_tmpfs(exclusive_mnt: Path, shm: Path) -> None:
    want = run_both(exclusive_mnt, shm, 1000, [])
    # the test really exercises ACL entries, not just mode bits
    assert want["read f-user"] == "b'f-user'" and want["write f-user"] == "ok"
    assert want["read f-deny"] == "EACCES"
    assert want["write f-mask"] == "EACCES"
    assert want["create in acldir"] == "ok" and want["create in denydir"] == "EACCES"


def test_named_group_entry_as_on_tmpfs(exclusive_mnt: Path, shm: Path) -> None:
    want = run_both(exclusive_mnt, shm, 1001, [2000])
    assert want["read f-group"] == "b'f-group'" and want["write f-group"] == "EACCES"


def test_inheritance_umask_and_chmod_as_on_tmpfs(exclusive_mnt: Path, shm: Path) -> None:
    """A default ACL is inherited (and the umask then ignored), chmod rewrites
    the mask, setfacl rewrites the mode: getfacl and the modes agree."""
    script = ("import os; os.umask(0o077);"
              "os.close(os.open('acldir/file', os.O_CREAT | os.O_WRONLY, 0o666));"
              "os.mkdir('acldir/sub', 0o777); os.mkdir('plain', 0o777)")
    seen = []
    for root in (exclusive_mnt, shm):
        make_tree(root)
        subprocess.run([PYTHON, "-c", script], cwd=root, check=True, timeout=60)
        os.chmod(root / "f-user", 0o640)
        facl(root, "-m", "o::r", "f-group")
        seen.append((getfacl(root, "acldir/file", "acldir/sub", "plain", "f-user", "f-group",
                             "f-mask"),
                     {n: os.stat(root / n).st_mode
                      for n in ("acldir/file", "acldir/sub", "plain", "f-user", "f-group")}))
    assert seen[0] == seen[1]
    assert "user:1000:rwx" in seen[1][0] and "default:group:2000:r-x" in seen[1][0]


def test_unprivileged_owner_sets_an_acl(exclusive_mnt: Path, shm: Path) -> None:
    """uid 1000 grants uid 1001 access to its own file with setfacl; then uid
    1001 reads it -- on the mount as on tmpfs."""
    results = []
    for root in (exclusive_mnt, shm):
        d = root / "home"
        d.mkdir()
        os.chown(d, 1000, 1000)
        os.chmod(root, 0o755)
        steps = ("umask 077; echo secret > f; setfacl -m u:1001:r f; getfacl -p -n f; "
                 "setfacl -m u:1001:r,g:2000:rw f 2>&1; chmod 600 f; getfacl -p -n f")
        res = subprocess.run(["sh", "-c", steps], cwd=d, capture_output=True, text=True,
                             timeout=60, user=1000, group=1000, extra_groups=[], check=True)
        reader = subprocess.run([PYTHON, "-c", "print(open('f').read().strip())"], cwd=d,
                                capture_output=True, text=True, timeout=60, user=1001,
                                group=1001, extra_groups=[], check=False)
        subprocess.run(["setfacl", "-m", "m::r", "f"], cwd=d, check=True, timeout=60,
                       user=1000, group=1000, extra_groups=[])
        again = subprocess.run([PYTHON, "-c", "print(open('f').read().strip())"], cwd=d,
                               capture_output=True, text=True, timeout=60, user=1001,
                               group=1001, extra_groups=[], check=False)
        results.append((res.stdout, reader.returncode, reader.stdout, again.returncode,
                        again.stdout))
    assert results[0] == results[1]
    assert results[1][1] != 0 and results[1][3] == 0 and results[1][4] == "secret\n"
