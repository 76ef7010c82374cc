"""Every ```python block of the README runs, so the README cannot rot.

Rules:

- Each ```python fenced block runs on its own, in a fresh namespace, with a
  fresh temporary directory as the current directory.
- A block that defines pytest tests (``def test_``) is written to a test file
  and run with pytest (with the rumpfs plugin): every test in it must pass.
- A block that uses FUSE (``rumpfs.fuse``, ``fuse.serve`` or ``rumpfs_mount``)
  runs where FUSE is available, and is skipped elsewhere (failing instead
  under ``RUMPFS_REQUIRE_FUSE=1``).
- The only way out is an explicit ``<!-- norun -->`` line right before the
  fence (for the rare block that cannot run, e.g. one needing a real disk).
  Other languages (```sh, ```console, ```text) are not run.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from rumpfs.pytest_plugin import REQUIRE_FUSE_ENV, fuse_unavailable_reason

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md"]
NORUN = "<!-- norun -->"
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")
_FUSE_WORDS = ("rumpfs.fuse", "fuse.serve", "rumpfs_mount")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    norun: bool

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def needs_fuse(self) -> bool:
        return any(w in self.code for w in _FUSE_WORDS)

    @property
    def is_pytest(self) -> bool:
        return re.search(r"^\s*def test_", self.code, re.MULTILINE) is not None


def extract_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with their line numbers."""
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
        if info not in ("python", "py", "python3"):
            continue
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        norun = prev >= 0 and lines[prev].strip() == NORUN
        blocks.append(Block(path, start + 1, "\n".join(body) + "\n", norun))
    return blocks


def _all_blocks() -> list[Block]:
    out: list[Block] = []
    for src in SOURCES:
        if src.exists():
            out.extend(extract_blocks(src))
    return out


BLOCKS = _all_blocks()


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
