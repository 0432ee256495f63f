"""The forum as a python-threatexchange exchange (``SignalExchangeAPI``), for the
``threatexchange`` CLI and Hasher-Matcher-Actioner.  Needs the ``pytx`` extra.

Set up once (the CLI keeps its state in ``~/.threatexchange``)::

    threatexchange config extensions add forum_client.interop.pytx_exchange
    threatexchange config collab edit shared_signal_forum my-forum --create \\
        --profile acme.bundle.json --db acme.db [--key acme.key]
    threatexchange fetch
    threatexchange match photo suspicious.jpg

``fetch`` runs the SDK's verified sync into ``--db`` (every check of ``forum-client sync``:
signed checkpoint, consistency proof, every entry's signature and content rules; a failure
stops the fetch and keeps the evidence) and then yields deltas read from that verified copy.
Keys are ``(pytx signal type, value)`` (see :func:`pytx_keys`), values are
:class:`ForumSignalMetadata` with the forum's labels, submitting members, content types,
opinion roll-up, incident tags and scopes.  A retracted or benign-listed signal is a delete
(``None``).  The checkpoint is the verified log size: a first fetch yields every active signal,
a later one only the signals that entries after the previous size touched.

An interrupted fetch resumes at two levels.  The sync commits verified batches to ``--db`` as
it goes, so the next fetch syncs from the size that copy holds, never from 0.  The deltas
carry a checkpoint only where everything before it has been yielded: a later fetch reads the
entries after the previous size in chunks of ``DELTA_SIZE`` signals and closes each chunk with
the log size it covers, so pytx's saved checkpoint (``threatexchange fetch`` writes its state
every ``--checkpoint-every`` seconds and on Ctrl-C) moves along the log; a first fetch yields
in key order and only its last delta carries the size.  Memory is one chunk of records on our
side; pytx's CLI itself holds the whole fetched state in memory (``docs/benchmarks.md``).

``threatexchange label`` (``report_opinion``) signs a forum opinion with ``--key``:
positive -> ``agree``, negative -> ``false_positive``, investigation seed -> ``seen``; the
labels go in the opinion's note.

Type mapping (:mod:`.mapping`, :mod:`.pytx_signals`): ``pdq`` -> ``pdq``; ``md5`` /
``sha256`` -> ``video_md5`` / ``video_sha256`` for video content, else this extension's
``file_md5`` / ``file_sha256``; ``sha1`` -> ``file_sha1``; ``url`` -> ``forum_url``
(normalising queries as the forum does), plus pytx's ``url`` (the canonical spelling) and
``url_md5``; ``domain`` -> ``forum_domain``.  Nothing is dropped; what pytx itself cannot
carry is the signature and log proofs (they stay in the SDK's copy) and per-member descriptors
beyond the merged labels (the metadata lists the members).
"""

import logging
import os
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.signal_base import SignalType
from threatexchange.signal_type.url_md5 import UrlMD5Signal

from ..client import ForumClient
from ..envelope import SigningKey
from ..profile import Bundle
from ..store import LocalStore
from ..store.scan import SignalRecord
from ..sync import SyncConfig
from .pytx_signals import EXTENSION_SIGNAL_TYPES

log = logging.getLogger(__name__)

API_NAME = "shared_signal_forum"
DELTA_SIZE = 10_000
"""Updates per yielded delta."""

_OPINION_KINDS = {
    state.SignalOpinionCategory.POSITIVE_CLASS: "agree",
    state.SignalOpinionCategory.NEGATIVE_CLASS: "false-positive",
    state.SignalOpinionCategory.INVESTIGATION_SEED: "seen",
}
_FORUM_TYPES = {
    "pdq": "pdq",
    "video_md5": "md5",
    "file_md5": "md5",
    "video_sha256": "sha256",
    "file_sha256": "sha256",
    "file_sha1": "sha1",
    "forum_url": "url",
    "url": "url",
    "forum_domain": "domain",
}
"""pytx signal type -> forum type, for report_opinion (``url_md5`` is one-way)."""


@dataclass
class _ForumCollabRequired:
    profile: str = field(metadata={"help": "your member bundle (forum-client --profile)"})
    db: str = field(metadata={"help": "the verified local copy to sync into (SQLite file)"})


@dataclass
class ForumCollabConfig(CollaborationConfigWithDefaults, _ForumCollabRequired):
    """A forum: the member's bundle, its local copy and (to report opinions) its key."""

    # t.Optional, not "str | None": pytx's collab editor only understands typing.Union.
    key: t.Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "your signing key, to sign opinions (threatexchange label)"},
    )
    server: t.Optional[str] = field(  # noqa: UP045
        default=None, metadata={"help": "host:port, if not the bundle's server"}
    )
    commit_every: t.Optional[int] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "rows staged before a verified intermediate commit of the sync "
            "(as forum-client sync --commit-every; default 100000)"
        },
    )

    def __post_init__(self) -> None:
        # pytx saves the collab as given: a relative path would name another file for every
        # later `threatexchange fetch` run from another directory (a cron job).
        for name in ("profile", "db", "key"):
            value = getattr(self, name)
            if value:
                setattr(self, name, os.path.abspath(os.path.expanduser(value)))


@dataclass
class ForumCheckpoint(state.FetchCheckpointBase):
    """The verified log size the fetched state reflects."""

    log_size: int = 0


@dataclass
class ForumSignalMetadata(state.FetchedSignalMetadata):
    """What the forum says about one signal (from the verified copy)."""

    forum_type: str = ""
    labels: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    incidents: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tlp: tuple[str, ...] = ()
    verdict: str = "none"
    positive: int = 0
    negative: int = 0
    negative_members: tuple[str, ...] = ()
    my_member_id: str = ""
    first_index: int = 0
    last_index: int = 0

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        tags = set(self.labels)
        opinions = [
            state.SignalOpinion(
                member == self.my_member_id, state.SignalOpinionCategory.POSITIVE_CLASS, tags
            )
            for member in self.members
        ]
        opinions += [
            state.SignalOpinion(
                member == self.my_member_id, state.SignalOpinionCategory.NEGATIVE_CLASS, set()
            )
            for member in self.negative_members
        ]
        return opinions or [
            state.SignalOpinion(False, state.SignalOpinionCategory.INVESTIGATION_SEED, set())
        ]


def metadata_of(
    record: SignalRecord, my_member_id: str = "", shared: "Interned | None" = None
) -> ForumSignalMetadata:
    """The pytx metadata of one forum signal.

    Its fields are tuples, and with ``shared`` equal tuples and short strings are one object
    across records: pytx's CLI pickles its whole fetched state and unpickles it once per
    signal type to rebuild its indexes, and pickle writes a shared object once.  At 100k
    sha256 signals that made the state file 19.0 -> 14.6 MB and its load 5.9 -> 1.4 s (one
    run, loaded machine; ``docs/benchmarks.md``), and the in-memory state smaller by the lists.
    """
    one = shared if shared is not None else Interned()
    s = record.signal
    active = [d for d in s.descriptors if d.active]
    labels = one.strings(s.labels)
    return ForumSignalMetadata(
        forum_type=one.text(s.type),
        labels=labels,
        members=one.strings(d.member_id for d in active),
        content_types=one.strings(sorted({d.content_type for d in active if d.content_type})),
        incidents=one.strings(x for x in labels if x.startswith("incident:")),
        scopes=one.strings(sorted({d.scope for d in active if d.scope})),
        tlp=one.strings(sorted({d.tlp for d in active if d.tlp})),
        verdict=one.text(s.rollup.verdict),
        positive=s.rollup.positive,
        negative=s.rollup.negative,
        negative_members=one.strings(
            o.member_id for o in record.opinions if o.kind in ("disagree", "false_positive")
        ),
        my_member_id=one.text(my_member_id),
        first_index=s.first_index,
        last_index=record.last_index,
    )


class Interned:
    """One object for equal tuples of strings and equal short strings, so records share them
    (bounded: forgets everything past ``limit`` distinct values; sharing is an optimisation,
    never needed for correctness)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: dict[object, t.Any] = {}
        self._limit = limit

    def _one(self, value: t.Any) -> t.Any:
        known = self._seen.get(value)
        if known is not None:
            return known
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen[value] = value
        return value

    def strings(self, values: t.Iterable[str]) -> tuple[str, ...]:
        return t.cast(tuple[str, ...], self._one(tuple(self.text(v) for v in values)))

    def text(self, value: str) -> str:
        return t.cast(str, self._one(value)) if len(value) <= 64 else value


def pytx_keys(type_: str, value: str, content_types: t.Iterable[str]) -> list[tuple[str, str]]:
    """The ``(pytx signal type, value)`` keys a forum signal is fetched under."""
    video = "video" in content_types
    if type_ == "pdq":
        return [("pdq", value)]
    if type_ in ("md5", "sha256"):
        keys = [(f"video_{type_}", value)] if video else []
        if not video or any(c != "video" for c in content_types):
            keys.append((f"file_{type_}", value))
        return keys
    if type_ == "sha1":
        return [("file_sha1", value)]
    if type_ == "url":
        return [
            ("forum_url", value),
            ("url", value),
            ("url_md5", UrlMD5Signal.hash_from_str(value)),
        ]
    if type_ == "domain":
        return [("forum_domain", value)]
    return [(type_, value)]  # a type added later: pytx may know it by the same name


_Delta = state.FetchDelta[tuple[str, str], ForumSignalMetadata, ForumCheckpoint]


class ForumSignalExchangeAPI(
    SignalExchangeAPIWithSimpleUpdates[ForumCollabConfig, ForumCheckpoint, ForumSignalMetadata]
):
    """The Shared-Signal Forum, fetched through the SDK's verified sync."""

    def __init__(self, collab: ForumCollabConfig) -> None:
        self.collab = collab

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[ForumCollabConfig]:
        return ForumCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[ForumCheckpoint]:
        return ForumCheckpoint

    @staticmethod
    def get_record_cls() -> type[ForumSignalMetadata]:
        return ForumSignalMetadata

    @classmethod
    def for_collab(cls, collab: ForumCollabConfig) -> "ForumSignalExchangeAPI":
        return cls(collab)

    def _client(self) -> ForumClient:
        return ForumClient(Bundle.load(self.collab.profile), server=self.collab.server)

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: ForumCheckpoint | None,
    ) -> t.Iterator[_Delta]:
        """Sync (verified), then yield what changed since ``checkpoint`` (see the module)."""
        wanted = frozenset(s.get_name() for s in supported_signal_types)
        start = checkpoint.log_size if checkpoint is not None else 0
        with self._client() as client, LocalStore(self.collab.db) as store:
            me = client.bundle.member_id
            log.info("%s: local copy at %d entries, syncing", API_NAME, store.size)
            every = self.collab.commit_every
            config = SyncConfig(commit_every_rows=every) if every else None
            size = client.sync(store, config=config).size
            log.info("%s: verified %d entries; deltas from log size %d", API_NAME, size, start)
            if size <= start:
                yield _Delta({}, ForumCheckpoint(start))
                return
            shared = Interned()
            if start == 0:
                # Key order, not log order: no log size is reached before the end.
                chunks: t.Iterable[tuple[int, t.Iterable[SignalRecord]]] = [
                    (size, store.scan(include_retracted=False))
                ]
            else:
                chunks = store.changed(start, size, chunk=DELTA_SIZE)
            for upto, records in chunks:
                updates: dict[tuple[str, str], ForumSignalMetadata | None] = {}
                for record in records:
                    meta = None if record.deleted else metadata_of(record, me, shared)
                    content_types = meta.content_types if meta else ()
                    for key in pytx_keys(record.signal.type, record.signal.value, content_types):
                        if key[0] in wanted:
                            updates[key] = meta
                    if len(updates) >= DELTA_SIZE:
                        yield _Delta(updates, ForumCheckpoint(start))
                        updates = {}
                start = upto
                yield _Delta(updates, ForumCheckpoint(upto))

    def report_opinion(
        self, s_type: type[SignalType], signal: str, opinion: state.SignalOpinion
    ) -> None:
        """Sign and submit a forum opinion on the signal (needs ``--key`` on the collab)."""
        forum_type = _FORUM_TYPES.get(s_type.get_name())
        if forum_type is None:
            raise NotImplementedError(
                f"{s_type.get_name()} has no forum signal type to give an opinion on"
            )
        if not self.collab.key:
            raise NotImplementedError(
                "set --key on the collab (threatexchange config collab edit "
                f"{API_NAME} {self.collab.name} --key FILE) to sign opinions"
            )
        kind = _OPINION_KINDS[opinion.category]
        note = ("labels: " + ",".join(sorted(opinion.tags))) if opinion.tags else ""
        key = SigningKey.load(Path(self.collab.key))
        with self._client() as client:
            client.opine({"type": forum_type, "value": signal}, kind, key, note)


TX_MANIFEST = ThreatExchangeExtensionManifest(
    signal_types=EXTENSION_SIGNAL_TYPES,
    apis=(ForumSignalExchangeAPI,),
)

__all__ = [
    "API_NAME",
    "TX_MANIFEST",
    "ForumCheckpoint",
    "ForumCollabConfig",
    "ForumSignalExchangeAPI",
    "ForumSignalMetadata",
    "metadata_of",
    "pytx_keys",
]
