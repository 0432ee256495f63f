"""Matching against the local copy: the public names of :mod:`forum_client.store.matching`.

The matcher reads the copy only through :class:`~forum_client.store.LocalStore`, which owns
every SQL statement; see :mod:`forum_client.store.matching` for how the PDQ index follows the
sync.
"""

from __future__ import annotations

from ..match.pdq_index import DEFAULT_THRESHOLD
from ..store.matching import (
    INDEX_SUFFIX,
    VIDEO_INDEX_SUFFIX,
    Matcher,
    index_path_for,
    results_json,
    video_index_path_for,
)
from ..store.records import INCIDENT_PREFIX, MatchResult
from ..store.schema import VPDQ

__all__ = [
    "DEFAULT_THRESHOLD",
    "INCIDENT_PREFIX",
    "INDEX_SUFFIX",
    "VIDEO_INDEX_SUFFIX",
    "VPDQ",
    "MatchResult",
    "Matcher",
    "index_path_for",
    "results_json",
    "video_index_path_for",
]
