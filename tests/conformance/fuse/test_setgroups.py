"""A task that calls setgroups(2) and keeps its uid and gid is judged with its
new groups through a mount, as on tmpfs (the frontend's group cache never
keeps the groups of a task that may call setgroups: docs/frontends.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conformance.fuse.conftest import ROOT

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root to start a task with CAP_SETGID")

CHILD = textwrap.dedent("""
    import os, sys
    path = sys.argv[1]
    out = []
    for groups in ([], [2000], [], [3000, 2000]):
        os.setgroups(groups)
        try:
            with open(path, "rb") as f:
                out.append(f.read().decode())
        except PermissionError:
            out.append("EACCES")
    print(" ".join(out))
""")


def outcomes(root: Path) -> str:
    f = root / "g2000"
    f.write_bytes(b"ok")
    os.chown(f, 0, 2000)
    os.chmod(f, 0o640)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is not installed (scripts/bootstrap installs it)")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
    res = subprocess.run([setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups",
                          "--inh-caps", "+setgid", "--ambient-caps", "+setgid",
                          python, "-c", CHILD, str(f)],
                         capture_output=True, text=True, timeout=60, check=True, cwd="/")
    return res.stdout.strip()


@pytest.mark.parametrize("mode", ["serve", "exclusive"])
def test_setgroups_keeping_ids_is_seen(mode: str, request: pytest.FixtureRequest,
                                       shm: Path) -> None:
    root = request.getfixturevalue("mnt" if mode == "serve" else "exclusive_mnt")
    want = outcomes(shm)
    assert want == "EACCES ok EACCES ok"
    assert outcomes(root) == want
