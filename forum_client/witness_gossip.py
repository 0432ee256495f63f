"""Gossip without a human: after a sync, ask each witness of the policy what it holds.

The C2SP witness API has no read call, but ``add-checkpoint`` answers a stale ``old`` size
with the size the witness last cosigned (409, ``text/x.tlog.size``).  So a member sends its
own verified checkpoint with ``old 0``, learns the witness's size S, and then:

* S below the member's size: it sends a consistency proof from S (fetched from the forum):
  the witness answers 200 only if its checkpoint at S is a prefix of the member's view, 422
  if it holds another history (a split view: evidence);
* S equal: it sends the checkpoint again with ``old S``: 200 if the roots match, 409 if the
  witness holds another root at that size (evidence);
* S above: the witness has seen a larger checkpoint than the forum served this member (the
  forum may be holding it back); reported, not provable here.

A witness that has cosigned nothing yet cosigns the member's checkpoint (it is log-signed;
the protocol allows anyone to submit one).  The decision is pure (:func:`classify`); the
HTTP is one ``urllib`` call per request with a timeout.

    >>> classify(200, b"", "", asked_old=5, mine=5)
    ('consistent', 5)
    >>> classify(409, b"9\\n", "text/x.tlog.size", asked_old=0, mine=7)
    ('ahead', 9)
    >>> classify(422, b"bad proof\\n", "text/plain", asked_old=3, mine=7)
    ('disagrees', 3)
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .checkpoint import _parse_unverified
from .cosignature import Witness, WitnessPolicy

Post = Callable[[str, bytes, float], tuple[int, bytes, str]]
"""``post(url, body, timeout) -> (status, body, content type)``; OSError if unreachable."""


@dataclass(frozen=True)
class WitnessView:
    """What one witness said about the member's checkpoint.

    ``outcome``: ``consistent`` (it holds a prefix of, or the same as, the member's view),
    ``ahead`` (it has cosigned a larger checkpoint), ``disagrees`` (it holds another history:
    a split view), ``unreachable`` or ``no-url``.
    """

    name: str
    outcome: str
    size: int | None
    detail: str = ""


def classify(
    status: int, body: bytes, content_type: str, *, asked_old: int, mine: int
) -> tuple[str, int | None]:
    """Turn one answer into ``(outcome, witness size)``; ``resend`` means: ask again with
    ``old`` = the returned size."""
    if status == 200:
        return "consistent", mine
    if status == 409 and content_type.startswith("text/x.tlog.size"):
        try:
            size = int(body.decode("ascii").strip())
        except ValueError:
            return "unreachable", None
        return ("ahead" if size > mine else "resend"), size
    if status == 409 or status == 422:
        return "disagrees", asked_old
    return "unreachable", None


def ask_witnesses(
    policy: WitnessPolicy,
    note: bytes,
    proof: Callable[[int, int], Sequence[bytes]],
    *,
    timeout: float = 10.0,
    post: Post | None = None,
) -> list[WitnessView]:
    """Ask every witness of ``policy`` about ``note`` (the member's verified checkpoint);
    ``proof(old, new)`` gives a consistency proof (from the forum).  Never raises for a
    witness's failure: it is reported in the view."""
    send = post or _post
    cp, _ = _parse_unverified(note)
    return [_ask(w, cp.size, note, proof, timeout, send) for w in policy.witnesses]


def _ask(
    witness: Witness,
    mine: int,
    note: bytes,
    proof: Callable[[int, int], Sequence[bytes]],
    timeout: float,
    send: Post,
) -> WitnessView:
    if not witness.url:
        return WitnessView(witness.name, "no-url", None)
    old = 0
    try:
        for _ in range(2):
            nodes = proof(old, mine) if 0 < old < mine else ()
            lines = "".join(base64.b64encode(n).decode("ascii") + "\n" for n in nodes)
            body = f"old {old}\n{lines}\n".encode() + note
            status, answer, ctype = send(witness.url + "/add-checkpoint", body, timeout)
            outcome, size = classify(status, answer, ctype, asked_old=old, mine=mine)
            if outcome != "resend":
                detail = "" if status == 200 else f"HTTP {status}: {_text(answer)}"
                return WitnessView(witness.name, outcome, size, detail)
            assert size is not None
            old = size
        return WitnessView(witness.name, "unreachable", None, "kept answering 409")
    except Exception as exc:  # a witness or the forum failing is reported, never raised
        return WitnessView(witness.name, "unreachable", None, f"{type(exc).__name__}: {exc}")


def _text(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


__all__ = ["WitnessView", "ask_witnesses", "classify"]
