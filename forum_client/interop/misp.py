"""MISP: one event JSON, both ways, and a MISP feed directory.

Export (:func:`write_misp`, streamed): ``{"Event": {..., "Attribute": [...]}}`` with one
attribute per signal, of the MISP type of :mod:`.mapping` (``md5``, ``sha1``, ``sha256``,
``url``, ``domain``; PDQ as ``text`` with the ``shared-signal-forum:signal-type="pdq"`` tag, as
MISP has no PDQ type); a signal shared with a group under TLP gets the MISP TLP tag
(``tlp:amber+strict``); the forum labels as MISP machine tags
(``shared-signal-forum:behaviour="..."``); ``to_ids`` false for benign signals; retracted
signals (with ``--include-retracted``) as ``deleted: true``.  Provenance and the forum metadata
go in the event ``info`` and each attribute's ``comment`` (JSON of at most 1,000 characters:
a long list of members or groups keeps its first items and counts the rest).  UUIDs are
UUIDv5 of the origin and the signal, so exports are stable.  PyMISP's ``MISPEvent.load``
reads the file.
:func:`write_misp_feed` writes the same event as a MISP feed (``manifest.json``, the event
file and ``hashes.csv``) that a MISP instance can pull as a feed of format "MISP Feed".

Import (:func:`read_misp`): a MISP event (``{"Event": ...}``, a bare event, or a list of
them), attributes directly on the event or inside its objects; each attribute of a type with a
forum signal type becomes a signal, with the labels from its tags (and the event's); anything
else is skipped with the reason (a deleted attribute, one an exported forum marked benign in
its comment, a type the forum has no signal type for, an invalid value).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError
from ..signals import SIGNAL_TYPES
from ..store.scan import SignalRecord
from .importing import ImportResult, Skipped, load_json_document
from .mapping import (
    MISP_FORUM_TYPES,
    TAG_NAMESPACE,
    label_to_tag,
    misp_type,
    tag_to_label,
    type_from_tags,
)
from .provenance import Provenance

NAMESPACE = uuid.UUID("0d7d6c1a-8b8e-4b8c-a6f5-2c3d9c1f7e21")


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

COMMENT_LIMIT = 1000
"""Characters of forum metadata in one attribute's comment."""


def _comment(meta: dict[str, Any]) -> str:
    """``meta`` as JSON of at most :data:`COMMENT_LIMIT` characters, always valid JSON: when
    it is longer, the ``members`` and then the ``scopes`` lists keep as many of their first
    items as fit and ``members_omitted`` / ``scopes_omitted`` count the rest (the other fields,
    among them ``benign``, which import reads, are always kept whole)."""
    text = _ENCODE(meta)
    for key in ("members", "scopes"):
        if len(text) <= COMMENT_LIMIT:
            break
        items = meta[key]
        lo, hi = 0, len(items)  # the most items that fit: lo fits (or nothing does)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial = {**meta, key: items[:mid], f"{key}_omitted": len(items) - mid}
            if len(_ENCODE(trial)) <= COMMENT_LIMIT:
                lo = mid
            else:
                hi = mid - 1
        meta = {**meta, key: items[:lo], f"{key}_omitted": len(items) - lo}
        text = _ENCODE(meta)
    return text


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, chr(0).join(parts)))


def _event(prov: Provenance) -> dict[str, Any]:
    """The event's own fields (no attributes) for an export at ``prov``."""
    seconds = prov.exported_unix_ms // 1000
    return {
        "uuid": _uuid(prov.origin, "event", str(prov.log_size)),
        "info": f"Shared-Signal Forum {prov.origin}: verified log size {prov.log_size}, "
        f"root {prov.root}",
        "date": time.strftime("%Y-%m-%d", time.gmtime(seconds)),
        "timestamp": str(seconds),
        "analysis": "2",
        "threat_level_id": "1",
        "distribution": "0",
        "published": False,
        "Orgc": {"name": prov.origin, "uuid": _uuid(prov.origin, "org")},
    }


def write_misp(records: Iterator[SignalRecord], out: IO[str], prov: Provenance) -> int:
    """Write one MISP event with one attribute per signal; returns the attribute count."""
    seconds = prov.exported_unix_ms // 1000
    event = _event(prov)
    head = json.dumps({"Event": event}, ensure_ascii=False)
    # Reopen the event object to stream the attributes into it.
    out.write(head[:-2] + ', "Attribute": [\n')
    count = 0
    for record in records:
        s = record.signal
        active = [d for d in s.descriptors if d.active]
        attribute_type, category, type_tag = misp_type(s.type)
        tags = [{"name": label_to_tag(x)} for x in s.labels]
        if type_tag is not None:
            tags.append({"name": type_tag})
        # TLP:AMBER+STRICT -> the MISP tag tlp:amber+strict
        tags += [{"name": t.lower()} for t in sorted({d.tlp for d in active if d.tlp})]
        comment = {
            "forum_type": s.type,
            "members": [d.member_id for d in active],
            "content_types": sorted({d.content_type for d in active if d.content_type}),
            "scopes": sorted({d.scope for d in active if d.scope}),
            "opinions": s.rollup.verdict,
            "benign": record.benign,
            "first_index": s.first_index,
            "last_index": record.last_index,
        }
        attribute: dict[str, Any] = {
            "uuid": _uuid(prov.origin, s.type, s.value),
            "type": attribute_type,
            "category": category,
            "value": s.value,
            "to_ids": s.active and not record.benign,
            "distribution": "5",
            "timestamp": str(seconds),
            "comment": _comment(comment),
            "deleted": not s.active,
            "Tag": tags,
        }
        if count:
            out.write(",\n")
        out.write(_ENCODE(attribute))
        count += 1
    out.write("\n]}}\n")
    return count


FEED_FILES = ("manifest.json", "hashes.csv")
"""Beside the event file ``<event uuid>.json`` in a MISP feed directory."""


def write_misp_feed(records: Iterator[SignalRecord], directory: Path, prov: Provenance) -> int:
    """Write a MISP feed into the existing, empty ``directory``: the event as
    ``<uuid>.json`` (:func:`write_misp`), ``manifest.json`` (the event's uuid -> its Orgc,
    Tag, info, date, analysis, threat_level_id and timestamp, as PyMISP's
    ``MISPEvent.manifest``) and ``hashes.csv`` (``md5 of the value,event uuid`` per
    attribute, as MISP's feed generator writes for correlation).  Streamed.  Returns the
    attribute count."""
    event = _event(prov)
    manifest = {
        event["uuid"]: {
            "Orgc": event["Orgc"],
            "Tag": [],
            "info": event["info"],
            "date": event["date"],
            "analysis": int(event["analysis"]),
            "threat_level_id": int(event["threat_level_id"]),
            "timestamp": int(event["timestamp"]),
        }
    }
    with (
        (directory / f"{event['uuid']}.json").open("w", encoding="utf-8") as out,
        (directory / "hashes.csv").open("w", encoding="utf-8", newline="") as hashes,
    ):

        def hashed(rows: Iterator[SignalRecord]) -> Iterator[SignalRecord]:
            for record in rows:
                digest = hashlib.md5(record.signal.value.encode(), usedforsecurity=False)
                hashes.write(f"{digest.hexdigest()},{event['uuid']}\n")
                yield record

        count = write_misp(hashed(records), out, prov)
    (directory / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False) + "\n")
    return count


def _events(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return [e.get("Event", e) if isinstance(e, dict) else e for e in doc]
    if isinstance(doc, dict):
        if isinstance(doc.get("response"), list):
            return _events(doc["response"])
        return [doc.get("Event", doc)]
    return [doc]


def _tag_names(obj: dict[str, Any]) -> list[str]:
    tags = obj.get("Tag") or []
    if not isinstance(tags, list):
        return []
    return [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)]


def read_misp(path: Path) -> ImportResult:
    """The attributes of the MISP event(s) at ``path`` as signals, and what was skipped.

    Raises InvalidInputError (field ``input``) if the file holds no MISP event at all.
    """
    doc = load_json_document(path, "MISP event")
    result = ImportResult()
    for n, event in enumerate(_events(doc)):
        if not isinstance(event, dict) or not (
            isinstance(event.get("Attribute", []), list)
            and ("info" in event or "Attribute" in event)
        ):
            raise InvalidInputError.field("input", f"{path}: event {n} is not a MISP event")
        event_labels = [x for x in map(tag_to_label, _tag_names(event)) if x]
        attributes: list[tuple[str, Any]] = [
            (f"Event[{n}].Attribute[{i}]", a) for i, a in enumerate(event.get("Attribute", []))
        ]
        for j, obj in enumerate(event.get("Object") or []):
            if isinstance(obj, dict) and isinstance(obj.get("Attribute"), list):
                attributes += [
                    (f"Event[{n}].Object[{j}].Attribute[{i}]", a)
                    for i, a in enumerate(obj["Attribute"])
                ]
        for where, attribute in attributes:
            _read_attribute(result, where, attribute, event_labels)
    return result


def _forum_comment(attribute: dict[str, Any]) -> dict[str, Any]:
    """The forum metadata :func:`write_misp` puts in an attribute's comment (``{}`` if none)."""
    comment = attribute.get("comment")
    if isinstance(comment, str) and comment.startswith("{"):
        try:
            meta = json.loads(comment)
        except (ValueError, RecursionError):
            return {}
        return meta if isinstance(meta, dict) else {}
    return {}


def _read_attribute(
    result: ImportResult, where: str, attribute: Any, event_labels: list[str]
) -> None:
    if not isinstance(attribute, dict):
        result.skipped.append(Skipped(where, "not a JSON object"))
        return
    name = f"{where} ({attribute['uuid']})" if isinstance(attribute.get("uuid"), str) else where
    result.objects += 1
    if attribute.get("deleted") in (True, "1", 1):
        result.skipped.append(Skipped(name, "deleted"))
        return
    meta = _forum_comment(attribute)
    if meta.get("benign") is True:
        result.skipped.append(Skipped(name, "benign (the exporting forum's benign list)"))
        return
    attr_type = attribute.get("type")
    tags = _tag_names(attribute)
    forum_type = MISP_FORUM_TYPES.get(attr_type) if isinstance(attr_type, str) else None
    tagged = type_from_tags(tags) if attr_type == "text" else None
    if tagged is not None:
        if tagged not in SIGNAL_TYPES:
            result.skipped.append(Skipped(name, f"signal type {tagged!r} is unknown here"))
            return
        forum_type = tagged
    if forum_type is None:
        result.skipped.append(
            Skipped(name, f"MISP type {str(attr_type)[:40]!r} has no forum signal type")
        )
        return
    value = attribute.get("value")
    if not isinstance(value, str):
        result.skipped.append(Skipped(name, "value is not a string"))
        return
    label_tags = [
        t for t in tags if type_from_tags([t]) is None and t.startswith(f"{TAG_NAMESPACE}:")
    ]
    labels = [x for x in map(tag_to_label, label_tags) if x]
    for tag in label_tags:
        if tag_to_label(tag) is None:
            result.notes.append(Skipped(name, f"tag {tag[:80]!r} is not a forum label"))
    content_type = None
    types = meta.get("content_types")
    if isinstance(types, list) and types and isinstance(types[0], str):
        content_type = types[0]
    merged = tuple(dict.fromkeys([*labels, *event_labels]))
    result.add_object(
        name,
        [{"type": forum_type, "value": value, "labels": merged, "content_type": content_type}],
    )


__all__ = ["read_misp", "write_misp"]
