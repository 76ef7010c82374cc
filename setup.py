"""Build script: the pure-Python package, or with RUMPFS_COMPILE=1 the hot
modules compiled by mypyc (see src/rumpfs/_build.py and docs/performance.md).

All metadata lives in pyproject.toml; this file only adds the extension
modules when asked to, so a build without mypy or a C compiler is the pure
package, exactly as before.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
ext_modules = []
setup_requires = []
if os.environ.get("RUMPFS_COMPILE") == "1":
    build = runpy.run_path(str(HERE / "src" / "rumpfs" / "_build.py"))
    try:
        from mypyc.build import mypycify
    except ImportError:
        # PEP 517 first asks for the build requirements: say mypy is one
        # (the pin of the `compile` extra), then build in an env that has it.
        setup_requires = ["mypy==2.4.1"]
    else:
        paths = [os.path.join("src", *m.split(".")) + ".py" for m in build["COMPILED_MODULES"]]
        ext_modules = mypycify(paths, opt_level="3", group_name="rumpfs",
                               target_dir=os.path.join("build", "mypyc"))
        # a source-tree build records what it compiled (the staleness check)
        digests = build["source_digests"](HERE / "src")
        Path(build["STAMP"]).write_text("".join(f"{m} {d}\n" for m, d in digests.items()))

setup(ext_modules=ext_modules, setup_requires=setup_requires)
