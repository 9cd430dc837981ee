"""Build hook: detector/core.py compiled with mypyc, where it can be.

The same typed source, compiled to C: `detect` and the daemon's per-probe detector work
run about twice as fast (bench/detection.py prints which one ran and its throughput).
Everything else about the package is in pyproject.toml. Without a C compiler or Python's
headers, or with LLM_VITALS_PURE_PYTHON=1 at install, the extension is skipped and
detector/core.py runs as Python: the same verdicts, byte for byte (tests/detector/
test_compiled.py), only slower. detector/__init__.py also runs the source when it has
changed since the build (an editable install not yet rebuilt).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

ext_modules = []
if os.environ.get("LLM_VITALS_PURE_PYTHON", "") in ("", "0"):
    try:
        from mypyc.build import mypycify

        # no config file: pyproject's [tool.mypy] names a pydantic plugin the build env lacks,
        # and core.py imports nothing but the standard library and detector.params
        ext_modules = mypycify(["--config-file=", "detector/core.py"], opt_level="3")
    except Exception as exc:  # mypyc missing or the source did not compile: pure Python
        print(f"warning: detector/core.py not compiled ({exc}); it runs as Python", file=sys.stderr)
    for ext in ext_modules:
        ext.optional = True  # a failed C build is a warning, not a failed install

setup(ext_modules=ext_modules)
