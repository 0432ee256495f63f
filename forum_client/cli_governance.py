"""``forum-client`` governance commands: report, incidents, disputes, dispute open/answer.

``report``, ``incidents`` and ``disputes`` read only the member's verified local copy (run
``forum-client sync`` first); ``dispute open`` and ``dispute answer`` sign and submit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_context import client_from
from .cli_files import LOCAL_COPY, OUTPUT_DIR
from .cli_types import (
    DAY_MS,
    DISPUTE_ID,
    MEMBER_ID,
    PERIOD,
    REQUIRED_TEXT,
    SIGNAL_TYPE,
    Duration,
    signal_option,
)
from .errors import InvalidInputError

if TYPE_CHECKING:  # loaded when a command runs, so that --help stays light
    from .report import Redacted
    from .store import LocalStore


def _store(db: Path) -> LocalStore:
    from .store import LocalStore

    return LocalStore(db)  # --db is a LOCAL_COPY: checked while parsing


_DB = click.option(
    "--db",
    required=True,
    type=LOCAL_COPY,
    help="Your verified local copy (from `forum-client sync`).",
)


_KEY = click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Your signing key file.",
)


def report_options(f: click.decorators.FC) -> click.decorators.FC:
    """The options ``forum-client report`` and ``forum-admin report`` share."""
    for option in reversed(
        [
            click.option(
                "--period",
                required=True,
                type=PERIOD,
                help="2026 (a year), 2026-Q3 (a quarter) or 2026-07 (a month), UTC.",
            ),
            click.option(
                "--at",
                "at_size",
                type=click.IntRange(min=1),
                help="Compute at this log size (an older checkpoint); default: the latest.",
            ),
            click.option(
                "--anonymise",
                is_flag=True,
                help="Name members member-001... in admission order instead of by id.",
            ),
            click.option(
                "--out",
                type=OUTPUT_DIR,
                help="Directory for report.md, report.json and charts (default report-PERIOD).",
            ),
            click.option(
                "--charts/--no-charts",
                default=True,
                show_default=True,
                help="PNG charts (needs the optional report extra: matplotlib).",
            ),
        ]
    ):
        f = option(f)
    return f


def emit_report(
    leaves: list[bytes | Redacted],
    origin: str,
    period_text: str,
    anonymise: bool,
    out: Path | None,
    charts: bool,
) -> None:
    from .report import compute_report, parse_period, write_report
    from .report_charts import charts_available

    period = parse_period(period_text)
    report = compute_report(leaves, period, origin=origin, anonymise=anonymise)
    out = out or Path(f"report-{period.name}")
    written = write_report(report, out, charts=charts)
    click.echo(
        f"report {period.name} at log size {report['checkpoint']['size']} "
        f"(root {report['checkpoint']['root']}): {', '.join(str(p) for p in written)}"
    )
    if charts and not charts_available():
        click.echo(
            "  no charts: install the report extra (pip install 'shared-signal-forum[report]')"
        )


@click.command(
    "report",
    help="The transparency report for a period, computed from your verified copy alone: "
    "signals by type, label and content type; activity per member; dispute outcomes and time "
    "to resolution; incidents with their signal counts and time to first hash; matches "
    "reported as seen. Writes Markdown, JSON and PNG charts; states the checkpoint it was "
    "computed at, and is byte-identical to `forum-admin report` at the same size.",
)
@_DB
@report_options
def report(
    db: Path,
    period: str,
    at_size: int | None,
    anonymise: bool,
    out: Path | None,
    charts: bool,
) -> None:
    with _store(db) as store:
        size = store.size
        if at_size is not None and at_size > size:
            raise InvalidInputError.field(
                "at", f"the copy holds {size} verified entries; sync first or choose <= {size}"
            )
        root = store.trust_root()
        if root is None or size == 0:
            raise click.UsageError(f"{db} holds no verified entries yet (sync first)")
        leaves = copy_leaves(store, at_size or size)
    emit_report(leaves, root.origin, period, anonymise, out, charts)


def copy_leaves(store: LocalStore, size: int) -> list[bytes | Redacted]:
    """The first ``size`` entries of a copy in log order: leaf bytes, or the leaf hash of
    an entry shared with a group this member is not in."""
    from .report import Redacted

    out: dict[int, bytes | Redacted] = dict(store.leaves(0, size))
    for index, leaf_hash, _group, _author in store.redacted():
        if index < size:
            out[index] = Redacted(leaf_hash)
    if sorted(out) != list(range(size)):
        raise InvalidInputError.field("db", "the copy is missing entries (run verify)")
    return [out[i] for i in range(size)]


def incident_events(store: LocalStore, start: int, end: int) -> list[dict[str, object]]:
    """The incident entries among the verified entries ``[start, end)`` of ``store``, as
    events (``sync --follow`` prints them before anything else of the round)."""
    from . import entries as e
    from .envelope import Envelope

    events: list[dict[str, object]] = []
    wanted = e.PAYLOAD_TYPES[e.Incident]
    for index, leaf in store.leaves(start, end):
        envelope = Envelope.from_leaf_bytes(leaf)
        if envelope.payload_type != wanted:
            continue
        body = e.decode(envelope.payload_type, envelope.body)
        assert isinstance(body, e.Incident)
        stage = (
            body.stage.label
            if body.stage is not e.IncidentStage.LEGACY
            else ("opened" if body.open else "closed")
        )
        events.append(
            {
                "event": "incident",
                "index": index,
                "incident_id": body.incident_id,
                "stage": stage,
                "level": body.level,
                "title": body.title,
                "text": body.text,
                "label": f"incident:{body.incident_id}",
            }
        )
    return events


@click.command(
    "incidents",
    help="List the crisis-response incidents in your verified copy: level, title, when "
    "declared and concluded, updates, debrief, how many signals carry the incident's label, "
    "and minutes from declaration to the first hash.",
)
@_DB
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--signals", "with_signals", is_flag=True, help="Also list each incident's signals.")
def incidents(db: Path, as_json: bool, with_signals: bool) -> None:
    with _store(db) as store:
        root = store.trust_root()
        leaves = [leaf for _, leaf in store.leaves(0, store.size)]
        signals = (
            {i: store.labelled(f"incident:{i}") for i in _incident_ids(leaves)}
            if with_signals
            else {}
        )
    from .report import ALL_TIME, compute_report

    doc = compute_report(leaves, ALL_TIME, origin=root.origin if root else "")
    if not doc["incidents"] and not as_json:
        click.echo("no incidents")
    for i in doc["incidents"]:
        listed = [
            {"type": t, "value": v, "member_id": m, "active": a}
            for t, v, m, a in signals.get(i["incident_id"], [])
        ]
        if as_json:
            click.echo(
                json.dumps({**i, "signal_list": listed} if with_signals else i, sort_keys=True)
            )
            continue
        state = f"concluded {i['concluded']}" if i["concluded"] else "OPEN"
        click.echo(
            f"{i['incident_id']:<20} {i['level_name']:<16} {state:<32} signals {i['signals']:>6}"
            f"  first hash after {i['minutes_to_first_hash']} min  {i['title']}"
        )
        for x in listed:
            state = "" if x["active"] else " (retracted)"
            click.echo(f"    {x['type']}:{x['value']}  by {x['member_id']}{state}")


def _incident_ids(leaves: list[bytes]) -> list[str]:
    from . import entries as e
    from .envelope import Envelope

    wanted = e.PAYLOAD_TYPES[e.Incident]
    ids: list[str] = []
    for leaf in leaves:
        envelope = Envelope.from_leaf_bytes(leaf)
        if envelope.payload_type == wanted:
            body = e.decode(envelope.payload_type, envelope.body)
            assert isinstance(body, e.Incident)
            if body.incident_id not in ids:
                ids.append(body.incident_id)
    return ids


@click.command(
    "disputes",
    help="List the disputes in your verified copy: signal, who opened it, the member "
    "answering, and where it stands (open, kept, retracted, upheld, removed).",
)
@_DB
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def disputes(db: Path, as_json: bool) -> None:
    with _store(db) as store:
        records = store.disputes()
    if not records and not as_json:
        click.echo("no disputes")
    for d in records:
        doc = {
            "dispute_id": d.dispute_id,
            "type": d.signal_type,
            "value": d.signal_value,
            "opened_by": d.opener,
            "respondent": d.respondent,
            "status": d.status,
            "opened_at_index": d.opened_at,
        }
        if as_json:
            click.echo(json.dumps(doc))
        else:
            click.echo(
                f"{d.dispute_id:<20} {d.status:<10} {d.signal_type}:{d.signal_value}  "
                f"by {d.opener}, respondent {d.respondent}"
            )


# client.MAX_ANSWER_WITHIN_MS, here so that --help does not import the SDK (a test keeps
# them equal)
_ANSWER_WITHIN = Duration(365 * DAY_MS)


@click.group(help="Dispute a signal, or answer a dispute on yours.")
def dispute() -> None:
    pass


@dispute.command(
    "open",
    help="Dispute the signal --type/--value that RESPONDENT submitted, with a reason. The "
    "respondent answers; unsettled after --answer-within, the board may decide.",
)
@click.argument("dispute_id", type=DISPUTE_ID)
@click.option("--type", "type_", type=SIGNAL_TYPE, required=True, help="Signal type.")
@click.option("--value", required=True, help="Signal value.")
@click.option(
    "--respondent",
    type=MEMBER_ID,
    required=True,
    help="The member whose submission you dispute.",
)
@click.option(
    "--reason",
    type=REQUIRED_TEXT,
    required=True,
    help="Why the signal is wrong (recorded in the log).",
)
@_KEY
@click.option(
    "--answer-within",
    default="14d",
    show_default=True,
    type=_ANSWER_WITHIN,
    help="The respondent's deadline (30m, 12h, 14d...; at most 365d).",
)
@click.pass_context
def dispute_open(
    ctx: click.Context,
    dispute_id: str,
    type_: str,
    value: str,
    respondent: str,
    reason: str,
    key_path: Path,
    answer_within: int,
) -> None:
    from .envelope import SigningKey

    ref = signal_option(type_, value)  # a bad --value is named before any connection
    receipt = client_from(ctx).open_dispute(
        dispute_id,
        {"type": ref.type, "value": ref.value},
        respondent,
        reason,
        SigningKey.load(key_path),
        answer_within_ms=answer_within,
    )
    click.echo(f"opened dispute {dispute_id} at log index {receipt.index}")


@dispute.command(
    "answer",
    help="Answer DISPUTE_ID on your signal: --retract (the signal is retracted, then the "
    "answer recorded) or --keep, with a rationale. Reads the dispute from your synced copy.",
)
@click.argument("dispute_id", type=DISPUTE_ID)
@_DB
@click.option("--retract/--keep", required=True, help="Retract the signal, or keep it.")
@click.option("--rationale", type=REQUIRED_TEXT, required=True, help="Why (recorded in the log).")
@_KEY
@click.pass_context
def dispute_answer(
    ctx: click.Context, dispute_id: str, db: Path, retract: bool, rationale: str, key_path: Path
) -> None:
    from .envelope import SigningKey

    with _store(db) as store:
        found = [d for d in store.disputes() if d.dispute_id == dispute_id]
    if not found:
        raise InvalidInputError.field("dispute_id", f"no dispute {dispute_id} in {db} (sync?)")
    ref = {"type": found[0].signal_type, "value": found[0].signal_value}
    receipts = client_from(ctx).answer_dispute(
        dispute_id, retract=retract, rationale=rationale, key=SigningKey.load(key_path), ref=ref
    )
    what = "retracted" if retract else "kept"
    click.echo(f"answered dispute {dispute_id} ({what}) at log index {receipts[-1].index}")


COMMANDS = (report, incidents, disputes, dispute)
