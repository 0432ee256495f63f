"""The one place where library errors become exit codes and human messages (all CLIs).

Exit codes: 0 ok, 1 unexpected failure, 2 bad input or usage, 3 configuration (profile,
bundle, forum directory), 4 the forum refused or could not be reached, 5 a security failure
(something did not verify: investigate, do not retry blindly), 6 local store failure,
7 no witness quorum (the forum's log grew beyond the last checkpoint a quorum of its witnesses
cosigned: the copy stays at that checkpoint; sync again once they cosign).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from .errors import (
    ConfigError,
    ForumError,
    InvalidInputError,
    QuorumUnavailableError,
    SecurityError,
    StoreError,
    TransportError,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_TRANSPORT = 4
EXIT_SECURITY = 5
EXIT_STORE = 6
EXIT_NO_QUORUM = 7

_CODES: list[tuple[type[ForumError], int, str]] = [
    (SecurityError, EXIT_SECURITY, "security"),
    (InvalidInputError, EXIT_USAGE, "invalid input"),
    (ConfigError, EXIT_CONFIG, "configuration"),
    (TransportError, EXIT_TRANSPORT, "forum"),
    (StoreError, EXIT_STORE, "store"),
    (QuorumUnavailableError, EXIT_NO_QUORUM, "witness quorum"),
]


def exit_code_for(exc: ForumError) -> tuple[int, str]:
    for cls, code, label in _CODES:
        if isinstance(exc, cls):
            return code, label
    return EXIT_FAILURE, "error"


PACKAGE = "shared-signal-forum"


def version_option() -> Callable[[Any], Any]:
    """``--version``: the installed package's version (looked up only when asked)."""
    return click.version_option(
        package_name=PACKAGE,
        message="%(prog)s %(version)s",
        help="Show the version and exit.",
    )


def _details(exc: ForumError) -> list[str]:
    """The violation lines worth printing under the message: not ones it already says, nor
    ones whose reason it already says under a wire field name (``member_id: X`` under
    ``...: X``); a ``FILE:LINE`` field is kept, it says where."""
    message = str(exc)
    lines = []
    for violation in getattr(exc, "violations", [])[:100]:
        line = f"{violation.field}: {violation.reason}"
        said = line in message or (violation.reason in message and ":" not in violation.field)
        if not said:
            lines.append(line)
    return lines


def run(command: click.Command, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a click command; never raise for expected failures, return the exit code.

    gRPC's C core logs nothing unless asked (GRPC_VERBOSITY), so stderr holds only our
    messages: each error once, as ``PROG: KIND error: MESSAGE`` and one line per detail.
    """
    previous = os.environ.get("GRPC_VERBOSITY")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        return _run(command, argv, prog_name)
    finally:  # main() may run in a longer-lived process (tests, embedding): leave no trace
        if previous is None:
            os.environ.pop("GRPC_VERBOSITY", None)
        else:
            os.environ["GRPC_VERBOSITY"] = previous


def _run(command: click.Command, argv: Sequence[str] | None, prog_name: str) -> int:
    ctx: click.Context | None = None
    try:
        args = list(argv) if argv is not None else sys.argv[1:]
        with command.make_context(prog_name, args) as ctx:
            command.invoke(ctx)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"{prog_name}: interrupted", err=True)
        return 130
    except ForumError as exc:
        code, label = exit_code_for(exc)
        click.echo(f"{prog_name}: {label} error: {exc}", err=True)
        for line in _details(exc):
            click.echo(f"  {line}", err=True)
        explain = ((ctx.obj if ctx is not None else None) or {}).get("explain")
        hint = explain(exc) if explain is not None else None
        if hint:
            click.echo(hint, err=True)
        return code
    except FileExistsError as exc:
        click.echo(f"{prog_name}: refusing to overwrite: {exc.filename or exc}", err=True)
        return EXIT_USAGE
    except OSError as exc:
        click.echo(f"{prog_name}: {exc}", err=True)
        return EXIT_FAILURE
    return EXIT_OK


def exit_with(command: click.Command, prog_name: str) -> None:
    sys.exit(run(command, None, prog_name))


_TLS_WORDS = ("handshake", "ssl", "certificate", "tls", "socket closed", "connection reset")


def connection_hint(exc: ForumError, *, bundle: str, server: str, origin: str, member: str) -> str:
    """What to do when the forum at ``server`` could not be reached with ``bundle``."""
    if not isinstance(exc, TransportError) or exc.code != "UNAVAILABLE":
        return ""
    text = str(exc).lower()
    if any(word in text for word in _TLS_WORDS):
        return (
            f"The TLS handshake with {server} failed using the bundle {bundle} (member {member} "
            f"of forum {origin}). Either the server at {server} is another forum than the "
            "bundle's, or it refused your certificate (revoked by a reissue, or expired). "
            "Check the address and the bundle; if they are right, ask the operator for a new "
            f"bundle: forum-admin credentials reissue {member} --out NEW.bundle.json"
        )
    return (
        f"Nothing answered at {server} (the address of forum {origin} in {bundle}; --server "
        "overrides it): is the forum running and reachable from here?"
    )
