"""What leadml's numba kernels share: one lock for numba's thread pool, and a loader that can say no.

numba's default thread pool (the ``workqueue`` layer, the one every machine has) must not be
entered by two Python threads at once; the scoring job writes on a second thread and a notebook
may score while it explains. Every ``parallel=True`` kernel call holds :data:`NUMBA_LOCK`.

The kernels are cached on disk (``cache=True``): beside their module, else in the user's cache
folder, else in ``NUMBA_CACHE_DIR``. Where none is writable (a read-only image run by a user
without a home), numba refuses to define them; :func:`load_kernels` then returns None and the
callers fall back to LightGBM's own routines, which give the same numbers, more slowly.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType

NUMBA_LOCK = threading.Lock()
log = logging.getLogger("leadml.numba")
_REFUSED: dict[str, str] = {}


def load_kernels(module: str) -> ModuleType | None:
    """The kernel module ``module``, or None (with one warning a process) when numba cannot define it."""
    if module in _REFUSED:
        return None
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError) as exc:  # RuntimeError: no writable folder for numba's cache
        _REFUSED[module] = str(exc)
        log.warning("%s is not available (%s); LightGBM's own routine is used instead, with the same results. "
                    "Set NUMBA_CACHE_DIR to a writable folder to use it.", module, exc)  # fmt: skip
        return None
