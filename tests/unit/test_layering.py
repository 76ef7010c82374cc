"""The layering rules (docs/architecture.md), checked by parsing every module under src/rumpfs.

- A layer imports only the layers listed before it (plus ``errors``):
  ``errors`` nothing from rumpfs; ``rumpuser`` only errors; ``kern`` only
  rumpuser/errors; ``vfs`` only kern/errors; ``fs/<x>`` only vfs/kern/errors
  (and ``fs/etfs`` also rumpuser); ``dev`` only kern/rumpuser/errors; ``handles``
  only vfs/kern/errors (never the kernel facade).  Imports
  within a layer's own package (``fs/<x>`` for file systems) are free.
  Imports under ``if TYPE_CHECKING:`` count too: the rule is about dependencies.
- Outside ``rumpuser/`` (and the frontends), ``os`` serves only constants and
  pure functions: host-touching calls such as ``os.open`` or ``os.stat`` are
  forbidden in kern, vfs, fs, dev, sbin, kernel.py, hotcalls.py, fileio.py, errors.py, path.py
  and ``__init__.py`` (sbin programs reach devices through a Process only).

The checker works on source text, so it is tested on synthetic modules too and
passes on an empty or partial tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = "rumpfs"

# os functions that touch the host (files, directories, descriptors, process state).
HOST_OS_CALLS = frozenset(
    [
        "open", "close", "closerange", "read", "write", "pread", "pwrite", "readv", "writev",
        "preadv", "pwritev", "lseek", "fstat", "stat", "lstat", "fstatvfs", "statvfs",
        "fsync", "fdatasync", "ftruncate", "truncate", "dup", "dup2", "listdir", "scandir",
        "walk", "fwalk", "unlink", "remove", "rmdir", "removedirs", "mkdir", "makedirs",
        "rename", "renames", "replace", "link", "symlink", "readlink", "chmod", "fchmod",
        "lchmod", "chown", "fchown", "lchown", "utime", "access", "chdir", "fchdir",
        "getcwd", "getcwdb", "mknod", "mkfifo", "umask", "chroot", "posix_fallocate",
        "sendfile", "copy_file_range", "getxattr", "setxattr", "listxattr", "removexattr",
        "getuid", "geteuid", "getgid", "getegid", "getgroups", "system", "popen",
    ]
)
# os.path functions that look at the host's file system (join, normpath etc. are pure).
HOST_OS_PATH_CALLS = frozenset(
    [
        "exists", "lexists", "isfile", "isdir", "islink", "ismount", "getsize", "getmtime",
        "getatime", "getctime", "realpath", "samefile", "abspath", "expanduser",
    ]
)


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.message}"


def layer_of(module: str) -> str | None:
    """The layer a rumpfs module belongs to ('fs/etfs' for file systems), or None."""
    parts = module.split(".")
    if parts[0] != PKG:
        return None
    if len(parts) == 1:
        return "__init__"
    if parts[1] == "fs":
        return "fs" if len(parts) == 2 else f"fs/{parts[2]}"
    return parts[1]


def allowed_layers(layer: str) -> set[str] | None:
    """The layers that *layer* may import, or None for unrestricted."""
    base = {"errors", layer}
    if layer == "errors":
        return {"errors"}
    if layer == "rumpuser":
        return base
    if layer == "kern":
        return base | {"rumpuser"}
    if layer == "vfs":
        return base | {"kern"}
    if layer == "dev":
        return base | {"kern", "rumpuser"}
    if layer == "handles":  # the kernel hands itself in (handles.KernelPort): no cycle
        return base | {"vfs", "kern"}
    if layer == "fs":  # fs/__init__.py may gather the file systems
        return base | {"fs/*", "vfs", "kern"}
    if layer.startswith("fs/"):
        extra = {"rumpuser"} if layer == "fs/etfs" else set()
        return base | {"fs", "vfs", "kern"} | extra
    return None


def host_call_checked(module: str) -> bool:
    layer = layer_of(module)
    return layer in {"kern", "vfs", "dev", "kernel", "hotcalls", "fileio", "errors", "path",
                     "__init__", "sbin"} or (
        layer is not None and layer.startswith("fs"))


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: str, is_package: bool, tree: ast.AST,
                     exists: set[str] | None = None) -> list[tuple[int, str]]:
    """(line, module) for every import in tree; 'from pkg import mod' names pkg.mod
    when that is a module (in *exists*, or any lowercase rumpfs submodule name)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if exists is not None:
                    is_module = sub in exists
                else:
                    is_module = alias.name.islower() and alias.name != "*"
                found.append((node.lineno, sub if is_module else target))
    return found


def _os_aliases(tree: ast.AST) -> tuple[set[str], set[str], dict[str, str]]:
    """Names bound to the os module, to os.path, and to functions imported from them."""
    os_names: set[str] = set()
    path_names: set[str] = set()
    funcs: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "os":
                    os_names.add(alias.asname or "os")
                elif alias.name in ("os.path", "posixpath"):
                    if alias.asname:
                        path_names.add(alias.asname)
                    else:
                        os_names.add("os")
                        if alias.name == "posixpath":
                            path_names.add("posixpath")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                if node.module == "os" and alias.name == "path":
                    path_names.add(local)
                elif node.module == "os" and alias.name in HOST_OS_CALLS:
                    funcs[local] = f"os.{alias.name}"
                elif node.module in ("os.path", "posixpath") and alias.name in HOST_OS_PATH_CALLS:
                    funcs[local] = f"os.path.{alias.name}"
    return os_names, path_names, funcs


def host_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, 'os.x') for each use of a host-touching os function."""
    os_names, path_names, funcs = _os_aliases(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in os_names and node.attr in HOST_OS_CALLS:
                found.append((node.lineno, f"os.{node.attr}"))
            elif node.value.id in path_names and node.attr in HOST_OS_PATH_CALLS:
                found.append((node.lineno, f"os.path.{node.attr}"))
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
              and isinstance(node.value.value, ast.Name) and node.value.value.id in os_names
              and node.value.attr == "path" and node.attr in HOST_OS_PATH_CALLS):
            found.append((node.lineno, f"os.path.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                if local in funcs:
                    found.append((node.lineno, funcs[local]))
    return found


def check_source(module: str, source: str, *, is_package: bool = False,
                 exists: set[str] | None = None) -> list[Violation]:
    """All layering violations of one module, given its dotted name and source."""
    tree = ast.parse(source)
    violations: list[Violation] = []
    layer = layer_of(module)
    allowed = allowed_layers(layer) if layer else None
    if allowed is not None:
        for line, target in imported_modules(module, is_package, tree, exists):
            target_layer = layer_of(target)
            if target_layer is None:
                continue  # stdlib or third party
            if target_layer in allowed or ("fs/*" in allowed and target_layer.startswith("fs/")):
                continue
            violations.append(Violation(
                module, line, f"layer {layer!r} imports {target} (layer {target_layer!r})"))
    if host_call_checked(module):
        for line, call in host_calls(tree):
            violations.append(Violation(module, line, f"host-touching {call} outside rumpuser"))
    return violations


def module_name(path: Path, src: Path = SRC) -> tuple[str, bool]:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def source_files(src: Path = SRC) -> list[Path]:
    root = src / PKG
    return sorted(root.rglob("*.py")) if root.is_dir() else []


def check_tree(src: Path = SRC) -> list[Violation]:
    files = source_files(src)
    names = {module_name(p, src)[0] for p in files}
    violations: list[Violation] = []
    for path in files:
        name, is_package = module_name(path, src)
        violations.extend(check_source(name, path.read_text(encoding="utf-8"),
                                       is_package=is_package, exists=names))
    return violations


# -- the real tree ---------------------------------------------------------------------------


def test_source_tree_follows_layering_rules() -> None:
    violations = check_tree()
    assert not violations, "layering violations:\n" + "\n".join(map(str, violations))


def test_every_module_parses() -> None:
    for path in source_files():
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# -- the checker itself ----------------------------------------------------------------------


PACKAGES = {"rumpfs.fs", "rumpfs.dev"}  # synthetic modules that stand for an __init__.py


def _check(module: str, source: str, *, is_package: bool = False) -> list[str]:
    return [v.message for v in check_source(module, source, is_package=is_package)]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("rumpfs.errors", "from rumpfs.kern import cred"),
        ("rumpfs.rumpuser.posix", "from rumpfs.kern import cred"),
        ("rumpfs.rumpuser.posix", "import rumpfs.vfs.vnode"),
        ("rumpfs.kern.proc", "from rumpfs.vfs.vnode import Vnode"),
        ("rumpfs.kern.proc", "from ..vfs.vnode import Vnode"),
        ("rumpfs.kern.proc", "from .. import vfs"),
        ("rumpfs.kern.proc", "from rumpfs import Kernel"),
        ("rumpfs.kern.proc", "from typing import TYPE_CHECKING\n"
                             "if TYPE_CHECKING:\n    from rumpfs.vfs import vnode"),
        ("rumpfs.vfs.namei", "from rumpfs.rumpuser import Hypervisor"),
        ("rumpfs.vfs.namei", "from rumpfs.fs.rumpfs import node"),
        ("rumpfs.vfs.namei", "import rumpfs.kernel"),
        ("rumpfs.fs.rumpfs.vnops", "from rumpfs.rumpuser.posix import PosixHost"),
        ("rumpfs.fs.rumpfs.vnops", "from rumpfs.fs.etfs import vnops"),
        ("rumpfs.fs.rumpfs.vnops", "from rumpfs.dev import rumpblk"),
        ("rumpfs.fs.rumpfs.vnops", "from ..etfs.vnops import EtfsOps"),
        ("rumpfs.fs", "from rumpfs.kernel import Kernel"),
        ("rumpfs.fs.etfs.vnops", "from rumpfs.kernel import Kernel"),
        ("rumpfs.dev.rumpblk", "from rumpfs.vfs.vnode import Vnode"),
        ("rumpfs.dev", "from .. import vfs"),
        ("rumpfs.handles", "from rumpfs.kernel import Kernel"),
        ("rumpfs.handles", "from typing import TYPE_CHECKING\n"
                           "if TYPE_CHECKING:\n    from rumpfs.kernel import Process"),
    ],
)
def test_checker_flags_forbidden_imports(module: str, source: str) -> None:
    is_package = module in PACKAGES
    messages = _check(module, source, is_package=is_package)
    assert len(messages) == 1 and "imports" in messages[0], messages


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("rumpfs.errors", "import errno\nimport os\nos.strerror(1)"),
        ("rumpfs.rumpuser.posix", "from rumpfs.errors import raise_errno\nfrom . import memhost"),
        ("rumpfs.kern.clock", "from rumpfs.rumpuser import Hypervisor\nfrom rumpfs import errors"),
        ("rumpfs.kern.proc", "from .cred import Cred\nfrom rumpfs.kern.lock import Lock"),
        ("rumpfs.vfs.namei", "from rumpfs.kern.proc import Proc\nfrom .vnode import Vnode"),
        ("rumpfs.vfs.namei", "from ..kern import cred\nfrom .. import errors"),
        ("rumpfs.fs.rumpfs.vnops", "from rumpfs.vfs.genfs import GenfsOps\n"
                                   "from rumpfs.kern.cred import Cred\nfrom .node import Node"),
        ("rumpfs.fs.rumpfs.vnops", "from rumpfs.fs.rumpfs.node import RumpDir"),
        ("rumpfs.fs.etfs.vnops", "from rumpfs.rumpuser import Hypervisor"),
        ("rumpfs.dev.rumpblk", "from rumpfs.kern.devsw import Devsw\nfrom rumpfs import rumpuser"),
        ("rumpfs.fs", "from .rumpfs import vfsops\nfrom .etfs import registry"),
        ("rumpfs.kernel", "from rumpfs.fs.rumpfs import vfsops\nfrom rumpfs.rumpuser import posix"),
        ("rumpfs.frontends.fuse", "import os\nos.open('/x', 0)\nfrom rumpfs.vfs import namei"),
        ("rumpfs.rumpuser.posix", "import os\nos.open('/x', 0)\nos.pread(3, 1, 0)"),
        ("rumpfs.vfs.vfs_syscalls", "import os\nos.O_RDONLY | os.O_CREAT\nos.fsencode('x')\n"
                                "os.stat_result((0,) * 10)\nos.path.join('a', 'b')\n"
                                "os.SEEK_SET\nos.strerror(2)\nos.fspath('x')\nos.makedev(1, 2)"),
        ("rumpfs.kern.cred", "def stat(x): pass\nstat(1)\nclass P:\n  def open(self): pass\n"
                             "P().open()"),
    ],
)
def test_checker_accepts_allowed_code(module: str, source: str) -> None:
    is_package = module in PACKAGES
    assert _check(module, source, is_package=is_package) == []


@pytest.mark.parametrize(
    ("module", "source", "call"),
    [
        ("rumpfs.vfs.vfs_syscalls", "import os\nos.open('/x', os.O_RDONLY)", "os.open"),
        ("rumpfs.kern.proc", "import os\nos.getcwd()", "os.getcwd"),
        ("rumpfs.kern.clock", "import os\nuid = os.getuid()", "os.getuid"),
        ("rumpfs.fs.rumpfs.vnops", "import os as _os\n_os.stat('/')", "os.stat"),
        ("rumpfs.fs.etfs.vnops", "import os\nos.scandir('/')", "os.scandir"),
        ("rumpfs.dev.rumpblk", "from os import pread\n", "os.pread"),
        ("rumpfs.dev.rumpblk", "from os import pwrite as pw\n", "os.pwrite"),
        ("rumpfs.kernel", "import os\nos.close(3)", "os.close"),
        ("rumpfs.fileio", "import os\nf = os.fsync", "os.fsync"),
        ("rumpfs.vfs.namei", "import os.path\nos.path.exists('/x')", "os.path.exists"),
        ("rumpfs.vfs.namei", "from os import path\npath.isdir('/x')", "os.path.isdir"),
        ("rumpfs.vfs.namei", "import posixpath\nposixpath.realpath('/x')", "os.path.realpath"),
        ("rumpfs.fs.rumpfs.node", "import os\nos.unlink('/x')", "os.unlink"),
        ("rumpfs.fs.rumpfs.node", "import os\nos.mkdir('/x')", "os.mkdir"),
        ("rumpfs.fs.rumpfs.node", "import os\nos.rename('/x', '/y')", "os.rename"),
        ("rumpfs.fs.rumpfs.node", "import os\nos.lstat('/x')", "os.lstat"),
        ("rumpfs.fs.rumpfs.node", "import os\nos.listdir('/x')", "os.listdir"),
    ],
)
def test_checker_flags_host_calls(module: str, source: str, call: str) -> None:
    messages = _check(module, source)
    assert messages == [f"host-touching {call} outside rumpuser"], messages


def test_checker_reports_line_numbers() -> None:
    src = "import os\n\n\ndef f():\n    return os.lstat('/')\n"
    (violation,) = check_source("rumpfs.vfs.x", src)
    assert violation.line == 5
    assert str(violation).startswith("rumpfs.vfs.x:5:")


def test_checker_on_a_synthetic_tree(tmp_path: Path) -> None:
    pkg = tmp_path / PKG
    for sub in ("kern", "vfs", "rumpuser"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from rumpfs.kernel import Kernel\n")
    (pkg / "errors.py").write_text("import os\n")
    (pkg / "kern" / "proc.py").write_text("from rumpfs.vfs import vnode\n")
    (pkg / "vfs" / "vnode.py").write_text("from rumpfs.kern import proc\n")
    (pkg / "vfs" / "namei.py").write_text("from . import vnode\nimport os\nos.stat('/')\n")
    (pkg / "rumpuser" / "posix.py").write_text("import os\nos.open('/', 0)\n")
    assert module_name(pkg / "vfs" / "__init__.py", tmp_path) == ("rumpfs.vfs", True)
    found = sorted(str(v) for v in check_tree(tmp_path))
    assert found == [
        "rumpfs.kern.proc:1: layer 'kern' imports rumpfs.vfs.vnode (layer 'vfs')",
        "rumpfs.vfs.namei:3: host-touching os.stat outside rumpuser",
    ]


def test_checker_passes_on_an_empty_tree(tmp_path: Path) -> None:
    assert check_tree(tmp_path) == []
    (tmp_path / PKG).mkdir()
    assert check_tree(tmp_path) == []
