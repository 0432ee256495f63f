"""The PostgreSQL store: one database that several ``forum-server`` processes share.

    store = PostgresStore("postgresql://forum@db.example/forum")
    store.append(leaves, size, note, view)    # leaves by COPY, checkpoint, view: one transaction

Every append commits before it returns (``synchronous_commit`` is left at the server's
setting, ``on`` by default), together with its checkpoint and view rows.  Reads take a
connection from a pool, so ``GetEntries`` streams never wait for the writer.

Several servers, one writer (see :mod:`forum_server.leadership`): the ``leadership`` row holds
an epoch, the holder's name and the PostgreSQL backend pid of its lease connection; the
``lease`` row (its own row, so that renewing never waits for an append) holds the same epoch
and pid and when the lease expires, on PostgreSQL's clock.  A server takes the leadership over
when the lease has expired or when the holder's lease connection is gone (a ``kill -9``-ed
process closes its socket, so PostgreSQL ends that backend at once); taking it over
increments the epoch.  Every append
locks the row (``FOR SHARE``) and checks that the epoch is still the writer's, so a paused old
leader that resumes cannot commit anything after a new one took over: its transaction fails.
Idle transactions are ended by the server after ``IDLE_TRANSACTION_SECONDS``, and a server
taking over an expired lease ends the backends of appends still in flight (a leader paused
halfway through a ``COPY`` is neither idle nor cancellable), so a paused leader cannot keep
the row locked either.

A non-leader hands a ``Submit`` to the leader through the ``forwarded`` table; the leader
sequences it and writes the outcome back (see ``forward`` / ``take_forwarded``).

The schema is versioned in ``forum_meta`` and migrated by :data:`MIGRATIONS`, under a
transaction-level advisory lock so that servers starting together migrate once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from forum_client.errors import ConfigError, StoreError
from forum_client.scopes import ScopeClaim
from forum_client.tools import without_password

from . import (
    OP_DESCRIPTOR,
    OP_OPINION,
    OP_REFRESH_STATUS,
    OP_RETRACT_ALL,
    OP_RETRACT_MEMBER,
    OP_SIGNAL,
    AuditRecord,
    Credential,
    Descriptor,
    ForwardedEntry,
    NotLeaderError,
    OpinionRow,
    Row,
    StoredLeaf,
    ViewDelta,
)

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - the extra is installed wherever it is used
    raise ConfigError(
        "PostgreSQL support needs the 'postgres' extra: pip install 'shared-signal-forum[postgres]'"
    ) from exc

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
IDLE_TRANSACTION_SECONDS = 2  # the server ends a session idle this long inside a transaction
STATEMENT_SECONDS = 15  # a statement may run this long
_MIGRATION_LOCK = 0x666F72756D  # "forum": the advisory lock that serialises migrations
# Every fenced write also holds this advisory lock (shared; the second key is the leadership
# table's oid, so forums in other schemas of one database are apart).  A leader frozen halfway
# through sending an append keeps the fence row locked, and neither timeout ends it: the
# backend waits for COPY data, which is neither idle nor interruptible by statement_timeout.
# A server taking over an expired lease ends those backends (pg_terminate_backend is
# honoured even there) instead of waiting on them for ever.
_APPEND_LOCK = 0x464F5255  # "FORU"

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE forum_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE leaves (idx bigint PRIMARY KEY, leaf bytea NOT NULL, leaf_hash bytea NOT NULL);
CREATE TABLE checkpoints (size bigint PRIMARY KEY, note bytea NOT NULL);
CREATE TABLE credentials (
    certificate_sha256 bytea PRIMARY KEY,
    member_id text NOT NULL,
    created_ms bigint NOT NULL,
    revoked_ms bigint
);
CREATE INDEX credentials_member ON credentials (member_id);
CREATE TABLE signals (
    type text NOT NULL, value text NOT NULL, status text NOT NULL, first_idx bigint NOT NULL,
    PRIMARY KEY (type, value)
);
CREATE TABLE descriptors (
    type text NOT NULL, value text NOT NULL, member text NOT NULL, labels text NOT NULL,
    content_type text NOT NULL, quality integer, scope text NOT NULL,
    active integer NOT NULL, idx bigint NOT NULL,
    PRIMARY KEY (type, value, member)
);
CREATE TABLE opinions (
    type text NOT NULL, value text NOT NULL, member text NOT NULL, kind integer NOT NULL,
    note text NOT NULL, idx bigint NOT NULL,
    PRIMARY KEY (type, value, member)
);
CREATE TABLE view_meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO view_meta (key, value) VALUES ('size', 0);
CREATE TABLE audit (
    id bigserial PRIMARY KEY, time_ms bigint NOT NULL, actor text NOT NULL,
    action text NOT NULL, target text NOT NULL, outcome text NOT NULL, detail text NOT NULL
);
CREATE TABLE leadership (
    id integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text NOT NULL,
    holder_pid integer NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE TABLE forwarded (
    id bigserial PRIMARY KEY,
    leaf bytea NOT NULL,
    bodies text NOT NULL,
    author text NOT NULL,
    done boolean NOT NULL DEFAULT false,
    idx bigint,
    error text
);
CREATE INDEX forwarded_pending ON forwarded (id) WHERE NOT done;
""",
    # Issue #10: the author's scope claim of every entry scoped to a group.
    2: """
CREATE TABLE scope_claims (
    idx bigint PRIMARY KEY, group_id text NOT NULL, key_id bytea NOT NULL, signature bytea NOT NULL
);
ALTER TABLE forwarded ADD COLUMN scope_signature bytea NOT NULL DEFAULT ''::bytea;
""",
    # The leadership epoch each checkpoint was committed under (NULL: a single writer).
    # The lease moves to a row of its own: renewing it must not wait for an append, which
    # holds the leadership row (the fence) for the whole transaction.
    3: """
ALTER TABLE checkpoints ADD COLUMN epoch bigint;
CREATE TABLE lease (
    id integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder_pid integer NOT NULL,
    lease_until timestamptz NOT NULL
);
INSERT INTO lease (id, epoch, holder_pid, lease_until)
    SELECT id, epoch, holder_pid, lease_until FROM leadership;
ALTER TABLE leadership DROP COLUMN lease_until;
""",
}

# Each view op: its statement, and how a row of ``forum_server.view`` becomes its parameters.
_VIEW_SQL: dict[str, tuple[str, Any]] = {
    OP_SIGNAL: (
        "INSERT INTO signals (type, value, status, first_idx) VALUES (%s, %s, 'active', %s) "
        "ON CONFLICT (type, value) DO UPDATE SET status = 'active' "
        "WHERE signals.status <> 'active'",
        None,
    ),
    OP_DESCRIPTOR: (
        "INSERT INTO descriptors (type, value, member, labels, content_type, quality, scope, "
        "active, idx) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s) "
        "ON CONFLICT (type, value, member) DO UPDATE SET labels = excluded.labels, "
        "content_type = excluded.content_type, quality = excluded.quality, "
        "scope = excluded.scope, active = 1, idx = excluded.idx",
        None,
    ),
    # A retracted descriptor keeps the index of the submission that set it (as members' copies do)
    OP_RETRACT_MEMBER: (
        "UPDATE descriptors SET active = 0 WHERE type = %s AND value = %s AND member = %s",
        None,
    ),
    OP_RETRACT_ALL: (
        "UPDATE descriptors SET active = 0 WHERE type = %s AND value = %s AND active = 1",
        None,
    ),
    OP_REFRESH_STATUS: (
        "UPDATE signals SET status = CASE WHEN EXISTS (SELECT 1 FROM descriptors d "
        "WHERE d.type = %s AND d.value = %s AND d.active = 1) THEN 'active' ELSE 'retracted' END "
        "WHERE type = %s AND value = %s",
        lambda r: (r[0], r[1], r[0], r[1]),
    ),
    OP_OPINION: (
        "INSERT INTO opinions (type, value, member, kind, note, idx) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (type, value, member) DO UPDATE SET kind = excluded.kind, "
        "note = excluded.note, idx = excluded.idx",
        None,
    ),
}

# Bulk forms of the two hot upserts: one statement over column arrays (``unnest``).  Allowed
# only when no two rows of the run share a primary key (ON CONFLICT may touch a row once).
_BULK_SQL = {
    OP_SIGNAL: (
        "INSERT INTO signals (type, value, status, first_idx) "
        "SELECT t, v, 'active', i FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(t, v, i) "
        "ON CONFLICT (type, value) DO UPDATE SET status = 'active' "
        "WHERE signals.status <> 'active'",
        2,
    ),
    OP_DESCRIPTOR: (
        "INSERT INTO descriptors (type, value, member, labels, content_type, quality, scope, "
        "active, idx) SELECT t, v, m, l, c, q, s, 1, i FROM unnest(%s::text[], %s::text[], "
        "%s::text[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::bigint[]) "
        "AS u(t, v, m, l, c, q, s, i) "
        "ON CONFLICT (type, value, member) DO UPDATE SET labels = excluded.labels, "
        "content_type = excluded.content_type, quality = excluded.quality, "
        "scope = excluded.scope, active = 1, idx = excluded.idx",
        3,
    ),
}
_BULK_MIN_ROWS = 16
_LEAVES_PER_READ = 2000  # leaves fetched by one query of ``leaves()``


def _view_statements(view: ViewDelta) -> list[tuple[str, Sequence[Sequence[object]]]]:
    out: list[tuple[str, Sequence[Sequence[object]]]] = []
    for op, rows in view.runs:
        bulk = _BULK_SQL.get(op)
        if bulk is not None and len(rows) >= _BULK_MIN_ROWS:
            sql, key_width = bulk
            if len({row[:key_width] for row in rows}) == len(rows):
                out.append((sql, [[list(column) for column in zip(*rows, strict=True)]]))
                continue
        sql, shape = _VIEW_SQL[op]
        out.append((sql, rows if shape is None else [shape(r) for r in rows]))
    return out


class PostgresStore:
    """``ServerStore`` (and the shared-store operations) on one PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.epoch: int | None = None  # set by the leader: every append is fenced on it
        self._lease: psycopg.Connection[Any] | None = None
        try:
            # Fail fast with a clear message on a wrong URL, host or password.
            psycopg.connect(url, connect_timeout=int(connect_timeout)).close()
        except psycopg.Error as exc:
            raise StoreError(_cannot_connect(url, exc)) from exc
        self._pool: ConnectionPool[Any] = ConnectionPool(
            _with_options(
                url,
                f"-c idle_in_transaction_session_timeout={IDLE_TRANSACTION_SECONDS}s "
                f"-c statement_timeout={STATEMENT_SECONDS}s",
            ),
            min_size=1,
            max_size=pool_size,
            kwargs={"connect_timeout": int(connect_timeout)},
            timeout=connect_timeout,
            open=True,
            name="forum-store",
        )
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)})"

    # ---- schema ----

    def _migrate(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("SELECT to_regclass('forum_meta') IS NOT NULL")
            row = cur.fetchone()
            version = 0
            if row is not None and row[0]:
                cur.execute("SELECT value FROM forum_meta WHERE key = 'schema_version'")
                found = cur.fetchone()
                version = int(found[0]) if found else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self!r}: schema {version} is newer than this server ({SCHEMA_VERSION})"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                cur.execute(MIGRATIONS[number])
            cur.execute(
                "INSERT INTO forum_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def schema_version(self) -> int:
        row = self._one("SELECT value FROM forum_meta WHERE key = 'schema_version'")
        return int(row[0]) if row else 0

    # ---- plumbing ----

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        try:
            with self._pool.connection() as con:
                row: tuple[Any, ...] | None = con.execute(sql, params).fetchone()
                return row
        except psycopg.Error as exc:
            raise StoreError(f"read from {self!r} failed: {exc}") from exc

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as con:
                return list(con.execute(sql, params).fetchall())
        except psycopg.Error as exc:
            raise StoreError(f"read from {self!r} failed: {exc}") from exc

    # ---- the log ----

    def plan_view(self, view: ViewDelta) -> None:
        """Nothing to prepare: :meth:`append` writes the view with COPY as it is."""

    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        records_view_size: bool = True,
    ) -> None:
        with self._tx() as cur:
            self._fence(cur)
            with cur.copy("COPY leaves (idx, leaf, leaf_hash) FROM STDIN") as copy:
                for leaf in leaves:
                    copy.write_row((leaf.index, leaf.leaf_bytes, leaf.leaf_hash))
            cur.execute(
                "INSERT INTO checkpoints (size, note, epoch) VALUES (%s, %s, %s)",
                (size, checkpoint_note, self.epoch),
            )
            claims = [
                (x.index, x.claim.group_id, x.claim.key_id, x.claim.signature)
                for x in leaves
                if x.claim is not None
            ]
            if claims:
                cur.executemany("INSERT INTO scope_claims VALUES (%s, %s, %s, %s)", claims)
            self._write_view(cur, view, size if records_view_size else None)

    def _fence(self, cur: psycopg.Cursor[Any]) -> None:
        if self.epoch is None:
            return
        cur.execute(
            "SELECT epoch, pg_advisory_xact_lock_shared(%s, 'leadership'::regclass::oid::int) "
            "FROM leadership WHERE id = 1 FOR SHARE",
            (_APPEND_LOCK,),
        )
        row = cur.fetchone()
        if row is None or int(row[0]) != self.epoch:
            raise NotLeaderError(
                f"leadership epoch {self.epoch} has ended (now {row[0] if row else None}): "
                "another server sequences the log"
            )

    def _write_view(
        self, cur: psycopg.Cursor[Any], view: ViewDelta | None, size: int | None
    ) -> None:
        if view is not None:
            for sql, rows in _view_statements(view):
                cur.executemany(sql, rows)
        if size is not None:
            cur.execute("UPDATE view_meta SET value = %s WHERE key = 'size'", (size,))

    def view_size(self) -> int:
        row = self._one("SELECT value FROM view_meta WHERE key = 'size'")
        return 0 if row is None else int(row[0])

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        with self._tx() as cur:
            self._fence(cur)
            self._write_view(cur, view, size)

    def size(self) -> int:
        row = self._one("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves")
        return 0 if row is None else int(row[0])

    def leaves(self, start: int, end: int) -> Iterator[StoredLeaf]:
        # In pieces, each its own short query: the caller may take long over each leaf
        # (a replay verifies every signature), and a connection held idle inside a
        # transaction meanwhile would be ended by IDLE_TRANSACTION_SECONDS.
        while start < end:
            rows = self._all(
                "SELECT idx, leaf, leaf_hash FROM leaves WHERE idx >= %s AND idx < %s "
                "ORDER BY idx LIMIT %s",
                (start, end, _LEAVES_PER_READ),
            )
            for idx, leaf, h in rows:
                yield StoredLeaf(int(idx), bytes(leaf), bytes(h))
            if len(rows) < _LEAVES_PER_READ:
                return
            start = int(rows[-1][0]) + 1

    def scope_claims(self, start: int = 0) -> Iterator[tuple[int, ScopeClaim]]:
        rows = self._all(
            "SELECT idx, group_id, key_id, signature FROM scope_claims WHERE idx >= %s "
            "ORDER BY idx",
            (start,),
        )
        for idx, group_id, kid, signature in rows:
            yield int(idx), ScopeClaim(group_id, bytes(kid), bytes(signature))

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        row = self._one("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return None if row is None else (int(row[0]), bytes(row[1]))

    def checkpoints(self, up_to: int) -> list[tuple[int, bytes]]:
        rows = self._all(
            "SELECT size, note FROM checkpoints WHERE size <= %s ORDER BY size", (up_to,)
        )
        return [(int(size), bytes(note)) for size, note in rows]

    def credentials(self) -> list[Credential]:
        rows = self._all(
            "SELECT certificate_sha256, member_id, created_ms, revoked_ms FROM credentials "
            "ORDER BY created_ms, certificate_sha256"
        )
        return [
            Credential(bytes(c), m, int(t), None if r is None else int(r)) for c, m, t, r in rows
        ]

    def restore_credential(self, credential: Credential) -> None:
        c = credential
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO credentials (certificate_sha256, member_id, created_ms, revoked_ms) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (certificate_sha256) DO NOTHING",
                (c.certificate_sha256, c.member_id, c.created_unix_ms, c.revoked_unix_ms),
            )

    # ---- the view ----

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        return (
            self._one(
                "SELECT 1 FROM descriptors WHERE type = %s AND value = %s AND scope = %s",
                (type, value, scope),
            )
            is not None
        )

    def descriptor_holders(self, type: str, value: str, scope: str) -> set[str]:
        rows = self._all(
            "SELECT member FROM descriptors WHERE type = %s AND value = %s AND scope = %s",
            (type, value, scope),
        )
        return {str(r[0]) for r in rows}

    def has_active_descriptor(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        return (
            self._one(
                "SELECT 1 FROM descriptors WHERE type = %s AND value = %s AND member = %s "
                "AND active = 1 AND scope = %s",
                (type, value, member_id, scope),
            )
            is not None
        )

    def signal_status(self, type: str, value: str) -> str | None:
        row = self._one("SELECT status FROM signals WHERE type = %s AND value = %s", (type, value))
        return None if row is None else str(row[0])

    def descriptors(self, type: str, value: str) -> list[Descriptor]:
        rows = self._all(
            "SELECT member, labels, content_type, quality, scope, active, idx FROM descriptors "
            "WHERE type = %s AND value = %s ORDER BY member",
            (type, value),
        )
        return [
            Descriptor(m, tuple(x for x in labels.split(";") if x), ct, q, scope, bool(a), int(idx))
            for m, labels, ct, q, scope, a, idx in rows
        ]

    def opinions(self, type: str, value: str) -> list[OpinionRow]:
        rows = self._all(
            "SELECT member, kind, note, idx FROM opinions WHERE type = %s AND value = %s "
            "ORDER BY member",
            (type, value),
        )
        return [OpinionRow(m, int(k), n, int(i)) for m, k, n, i in rows]

    def signal_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM signals")
        return 0 if row is None else int(row[0])

    # ---- credentials and audit ----

    def register_credential(
        self, certificate_sha256: bytes, member_id: str, now_ms: int, revoke_others: bool
    ) -> int:
        with self._tx() as cur:
            revoked = 0
            if revoke_others:
                cur.execute(
                    "UPDATE credentials SET revoked_ms = %s WHERE member_id = %s "
                    "AND revoked_ms IS NULL AND certificate_sha256 <> %s",
                    (now_ms, member_id, certificate_sha256),
                )
                revoked = cur.rowcount
            cur.execute(
                "INSERT INTO credentials (certificate_sha256, member_id, created_ms) "
                "VALUES (%s, %s, %s) ON CONFLICT (certificate_sha256) DO NOTHING",
                (certificate_sha256, member_id, now_ms),
            )
        return revoked

    def credential(self, certificate_sha256: bytes) -> Credential | None:
        row = self._one(
            "SELECT certificate_sha256, member_id, created_ms, revoked_ms FROM credentials "
            "WHERE certificate_sha256 = %s",
            (certificate_sha256,),
        )
        if row is None:
            return None
        return Credential(
            bytes(row[0]), row[1], int(row[2]), None if row[3] is None else int(row[3])
        )

    def record_audit(
        self, now_ms: int, actor: str, action: str, target: str, outcome: str, detail: str
    ) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO audit (time_ms, actor, action, target, outcome, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (now_ms, actor, action, target, outcome, detail),
            )

    def audit(self, limit: int = 0) -> list[AuditRecord]:
        sql = "SELECT id, time_ms, actor, action, target, outcome, detail FROM audit ORDER BY id"
        if limit:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) AS a ORDER BY id"
        return [AuditRecord(int(r[0]), int(r[1]), *r[2:]) for r in self._all(sql)]

    # ---- leadership (several servers, one writer) ----

    def try_lead(self, holder: str, lease_seconds: float) -> int | None:
        """Take the leadership if nobody holds a live lease; return the new epoch, or None."""
        con = self._lease_connection()
        params = {"holder": holder, "lease": lease_seconds}
        try:
            with con.transaction():
                row = con.execute(
                    "SELECT s.epoch, s.lease_until < clock_timestamp() OR NOT EXISTS "
                    "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.holder_pid) "
                    "FROM lease s WHERE s.id = 1"
                ).fetchone()
                if row is None:  # the first leader of this database
                    first = con.execute(
                        "INSERT INTO leadership (id, epoch, holder, holder_pid) "
                        "VALUES (1, 1, %(holder)s, pg_backend_pid()) "
                        "ON CONFLICT (id) DO NOTHING RETURNING epoch",
                        params,
                    ).fetchone()
                    epoch = None if first is None else 1
                elif not row[1]:
                    return None  # a live lease
                else:
                    self._end_stale_appends(con)
                    # Waits for appends in flight (they hold the row): none commits after.
                    taken = con.execute(
                        "UPDATE leadership SET epoch = epoch + 1, holder = %(holder)s, "
                        "holder_pid = pg_backend_pid() WHERE id = 1 AND epoch = %(epoch)s "
                        "RETURNING epoch",
                        {**params, "epoch": int(row[0])},
                    ).fetchone()
                    epoch = None if taken is None else int(taken[0])
                if epoch is None:
                    return None  # another server was quicker
                con.execute(
                    "INSERT INTO lease AS s (id, epoch, holder_pid, lease_until) VALUES "
                    "(1, %(epoch)s, pg_backend_pid(), "
                    "clock_timestamp() + make_interval(secs => %(lease)s)) "
                    "ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, "
                    "holder_pid = excluded.holder_pid, lease_until = excluded.lease_until",
                    {**params, "epoch": epoch},
                )
                return epoch
        except psycopg.Error as exc:
            self._drop_broken_lease_connection()
            raise StoreError(f"leadership check on {self!r} failed: {exc}") from exc

    def _end_stale_appends(self, con: psycopg.Connection[Any]) -> None:
        """End the backends of the previous leader's writes still in flight (its lease is over:
        they could only fail on the fence, but a frozen one would hold the row for ever)."""
        try:
            with con.transaction():  # a savepoint: a refusal must not abort the takeover
                ended = con.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND classid = %s AND objid = 'leadership'::regclass::oid AND objsubid = 2",
                    (_APPEND_LOCK,),
                ).fetchone()
        except psycopg.errors.InsufficientPrivilege as exc:
            log.warning("cannot end the previous leader's writes (it may hold the log): %s", exc)
            return
        if ended and ended[0]:
            log.warning("ended %d write(s) of the previous leader still in flight", ended[0])

    def renew(self, epoch: int, lease_seconds: float) -> bool:
        """Extend the lease of ``epoch``; False once another server holds the leadership."""
        con = self._lease_connection()
        try:
            row = con.execute(
                "UPDATE lease SET lease_until = clock_timestamp() + make_interval(secs => %s) "
                "WHERE id = 1 AND epoch = %s AND holder_pid = pg_backend_pid() RETURNING 1",
                (lease_seconds, epoch),
            ).fetchone()
        except psycopg.Error as exc:
            self._drop_broken_lease_connection()
            raise StoreError(f"lease renewal on {self!r} failed: {exc}") from exc
        return row is not None

    def leader(self) -> tuple[int, str] | None:
        """The current ``(epoch, holder)``, whether or not its lease is still live."""
        row = self._one("SELECT epoch, holder FROM leadership WHERE id = 1")
        return None if row is None else (int(row[0]), str(row[1]))

    def _lease_connection(self) -> psycopg.Connection[Any]:
        if self._lease is None or self._lease.closed:
            try:
                self._lease = psycopg.connect(
                    _with_options(self.url, "-c lock_timeout=1000"),
                    autocommit=True,
                    connect_timeout=5,
                )
            except psycopg.Error as exc:
                raise StoreError(_cannot_connect(self.url, exc)) from exc
        return self._lease

    def _drop_broken_lease_connection(self) -> None:
        """After an error: a lost connection is replaced (its backend pid, which names the
        holder, dies with it); a live one is kept, so a lock timeout costs no leadership."""
        if self._lease is not None and (self._lease.broken or self._lease.closed):
            self._drop_lease_connection()

    def _drop_lease_connection(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    # ---- forwarded submissions ----

    def forward(
        self, leaf_bytes: bytes, bodies: str, author: str, scope_signature: bytes = b""
    ) -> int:
        """Queue an entry for the leader; return its ticket."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO forwarded (leaf, bodies, author, scope_signature) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (leaf_bytes, bodies, author, scope_signature),
            )
            row = cur.fetchone()
            assert row is not None
            cur.execute("SELECT pg_notify('forum_forwarded', '')")
        return int(row[0])

    def forwarded_outcome(self, ticket: int) -> tuple[int | None, dict[str, Any] | None] | None:
        """``(index, None)`` or ``(None, error)`` once the leader answered; None before."""
        row = self._one("SELECT done, idx, error FROM forwarded WHERE id = %s", (ticket,))
        if row is None:
            raise StoreError(f"forwarded entry {ticket} is gone")
        if not row[0]:
            return None
        if row[2] is not None:
            return None, dict(json.loads(row[2]))
        return int(row[1]), None

    def take_forwarded(self, after: int, limit: int = 256) -> list[ForwardedEntry]:
        rows = self._all(
            "SELECT id, leaf, bodies, author, scope_signature FROM forwarded "
            "WHERE NOT done AND id > %s ORDER BY id LIMIT %s",
            (after, limit),
        )
        return [
            ForwardedEntry(int(i), bytes(leaf), b, a, bytes(sig)) for i, leaf, b, a, sig in rows
        ]

    def finish_forwarded(
        self, ticket: int, index: int | None, error: dict[str, Any] | None
    ) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE forwarded SET done = true, idx = %s, error = %s WHERE id = %s",
                (index, None if error is None else json.dumps(error), ticket),
            )

    # ---- witnesses (issue #9): what the leader's cosigner serves, for the others ----

    def save_witnessed(self, doc: str, cosigned_size: int) -> None:
        """One ``forum_meta`` row (no schema change); never replaced by a smaller size."""
        try:
            with self._pool.connection() as con:
                con.execute(
                    "INSERT INTO forum_meta (key, value) VALUES ('witnessed', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                    "WHERE (forum_meta.value::jsonb -> 'cosigned' ->> 0)::bigint <= %s",
                    (doc, cosigned_size),
                )
        except psycopg.Error as exc:
            raise StoreError(f"write to {self!r} failed: {exc}") from exc

    def witnessed(self) -> str | None:
        row = self._one("SELECT value FROM forum_meta WHERE key = 'witnessed'")
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._drop_lease_connection()
        self._pool.close()


class _Transaction:
    """``with store._tx() as cur``: one pooled connection, one transaction, errors as
    StoreError (a fencing failure stays a NotLeaderError)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def __enter__(self) -> psycopg.Cursor[Any]:
        try:
            self._con_cm = self.store._pool.connection()
            self._con = self._con_cm.__enter__()
            self._tx_cm = self._con.transaction()
            self._tx_cm.__enter__()
        except psycopg.Error as exc:
            raise StoreError(f"write to {self.store!r} failed: {exc}") from exc
        cursor: psycopg.Cursor[Any] = self._con.cursor()
        return cursor

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        try:
            try:
                self._tx_cm.__exit__(et, ev, tb)
            finally:
                self._con_cm.__exit__(et, ev, tb)
        except psycopg.Error as exc:
            raise StoreError(f"write to {self.store!r} failed: {exc}") from exc
        if isinstance(ev, psycopg.Error):
            raise StoreError(f"write to {self.store!r} failed: {ev}") from ev


def _with_options(url: str, options: str) -> str:
    """``url`` with ``options`` added to the server options it already carries (for example a
    ``search_path``)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    existing = str(info.get("options", "") or "")
    return psycopg.conninfo.make_conninfo(url, options=f"{existing} {options}".strip())


def _cannot_connect(url: str, exc: psycopg.Error) -> str:
    # psycopg quotes an unparsable URL whole in its message, or only the part it could not
    # parse (a password with a space or a bad %-escape): keep the password out of both.
    reason = without_password(str(exc))
    found = _RAW_PASSWORD_RE.match(url)
    if found and found.group(1):
        password = found.group(1)
        reason = _QUOTED_RE.sub(
            lambda m: '"***"' if m.group(1) and m.group(1) in password else m.group(0),
            reason.replace(password, "***"),
        )
    return f"cannot connect to PostgreSQL at {redact(url)}: {reason}"


_RAW_PASSWORD_RE = re.compile(r"[a-z]+://[^:/@]*:(.*)@", re.IGNORECASE | re.DOTALL)
_QUOTED_RE = re.compile(r'"([^"]*)"')


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "<unparsable PostgreSQL URL>"
    host = info.get("host", "localhost")
    port = info.get("port", 5432)
    return f"postgresql://{info.get('user', '')}@{host}:{port}/{info.get('dbname', '')}"


__all__ = ["NotLeaderError", "PostgresStore", "Row", "redact"]
