"""Hand the C heap's free pages back to the operating system after a big build.

numpy allocates temporaries of up to 32 MB from glibc's heap (its mmap threshold rises as
large blocks are freed), and glibc keeps their pages after they are freed: a process that
has just built a 1M-hash :class:`~forum_client.match.pdq_index.PDQIndex` held ~50-80 MB of
freed sorts and index arrays beyond the index itself. :func:`release_free_heap` calls
glibc's ``malloc_trim(0)``, which returns every free page (not only the heap's top); where
the C library has no ``malloc_trim`` (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Return the heap's free pages to the OS; whether the C library could (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
