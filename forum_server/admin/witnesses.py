"""The forum's witness policy, as the operator changes it: operator-signed ``witness-set``
entries in the log (each states the whole set and the quorum), so members learn the policy
from the verified log, never from the server's word.

    with Operator.open("myforum/operator") as op:
        add_witness(op, "witness.example/w1+1a2b3c4d+BK...", url="https://w1.example", quorum=2)
        current_policy(op).quorum
"""

from __future__ import annotations

from collections.abc import Callable

from forum_client import entries as e
from forum_client.checkpoint import vkey
from forum_client.cosignature import WitnessPolicy, witness_from_vkey
from forum_client.errors import InvalidInputError
from forum_client.wire import Receipt

from .operator import Operator


def current_policy(op: Operator) -> WitnessPolicy:
    """The witness policy the log states now (the whole log replayed and verified)."""
    return op.log_state().witness_policy


def entry_for(policy: WitnessPolicy) -> Callable[[e.Header], e.Body]:
    """What builds the witness-set entry stating ``policy`` (for ``_append`` or a board
    proposal)."""
    witnesses = tuple(e.WitnessInfo(w.name, w.public_key, w.url) for w in policy.witnesses)
    return lambda h: e.WitnessSet(h, policy.version, witnesses, policy.quorum)


def _publish(op: Operator, policy: WitnessPolicy) -> tuple[WitnessPolicy, Receipt]:
    return policy, op._append(entry_for(policy))


def add_witness(
    op: Operator, witness_vkey: str, *, url: str, quorum: int | None = None
) -> tuple[WitnessPolicy, Receipt]:
    """Add the witness ``witness_vkey`` (a cosignature/v1 vkey) reached at ``url``; the
    quorum stays as it is unless given (1 for the first witness).

    Raises:
        InvalidInputError: a bad vkey or URL, a witness already in the set, a bad quorum.
    """
    return _publish(op, policy_with(op, witness_vkey, url=url, quorum=quorum))


def remove_witness(
    op: Operator, name: str, *, quorum: int | None = None
) -> tuple[WitnessPolicy, Receipt]:
    """Remove witness ``name``; the quorum is kept unless given (and lowered only if fewer
    witnesses remain than it needs: pass ``quorum`` to lower it on purpose).

    Raises:
        InvalidInputError: no such witness, or a quorum the remaining set cannot meet.
    """
    return _publish(op, policy_without(op, name, quorum=quorum))


def policy_with(
    op: Operator, witness_vkey: str, *, url: str, quorum: int | None = None
) -> WitnessPolicy:
    """The next policy: the current one plus ``witness_vkey`` (see :func:`add_witness`)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError.field("url", f"{url!r} is not an http(s) URL")
    witness = witness_from_vkey(witness_vkey, url.rstrip("/"))
    current = current_policy(op)
    if any(w.name == witness.name for w in current.witnesses):
        raise InvalidInputError.field("vkey", f"{witness.name} is already a witness")
    new_quorum = quorum if quorum is not None else max(current.quorum, 1)
    return WitnessPolicy((*current.witnesses, witness), new_quorum, current.version + 1)


def policy_without(op: Operator, name: str, *, quorum: int | None = None) -> WitnessPolicy:
    """The next policy: the current one less witness ``name`` (see :func:`remove_witness`)."""
    current = current_policy(op)
    remaining = tuple(w for w in current.witnesses if w.name != name)
    if len(remaining) == len(current.witnesses):
        raise InvalidInputError.field("name", f"{name} is not a witness")
    if quorum is None:
        quorum = current.quorum
        if quorum > len(remaining):
            raise InvalidInputError.field(
                "quorum",
                f"the quorum is {quorum} but only {len(remaining)} witnesses would remain: "
                "give --quorum to lower it on purpose",
            )
    return WitnessPolicy(remaining, quorum, current.version + 1)


def log_vkey(op: Operator) -> str:
    """The log's verifier key, what a witness needs to follow this forum (``--log``)."""
    root = op.bundle.trust_root
    return vkey(root.log_key_name, root.log_public_key)


__all__ = [
    "add_witness",
    "current_policy",
    "entry_for",
    "log_vkey",
    "policy_with",
    "policy_without",
    "remove_witness",
]
