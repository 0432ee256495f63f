"""``forum-admin`` board commands: propose, sign, submit, pending, board show.

Board members keep their keys apart, so these work on files: ``propose`` (with the operator
profile, to read the board in force) writes an unsigned proposal, ``sign`` (offline, with one
key file) adds a signature, ``submit`` (with the profile) sends it once the threshold is met
and ``pending`` (offline) lists what still awaits signatures.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from forum_client import entries as e
from forum_client.client import MAX_ANSWER_WITHIN_MS
from forum_client.envelope import Envelope, SigningKey, load_public_key, verify_signers
from forum_client.errors import InvalidInputError, VerificationError
from forum_client.report import Redacted
from forum_client.tools import (
    DISPUTE_ID,
    INCIDENT_ID,
    MEMBER_ID,
    NAME,
    NEW_FILE,
    PUBLIC_KEY_FILE,
    REQUIRED_TEXT,
    SIGNAL_TYPE,
    TEXT,
    Duration,
    connection_hint,
    emit_report,
    report_options,
    signal_option,
)

from .operator import Operator
from .proposals import FORMAT as PROPOSAL_FORMAT
from .proposals import MAX_PROPOSAL_BYTES, MAX_TTL_MS, Proposal

DAY_MS = 86_400_000


def operator_from(ctx: click.Context) -> Operator:
    """The operator session for ``--profile`` (closed with the command)."""
    profile = ctx.obj["profile"]
    if profile is None:
        raise click.UsageError("this command needs --profile DIR/operator")
    op = Operator.open(profile, server=ctx.obj["server"])
    where = str(Path(profile) / "bundle.json")
    op.bundle.check_certificate(dt.datetime.now(dt.UTC), where)
    ctx.find_root().obj["explain"] = lambda exc: connection_hint(
        exc,
        bundle=where,
        server=op.server,
        origin=op.origin,
        member=op.bundle.member_id,
    )
    ctx.call_on_close(lambda: op.__exit__(None, None, None))
    return op


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _when(unix_ms: int) -> str:
    try:
        return dt.datetime.fromtimestamp(unix_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):  # a file's expiry past the year 9999
        return f"{unix_ms} ms after 1970"


# ---- propose ----

"""The longest deadline a dispute's respondent can be given."""

# The field a library error names (found once the operator profile and the log are read:
# proof of possession, an unknown member, an incident that is not open...) -> the parameter
# of the command that carries it, so that the message names the option the user typed.
_FIELD_PARAMS: dict[str, tuple[str, ...]] = {
    "public_key": ("signing_key", "key_files"),
    "public_key_file": ("signing_key", "key_files"),
    "possession_signature": ("signing_key",),
    "public_keys": ("key_files",),
    "board": ("key_files",),
    "status": ("suspend",),
    "stage": ("incident_id",),
    "open": ("incident_id",),
    "deadline_unix_ms": ("answer_within",),
    "witnesses": ("vkey",),
    "expires": ("expires_in",),
    "taxonomy": ("file",),
    "labels": ("file",),
}


def _named_by_option(f: Callable[..., None]) -> Callable[..., None]:
    """Re-raise a library InvalidInputError as a click error naming the command's option or
    argument that the field came from (exit 2 either way; the message is what changes)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            f(*args, **kwargs)
        except InvalidInputError as exc:
            ctx = click.get_current_context()
            field = exc.violations[0].field.split(".")[0].split("[")[0] if exc.violations else ""
            params = {p.name: p for p in ctx.command.params}
            for name in (field, *_FIELD_PARAMS.get(field, ())):
                if name in params:
                    param = params[name]
                    hint = None
                    if isinstance(param, click.Option):  # both sides of --suspend/--reinstate
                        hint = [*param.opts, *param.secondary_opts]
                    reason = exc.violations[0].reason
                    raise click.BadParameter(reason, ctx, param, hint) from None
            raise

    return wrapper


@click.group(
    help="Write an unsigned board proposal to --out: board members then sign it "
    "(forum-admin sign) and the operator submits it (forum-admin submit)."
)
def propose() -> None:
    pass


def _propose_options(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option(
        "--expires-in",
        "ttl_ms",
        default="7d",
        show_default=True,
        type=Duration(MAX_TTL_MS),
        help="How long the proposal can be signed and submitted (30m, 12h, 7d...; at most "
        f"{MAX_TTL_MS // DAY_MS}d). The expiry is signed: the forum refuses the entries after it.",
    )(f)
    f = click.option(
        "--out",
        required=True,
        type=NEW_FILE,
        help="The proposal file to write (refuses to overwrite).",
    )(f)
    return click.pass_context(_named_by_option(f))


def _write(
    ctx: click.Context,
    makes: list[Callable[[e.Header], e.Body]],
    summary: str,
    out: Path,
    ttl_ms: int,
) -> None:
    if out.exists():
        raise InvalidInputError.field("out", f"{out} exists: refusing to overwrite")
    proposal = operator_from(ctx).propose(makes, summary, ttl_ms=ttl_ms)
    proposal.save(out)
    board, incoming = proposal.board, proposal.incoming_board()
    needs = f"{board.threshold} signature(s) of the {len(board.keys)}-key board"
    if incoming is not None:  # a rotation: a threshold of the old board and of the new one
        needs += f" and {incoming.threshold} of the {len(incoming.keys)} new keys"
    click.echo(
        f"wrote {out}: {summary} ({len(makes)} entr{'y' if len(makes) == 1 else 'ies'}); "
        f"needs {needs}; expires {_when(proposal.expires_unix_ms)}"
    )
    click.echo(f"  next: forum-admin sign {out} --key BOARD_KEY   (each signer)")


@propose.command("member-add", help="Admit MEMBER_ID with its signing key (KEY.pub).")
@click.argument("member_id", type=MEMBER_ID)
@click.option("--name", "display_name", type=NAME, required=True, help="The member's display name.")
@click.option(
    "--signing-key",
    required=True,
    type=PUBLIC_KEY_FILE,
    help="The member's public key file, with its proof of possession.",
)
@click.option(
    "--role",
    type=click.Choice(["member", "observer"]),
    default="member",
    show_default=True,
    help="Observers sync and match but cannot submit.",
)
@_propose_options
def propose_member_add(
    ctx: click.Context,
    member_id: str,
    display_name: str,
    signing_key: Path,
    role: str,
    out: Path,
    ttl_ms: int,
) -> None:
    makes = operator_from(ctx).admission(member_id, display_name, e.Role.parse(role), signing_key)
    _write(ctx, makes, f"admit {member_id} ({role})", out, ttl_ms)


@propose.command("member-status", help="Suspend or reinstate MEMBER_ID.")
@click.argument("member_id", type=MEMBER_ID)
@click.option("--suspend/--reinstate", required=True, help="The new status.")
@click.option("--reason", type=REQUIRED_TEXT, required=True, help="Recorded in the signed entry.")
@_propose_options
def propose_member_status(
    ctx: click.Context, member_id: str, suspend: bool, reason: str, out: Path, ttl_ms: int
) -> None:
    status = e.MemberStatus.SUSPENDED if suspend else e.MemberStatus.ACTIVE
    makes: list[Callable[[e.Header], e.Body]] = [
        lambda h: e.MemberStatusChanged(h, member_id, status, reason)
    ]
    _write(ctx, makes, f"{status.label} {member_id}", out, ttl_ms)


@propose.command(
    "rotate-board",
    help="Replace the board with the keys given (KEY.pub files) and threshold M. Needs a "
    "threshold of the current board AND of the new one to sign.",
)
@click.option(
    "--key",
    "key_files",
    multiple=True,
    required=True,
    type=PUBLIC_KEY_FILE,
    help="A new board member's public key file (repeat for each).",
)
@click.option(
    "--threshold",
    required=True,
    type=click.IntRange(min=1),
    help="Signatures the new board needs (at most the number of --key).",
)
@click.option("--reason", type=TEXT, default="", help="Recorded in the signed entry.")
@_propose_options
def propose_rotate_board(
    ctx: click.Context,
    key_files: tuple[Path, ...],
    threshold: int,
    reason: str,
    out: Path,
    ttl_ms: int,
) -> None:
    from forum_client.verifier import board_problem

    if threshold > len(key_files):
        raise click.BadParameter(
            f"{threshold} signatures of {len(key_files)} key(s): give more --key",
            param_hint="--threshold",
        )
    keys = tuple(load_public_key(p) for p in key_files)
    problem = board_problem(keys, threshold)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--key")
    makes: list[Callable[[e.Header], e.Body]] = [
        lambda h: e.BoardRotation(h, keys, threshold, reason)
    ]
    _write(ctx, makes, f"rotate the board to {threshold}-of-{len(keys)}", out, ttl_ms)


@propose.command("retract", help="An operator retraction: the signal is removed for everyone.")
@click.option("--type", "type_", type=SIGNAL_TYPE, required=True, help="Signal type.")
@click.option("--value", required=True, help="The signal's value.")
@click.option("--reason", type=REQUIRED_TEXT, required=True, help="Recorded in the signed entry.")
@_propose_options
def propose_retract(
    ctx: click.Context, type_: str, value: str, reason: str, out: Path, ttl_ms: int
) -> None:
    ref = signal_option(type_, value)
    makes: list[Callable[[e.Header], e.Body]] = [lambda h: e.Retraction(h, (ref,), reason)]
    _write(ctx, makes, f"retract {ref.type}:{ref.value}", out, ttl_ms)


@propose.command(
    "taxonomy",
    help="Publish a vocabulary: FILE (labels JSON, as for `taxonomy publish`) or --default "
    "(the built-in one), as the next version.",
)
@click.argument(
    "file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@click.option("--default", "use_default", is_flag=True, help="The built-in vocabulary.")
@_propose_options
def propose_taxonomy(
    ctx: click.Context, file: Path | None, use_default: bool, out: Path, ttl_ms: int
) -> None:
    from forum_client.taxonomy import DEFAULT_LABELS, check_labels, load_labels

    if (file is None) == (not use_default):
        raise click.UsageError("give a labels FILE or --default")
    labels = DEFAULT_LABELS if file is None else load_labels(file)
    check_labels(labels)
    version = operator_from(ctx).log_state().taxonomy_version + 1
    makes: list[Callable[[e.Header], e.Body]] = [lambda h: e.Taxonomy(h, version, labels)]
    _write(ctx, makes, f"taxonomy version {version} ({len(labels)} labels)", out, ttl_ms)


# ---- incidents: the crisis protocol ----


def _incident_text_command(stage: e.IncidentStage, verb: str, what: str) -> click.Command:
    @click.command(
        f"incident-{verb}",
        help=f"Record the {what} of open incident INCIDENT_ID"
        if stage is not e.IncidentStage.DEBRIEF
        else "Record the debrief of concluded incident INCIDENT_ID (once).",
    )
    @click.argument("incident_id", type=INCIDENT_ID)
    @click.option(
        "--text", type=REQUIRED_TEXT, required=True, help=f"The {what}, for members and the record."
    )
    @_propose_options
    def command(ctx: click.Context, incident_id: str, text: str, out: Path, ttl_ms: int) -> None:
        is_open = stage is e.IncidentStage.UPDATE
        makes: list[Callable[[e.Header], e.Body]] = [
            lambda h: e.Incident(h, incident_id, "", is_open, stage, 0, text)
        ]
        _write(ctx, makes, f"incident {incident_id}: {what}", out, ttl_ms)

    return command


OCCURRED_SKEW = dt.timedelta(days=1)
"""How far ahead of this machine's clock (UTC) --occurred may be: a time zone's worth."""


class _Occurred(click.DateTime):
    """When an attack happened: a UTC date (and time), not before 1970 nor in the future."""

    def __init__(self) -> None:
        super().__init__(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        when = super().convert(value, param, ctx).replace(tzinfo=dt.UTC)
        if when.year < 1970:
            self.fail(f"{value!r} is before 1970", param, ctx)
        if when > dt.datetime.now(dt.UTC) + OCCURRED_SKEW:
            self.fail(f"{value!r} is in the future (UTC)", param, ctx)
        return when


@propose.command(
    "incident-declare",
    help="Declare incident INCIDENT_ID (1-63 of a-z 0-9 -): while open, its label "
    "incident:ID is valid on submissions; once concluded it is refused.",
)
@click.argument("incident_id", type=INCIDENT_ID)
@click.option("--title", type=REQUIRED_TEXT, required=True, help="What happened, for members.")
@click.option(
    "--level",
    type=click.IntRange(1, 3),
    required=True,
    help="1 incident, 2 content incident, 3 crisis protocol.",
)
@click.option(
    "--occurred",
    type=_Occurred(),
    help="When the attack happened (UTC, not in the future; default: now).",
)
@_propose_options
def propose_incident_declare(
    ctx: click.Context,
    incident_id: str,
    title: str,
    level: int,
    occurred: dt.datetime | None,
    out: Path,
    ttl_ms: int,
) -> None:
    when = occurred or dt.datetime.now(dt.UTC)
    occurred_ms = int(when.timestamp() * 1000)
    makes: list[Callable[[e.Header], e.Body]] = [
        lambda h: e.Incident(
            h, incident_id, title, True, e.IncidentStage.DECLARED, level, "", occurred_ms
        )
    ]
    _write(ctx, makes, f"declare incident {incident_id} (level {level})", out, ttl_ms)


for _stage, _verb, _what in (
    (e.IncidentStage.UPDATE, "update", "situational update"),
    (e.IncidentStage.CONCLUDED, "conclude", "conclusion"),
    (e.IncidentStage.DEBRIEF, "debrief", "debrief"),
):
    propose.add_command(_incident_text_command(_stage, _verb, _what))


# ---- disputes ----


@propose.command(
    "dispute-open",
    help="Open dispute DISPUTE_ID on behalf of an outside appellant (a user whose content "
    "was removed, a civil-society organisation) against RESPONDENT's signal.",
)
@click.argument("dispute_id", type=DISPUTE_ID)
@click.option("--type", "type_", type=SIGNAL_TYPE, required=True, help="Signal type.")
@click.option("--value", required=True, help="Signal value.")
@click.option(
    "--respondent", type=MEMBER_ID, required=True, help="The member whose submission is disputed."
)
@click.option(
    "--reason", type=REQUIRED_TEXT, required=True, help="The appeal, recorded in the log."
)
@click.option(
    "--appellant", type=NAME, required=True, help="Who appealed (as it may be published)."
)
@click.option(
    "--answer-within",
    "within_ms",
    default="14d",
    show_default=True,
    type=Duration(MAX_ANSWER_WITHIN_MS),
    help=f"The respondent's deadline (at most {MAX_ANSWER_WITHIN_MS // DAY_MS}d).",
)
@_propose_options
def propose_dispute_open(
    ctx: click.Context,
    dispute_id: str,
    type_: str,
    value: str,
    respondent: str,
    reason: str,
    appellant: str,
    within_ms: int,
    out: Path,
    ttl_ms: int,
) -> None:
    ref = signal_option(type_, value)
    makes: list[Callable[[e.Header], e.Body]] = [
        lambda h: e.Dispute(
            h, dispute_id, ref, respondent, reason, appellant, h.created_unix_ms + within_ms
        )
    ]
    _write(ctx, makes, f"open dispute {dispute_id} for {appellant}", out, ttl_ms)


@propose.command(
    "dispute-decide",
    help="The board's decision on DISPUTE_ID, once its respondent answered or its deadline "
    "passed: --uphold keeps the signal; --remove adds an operator retraction that removes it "
    "for every member.",
)
@click.argument("dispute_id", type=DISPUTE_ID)
@click.option("--uphold/--remove", required=True, help="Keep the signal, or remove it.")
@click.option("--rationale", type=REQUIRED_TEXT, required=True, help="Why, recorded in the log.")
@_propose_options
def propose_dispute_decide(
    ctx: click.Context, dispute_id: str, uphold: bool, rationale: str, out: Path, ttl_ms: int
) -> None:
    record = operator_from(ctx).log_state().disputes.get(dispute_id)
    if record is None:
        raise InvalidInputError.field("dispute_id", f"no dispute {dispute_id} in the log")
    ref = e.SignalRef(record.signal_type, record.signal_value)
    makes: list[Callable[[e.Header], e.Body]] = [
        lambda h: e.DisputeDecision(h, dispute_id, not uphold, rationale)
    ]
    if not uphold:
        makes.append(lambda h: e.Retraction(h, (ref,), f"dispute {dispute_id}: {rationale}"))
    verdict = "uphold" if uphold else "remove"
    _write(ctx, makes, f"decide dispute {dispute_id}: {verdict}", out, ttl_ms)


# ---- sign, submit, pending, board ----


def _load_proposal(path: Path) -> Proposal:
    """The proposal at ``path``; a file that is not one is a bad PROPOSAL_PATH (exit 2)."""
    try:
        return Proposal.load(path)
    except InvalidInputError as exc:
        reason = exc.violations[0].reason if exc.violations else str(exc)
        raise click.BadParameter(reason, param_hint="'PROPOSAL_PATH'") from None


@click.command(
    "sign",
    help="Add your signature (--key, your private board key file) to PROPOSAL. Works "
    "offline; refuses a key outside the proposal's board, a second signature by the same "
    "key, and an expired proposal.",
)
@click.argument("proposal_path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Your private board key file.",
)
def sign(proposal_path: Path, key_path: Path) -> None:
    proposal = _load_proposal(proposal_path)
    signed = proposal.signed(SigningKey.load(key_path), now_ms=_now_ms())
    signed.save(proposal_path, overwrite=True)
    missing = signed.missing_signatures()
    state = "ready: forum-admin submit " + str(proposal_path) if not missing else f"{missing} more"
    click.echo(f"signed {proposal_path} ({signed.summary}): {state}")


@click.command(
    "submit",
    help="Send PROPOSAL once a threshold of the board has signed. Checked first against the "
    "board the log holds now; nothing is sent unless every check passes.",
)
@click.argument("proposal_path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def submit(ctx: click.Context, proposal_path: Path) -> None:
    proposal = _load_proposal(proposal_path)
    op = operator_from(ctx)
    receipts = op.submit(proposal)
    indexes = tuple(r.index for r in receipts)
    Proposal(
        proposal.origin,
        proposal.summary,
        proposal.created_unix_ms,
        proposal.expires_unix_ms,
        proposal.board,
        proposal.envelopes,
        indexes,
    ).save(proposal_path, overwrite=True)
    click.echo(
        f"submitted {proposal_path} ({proposal.summary}) at log index "
        f"{', '.join(map(str, indexes))}"
    )
    for body in proposal.bodies():
        if isinstance(body, e.MemberAdmitted):
            click.echo(
                f"  issue {body.member_id}'s credentials: forum-admin credentials reissue "
                f"{body.member_id} --out {body.member_id}.bundle.json"
            )


@click.command(
    "pending",
    help="List the proposals (*.proposal.json, or every .json proposal) in DIRECTORY "
    "(default: the current one) that are not submitted yet: what, signatures, expiry.",
)
@click.argument(
    "directory", default=".", type=click.Path(path_type=Path, file_okay=False, exists=True)
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def pending(directory: Path, as_json: bool) -> None:
    now = _now_ms()
    found = 0
    for path in sorted(directory.glob("*.json")):
        try:
            proposal = Proposal.load(path)
        except InvalidInputError as exc:
            if _claims_to_be_a_proposal(path):  # a damaged or tampered one: say so
                found += 1
                _show_invalid(path, str(exc), as_json)
            continue  # not a proposal (bundles, reports...)
        if proposal.submitted:
            continue
        found += 1
        try:  # what `submit` would refuse offline: a bad signature, a signer outside the board
            for item in proposal.envelopes:
                if isinstance(item, Envelope):
                    verify_signers(item, proposal.allowed_signers())
        except VerificationError as exc:
            _show_invalid(path, str(exc), as_json)
            continue
        missing = proposal.missing_signatures()
        expired = now > proposal.expires_unix_ms
        status = "expired" if expired else ("ready" if not missing else f"needs {missing} more")
        signed = len(proposal.signer_ids())
        if as_json:
            doc = {
                "file": str(path),
                "summary": proposal.summary,
                "status": status,
                "signatures": signed,
                "missing": missing,
                "expires": _when(proposal.expires_unix_ms),
            }
            click.echo(json.dumps(doc))
        else:
            click.echo(
                f"{path.name:<32} {status:<14} {signed} signed  expires "
                f"{_when(proposal.expires_unix_ms)}  {proposal.summary}"
            )
    if not found and not as_json:
        click.echo(f"no pending proposals in {directory}")


def _claims_to_be_a_proposal(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            doc = json.loads(handle.read(MAX_PROPOSAL_BYTES + 1))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == PROPOSAL_FORMAT


def _show_invalid(path: Path, reason: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"file": str(path), "status": "invalid", "reason": reason}))
    else:
        click.echo(f"{path.name:<32} {'invalid':<14} {reason}")


@click.group(help="The operator board: its keys and threshold.")
def board() -> None:
    pass


@board.command("show", help="The board in force: threshold and key ids (verified from the log).")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
@click.pass_context
def board_show(ctx: click.Context, as_json: bool) -> None:
    current = operator_from(ctx).board()
    kids = [kid.hex() for kid in current.keys]
    if as_json:
        click.echo(json.dumps({"threshold": current.threshold, "key_ids": kids}))
        return
    click.echo(f"{current.threshold}-of-{len(kids)} board")
    for kid in kids:
        click.echo(f"  {kid}")


@click.command(
    "report",
    help="The transparency report from the server's log: the same numbers, and the same "
    "bytes, as `forum-client report` from any member's verified copy at the same size. The "
    "entries are checked against the server's signed checkpoint first.",
)
@report_options
@click.pass_context
def report(
    ctx: click.Context,
    period: str,
    at_size: int | None,
    anonymise: bool,
    out: Path | None,
    charts: bool,
) -> None:
    op = operator_from(ctx)
    leaves = op.verified_leaves()
    if at_size is not None and at_size > len(leaves):
        raise InvalidInputError.field("at", f"the log holds {len(leaves)} entries")
    chosen: list[bytes | Redacted] = list(leaves[: at_size or len(leaves)])
    emit_report(chosen, op.origin, period, anonymise, out, charts)


COMMANDS = (propose, sign, submit, pending, board, report)
