"""What every ``forum-client`` command module needs from the group's options: the bundle and
a connected client (its own module, so the command modules and ``cli`` do not import each
other)."""

from __future__ import annotations

import click

from .client import ForumClient
from .profile import Bundle


def bundle_from(ctx: click.Context) -> Bundle:
    """The bundle named by ``--profile`` (UsageError without one)."""
    if ctx.obj["profile"] is None:
        raise click.UsageError("this command needs --profile BUNDLE")
    return Bundle.load(ctx.obj["profile"])


def client_from(ctx: click.Context) -> ForumClient:
    """A client for the bundle (and ``--server``), closed when the command ends."""
    client = ForumClient(bundle_from(ctx), server=ctx.obj["server"])
    ctx.call_on_close(client.close)
    return client
