"""The entry stream's idle watchdog counts only the time spent waiting for the forum."""

from __future__ import annotations

import threading
import time

from forum_client.source import _Watchdog


def test_the_watchdog_fires_when_nothing_resets_it() -> None:
    fired = threading.Event()
    dog = _Watchdog(0.2, fired.set)
    try:
        assert fired.wait(10)
        assert dog.fired
    finally:
        dog.close()


def test_a_paused_watchdog_keeps_what_was_left_until_it_resumes() -> None:
    """The caller's own work between messages (e.g. a commit longer than the timeout) is
    not the forum stalling; after resuming, the clock runs on from where it stopped.
    (The clock runs from construction until the pause: 1 s leaves room for a loaded
    machine between the two lines, which 0.3 s did not.)"""
    fired = threading.Event()
    dog = _Watchdog(1.0, fired.set)
    try:
        dog.pause()
        time.sleep(2.5)  # more than two timeouts while paused
        assert not fired.is_set() and not dog.fired
        dog.resume()
        assert fired.wait(10)  # what was left still runs out
    finally:
        dog.close()
