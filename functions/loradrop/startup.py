"""What every handler module does around its imports.

The imports make ~100k objects that live as long as the container (botocore's models, pydantic's validators):
the collector, run while they are made, only re-scans them, about a tenth of a cold start (docs/benchmarks.md,
cold start). So it is off while a handler imports, and what the imports made is frozen: no later collection
scans it again. `tests/unit/test_init.py` checks each handler's import keeps to this.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # init's objects stay for the container's life
        gc.enable()
