"""The witness's HTTP face (aiohttp): ``POST /add-checkpoint`` as c2sp.org/tlog-witness says.

The handler only moves bytes; :class:`~forum_server.witness.service.Witness` decides.  The
clock is read here, once per request, and handed down as ``now``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from aiohttp import web

from .core import MAX_BODY_BYTES
from .service import Witness

_WITNESS: web.AppKey[Witness] = web.AppKey("witness", Witness)


async def _add_checkpoint(request: web.Request) -> web.Response:
    witness = request.app[_WITNESS]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return web.Response(
            status=413, text=f"request body is larger than {MAX_BODY_BYTES} bytes\n"
        )
    answer = await asyncio.to_thread(witness.add_checkpoint, body, int(time.time()))
    return web.Response(
        status=answer.status, body=answer.body, headers={"Content-Type": answer.content_type}
    )


def make_app(witness: Witness) -> web.Application:
    """The aiohttp application serving ``witness``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_WITNESS] = witness
    app.router.add_post("/add-checkpoint", _add_checkpoint)
    return app


async def serve(witness: Witness, host: str, port: int, on_ready: Callable[[int], None]) -> None:
    """Serve until SIGTERM or SIGINT, then close the state."""
    runner = web.AppRunner(make_app(witness), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=False)
    await site.start()
    on_ready(int(runner.addresses[0][1]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        witness.close()


__all__ = ["make_app", "serve"]
