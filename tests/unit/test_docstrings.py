"""``help(rumpfs.Kernel)`` documents every public method: one line at least,
saying which ``os`` function it mirrors or what it does; ``mount()``'s
docstring lists every file-system type the kernel registers.

A method added without a docstring fails here, with its name.
"""

from __future__ import annotations

import ast
import inspect
import pydoc
from pathlib import Path

import rumpfs
from rumpfs import Kernel, Process, hotcalls


def undocumented(cls: type) -> list[str]:
    """Public methods and properties of ``cls`` (inherited ones included) without a docstring."""
    missing = []
    for name, obj in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        if not (inspect.isfunction(obj) or isinstance(obj, property)):
            continue
        doc = inspect.getdoc(obj)
        if not doc or not doc.strip():
            missing.append(name)
    return missing


def test_every_public_method_has_a_docstring() -> None:
    assert undocumented(Kernel) == []
    assert undocumented(Process) == []


def test_help_shows_them() -> None:
    text = pydoc.render_doc(rumpfs.Kernel, renderer=pydoc.plaintext)
    assert "``os.lstat``" in text and "``os.rmdir``" in text
    if not rumpfs.compiled:
        assert "``os.open``" in text and "``os.stat``" in text


def test_the_compiled_hot_calls_are_documented_in_their_source() -> None:
    """mypyc keeps a compiled method's signature but not its docstring: in the
    compiled variant help() shows the hot calls (``rumpfs.hotcalls``) without
    one (docs/performance.md says so). Their source must still have them."""
    tree = ast.parse((Path(hotcalls.__file__).parent / "hotcalls.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "HotCalls"]
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)
               and not n.name.startswith("_")]
    assert {m.name for m in methods} >= {"open", "read", "write", "stat", "rename"}
    missing = [m.name for m in methods if not ast.get_docstring(m)]
    assert missing == []
    for m in methods:
        assert f"``os.{m.name}``" in (ast.get_docstring(m) or ""), m.name


def test_mount_lists_the_file_system_types() -> None:
    doc = inspect.getdoc(Kernel.mount) or ""
    with Kernel() as k:
        types = sorted(k.vfs.fstypes)
    assert types
    for fstype in types:
        assert f"``{fstype}``" in doc, f"Kernel.mount's docstring does not name {fstype!r}"


def test_checker_finds_a_missing_docstring() -> None:
    class Sloppy(Kernel):
        def fallocate(self, fd: int, offset: int, length: int) -> None:
            pass

    assert undocumented(Sloppy) == ["fallocate"]
