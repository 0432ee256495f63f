"""STIX 2.1: a bundle of ``indicator`` objects, both ways.

Export (:func:`write_stix`, streamed): one ``indicator`` per signal with a STIX pattern
(:mod:`.mapping`: file hashes, ``url:value``, ``domain-name:value``; PDQ as the custom hash
name ``PDQ``); ``indicator_types`` ``malicious-activity`` (``benign`` for the operator's benign
list); the forum labels as ``labels``; the first submitting member as ``created_by_ref`` (an
``identity`` per member, written once) and every submitter in ``x_forum_submitters``; a
retracted signal as ``revoked: true``; each member's opinion as an ``opinion`` object
(agree -> ``agree``, disagree -> ``disagree``, false positive -> ``strongly-disagree``, seen ->
``neutral``); provenance in ``x_forum_*`` properties.  Ids are UUIDv5 of the origin and the
signal, so exporting twice gives the same ids.  ``created``/``modified``/``valid_from`` are the
export time: the log's author clocks are informational and not read per signal.

Import (:func:`read_stix`): every indicator whose pattern is one comparison, or comparisons
joined by ``OR``, each ``=`` on a path of :mod:`.mapping`, becomes signals; anything else is
skipped with the reason (malformed pattern, ``AND``/``FOLLOWEDBY``/qualifiers, an unknown hash
algorithm, another object type, a revoked indicator, a ``benign`` one such as an exported
forum's benign list).  Parsing patterns needs the ``stix`` extra (``stix2-patterns``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, InvalidInputError
from ..signals import SIGNAL_TYPES
from ..store.scan import SignalRecord
from .importing import ImportResult, Skipped, load_json_document
from .mapping import STIX_HASH_TYPES, STIX_OBJECT_PATHS, stix_hash_name
from .provenance import Provenance

NAMESPACE = uuid.UUID("5b2f1c59-2d0e-4b0e-9e43-6f1b9b3e0c15")
OPINIONS = {
    "agree": "agree",
    "disagree": "disagree",
    "false_positive": "strongly-disagree",
    "seen": "neutral",
}
_NEEDS_QUOTES = re.compile(r"[^A-Za-z0-9_]")


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, chr(0).join(parts))}"


def _timestamp(unix_ms: int) -> str:
    seconds, ms = divmod(unix_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_for(type_: str, value: str) -> str:
    """The STIX pattern of a forum signal: a file hash, ``url:value`` or ``domain-name:value``
    (any other type, such as one added later, as a custom hash name)."""
    path = STIX_OBJECT_PATHS.get(type_)
    if path is not None:
        return f"[{path} = {_literal(value)}]"
    hash_name = stix_hash_name(type_)
    key = f"'{hash_name}'" if _NEEDS_QUOTES.search(hash_name) else hash_name
    return f"[file:hashes.{key} = {_literal(value)}]"


class _Bundle:
    """Writes ``{"type": "bundle", "id": ..., "objects": [...]}`` one object at a time."""

    def __init__(self, out: IO[str], prov: Provenance) -> None:
        self.out = out
        self.count = 0
        self.time = _timestamp(prov.exported_unix_ms)
        self.prov = prov
        self.identities: set[str] = set()
        bundle_id = _id("bundle", prov.origin, str(prov.log_size), self.time)
        out.write(f'{{"type": "bundle", "id": "{bundle_id}", "objects": [\n')

    def write(self, obj: dict[str, Any]) -> None:
        if self.count:
            self.out.write(",\n")
        self.out.write(_ENCODE(obj))
        self.count += 1

    def identity(self, member_id: str) -> str:
        ref = _id("identity", self.prov.origin, member_id)
        if ref not in self.identities:
            self.identities.add(ref)
            self.write(
                {
                    "type": "identity",
                    "spec_version": "2.1",
                    "id": ref,
                    "created": self.time,
                    "modified": self.time,
                    "name": member_id,
                    "identity_class": "organization",
                    "description": f"member {member_id} of forum {self.prov.origin}",
                }
            )
        return ref

    def close(self) -> None:
        self.out.write("\n]}\n")


def write_stix(records: Iterator[SignalRecord], out: IO[str], prov: Provenance) -> int:
    """Write a STIX 2.1 bundle; returns the number of objects written."""
    bundle = _Bundle(out, prov)
    for record in records:
        s = record.signal
        pattern = pattern_for(s.type, s.value)
        active = [d for d in s.descriptors if d.active]
        submitters = [d.member_id for d in active] or [d.member_id for d in s.descriptors]
        indicator_id = _id("indicator", prov.origin, s.type, s.value)
        obj: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": indicator_id,
            "created": bundle.time,
            "modified": bundle.time,
            "name": f"{s.type} {s.value[:200]}",
            "description": f"A {s.type} signal of forum {prov.origin}, from a local copy "
            f"verified at log size {prov.log_size}",
            "indicator_types": ["benign" if record.benign else "malicious-activity"],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": bundle.time,
        }
        if submitters:
            obj["created_by_ref"] = bundle.identity(submitters[0])
        if s.labels:
            obj["labels"] = list(s.labels)
        if not s.active:
            obj["revoked"] = True
        obj.update(
            {
                "x_forum_origin": prov.origin,
                "x_forum_signal_type": s.type,
                "x_forum_submitters": submitters,
                "x_forum_content_types": sorted({d.content_type for d in active if d.content_type}),
                "x_forum_incidents": [x for x in s.labels if x.startswith("incident:")],
                "x_forum_scopes": sorted({d.scope for d in active if d.scope}),
                "x_forum_tlp": sorted({d.tlp for d in active if d.tlp}),
                "x_forum_benign": record.benign,
                "x_forum_opinions": {
                    "positive": s.rollup.positive,
                    "negative": s.rollup.negative,
                    "seen": s.rollup.seen,
                    "verdict": s.rollup.verdict,
                },
                "x_forum_first_index": s.first_index,
                "x_forum_last_index": record.last_index,
                "x_forum_log_size": prov.log_size,
                "x_forum_root": prov.root,
            }
        )
        # STIX forbids empty lists: leave such properties out.
        bundle.write({k: v for k, v in obj.items() if v != []})
        for opinion in record.opinions:
            author = bundle.identity(opinion.member_id)
            op: dict[str, Any] = {
                "type": "opinion",
                "spec_version": "2.1",
                "id": _id("opinion", prov.origin, s.type, s.value, opinion.member_id),
                "created": bundle.time,
                "modified": bundle.time,
                "created_by_ref": author,
                "opinion": OPINIONS.get(opinion.kind, "neutral"),
                "object_refs": [indicator_id],
                "x_forum_kind": opinion.kind,
                "x_forum_log_index": opinion.entry_index,
            }
            if opinion.note:
                op["explanation"] = opinion.note
            bundle.write(op)
    bundle.close()
    return bundle.count


# ---- import ----

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_JOINS = re.compile(r"\b(AND|FOLLOWEDBY|WITHIN|START|STOP|REPEATS)\b")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def signals_of_pattern(pattern: str) -> list[tuple[str, str]] | str:
    """``[(type, raw value), ...]`` of a pattern the forum can represent, or why not."""
    from stix2patterns.exceptions import ParseException
    from stix2patterns.pattern import Pattern

    if not isinstance(pattern, str):
        return "pattern is not a string"
    try:
        parsed = Pattern(pattern).inspect()
    except ParseException as exc:
        return f"malformed pattern: {exc}"
    except RecursionError:  # "((((...": the pattern parser recurses per level
        return "malformed pattern: nested too deeply"
    if parsed.observation_ops or parsed.qualifiers:
        return "pattern with several observations or qualifiers cannot be represented"
    join = _JOINS.search(_STRING.sub("''", pattern))
    if join is not None:
        return f"pattern with {join.group(1)} cannot be represented (only = and OR)"
    out: list[tuple[str, str]] = []
    for object_type, comparisons in parsed.comparisons.items():
        for path, op, value in comparisons:
            where = f"{object_type}:{'.'.join(str(p) for p in path)}"
            if op != "=" or not (isinstance(value, str) and value.startswith("'")):
                return f"comparison {where} {op} {value} cannot be represented (only = 'text')"
            type_: str | None = None
            if object_type == "file" and len(path) == 2 and path[0] == "hashes":
                name = str(path[1])
                type_ = STIX_HASH_TYPES.get(name.upper())
                if type_ is None and name.lower() in SIGNAL_TYPES:
                    type_ = name.lower()  # a forum type's custom hash name (VPDQ)
                if type_ is None:
                    return f"unknown hash algorithm {path[1]!r}"
            elif object_type == "url" and path == ["value"]:
                type_ = "url"
            elif object_type == "domain-name" and path == ["value"]:
                type_ = "domain"
            if type_ is None:
                return f"{where} has no forum signal type"
            out.append((type_, _unquote(value)))
    return out or "pattern has no comparison"


def read_stix(path: Path) -> ImportResult:
    """The indicators of the STIX 2.1 bundle at ``path`` as signals, and what was skipped.

    Raises InvalidInputError (field ``input``) if the file is not a STIX bundle at all,
    ConfigError without the ``stix`` extra.
    """
    try:
        import stix2patterns.pattern  # noqa: F401
    except ImportError:
        raise ConfigError(
            "reading STIX patterns needs the stix extra: pip install 'shared-signal-forum[stix]' "
            "(in a checkout: pip install '.[stix]')"
        ) from None
    doc = load_json_document(path, "STIX 2.1 bundle")
    if not isinstance(doc, dict) or doc.get("type") != "bundle":
        raise InvalidInputError.field("input", f"{path}: not a STIX bundle (no type 'bundle')")
    objects = doc.get("objects", [])
    if not isinstance(objects, list):
        raise InvalidInputError.field("input", f"{path}: 'objects' is not a list")
    result = ImportResult()
    for position, obj in enumerate(objects):
        name = f"objects[{position}]"
        if not isinstance(obj, dict):
            result.skipped.append(Skipped(name, "not a JSON object"))
            continue
        name = str(obj.get("id") or name)[:120]
        if obj.get("type") != "indicator":
            if obj.get("type") not in ("identity", "opinion", "marking-definition"):
                result.skipped.append(Skipped(name, f"{obj.get('type')!r} is not an indicator"))
            continue
        result.objects += 1
        if obj.get("revoked") is True:
            result.skipped.append(Skipped(name, "revoked"))
            continue
        indicator_types = obj.get("indicator_types")
        if isinstance(indicator_types, list) and "benign" in indicator_types:
            result.skipped.append(Skipped(name, "benign (indicator_types 'benign')"))
            continue
        if obj.get("pattern_type", "stix") != "stix":
            result.skipped.append(Skipped(name, f"pattern_type {obj.get('pattern_type')!r}"))
            continue
        found = signals_of_pattern(obj.get("pattern"))  # type: ignore[arg-type]
        if isinstance(found, str):
            result.skipped.append(Skipped(name, found))
            continue
        labels = result.forum_labels(name, list(obj.get("labels") or []))
        content_types = obj.get("x_forum_content_types") or []
        content_type = (
            content_types[0] if content_types and isinstance(content_types, list) else None
        )
        result.add_object(
            name,
            [
                {"type": t, "value": v, "labels": labels, "content_type": content_type}
                for t, v in found
            ],
        )
    return result


__all__ = ["OPINIONS", "pattern_for", "read_stix", "signals_of_pattern", "write_stix"]
