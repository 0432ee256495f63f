"""Which of several servers over one PostgreSQL database sequences the log.

    leadership = Leadership(sequencer, store, holder="forum-a:7443")
    task = asyncio.create_task(leadership.run())   # until cancelled

Every server runs this loop.  A follower asks the store for the leadership every
``poll_seconds`` (it is granted when the lease has expired or its holder's connection is gone,
see :mod:`forum_server.storage.postgres`) and meanwhile catches up with what the leader
commits.  The leader renews its lease every ``lease_seconds / 3``; it steps down when a
renewal is refused, when it could not renew for a whole lease (it must assume somebody else
took over), or when a write was fenced off.  Stepping down is only a courtesy: a stale
leader's writes are refused by the epoch check in every append.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from forum_client.errors import ForumError

from .sequencer import Sequencer
from .storage import SharedStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    lease_seconds: float = 3.0  # a silent leader is replaced after this long
    poll_seconds: float = 0.1  # a follower looks for new entries and a free lease this often


class Leadership:
    def __init__(
        self,
        sequencer: Sequencer,
        store: SharedStore,
        holder: str,
        config: LeaseConfig | None = None,
    ) -> None:
        self.sequencer = sequencer
        self.store = store
        self.holder = holder
        self.config = config or LeaseConfig()
        self.epoch: int | None = None
        self.changes = 0  # times this server became leader

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    async def run(self) -> None:
        try:
            while True:
                if self.epoch is None:
                    await self._follow()
                    await asyncio.sleep(self.config.poll_seconds)
                else:
                    await self._hold()
        finally:
            if self.epoch is not None:
                await self.sequencer.demote()
                self.epoch = None

    async def _follow(self) -> None:
        lease = self.config.lease_seconds
        try:
            epoch = await asyncio.to_thread(self.store.try_lead, self.holder, lease)
        except ForumError as exc:
            log.warning("cannot ask for the leadership: %s", exc)
            return
        if epoch is None:
            try:
                await self.sequencer.catch_up()
            except ForumError as exc:
                log.warning("cannot catch up with the leader: %s", exc)
            return
        try:
            await self.sequencer.promote(epoch)
        except ForumError as exc:
            log.error("took the leadership (epoch %d) but cannot lead: %s", epoch, exc)
            await self.sequencer.demote()
            self.store.epoch = None
            return
        self.epoch = epoch
        self.changes += 1
        self._renewed = time.monotonic()

    async def _hold(self) -> None:
        assert self.epoch is not None
        lease = self.config.lease_seconds
        deadline = self._renewed + lease / 3
        while time.monotonic() < deadline and not self.sequencer.lost_leadership:
            await asyncio.sleep(min(0.05, self.config.poll_seconds))
        keep = not self.sequencer.lost_leadership
        if keep:
            try:
                keep = await asyncio.to_thread(self.store.renew, self.epoch, lease)
                if keep:
                    self._renewed = time.monotonic()
            except ForumError as exc:
                log.warning("cannot renew the lease: %s", exc)
                keep = time.monotonic() - self._renewed < lease * 0.8
                await asyncio.sleep(self.config.poll_seconds)
        if not keep:
            log.warning("leadership epoch %d ended", self.epoch)
            self.epoch = None
            await self.sequencer.demote()
