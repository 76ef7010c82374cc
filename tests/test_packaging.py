"""A wheel built from the tree installs into a fresh venv and works there:
the `rumpfs` command (``--version``, help without arguments), `import rumpfs`,
``help(rumpfs.Kernel)`` with no undocumented public method, the LICENSE in
the metadata, and the pytest plugin's fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600, env=env)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


# Run inside the fresh venv: what help(rumpfs.Kernel) would show without a docstring.
_HELP_CHECK = """
import inspect, pydoc, rumpfs
text = pydoc.render_doc(rumpfs.Kernel, renderer=pydoc.plaintext)
missing = [n for n, o in inspect.getmembers(rumpfs.Kernel)
           if not n.startswith('_') and (inspect.isfunction(o) or isinstance(o, property))
           and not (inspect.getdoc(o) or '').strip()]
assert 'os.open' in text
print('undocumented:', missing)
"""


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps",
         "-q", "-w", dist, ROOT, env={k: v for k, v in os.environ.items()
                                       if k != "RUMPFS_COMPILE"})
    wheels = list(dist.glob("rumpfs-*.whl"))
    assert len(wheels) == 1
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", "--no-deps", wheels[0])
    assert "mount" in _run(env / "bin" / "rumpfs", "--help")
    from rumpfs import __version__

    assert _run(env / "bin" / "rumpfs", "--version") == f"rumpfs {__version__}\n"
    bare = _run(env / "bin" / "rumpfs")
    assert bare.startswith("usage: rumpfs") and "rumpfs mount" in bare
    assert _run(py, "-m", "rumpfs") == bare
    out = _run(py, "-c", _HELP_CHECK)
    assert out == "undocumented: []\n", out
    meta = _run(py, "-c", "import importlib.metadata as m; d = m.metadata('rumpfs'); "
                          "print(d['License-Expression'] or d['License']); "
                          "print(any(f.name == 'LICENSE' for f in m.files('rumpfs')))")
    assert meta == "BSD-2-Clause\nTrue\n"
    out = _run(py, "-c", "import rumpfs, os; k = rumpfs.Kernel(); k.mkdir('/x'); "
                         "print(k.listdir('/'), rumpfs.__version__, rumpfs.compiled)")
    assert out.startswith("['x']")
    assert out.endswith(" False\n")       # without RUMPFS_COMPILE=1: the pure package
    _run(py, "-m", "pip", "install", "-q", "pytest")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_plugin.py").write_text(
        "def test_fixture(rumpfs_kernel):\n"
        "    rumpfs_kernel.mkdir('/d')\n"
        "    assert rumpfs_kernel.listdir('/') == ['d']\n")
    out = _run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "t",
               cwd=tmp_path / "t")
    assert "1 passed" in out
