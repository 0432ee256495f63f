"""The local copy's schema: the migration set, and the tables the audit recomputes.

Each step of :data:`MIGRATIONS` runs once, in a transaction, in order.  The tables are
described in :mod:`forum_client.store`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .. import entries as e
from ..envelope import Envelope

MIGRATIONS = Migrations("forum_client.store")
"""The schema's migration set; each step runs once, in a transaction, in order."""


def is_foreign(con: sqlite3.Connection) -> bool:
    """Whether the database holds tables but none of this schema's migrations: another
    program's database (a server's ``forum.db``...), which migrating would alter.  Reads only."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return False
    if "_sqlite_migrations" not in tables:
        return True
    sets = {r[0] for r in con.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")}
    if not sets:
        # A copy whose creation was killed before its first step committed (an earlier SDK
        # committed the migrations table on its own first): ours, if it holds nothing else.
        return tables != {"_sqlite_migrations"}
    return MIGRATIONS.name not in sets


def probe_read_only(path: Path) -> tuple[bool, bool]:
    """``(foreign, empty)`` of the SQLite file at ``path`` (see :func:`is_foreign`; empty: no
    tables at all), opened read-only so that looking never changes it.  Raises
    ``sqlite3.Error`` if it cannot be read as SQLite."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        foreign = is_foreign(con)
        empty = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        con.close()
    return foreign, empty


ACTIVE, RETRACTED = "active", "retracted"
VIEW_TABLES = (
    "signals",
    "descriptors",
    "retractions",
    "opinions",
    "benign",
    "pdq_changes",
    "vpdq_changes",
    "members",
    "keys",
    "member_events",
    "groups",
    "group_events",
)
"""Tables derived from ``entries``: ``forum-client verify`` recomputes and compares them."""


@MIGRATIONS(name="m001_initial")
def _m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE forum (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            origin TEXT NOT NULL,
            operator_public_key TEXT NOT NULL,
            log_public_key TEXT NOT NULL,
            log_key_name TEXT NOT NULL
        );
        CREATE TABLE entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
        CREATE TABLE signals (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            status TEXT NOT NULL,
            first_index INTEGER NOT NULL,
            PRIMARY KEY (type, value)
        ) WITHOUT ROWID;
        CREATE TABLE descriptors (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            labels TEXT NOT NULL,
            content_type TEXT NOT NULL,
            quality INTEGER,
            scope TEXT NOT NULL,
            active INTEGER NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value, member_id)
        ) WITHOUT ROWID;
        CREATE TABLE retractions (
            entry_index INTEGER NOT NULL,
            position INTEGER NOT NULL,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (entry_index, position)
        );
        CREATE INDEX retractions_signal ON retractions (type, value);
        CREATE TABLE opinions (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            note TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value, member_id)
        ) WITHOUT ROWID;
        CREATE VIEW signal_rollup AS
            SELECT type, value,
                   SUM(kind = 'agree') AS positive,
                   SUM(kind IN ('disagree', 'false_positive')) AS negative,
                   SUM(kind = 'seen') AS seen
            FROM opinions GROUP BY type, value;
        CREATE TABLE benign (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value)
        ) WITHOUT ROWID;
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            admitted_at INTEGER NOT NULL
        );
        CREATE TABLE member_events (
            member_id TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (member_id, entry_index)
        );
        CREATE TABLE keys (
            key_id BLOB PRIMARY KEY,
            member_id TEXT NOT NULL,
            public_key BLOB NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_until INTEGER
        );
        CREATE INDEX keys_member ON keys (member_id);
        CREATE TABLE checkpoints (
            size INTEGER PRIMARY KEY,
            root BLOB NOT NULL,
            note BLOB NOT NULL,
            verified_unix_ms INTEGER NOT NULL
        );
        CREATE TABLE sync_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL,
            compact_range BLOB NOT NULL,
            checkpoint_note BLOB NOT NULL,
            proof BLOB NOT NULL,
            log_state TEXT NOT NULL,
            updated_unix_ms INTEGER NOT NULL
        );
        CREATE TABLE security_evidence (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            detected_unix_ms INTEGER NOT NULL,
            what TEXT NOT NULL,
            entry_index INTEGER,
            message TEXT NOT NULL,
            stored_checkpoint BLOB,
            served_checkpoint BLOB,
            proof BLOB,
            entry BLOB,
            acknowledged_unix_ms INTEGER
        );
        """
    )


@MIGRATIONS(name="m002_scopes")
def _m002_scopes(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE reader (id INTEGER PRIMARY KEY CHECK (id = 1), member_id TEXT NOT NULL);
        CREATE TABLE redacted (
            idx INTEGER PRIMARY KEY,
            leaf_hash BLOB NOT NULL,
            group_id TEXT NOT NULL,
            key_id BLOB NOT NULL,
            signature BLOB
        );
        CREATE INDEX redacted_group ON redacted (group_id);
        ALTER TABLE descriptors ADD COLUMN tlp TEXT NOT NULL DEFAULT '';
        CREATE TABLE groups (
            group_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            closed_at INTEGER
        );
        CREATE TABLE group_events (
            group_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            member INTEGER NOT NULL,
            PRIMARY KEY (group_id, member_id, entry_index)
        );
        """
    )


@MIGRATIONS(name="m003_pdq_changes")
def _m003_pdq_changes(db: sqlite_utils.Database) -> None:
    """The PDQ values each entry touched, so the PDQ index follows the sync without
    re-reading the log; copies made before it are filled from their verified entries."""
    db.execute(
        "CREATE TABLE pdq_changes (entry_index INTEGER NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (entry_index, value)) WITHOUT ROWID"
    )
    rows = db.execute("SELECT idx, leaf FROM entries ORDER BY idx")
    db.conn.executemany(
        "INSERT OR IGNORE INTO pdq_changes VALUES (?, ?)",
        ((int(idx), value) for idx, leaf in rows for value in pdq_values(bytes(leaf))),
    )


@MIGRATIONS(name="m004_vpdq_changes")
def _m004_vpdq_changes(db: sqlite_utils.Database) -> None:
    """The vpdq values each entry touched (as ``pdq_changes`` for PDQ), so the video index
    follows the sync the same way; copies made before it are filled from their entries."""
    db.execute(
        "CREATE TABLE vpdq_changes (entry_index INTEGER NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (entry_index, value)) WITHOUT ROWID"
    )
    rows = db.execute("SELECT idx, leaf FROM entries ORDER BY idx")
    db.conn.executemany(
        "INSERT OR IGNORE INTO vpdq_changes VALUES (?, ?)",
        ((int(idx), value) for idx, leaf in rows for value in pdq_values(bytes(leaf), VPDQ)),
    )


@MIGRATIONS(name="m005_journal_from")
def _m005_journal_from(db: sqlite_utils.Database) -> None:
    """Journal a type's changes only once an index follows them (:data:`JOURNAL_FROM`):
    a copy nobody matches PDQ or videos against no longer carries the journals.  Copies made
    before it keep their journals, which are whole (filled by m003 and m004)."""
    db.execute(
        "CREATE TABLE journal_from (type TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO journal_from SELECT column1, 0 FROM (VALUES ('pdq'), ('vpdq')) "
        "WHERE EXISTS (SELECT 1 FROM sync_state WHERE size > 0)"
    )


PDQ = "pdq"
VPDQ = "vpdq"
CHANGE_TABLES = {PDQ: "pdq_changes", VPDQ: "vpdq_changes"}
"""The types whose matcher index follows the sync, and the journal of each (see
:mod:`forum_client.store.matching`)."""
JOURNAL_FROM = "journal_from"
"""``type``, ``size``: the journal of ``type`` holds every change of the entries from
``size`` on.  A type without a row is not journaled: the first index built over the copy
adds the row, in a write transaction of its own, at the copy's size then
(:meth:`~forum_client.store.LocalStore.follow_journal`), before it reads the values it
indexes; the sync reads the rows in its own transaction, so every entry it applies after
that is journaled.  An index behind ``size`` (or of a type with no row) is rebuilt."""
_PDQ_PAYLOADS = frozenset(e.PAYLOAD_TYPES[t] for t in (e.Submission, e.Retraction, e.BenignList))


def pdq_values_of(body: e.Body, type: str = PDQ) -> list[str]:
    """Values of ``type`` (PDQ by default, or any of :data:`CHANGE_TABLES`) a verified body
    submits, retracts or (un)lists as benign."""
    if isinstance(body, e.Submission | e.Retraction):
        return [s.value for s in body.signals if s.type == type]
    if isinstance(body, e.BenignList):
        return [r.value for r in (*body.add, *body.remove) if r.type == type]
    return []


def pdq_values(leaf: bytes, type: str = PDQ) -> list[str]:
    """:func:`pdq_values_of` a stored (already verified) leaf."""
    envelope = Envelope.from_leaf_bytes(leaf)
    if envelope.payload_type not in _PDQ_PAYLOADS:
        return []
    return pdq_values_of(e.decode(envelope.payload_type, envelope.body), type)
