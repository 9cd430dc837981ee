"""Anomaly detection: config (cheap to import), statistics (detector.core), the per-series service and replay.

detector.core is compiled with mypyc at install (setup.py) where a C compiler is present:
the same source, about twice as fast, the same verdicts byte for byte. The compiled module
is used only when it is at least as new as the core.py beside it: an edited or checked-out
core.py of an editable install that was not rebuilt (`pip install -e .`) runs as Python,
with a warning, rather than the stale build. LLM_VITALS_PURE_PYTHON=1 runs it as Python
regardless (to compare the two, or to rule the compiler out). A build for another
interpreter is not found by its name; Python then imports core.py itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# a wheel's files are written within moments of each other in any order: only a source
# newer than its build by more than this is an edit since the build
_SLACK_S = 2.0


class _CoreFromSource(importlib.abc.MetaPathFinder):
    """Finds detector.core in core.py, ahead of the extension the import would pick (when
    imported: loading the config must not import the statistics)."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != f"{__name__}.core":
            return None
        return importlib.util.spec_from_file_location(fullname, self.source)


def _choose_core() -> None:
    here = Path(__file__).parent
    source = here / "core.py"
    builds = [here / f"core{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    built = [p.stat().st_mtime for p in builds if p.exists()]
    if not built or not source.exists():
        return  # nothing compiled (for this interpreter): the import finds core.py anyway
    if os.environ.get("LLM_VITALS_PURE_PYTHON", "") not in ("", "0"):
        sys.meta_path.insert(0, _CoreFromSource(source))
    elif source.stat().st_mtime > max(built) + _SLACK_S:
        warnings.warn(f"{source} changed after it was compiled: running it as Python, the same "
                      "verdicts but slower (pip install -e . compiles it again)", stacklevel=2)
        sys.meta_path.insert(0, _CoreFromSource(source))


def core_is_compiled() -> bool:
    """Whether detector.core runs compiled (mypyc) or as Python."""
    from detector import core

    return not (core.__file__ or "").endswith(".py")


_choose_core()
