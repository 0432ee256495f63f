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
a later one only the signals that entries after the previous size touched.  Every delta but
the last carries the *previous* checkpoint, so an interrupted fetch starts that range again.

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
from .pytx_signals import EXTENSION_SIGNAL_TYPES

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


@dataclass
class ForumCheckpoint(state.FetchCheckpointBase):
    """The verified log size the fetched state reflects."""

    log_size: int = 0


@dataclass
class ForumSignalMetadata(state.FetchedSignalMetadata):
    """What the forum says about one signal (from the verified copy)."""

    forum_type: str = ""
    labels: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    tlp: list[str] = field(default_factory=list)
    verdict: str = "none"
    positive: int = 0
    negative: int = 0
    negative_members: list[str] = field(default_factory=list)
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


def metadata_of(record: SignalRecord, my_member_id: str = "") -> ForumSignalMetadata:
    """The pytx metadata of one forum signal."""
    s = record.signal
    active = [d for d in s.descriptors if d.active]
    return ForumSignalMetadata(
        forum_type=s.type,
        labels=list(s.labels),
        members=[d.member_id for d in active],
        content_types=sorted({d.content_type for d in active if d.content_type}),
        incidents=[x for x in s.labels if x.startswith("incident:")],
        scopes=sorted({d.scope for d in active if d.scope}),
        tlp=sorted({d.tlp for d in active if d.tlp}),
        verdict=s.rollup.verdict,
        positive=s.rollup.positive,
        negative=s.rollup.negative,
        negative_members=[
            o.member_id for o in record.opinions if o.kind in ("disagree", "false_positive")
        ],
        my_member_id=my_member_id,
        first_index=s.first_index,
        last_index=record.last_index,
    )


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
        wanted = {s.get_name() for s in supported_signal_types}
        start = checkpoint.log_size if checkpoint is not None else 0
        with self._client() as client, LocalStore(self.collab.db) as store:
            me = client.bundle.member_id
            size = client.sync(store).size
            if size <= start:
                yield _Delta({}, ForumCheckpoint(start))
                return
            records = store.scan(include_retracted=False) if start == 0 else store.changed(start)
            updates: dict[tuple[str, str], ForumSignalMetadata | None] = {}
            for record in records:
                meta = None if record.deleted else metadata_of(record, me)
                content_types = meta.content_types if meta else ()
                for key in pytx_keys(record.signal.type, record.signal.value, content_types):
                    if key[0] in wanted:
                        updates[key] = meta
                if len(updates) >= DELTA_SIZE:
                    yield _Delta(updates, ForumCheckpoint(start))
                    updates = {}
            yield _Delta(updates, ForumCheckpoint(size))

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
