"""The log's cosigner (forum_server.cosigner) without a server: what it reports per witness."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, cast

import pytest

from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.cosignature import Witness
from forum_client.envelope import SigningKey
from forum_server.config import ServerConfig
from forum_server.cosigner import Cosigner

if TYPE_CHECKING:
    from forum_server.sequencer import Sequencer


def test_a_server_without_the_witness_extra_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forum-server installed without aiohttp (scripts/quickstart, plain ``pip install``)
    cannot ask its witnesses: the status the operator's log and the members' exit-7
    message show names the extra, not only an import that failed."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # import aiohttp now fails
    log = SigningKey.generate()
    note = sign_checkpoint(Checkpoint("forum.test", 3, bytes(32)), "forum.test", log)
    witness = Witness("witness.test/w1", SigningKey.generate().public_bytes, "http://127.0.0.1:9")
    # Asking from size 0 needs no consistency proof, so no sequencer is touched.
    cosigner = Cosigner(cast("Sequencer", None), ServerConfig())
    assert asyncio.run(cosigner._ask(witness, 3, note)) == []
    status = cosigner.status()["witness.test/w1"]
    assert "install the 'witness' extra" in status
    assert "pip install 'shared-signal-forum[witness]'" in status
