"""The forum metadata in a MISP attribute's comment stays valid JSON however many members
described the signal (it was cut at 1,000 characters mid-JSON, so a re-import lost the
``benign`` flag and the content types of a widely shared signal)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from forum_client.interop.misp import COMMENT_LIMIT, read_misp, write_misp
from forum_client.interop.provenance import Provenance
from forum_client.store.records import Descriptor, Rollup, Signal
from forum_client.store.scan import SignalRecord

PROV = Provenance("forum.test/log", 10, "00" * 32, "note", 1_700_000_000_000)
SHA = "a" * 64


def record(members: int, *, benign: bool, groups: int = 0) -> SignalRecord:
    descriptors = tuple(
        Descriptor(
            member_id=f"member-with-a-rather-long-identifier-{n:04d}",
            labels=("behaviour:terrorist-publication",),
            content_type="image",
            quality=None,
            scope=f"group-{n:04d}" if n < groups else "",
            active=True,
            entry_index=n,
        )
        for n in range(members)
    )
    signal = Signal("sha256", SHA, "active", 0, descriptors, Rollup())
    return SignalRecord(signal, (), benign, members)


def exported_comment(rec: SignalRecord) -> dict[str, object]:
    out = io.StringIO()
    assert write_misp(iter([rec]), out, PROV) == 1
    (attribute,) = json.loads(out.getvalue())["Event"]["Attribute"]
    comment = attribute["comment"]
    assert len(comment) <= COMMENT_LIMIT
    meta = json.loads(comment)
    assert isinstance(meta, dict)
    return meta


def test_a_short_comment_is_whole() -> None:
    meta = exported_comment(record(2, benign=False))
    assert len(meta["members"]) == 2  # type: ignore[arg-type]
    assert "members_omitted" not in meta


@pytest.mark.parametrize("members", [30, 200, 5000])
def test_a_long_member_list_is_cut_with_a_count_and_the_rest_kept(members: int) -> None:
    meta = exported_comment(record(members, benign=True))
    kept = meta["members"]
    assert isinstance(kept, list) and 0 < len(kept) < members
    assert meta["members_omitted"] == members - len(kept)
    assert kept == [f"member-with-a-rather-long-identifier-{n:04d}" for n in range(len(kept))]
    assert meta["benign"] is True
    assert meta["content_types"] == ["image"]
    assert meta["last_index"] == members


def test_scopes_are_cut_too_when_members_alone_do_not_make_it_fit() -> None:
    meta = exported_comment(record(400, benign=False, groups=400))
    assert meta["members"] == []
    assert meta["members_omitted"] == 400
    assert meta["scopes_omitted"] == 400 - len(meta["scopes"])  # type: ignore[arg-type]


def test_a_benign_signal_with_many_members_is_still_skipped_on_import(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    with path.open("w") as out:
        write_misp(iter([record(300, benign=True)]), out, PROV)
    result = read_misp(path)
    assert result.signals == []
    assert [s.reason for s in result.skipped] == ["benign (the exporting forum's benign list)"]
