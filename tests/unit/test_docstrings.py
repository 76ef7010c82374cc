"""``help(rumpfs.Kernel)`` documents every public method: one line at least,
saying which ``os`` function it mirrors or what it does; ``mount()``'s
docstring lists every file-system type the kernel registers.

A method added without a docstring fails here, with its name.
"""

from __future__ import annotations

import inspect
import pydoc

import rumpfs
from rumpfs import Kernel, Process


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
    assert "``os.open``" in text and "``os.stat``" in text


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
