"""Every ```python block of the README runs, so the README cannot rot.

Rules:

- Each ```python fenced block runs on its own, in a fresh namespace, with a
  fresh temporary directory as the current directory.
- A block that defines pytest tests (``def test_``) is written to a test file
  and run with pytest (with the rumpfs plugin): every test in it must pass.
- A block that uses FUSE (``rumpfs.fuse``, ``fuse.serve`` or ``rumpfs_mount``)
  runs where FUSE is available, and is skipped elsewhere (failing instead
  under ``RUMPFS_REQUIRE_FUSE=1``).
- Each ```sh block runs as written with ``bash -e`` (so a failing command
  fails the test), in a fresh temporary directory, with ``HOME`` set to a
  fresh directory and the ``rumpfs`` command of this checkout on ``PATH``;
  afterwards no FUSE mount may be left under that directory or its
  ``TMPDIR`` (the test unmounts any and fails). A block that runs ``rumpfs mount`` needs FUSE as
  above.
- The only way out is an explicit ``<!-- norun -->`` line right before the
  fence (for the rare block that cannot run, e.g. one needing a real disk,
  or ``scripts/test`` itself). Other languages (```console, ```text) are not
  run.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from rumpfs.pytest_plugin import REQUIRE_FUSE_ENV, fuse_unavailable_reason

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", ROOT / "docs" / "pyfakefs.md"]
NORUN = "<!-- norun -->"
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")
_FUSE_WORDS = ("rumpfs.fuse", "fuse.serve", "rumpfs_mount", "rumpfs mount", "fusermount3")
_PYTHON = ("python", "py", "python3")
_SHELL = ("sh", "bash", "shell")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    norun: bool
    lang: str = "python"

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def needs_fuse(self) -> bool:
        return any(w in self.code for w in _FUSE_WORDS)

    @property
    def is_pytest(self) -> bool:
        return re.search(r"^\s*def test_", self.code, re.MULTILINE) is not None


def extract_blocks(path: Path, langs: tuple[str, ...] = _PYTHON) -> list[Block]:
    """The blocks of a Markdown file in ``langs`` (```python by default), with
    their line numbers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m["fence"], m["info"].lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence
        if info not in langs:
            continue
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        norun = prev >= 0 and lines[prev].strip() == NORUN
        lang = "python" if info in _PYTHON else "sh"
        blocks.append(Block(path, start + 1, "\n".join(body) + "\n", norun, lang))
    return blocks


def _all_blocks(langs: tuple[str, ...] = _PYTHON) -> list[Block]:
    out: list[Block] = []
    for src in SOURCES:
        if src.exists():
            out.extend(extract_blocks(src, langs))
    return out


BLOCKS = _all_blocks()
SH_BLOCKS = _all_blocks(_SHELL)


def test_readme_has_examples() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    assert any(b.path == readme for b in BLOCKS), "README.md has no ```python examples"


def test_extractor(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(
        "text\n```python\na = 1\n```\n\n<!-- norun -->\n\n```python\nb = 2\n```\n"
        "```sh\nls\n```\n````py\nc = '```'\n````\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(md)
    assert [(b.line, b.code, b.norun) for b in blocks] == [
        (2, "a = 1\n", False),
        (8, "b = 2\n", True),
        (14, "c = '```'\n", False),
    ]


def _require_fuse() -> None:
    reason = fuse_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_FUSE_ENV) == "1":
        pytest.fail(f"needs FUSE: {reason} ({REQUIRE_FUSE_ENV}=1)")
    pytest.skip(f"needs FUSE: {reason}")


def _plugin_args() -> list[str]:
    eps = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "rumpfs.pytest_plugin" for ep in eps):
        return []
    return ["-p", "rumpfs.pytest_plugin"]


def _register_fsspec() -> None:
    # Installed, rumpfs registers "rumpfs" through fsspec's entry point; from a
    # source checkout the README's fsspec example needs this.
    import fsspec

    if "rumpfs" not in fsspec.available_protocols():
        from rumpfs.frontends.fsspec import RumpFileSystem

        fsspec.register_implementation("rumpfs", RumpFileSystem, clobber=True)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> None:
    if block.norun:
        pytest.skip(f"{NORUN} at {block.id}")
    if block.needs_fuse:
        _require_fuse()
    if block.is_pytest:
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makepyfile(**{"test_readme_example": block.code})
        src = str(ROOT / "src")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH", "")) if p))
        result = pytester.runpytest_subprocess(
            *_plugin_args(), "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            timeout=300,
        )
        outcomes = result.parseoutcomes()
        assert result.ret == 0 and outcomes.get("passed", 0) > 0, (
            f"{block.id}: its tests did not all pass:\n" + result.stdout.str())
        return
    _register_fsspec()
    monkeypatch.chdir(tmp_path)
    # Pad with newlines so tracebacks show the Markdown file's own line numbers.
    code = compile("\n" * block.line + block.code, str(block.path), "exec")
    exec(code, {"__name__": "__readme__"})


def _fuse_mounts_under(top: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            target = os.fsdecode(fields[4]).replace("\\040", " ")
            if (target + "/").startswith(top.rstrip("/") + "/") and b" - fuse" in line:
                found.append(target)
    return found


def test_readme_has_a_shell_example() -> None:
    assert any(not b.norun and "rumpfs mount" in b.code for b in SH_BLOCKS)


@pytest.mark.parametrize("block", SH_BLOCKS, ids=[b.id for b in SH_BLOCKS])
def test_shell_example_runs(block: Block, tmp_path: Path) -> None:
    if block.norun:
        pytest.skip(f"{NORUN} at {block.id}")
    if block.needs_fuse:
        _require_fuse()
    home = tmp_path / "home"
    home.mkdir()
    # Mount points under /tmp, not pytest's 0700 tmp_path, as users would have them.
    tmp = tempfile.mkdtemp(prefix="rumpfs-readme-", dir="/tmp")
    bindir = os.path.dirname(sys.executable)  # this checkout's venv: `rumpfs` is there
    if shutil.which("rumpfs", path=bindir) is None:
        pytest.fail(f"no rumpfs command next to {sys.executable}: install the package")
    env = dict(os.environ, HOME=str(home), TMPDIR=tmp,
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    try:
        res = subprocess.run(["bash", "-e", "-c", block.code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
        left = _fuse_mounts_under(tmp) + _fuse_mounts_under(str(tmp_path))
        assert res.returncode == 0, (
            f"{block.id} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        assert not left, f"{block.id} left mounted: {left}"
    finally:
        for mp in _fuse_mounts_under(tmp) + _fuse_mounts_under(str(tmp_path)):
            subprocess.run(["fusermount3", "-u", "-z", mp], check=False, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
