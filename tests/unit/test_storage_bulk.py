"""The bulk write path of the server view gives exactly the rows of the row-by-row path."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from forum_server import view
from forum_server.storage import (
    OP_DESCRIPTOR,
    OP_OPINION,
    OP_REFRESH_STATUS,
    OP_RETRACT_ALL,
    OP_RETRACT_MEMBER,
    OP_SIGNAL,
    UPSERT_KEY_WIDTH,
    Row,
    StoredLeaf,
    ViewDelta,
    key_ordered,
)
from forum_server.storage import sqlite as sq
from forum_server.storage.sqlite import SQLiteStore
from forum_server.view import key_ranges, merge_upserts, row_signals, take_signals

WEIRD = ["plain", 'quo"te', "back\\slash", "ünïcode", "tab\there", "\U0001f600", "a" * 64]


def _value(rng: random.Random, pool: list[str]) -> str:
    if pool and rng.random() < 0.3:
        return rng.choice(pool)
    if rng.random() < 0.05:
        return rng.choice(WEIRD)
    return f"{rng.getrandbits(128):032x}"


def _deltas(seed: int) -> list[ViewDelta]:
    rng = random.Random(seed)
    pool: list[str] = []
    out: list[ViewDelta] = []
    idx = 1
    for _ in range(6):  # groups (one transaction each)
        delta = ViewDelta()
        for _ in range(rng.randint(1, 5)):  # entries of the group
            kind = rng.random()
            member = rng.choice(["alice", "bob", "carol"])
            if kind < 0.7:
                n = rng.choice([3, 70, 300])
                values = list(dict.fromkeys(_value(rng, pool) for _ in range(n)))
                if rng.random() < 0.1 and values:  # a repeated key within one run
                    values.append(values[0])
                pool += values
                labels = rng.choice(["a", "a;b", ""])
                ct = rng.choice(["image", "video"])
                quality = rng.choice([None, 50])
                scope = rng.choice(["", "eu"])
                delta.add(OP_SIGNAL, [("md5", v, idx) for v in values])
                delta.add(
                    OP_DESCRIPTOR,
                    [
                        ("md5", v, member, labels if i % 7 else "x", ct, quality, scope, idx)
                        for i, v in enumerate(values)
                    ],
                )
            elif kind < 0.85 and pool:
                refs = rng.sample(pool, min(len(pool), 20))
                if rng.random() < 0.5:
                    delta.add(OP_RETRACT_MEMBER, [("md5", v, member) for v in refs])
                else:
                    delta.add(OP_RETRACT_ALL, [("md5", v) for v in refs])
                delta.add(OP_REFRESH_STATUS, [("md5", v) for v in refs])
            elif pool:
                v = rng.choice(pool)
                delta.add(OP_OPINION, [("md5", v, member, 1, "note", idx)])
            idx += 1
        out.append(delta)
    return out


def _dump(path: Path) -> list[list[tuple[object, ...]]]:
    con = sqlite3.connect(path)
    try:
        return [
            sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("signals", "descriptors", "opinions", "view_meta")
        ]
    finally:
        con.close()


@pytest.mark.parametrize("seed", range(8))
def test_bulk_and_row_by_row_write_the_same_rows(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, rows, one_pass = tmp_path / "bulk.db", tmp_path / "rows.db", tmp_path / "one.db"
    for path, min_rows, one_pass_rows in (
        (bulk, sq._BULK_MIN_ROWS, 10**9),
        (rows, 10**9, 10**9),
        (one_pass, sq._BULK_MIN_ROWS, 1),  # runs of several entries: one key-ordered pass
    ):
        monkeypatch.setattr(sq, "_BULK_MIN_ROWS", min_rows)
        monkeypatch.setattr(sq, "_ONE_PASS_ROWS", one_pass_rows)
        store = SQLiteStore(path)
        for n, delta in enumerate(_deltas(seed)):
            store.append([StoredLeaf(n, b"x%d" % n, b"h" * 32)], n + 1, b"note", delta)
        store.close()
    assert _dump(bulk) == _dump(rows) == _dump(one_pass)


@pytest.mark.parametrize("seed", range(8))
def test_merged_upserts_of_many_groups_write_the_rows_of_each_in_turn(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sequencer's deferred view (submissions only): one merged write, with keys
    repeated across groups and within one, equals every group written in log order."""
    submissions = [_only_upserts(delta) for delta in _deltas(seed)]
    in_turn, merged = tmp_path / "turn.db", tmp_path / "merged.db"
    store = SQLiteStore(in_turn)
    for n, delta in enumerate(submissions):
        store.append([StoredLeaf(n, b"x%d" % n, b"h" * 32)], n + 1, b"note", delta)
    store.close()
    all_of_them = ViewDelta()
    for delta in submissions:
        for op, rows in delta.runs:
            all_of_them.add(op, rows)
    for one_pass_rows in (1, 10**9):
        monkeypatch.setattr(sq, "_ONE_PASS_ROWS", one_pass_rows)
        merged.unlink(missing_ok=True)
        store = SQLiteStore(merged)
        size = len(submissions)
        leaves = [StoredLeaf(n, b"x%d" % n, b"h" * 32) for n in range(size)]
        store.append(leaves, size, b"note", records_view_size=False)
        assert store.view_size() == 0
        store.write_view(merge_upserts(all_of_them), size)
        store.close()
        assert _dump(merged) == _dump(in_turn)
    # A pass in key ranges, each its own transaction, here in reverse: the same view, and
    # the size recorded only by the range written last.
    merged.unlink()
    store = SQLiteStore(merged)
    store.append(leaves, size, b"note", records_view_size=False)
    ranges = key_ranges(merge_upserts(all_of_them), 7)
    assert len(ranges) > 3
    for part in reversed(ranges[1:]):
        store.write_view(part, None)
        assert store.view_size() == 0
    store.write_view(ranges[0], size)
    store.close()
    assert _dump(merged) == _dump(in_turn)


@pytest.mark.parametrize("seed", range(4))
def test_key_ranges_cut_each_table_into_disjoint_ordered_slices(seed: int) -> None:
    """Every row in exactly one range; within each table the ranges follow one another in
    key order (so each range touches its own part of the b-tree); sizes about equal."""
    all_of_them = ViewDelta()
    for delta in _deltas(seed):
        for op, rows in _only_upserts(delta).runs:
            all_of_them.add(op, rows)
    merged = merge_upserts(all_of_them)
    for per_range in (1, 5, 13, len(merged), 10 * len(merged)):
        ranges = key_ranges(merged, per_range)
        assert 1 <= len(ranges) <= max(1, round(len(merged) / per_range))
        assert all(len(part) for part in ranges)
        for op, rows in merged.runs:
            width = UPSERT_KEY_WIDTH[op]
            cut = [[r for o, rs in part.runs if o == op for r in rs] for part in ranges]
            assert [r for piece in cut for r in piece] == sorted(rows, key=lambda r: r[:width])
            sizes = [len(piece) for piece in cut]
            assert max(sizes) - min(sizes) <= 1
        # However small, a range is written in key order, one statement per table (grouped
        # per entry, each group's statement would walk the b-tree again).
        for part in ranges:
            assert sq._view_statements(part) == [(sq._VIEW_SQL[op], rows) for op, rows in part.runs]


def _only_upserts(delta: ViewDelta) -> ViewDelta:
    out = ViewDelta()
    for op, rows in delta.runs:
        if op in (OP_SIGNAL, OP_DESCRIPTOR):
            out.add(op, rows)
    return out


def test_merge_upserts_refuses_other_rows() -> None:
    delta = ViewDelta()
    delta.add(OP_RETRACT_ALL, [("md5", "a" * 32)])
    with pytest.raises(ValueError, match="not an upsert"):
        merge_upserts(delta)


def test_bulk_is_used_for_a_plain_submission() -> None:
    rows = [("md5", f"{i:032x}", 7) for i in range(100, 0, -1)]
    [(sql, params)] = sq._bulk_statements(OP_SIGNAL, rows) or []
    assert "json_each" in sql
    assert params == [("md5", 7, '["' + '", "'.join(f"{i:032x}" for i in range(1, 101)) + '"]')]
    assert sq._bulk_statements(OP_SIGNAL, [*rows, rows[0]]) is None  # a repeated key
    assert sq._bulk_statements(OP_SIGNAL, rows[:3]) is None  # too few to bother


@pytest.mark.parametrize("width", [2, 3])
def test_a_one_pass_write_is_in_key_order(width: int) -> None:
    """The one pass is sorted column by column (stable sorts, last column first): the same
    order as one sort on the key columns, whatever the other columns hold."""
    rng = random.Random(width)
    rows = [
        (
            rng.choice(["md5", "pdq", "url"]),
            rng.choice(["aa", "ab", "b", "ba"]) + str(rng.randrange(50)),
            rng.choice(["m1", "m2", "m3"]),
            rng.random(),
            None if rng.random() < 0.5 else "x",
        )
        for _ in range(2000)
    ]
    assert key_ordered(rows, width) == sorted(rows, key=lambda r: r[:width])


@pytest.mark.parametrize("seed", range(8))
def test_merge_upserts_keeps_each_signals_first_row_and_each_descriptors_last(
    seed: int,
) -> None:
    """Keys repeated within and across groups: one row per key, in key order, the same rows
    as keeping them in a dictionary in log order."""
    rng = random.Random(seed)
    delta, first, last = ViewDelta(), {}, {}
    for index in range(40):
        values = [f"{rng.randrange(30):032x}" for _ in range(rng.randrange(1, 6))]
        member = rng.choice(["m1", "m2"])
        signals = [("md5", v, index) for v in values]
        descriptors = [("md5", v, member, f"l{index}", "image", None, "", index) for v in values]
        delta.add(OP_SIGNAL, signals)
        delta.add(OP_DESCRIPTOR, descriptors)
        for row in signals:
            first.setdefault(row[:2], row)
        for row in descriptors:
            last[row[:3]] = row
    merged = merge_upserts(delta)
    assert merged.runs == [
        (OP_SIGNAL, sorted(first.values(), key=lambda r: r[:2])),
        (OP_DESCRIPTOR, sorted(last.values(), key=lambda r: r[:3])),
    ]


def _split_by_definition(
    delta: ViewDelta, keys: set[tuple[str, str]]
) -> tuple[list[tuple[str, list[Row]]], list[tuple[str, list[Row]]]]:
    sides = [
        [(op, [r for r in rows if ((r[0], r[1]) in keys) is wanted]) for op, rows in delta.runs]
        for wanted in (True, False)
    ]
    taken, rest = ([(op, rows) for op, rows in side if rows] for side in sides)
    return taken, rest


@pytest.mark.parametrize("search_share", [0, 20, 10**9], ids=["searched", "either", "scanned"])
@pytest.mark.parametrize("seed", range(6))
def test_take_signals_splits_every_run_by_signal_keeping_the_order(
    seed: int, search_share: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row goes to exactly one side, by its signal (type and value: the same value
    under another type stays); each side keeps the runs' order and the rows' order within
    them; a run with none of the signals is handed on as it is; the input is unchanged.
    Runs in log order are scanned; key-ordered ones (a pass's ranges) binary-searched for
    a few keys (several descriptors per signal among them) and scanned for many: here
    always searched, as by default, or never."""
    monkeypatch.setattr(view, "SEARCH_SHARE", search_share)
    rng = random.Random(seed)
    delta = ViewDelta()
    for group in _deltas(seed):
        for op, rows in group.runs:
            delta.add(op, [("sha256", *r[1:]) if rng.random() < 0.1 else r for r in rows])
    upserts = ViewDelta([(op, rows) for op, rows in delta.runs if op in UPSERT_KEY_WIDTH])
    signals = sorted(row_signals(delta))
    holders = Counter(r[:2] for op, rows in upserts.runs if op == OP_DESCRIPTOR for r in rows)
    shared = sorted(s for s in signals if holders[s] > 1)
    for keys in (
        set(rng.sample(signals, len(signals) // 5)),  # many: scanned
        {rng.choice(signals), *rng.sample(shared, 2)},  # a few: searched, in key order
        {("sha256" if t == "md5" else "md5", v) for t, v in rng.sample(signals, 3)},
    ):
        for whole in (delta, *key_ranges(merge_upserts(upserts), 300)):
            before = [(op, list(rows)) for op, rows in whole.runs]
            taken, rest = take_signals(whole, keys)
            assert whole.runs == before
            assert taken.in_key_order is rest.in_key_order is whole.in_key_order
            assert (taken.runs, rest.runs) == _split_by_definition(whole, keys)
            untouched = [
                rows for _, rows in whole.runs if not any((r[0], r[1]) in keys for r in rows)
            ]
            assert all(any(rows is kept for _, kept in rest.runs) for rows in untouched)
    assert take_signals(delta, set()) == (ViewDelta([]), ViewDelta(delta.runs))
