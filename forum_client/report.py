"""The transparency report: statistics anyone recomputes from the log they verified.

A report is a pure function of the log's first ``size`` leaves and a period: a member computes
it from its verified local copy, the operator from the server, and both get the same bytes.
It states the checkpoint it was computed at (origin, size and the RFC 9162 root of those
leaves), so a reader checks it against any signed checkpoint of that size, or proves it
consistent with a later one; a report at an old size is reproducible forever.

    >>> period = parse_period("2026-Q3")
    >>> period.name, period.start_unix_ms, period.end_unix_ms
    ('2026-Q3', 1782864000000, 1790812800000)

Time in the report is the entries' own ``created_unix_ms`` (the author's clock, bound by its
signature): a report says when members said they acted, not when the server appended.
Nothing here verifies signatures: feed it leaves that were verified (a synced copy, or the
server's own log).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import entries as e
from .envelope import Envelope
from .errors import InvalidInputError
from .merkle import MerkleTree, leaf_hash
from .verifier import OPERATOR_ID

REPORT_FORMAT = "forum-transparency-report-v1"
_PERIOD = re.compile(r"(\d{4})(?:-(Q[1-4]|\d{2}))?")
FIRST_YEAR, LAST_YEAR = 1970, 9998  # entry times are Unix ms; the period's end must be a date


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval ``[start, end)`` named like ``2026-Q3``, ``2026-07``, ``2026``."""

    name: str
    start_unix_ms: int
    end_unix_ms: int

    def __contains__(self, unix_ms: object) -> bool:
        return isinstance(unix_ms, int) and self.start_unix_ms <= unix_ms < self.end_unix_ms


def _ms(year: int, month: int) -> int:
    if month > 12:
        year, month = year + 1, month - 12
    return int(dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp() * 1000)


ALL_TIME = Period("all", 0, _ms(9999, 12))
"""Every entry (for listings such as ``forum-client incidents``)."""


def parse_period(text: str) -> Period:
    """``YYYY``, ``YYYY-Qn`` or ``YYYY-MM``.  Raises InvalidInputError otherwise."""
    match = _PERIOD.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError.field("period", f"{text!r}: use 2026, 2026-Q3 or 2026-07")
    year, part = int(match.group(1)), match.group(2)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInputError.field(
            "period", f"{text!r}: the year must be {FIRST_YEAR}-{LAST_YEAR}"
        )
    if part is None:
        first, months = 1, 12
    elif part.startswith("Q"):
        first, months = 3 * (int(part[1]) - 1) + 1, 3
    else:
        first, months = int(part), 1
        if not 1 <= first <= 12:
            raise InvalidInputError.field("period", f"{text!r}: month {first} is not 01-12")
    return Period(match.group(0), _ms(year, first), _ms(year, first + months))


def _iso(unix_ms: int | None) -> str | None:
    if unix_ms is None:
        return None
    return dt.datetime.fromtimestamp(unix_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


@dataclass(frozen=True)
class Redacted:
    """An entry a member holds as its leaf hash only (shared with a group it is not in)."""

    leaf_hash: bytes


@dataclass
class _Incident:
    incident_id: str
    title: str
    level: int
    declared_ms: int
    declared_index: int
    concluded_ms: int | None = None
    updates: int = 0
    debrief: bool = False
    signals: int = 0
    first_hash_ms: int | None = None


@dataclass
class _Dispute:
    dispute_id: str
    signal_type: str
    opener: str
    respondent: str
    opened_ms: int
    appellant: bool
    status: str = "open"
    resolved_ms: int | None = None


class _Tally:
    """One pass over the leaves; every figure of the report comes from here."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self.members: list[str] = []  # admission order
        self.by_type: Counter[str] = Counter()
        self.by_label: Counter[str] = Counter()
        self.by_content: Counter[str] = Counter()
        self.per_member: dict[str, Counter[str]] = {}
        self.incidents: dict[str, _Incident] = {}
        self.disputes: dict[str, _Dispute] = {}
        self.seen_by_type: Counter[str] = Counter()
        self.entries = 0
        self.group_entries = 0  # shared with a group: counted, never described

    def member(self, member_id: str) -> Counter[str]:
        return self.per_member.setdefault(member_id, Counter())

    def add(self, index: int, body: e.Body) -> None:
        when = body.header.created_unix_ms
        inside = when in self.period
        author = body.header.member_id
        self.entries += inside
        if isinstance(body, e.MemberAdmitted):
            self.members.append(body.member_id)
        elif isinstance(body, e.Submission):
            for s in body.signals:
                for label in s.labels:
                    incident = self.incidents.get(label.removeprefix("incident:"))
                    if label.startswith("incident:") and incident is not None:
                        incident.signals += 1
                        if incident.first_hash_ms is None:
                            incident.first_hash_ms = when
            if inside:
                counts = self.member(author)
                counts["submissions"] += 1
                counts["signals"] += len(body.signals)
                for s in body.signals:
                    self.by_type[s.type] += 1
                    self.by_content[s.content_type or "unspecified"] += 1
                    for label in s.labels:
                        self.by_label[label] += 1
        elif isinstance(body, e.Retraction):
            if inside:
                self.member(author)["retracted"] += len(body.signals)
        elif isinstance(body, e.Opinion):
            if inside and body.kind is e.OpinionKind.SEEN:
                self.seen_by_type[body.signal.type] += 1
                self.member(author)["seen"] += 1
        elif isinstance(body, e.Incident):
            self._incident(index, body, when)
        elif isinstance(body, e.Dispute):
            self.disputes[body.dispute_id] = _Dispute(
                body.dispute_id,
                body.signal.type,
                author,
                body.respondent,
                when,
                bool(body.appellant),
            )
            if inside:
                self.member(author)["disputes_opened"] += 1
                self.member(body.respondent)["disputes_received"] += 1
        elif isinstance(body, e.DisputeAnswer | e.DisputeDecision):
            d = self.disputes.get(body.dispute_id)
            if d is None:
                return
            if isinstance(body, e.DisputeAnswer):
                d.status = "retracted" if body.retract else "kept"
                final = body.retract
            else:
                d.status = "removed" if body.remove else "upheld"
                final = True
            if final:
                d.resolved_ms = when

    def _incident(self, index: int, body: e.Incident, when: int) -> None:
        stage = body.stage
        known = self.incidents.get(body.incident_id)
        if known is None and (stage is e.IncidentStage.DECLARED or body.open):
            self.incidents[body.incident_id] = _Incident(
                body.incident_id, body.title, body.level, when, index
            )
        elif known is not None:
            if stage is e.IncidentStage.UPDATE:
                known.updates += 1
            elif stage is e.IncidentStage.DEBRIEF:
                known.debrief = True
            elif not body.open and known.concluded_ms is None:
                known.concluded_ms = when

    # ---- the document ----

    def document(self, anonymise: bool) -> dict[str, Any]:
        period = self.period
        names = {m: f"member-{i:03d}" for i, m in enumerate(self.members, 1)}
        names[OPERATOR_ID] = "board"

        def who(member_id: str) -> str:
            return names.get(member_id, "member-?") if anonymise else member_id

        members = {who(m): dict(sorted(c.items())) for m, c in self.per_member.items() if m != ""}
        in_period = [d for d in self.disputes.values() if d.opened_ms in period]
        resolution = [d.resolved_ms - d.opened_ms for d in in_period if d.resolved_ms is not None]
        incidents = [
            i
            for i in self.incidents.values()
            if i.declared_ms < period.end_unix_ms
            and (i.concluded_ms is None or i.concluded_ms >= period.start_unix_ms)
        ]
        return {
            "signals": {
                "total": sum(self.by_type.values()),
                "by_type": dict(sorted(self.by_type.items())),
                "by_label": dict(sorted(self.by_label.items())),
                "by_content_type": dict(sorted(self.by_content.items())),
            },
            "members": {
                "anonymised": anonymise,
                "activity": dict(sorted(members.items())),
            },
            "disputes": {
                "opened": len(in_period),
                "on_behalf_of_outside_appellants": sum(d.appellant for d in in_period),
                "outcomes": dict(sorted(Counter(d.status for d in in_period).items())),
                "resolved": len(resolution),
                "hours_to_resolution": {
                    "median": _hours(int(statistics.median(resolution))) if resolution else None,
                    "max": _hours(max(resolution)) if resolution else None,
                },
            },
            "incidents": [
                {
                    "incident_id": i.incident_id,
                    "title": i.title,
                    "level": i.level,
                    "level_name": e.INCIDENT_LEVELS.get(i.level, "legacy"),
                    "declared": _iso(i.declared_ms),
                    "concluded": _iso(i.concluded_ms),
                    "updates": i.updates,
                    "debrief": i.debrief,
                    "signals": i.signals,
                    "minutes_to_first_hash": None
                    if i.first_hash_ms is None
                    else round((i.first_hash_ms - i.declared_ms) / 60_000, 1),
                }
                for i in sorted(incidents, key=lambda x: (x.declared_index, x.incident_id))
            ],
            "matches_seen": {
                "total": sum(self.seen_by_type.values()),
                "by_type": dict(sorted(self.seen_by_type.items())),
            },
            "entries_in_period": self.entries,
            "entries_shared_in_groups": self.group_entries,
        }


def compute_report(
    leaves: Iterable[bytes | Redacted], period: Period, *, origin: str, anonymise: bool = False
) -> dict[str, Any]:
    """The report over ``leaves`` (the log's first N, in order) for ``period``.

    Entries shared with a group (a scope, TLP:AMBER and above) are counted but never
    described: a member outside the group holds them as a leaf hash only (pass
    :class:`Redacted`), and the report must not tell outsiders what a group shared, so
    member and server reports stay identical.  The result is a JSON-ready dict with sorted
    keys; :func:`render_json` and :func:`render_markdown` turn it into bytes that depend on
    nothing else.  Raises InvalidInputError if a leaf does not parse.
    """
    tally = _Tally(period)
    tree = MerkleTree()
    for index, leaf in enumerate(leaves):
        if isinstance(leaf, Redacted):
            tree.append(leaf.leaf_hash)
            tally.group_entries += 1
            continue
        tree.append(leaf_hash(leaf))
        envelope = Envelope.from_leaf_bytes(leaf)
        body = e.decode(envelope.payload_type, envelope.body)
        if getattr(body, "scope", ""):
            tally.group_entries += 1
            continue
        tally.add(index, body)
    return {
        "format": REPORT_FORMAT,
        "checkpoint": {
            "origin": origin,
            "size": tree.size,
            "root": base64.b64encode(tree.root()).decode(),
        },
        "period": {
            "name": period.name,
            "start": _iso(period.start_unix_ms),
            "end": _iso(period.end_unix_ms),
        },
        **tally.document(anonymise),
    }


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _table(rows: Iterable[tuple[Any, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if x is None else str(x) for x in row) + " |" for row in rows]
    if len(lines) == 2:
        lines.append("| " + " | ".join(["(none)"] + [""] * (len(header) - 1)) + " |")
    return lines


def _or_dash(x: object) -> str:
    return "-" if x is None else str(x)


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people: the same numbers as the JSON, as tables."""
    cp, period = report["checkpoint"], report["period"]
    sig, disputes = report["signals"], report["disputes"]
    out = [
        f"# Transparency report {period['name']}",
        "",
        f"Forum `{cp['origin']}`, period {period['start']} to {period['end']} (exclusive).",
        "",
        f"Computed at the checkpoint of **size {cp['size']}**, root `{cp['root']}`: the first "
        f"{cp['size']} entries of the log. Check it against a signed checkpoint of that size "
        "(`forum-client verify`, or any member's copy); anyone with a verified copy recomputes "
        f"this report byte for byte with `forum-client report --db FILE --period {period['name']} "
        f"--at {cp['size']}{' --anonymise' if report['members']['anonymised'] else ''}`.",
        "",
        f"## Signals shared: {sig['total']}",
        "",
        *_table(sig["by_type"].items(), ("type", "signals")),
        "",
        *_table(sig["by_content_type"].items(), ("content type", "signals")),
        "",
        *_table(sig["by_label"].items(), ("label", "signals")),
        "",
        "## Members" + (" (anonymised)" if report["members"]["anonymised"] else ""),
        "",
    ]
    columns = (
        "submissions",
        "signals",
        "retracted",
        "seen",
        "disputes_opened",
        "disputes_received",
    )
    out += _table(
        (
            (m, *(counts.get(c, 0) for c in columns))
            for m, counts in report["members"]["activity"].items()
        ),
        ("member", *(c.replace("_", " ") for c in columns)),
    )
    hours = disputes["hours_to_resolution"]
    out += [
        "",
        f"## Disputes: {disputes['opened']} opened, {disputes['resolved']} resolved",
        "",
        f"{disputes['on_behalf_of_outside_appellants']} filed by the board for outside "
        f"appellants. Hours to resolution: median {_or_dash(hours['median'])}, "
        f"max {_or_dash(hours['max'])}.",
        "",
        *_table(disputes["outcomes"].items(), ("outcome", "disputes")),
        "",
        "## Incidents",
        "",
        *_table(
            (
                (
                    i["incident_id"],
                    i["title"],
                    i["level_name"],
                    i["declared"],
                    i["concluded"] or "open",
                    i["signals"],
                    i["minutes_to_first_hash"],
                )
                for i in report["incidents"]
            ),
            ("id", "title", "level", "declared", "concluded", "signals", "min. to first hash"),
        ),
        "",
        f"## Matches reported as seen: {report['matches_seen']['total']}",
        "",
        f"Entries shared within groups (TLP:AMBER and above, counted over the whole log, "
        f"never described here): {report['entries_shared_in_groups']}.",
        "",
        *_table(report["matches_seen"]["by_type"].items(), ("type", "seen")),
        "",
    ]
    return "\n".join(out)


def write_report(report: dict[str, Any], out_dir: Path, *, charts: bool = True) -> list[Path]:
    """Write ``report.md``, ``report.json`` and, when matplotlib is installed (the ``report``
    extra) and ``charts``, PNG charts into ``out_dir``.  Returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("report.json", render_json(report)),
        ("report.md", render_markdown(report)),
    ):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if charts:
        from .report_charts import write_charts

        written += write_charts(report, out_dir)
    return written


__all__ = [
    "ALL_TIME",
    "REPORT_FORMAT",
    "Period",
    "Redacted",
    "compute_report",
    "parse_period",
    "render_json",
    "render_markdown",
    "write_report",
]
