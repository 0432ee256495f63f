"""What every ``forum-client`` command module needs from the group's options: the bundle, a
connected client and whether to show progress (its own module, so the command modules and
``cli`` do not import each other).  The SDK is imported when a command needs it, so that
``--help`` stays light."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

import click

from .cli_errors import connection_hint

if TYPE_CHECKING:
    from .client import ForumClient
    from .profile import Bundle


def bundle_from(ctx: click.Context) -> Bundle:
    """The bundle named by ``--profile`` (UsageError without one)."""
    from .profile import Bundle

    if ctx.obj["profile"] is None:
        raise click.UsageError("this command needs --profile BUNDLE (or set FORUM_PROFILE)")
    return Bundle.load(ctx.obj["profile"])


def client_from(ctx: click.Context) -> ForumClient:
    """A client for the bundle (and ``--server``), closed when the command ends.

    Its certificate is checked first (expired, or from another forum's CA: ConfigError saying
    what to do), and a connection failure is explained naming the bundle and the forum."""
    from .client import ForumClient

    bundle = bundle_from(ctx)
    where = str(ctx.obj["profile"])
    bundle.check_certificate(dt.datetime.now(dt.UTC), where)
    server = ctx.obj["server"] or bundle.server
    ctx.find_root().obj["explain"] = lambda exc: connection_hint(
        exc,
        bundle=where,
        server=server,
        origin=bundle.trust_root.origin,
        member=bundle.member_id,
    )
    client = ForumClient(bundle, server=server)
    ctx.call_on_close(client.close)
    return client


def show_progress(ctx: click.Context) -> bool:
    """Progress lines (rewritten with ``\\r``) go only to a terminal, and not with --quiet."""
    obj = ctx.find_root().obj or {}
    return not obj.get("quiet") and sys.stderr.isatty()
