"""One lock for leadml's parallel numba kernels.

numba's default thread pool (the ``workqueue`` layer, the one every machine has) must not be
entered by two Python threads at once; the scoring job writes on a second thread and a notebook
may score while it explains. Every ``parallel=True`` kernel call holds this lock.
"""

import threading

NUMBA_LOCK = threading.Lock()
