"""The operator's actions, over gRPC with the operator's certificate.

The admin key (never on the server) signs every membership entry, so the server cannot
forge one; the CA key issues member certificates locally and only their fingerprints are
sent to the server.

    op = Operator.open("myforum/operator")
    op.add_member("acme", display_name="Acme", role=Role.MEMBER,
                  signing_key="acme.key.pub", out="acme.bundle.json")
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from forum_client import entries as e
from forum_client.client import ForumClient, SignalInput, normalize_ref
from forum_client.envelope import SigningKey, key_id, load_public_key_file, verify_possession
from forum_client.errors import (
    REJECT_KEY_INACTIVE,
    REJECT_SEQUENCE,
    REJECT_THRESHOLD,
    ConfigError,
    EntryRejectedError,
    InvalidInputError,
    TransportError,
    VerificationError,
)
from forum_client.profile import Bundle
from forum_client.protocol import messages as pb
from forum_client.protocol import services as pb_grpc
from forum_client.receipts import verify_receipt
from forum_client.sigcheck import replay_checked
from forum_client.signals.versions import CURRENT as NORMALIZATION
from forum_client.taxonomy import check_labels
from forum_client.tools import MAX_PEM_BYTES, FileTooLargeError, read_bounded
from forum_client.transport import call
from forum_client.verifier import GROUP_ID_RE, OPERATOR_ID, GroupRecord, LogState, check_member_id
from forum_client.wire import Receipt, envelope_to_pb, receipt_from_pb

from .ca import CLIENT_DAYS, MAX_CERT_DAYS, MIN_CERT_DAYS, KeyAndCert, issue_member_cert
from .init import OperatorPaths
from .proposals import DEFAULT_TTL_MS, MAX_TTL_MS, Board, Proposal


def check_days(days: int) -> None:
    """A certificate validity the CA may issue.  Raises InvalidInputError naming ``days``."""
    if not MIN_CERT_DAYS <= days <= MAX_CERT_DAYS:
        raise InvalidInputError.field(
            "days", f"{days}: a certificate is valid {MIN_CERT_DAYS}-{MAX_CERT_DAYS} days"
        )


@dataclass(frozen=True)
class MemberView:
    member_id: str
    display_name: str
    role: e.Role
    status: e.MemberStatus
    admitted_at_index: int
    active_key_ids: list[str]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: dt.datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


class Operator:
    """An operator session: the operator profile plus a connection to the forum."""

    def __init__(
        self,
        paths: OperatorPaths,
        *,
        server: str | None = None,
        member_address: str | None = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.paths = paths
        if not paths.root.is_dir():
            raise ConfigError(
                f"{paths.root}: no operator profile there (it is DIR/operator, made by "
                "`forum-admin init DIR`)"
            )
        self.bundle = Bundle.load(paths.bundle)
        try:
            self.admin_key = SigningKey.load(paths.admin_key)
            self.ca = KeyAndCert(
                read_bounded(paths.ca_key, MAX_PEM_BYTES, "the CA key"),
                read_bounded(paths.ca_cert, MAX_PEM_BYTES, "the CA certificate"),
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"{paths.root} is not an operator profile ({exc})") from None
        except (FileTooLargeError, InvalidInputError) as exc:
            raise ConfigError(f"{paths.root}: {exc}") from None
        self.admitted: Receipt | None = None
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.server = server or self.bundle.server  # where this session connects
        # What issued bundles point at: where members reach the forum (init's --address),
        # whatever address this session uses to reach it.
        self.member_address = member_address or self.bundle.server
        self.forum = ForumClient(self.bundle, server=self.server)
        self.admin = self.forum.service_stub(pb_grpc.AdminStub)

    @classmethod
    def open(
        cls, profile: str | Path, *, server: str | None = None, member_address: str | None = None
    ) -> Operator:
        return cls(OperatorPaths(Path(profile)), server=server, member_address=member_address)

    def __enter__(self) -> Operator:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.forum.close()

    @property
    def origin(self) -> str:
        return self.bundle.trust_root.origin

    # ---- log entries ----

    def _append(self, make: Callable[[e.Header], e.Body]) -> Receipt:
        """Sign and append an operator entry; retry once if another admin took the sequence."""
        for attempt in range(2):
            header = self.forum.header(self.admin_key)
            envelope = self.admin_key.sign(*_signed(make(header)))
            request = pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope))
            try:
                receipt = receipt_from_pb(
                    call(self.admin.AppendOperatorEntry, request, self.forum.timeout)
                )
            except TransportError as exc:
                if exc.reason == REJECT_SEQUENCE and attempt == 0:
                    continue
                if exc.reason in (REJECT_THRESHOLD, REJECT_KEY_INACTIVE):  # a board decides
                    raise TransportError(
                        f"{exc} (this forum's board needs several signatures: "
                        "forum-admin propose ..., then sign and submit)",
                        code=exc.code,
                        reason=exc.reason,
                    ) from None
                raise
            verify_receipt(receipt, envelope, self.bundle.trust_root)
            return receipt
        raise AssertionError("unreachable")  # pragma: no cover

    def _possession(self, member_id: str, public_key_file: str | Path) -> tuple[bytes, bytes]:
        pub = load_public_key_file(public_key_file)
        signature = pub.possession.get((self.origin, member_id))
        if signature is None:
            raise InvalidInputError.field(
                "signing_key",
                f"{public_key_file} carries no proof of possession for member {member_id} of "
                f"forum {self.origin}: the member runs `forum-client keygen --out KEY "
                f"--member-id {member_id} --origin {self.origin}` and sends KEY.pub",
            )
        try:
            verify_possession(self.origin, member_id, pub.public_key, signature)
        except VerificationError as exc:
            raise InvalidInputError.field("signing_key", f"proof of possession: {exc}") from None
        return pub.public_key, signature

    def add_member(
        self,
        member_id: str,
        *,
        display_name: str,
        role: e.Role,
        signing_key: str | Path,
        out: str | Path,
        days: int = CLIENT_DAYS,
    ) -> Receipt:
        """Admit a member with its signing key and write its credentials bundle to ``out``.

        Returns the key entry's receipt; the admission entry's (the index ``members()``
        reports as ``admitted_at_index``) is kept in ``self.admitted``."""
        check_member_id(member_id)
        check_days(days)
        if role is e.Role.OPERATOR:
            raise InvalidInputError.field("role", "members are members or observers")
        out = Path(out)
        if out.exists():
            raise InvalidInputError.field("out", f"{out} exists: refusing to overwrite")
        admitted, key_added = self.admission(member_id, display_name, role, signing_key)
        self.admitted = self._append(admitted)
        receipt = self._append(key_added)
        self._issue_bundle(member_id, out, days, revoke_others=False)
        return receipt

    def admission(
        self, member_id: str, display_name: str, role: e.Role, signing_key: str | Path
    ) -> list[Callable[[e.Header], e.Body]]:
        """The two entries that admit a member with its key (proof of possession checked)."""
        check_member_id(member_id)
        if role is e.Role.OPERATOR:
            raise InvalidInputError.field("role", "members are members or observers")
        public_key, pop = self._possession(member_id, signing_key)
        return [
            lambda h: e.MemberAdmitted(h, member_id, display_name, role),
            lambda h: e.KeyAdded(h, member_id, public_key, pop),
        ]

    def _issue_bundle(self, member_id: str, out: Path, days: int, revoke_others: bool) -> int:
        check_days(days)
        cert = issue_member_cert(self.ca, member_id, self.now(), days)
        response = call(
            self.admin.RegisterCredential,
            pb.RegisterCredentialRequest(
                member_id=member_id,
                certificate_sha256=cert.fingerprint,
                revoke_others=revoke_others,
                not_after_unix=int(cert.cert.not_valid_after_utc.timestamp()),
            ),
            self.forum.timeout,
        )
        from .witnesses import current_policy  # the policy the log states now

        trust_root = replace(self.bundle.trust_root, witness_policy=current_policy(self))
        Bundle(
            member_id,
            self.member_address,
            self.ca.cert_pem,
            cert.cert_pem,
            cert.key_pem,
            trust_root,
        ).save(out)
        return int(response.revoked)

    def set_status(self, member_id: str, status: e.MemberStatus, reason: str) -> Receipt:
        """Suspend or reinstate a member; effective on the member's next call."""
        return self._append(lambda h: e.MemberStatusChanged(h, member_id, status, reason))

    def rotate_key(self, member_id: str, signing_key: str | Path) -> Receipt:
        """Register a new key for ``member_id``; its current key stays valid for the entries
        before this one and no later."""
        check_member_id(member_id)
        current = [m for m in self.members() if m.member_id == member_id]
        if not current:
            raise InvalidInputError.field("member_id", f"{member_id} is not a member")
        if len(current[0].active_key_ids) != 1:
            raise InvalidInputError.field(
                "member_id", f"{member_id} has {len(current[0].active_key_ids)} active keys"
            )
        old = bytes.fromhex(current[0].active_key_ids[0])
        public_key, pop = self._possession(member_id, signing_key)
        if key_id(public_key) == old:
            raise InvalidInputError.field("signing_key", "that is the member's current key")
        return self._append(lambda h: e.KeyAdded(h, member_id, public_key, pop, old))

    def reissue_credentials(self, member_id: str, out: str | Path, days: int = CLIENT_DAYS) -> int:
        """A new certificate and bundle; every older certificate of the member stops working.
        Returns how many were revoked."""
        check_member_id(member_id)
        check_days(days)
        out = Path(out)
        if out.exists():
            raise InvalidInputError.field("out", f"{out} exists: refusing to overwrite")
        return self._issue_bundle(member_id, out, days, revoke_others=True)

    # ---- the board: proposals signed apart ----

    def log_state(self) -> LogState:
        """The log's state replayed from its entries, every one verified (genesis against
        the pinned trust root)."""
        # the whole log, not only up to the newest witnessed checkpoint
        served = ((i, env, None) for i, env in self.forum.entries(0, self.forum.status().log_size))
        last = collections.deque(replay_checked(served, self.bundle.trust_root), maxlen=1)
        if not last:
            raise VerificationError("the forum's log is empty")
        return last[0][0]

    def verified_leaves(self) -> list[bytes]:
        """Every leaf up to the latest signed checkpoint, checked against its root."""
        from forum_client.merkle import MerkleTree, leaf_hash

        cp = self.forum.checkpoint()
        leaves = [env.leaf_bytes() for _, env in self.forum.entries(0, cp.size)]
        tree = MerkleTree.from_leaf_hashes(leaf_hash(x) for x in leaves)
        if tree.size != cp.size or tree.root() != cp.root:
            raise VerificationError(
                f"the entries served do not match the signed checkpoint of size {cp.size}"
            )
        return leaves

    def board(self, state: LogState | None = None) -> Board:
        """The operator board in force at the end of the log."""
        state = state or self.log_state()
        return Board(state.board_keys(), state.board_threshold)

    def propose(
        self,
        makes: Iterable[Callable[[e.Header], e.Body]],
        summary: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        check: bool = True,
    ) -> Proposal:
        """An unsigned proposal of the entries ``makes`` build, for the board in force.

        Each entry gets its own board sequence number (above every one the log holds, and
        the clock in ms, so proposals written at the same time do not collide) and the
        signed expiry ``now + ttl_ms``.  The entries are checked against the log's rules
        first (an unknown member, an incident that is not open...), so that the board never
        signs what the forum would refuse now; ``check=False`` skips that (an entry that
        builds on another proposal not submitted yet; the server checks again either way).

        Raises:
            InvalidInputError: a TTL out of range, or an entry the log would refuse now
                (naming its field).
        """
        if not 0 < ttl_ms <= MAX_TTL_MS:
            raise InvalidInputError.field(
                "expires_in", f"must be positive and at most {MAX_TTL_MS // 86_400_000} days"
            )
        state = self.log_state()
        now_ms = int(self.now().timestamp() * 1000)
        first = max(state.board_last_sequence + 1, now_ms)
        bodies = [
            make(
                e.Header(
                    self.origin,
                    OPERATOR_ID,
                    b"",
                    first + i,
                    now_ms,
                    now_ms + ttl_ms,
                    normalization=NORMALIZATION,
                )
            )
            for i, make in enumerate(makes)
        ]
        try:
            if check:
                state.check_proposal(bodies)
        except EntryRejectedError as exc:
            reason = str(exc).removeprefix(f"entry {exc.index}: ")
            raise InvalidInputError.field(exc.field, f"{reason} (in the log now)") from None
        return Proposal.create(bodies, self.board(state), summary, now_ms=now_ms)

    def submit(self, proposal: Proposal) -> list[Receipt]:
        """Append a proposal's entries in order, each with its receipt verified.

        Checked first against the board the log holds now (not the one the file names):
        origin, expiry, every signature and the threshold; nothing is sent unless all pass.
        """
        if proposal.origin != self.origin:
            raise InvalidInputError.field(
                "proposal",
                f"the proposal is for forum {proposal.origin!r}, this is {self.origin!r}",
            )
        current = replace(proposal, board=self.board())
        now_ms = int(self.now().timestamp() * 1000)
        try:
            envelopes = current.ready(now_ms=now_ms)
        except VerificationError as exc:
            raise InvalidInputError.field("signatures", f"{exc} in force now") from None
        receipts = []
        for envelope in envelopes:
            request = pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope))
            receipt = receipt_from_pb(
                call(self.admin.AppendOperatorEntry, request, self.forum.timeout)
            )
            verify_receipt(receipt, envelope, self.bundle.trust_root)
            receipts.append(receipt)
        return receipts

    # ---- taxonomy and incidents ----

    def taxonomy(self) -> tuple[int, tuple[e.Label, ...]]:
        """The current vocabulary ``(version, labels)``: the latest taxonomy entry in the log,
        its operator signature verified (version 0 and no labels if there is none)."""
        wanted = e.PAYLOAD_TYPES[e.Taxonomy]
        operator_key = self.bundle.trust_root.operator_public_key
        version = 0
        labels: tuple[e.Label, ...] = ()
        # the whole log, not only up to the newest witnessed checkpoint
        for _, envelope in self.forum.entries(0, self.forum.status().log_size):
            if envelope.payload_type != wanted:
                continue
            envelope.verify(operator_key)
            body = e.decode(envelope.payload_type, envelope.body)
            if isinstance(body, e.Taxonomy) and body.version > version:
                version, labels = body.version, body.labels
        return version, labels

    def publish_taxonomy(self, labels: tuple[e.Label, ...]) -> tuple[int, Receipt]:
        """Publish ``labels`` as the next version of the vocabulary; return (version, receipt)."""
        check_labels(labels)
        version = self.taxonomy()[0] + 1
        return version, self._append(lambda h: e.Taxonomy(h, version, labels))

    def set_incident(self, incident_id: str, *, open: bool, title: str = "") -> Receipt:
        """Open (with a title) or close a crisis-response incident; an open incident makes
        the label ``incident:<id>`` valid on submissions."""
        if open and not title.strip():
            raise InvalidInputError.field("title", "an incident needs a title")
        return self._append(lambda h: e.Incident(h, incident_id, title, open))

    # ---- sharing groups (issue #10) ----

    def create_group(self, group_id: str, name: str, description: str = "") -> Receipt:
        """Create sharing group ``group_id``; members scope entries to it once added."""
        _check_group_id(group_id)
        if not name.strip():
            raise InvalidInputError.field("name", "a group needs a name")
        return self._append(lambda h: e.GroupCreated(h, group_id, name, description))

    def set_group_member(self, group_id: str, member_id: str, *, member: bool) -> Receipt:
        """Add ``member_id`` to the group (it reads the group's entries from the next log
        index on) or remove it (it gets the group's later entries redacted)."""
        _check_group_id(group_id)
        check_member_id(member_id)
        return self._append(lambda h: e.GroupMember(h, group_id, member_id, member))

    def close_group(self, group_id: str, reason: str = "") -> Receipt:
        """Close the group: no entry may be scoped to it any more (its history stays)."""
        _check_group_id(group_id)
        return self._append(lambda h: e.GroupClosed(h, group_id, reason))

    def groups(self) -> dict[str, GroupRecord]:
        """Every group with its membership history, replayed from the log (every entry
        verified on the way; the operator reads every entry in full)."""
        return self.log_state().groups

    # ---- benign list ----

    def publish_benign(
        self, add: Iterable[SignalInput] = (), remove: Iterable[SignalInput] = ()
    ) -> Receipt:
        """Publish known-benign signals (blank frames, common logos) that members' matching
        never reports, and/or take others off the list: one signed entry.  Values are
        normalised first.  Raises InvalidInputError for a bad signal, an empty list or more
        than the forum's batch limit (split bigger lists)."""
        adds = tuple(normalize_ref(x, f"add[{i}]") for i, x in enumerate(add))
        removes = tuple(normalize_ref(x, f"remove[{i}]") for i, x in enumerate(remove))
        if not adds and not removes:
            raise InvalidInputError.field("signals", "nothing to add to or remove from the list")
        limit = self.forum.limits().max_batch_signals
        if len(adds) + len(removes) > limit:
            raise InvalidInputError.field(
                "signals", f"{len(adds) + len(removes)} signals: at most {limit} in one entry"
            )
        return self._append(lambda h: e.BenignList(h, adds, removes))

    # ---- reading ----

    def members(self) -> list[MemberView]:
        response = call(self.admin.ListMembers, pb.ListMembersRequest(), self.forum.timeout)
        return [
            MemberView(
                m.member_id,
                m.display_name,
                e.Role(m.role),
                e.MemberStatus(m.status),
                m.admitted_at_index,
                [k.hex() for k in m.active_key_ids],
            )
            for m in response.members
        ]

    def audit(self, limit: int = 0) -> list[AuditEntry]:
        response = call(self.admin.ListAudit, pb.ListAuditRequest(limit=limit), self.forum.timeout)
        return [
            AuditEntry(
                r.id,
                dt.datetime.fromtimestamp(r.time_unix_ms / 1000, dt.UTC),
                r.actor,
                r.action,
                r.target,
                r.outcome,
                r.detail,
            )
            for r in response.records
        ]


def _check_group_id(group_id: str) -> None:
    if not GROUP_ID_RE.fullmatch(group_id):
        raise InvalidInputError.field(
            "group_id", f"{group_id!r} is not a group id (1-63 of a-z 0-9 . _ -)"
        )


def _signed(body: e.Body) -> tuple[str, bytes]:
    return e.payload_type_of(body), e.encode(body)
