"""A witness: its key and name, the logs it follows, its state; ``add_checkpoint`` answers
one request (the HTTP layer only moves bytes).

Its directory, made by :func:`init_witness`::

    DIR/witness.key    Ed25519 private key, PKCS#8 PEM, mode 0600
    DIR/witness.vkey   the verifier key (name+keyid+base64(0x04||key)), for log operators
    DIR/witness.json   {"name": ...}
    DIR/witness.db     the latest cosigned checkpoint per origin (state.py)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from forum_client.checkpoint import key_name_problem
from forum_client.cosignature import cosign, cosigner_vkey, parse_vkey
from forum_client.envelope import SigningKey
from forum_client.errors import ConfigError, InvalidInputError
from forum_client.files import PRIVATE, PUBLIC, write_new_file

from .core import MAX_BODY_BYTES, LogKey, Refusal, decide, parse_request
from .state import WitnessState

log = logging.getLogger(__name__)

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
CONFIG_FILE = "witness.json"
STATE_FILE = "witness.db"


def init_witness(directory: Path | str, name: str) -> str:
    """Make a witness directory with a new key; returns its verifier key.

    Raises:
        InvalidInputError: ``name`` is not a valid key name.
        FileExistsError: ``directory`` already holds a witness key (nothing is changed).
    """
    problem = key_name_problem(name)
    if problem is not None:
        raise InvalidInputError.field("name", problem)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / KEY_FILE).exists():
        raise FileExistsError(f"{directory / KEY_FILE} exists: refusing to replace a witness key")
    key = SigningKey.generate()
    write_new_file(directory / KEY_FILE, key.to_pem(), PRIVATE)
    vkey = cosigner_vkey(name, key.public_bytes)
    write_new_file(directory / VKEY_FILE, (vkey + "\n").encode(), PUBLIC)
    write_new_file(directory / CONFIG_FILE, (json.dumps({"name": name}) + "\n").encode(), PUBLIC)
    return vkey


def load_log_keys(paths: Iterable[Path | str]) -> dict[str, LogKey]:
    """Read log verifier keys (``origin+keyid+base64(0x01||key)``, one per file).

    Raises:
        ConfigError: a file is unreadable, not a type-0x01 vkey, or repeats an origin.
    """
    logs: dict[str, LogKey] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
            name, alg, public_key = parse_vkey(text)
        except (OSError, UnicodeDecodeError, InvalidInputError) as exc:
            raise ConfigError(f"--log {path}: not a log verifier key ({exc})") from None
        if alg != 0x01:
            raise ConfigError(f"--log {path}: a log key has signature type 0x01, not {alg:#04x}")
        if name in logs:
            raise ConfigError(f"--log {path}: origin {name!r} given twice")
        logs[name] = LogKey(name, public_key)
    if not logs:
        raise ConfigError("give at least one --log VKEY_FILE")
    return logs


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str


class Witness:
    """One witness, ready to answer ``add-checkpoint``."""

    def __init__(self, directory: Path | str, logs: dict[str, LogKey]) -> None:
        directory = Path(directory)
        try:
            self.name = str(json.loads((directory / CONFIG_FILE).read_text())["name"])
            self.key = SigningKey.load(directory / KEY_FILE)
        except (OSError, ValueError, KeyError, InvalidInputError) as exc:
            raise ConfigError(
                f"{directory}: not a witness directory (run forum-witness init) ({exc})"
            ) from None
        self.vkey = cosigner_vkey(self.name, self.key.public_bytes)
        self.logs = logs
        self.state = WitnessState(directory / STATE_FILE)

    def close(self) -> None:
        self.state.close()

    def add_checkpoint(self, body: bytes, now: int) -> Answer:
        """Answer one request body: 200 and the cosignature line, or the refusal."""
        try:
            request = parse_request(body, MAX_BODY_BYTES)
            origin = _origin_of(request.note)
            cp = self.state.advance(
                origin, request.note, lambda stored: decide(request, self.logs, stored), now
            )
        except Refusal as exc:
            log.info("add-checkpoint refused: %d %s", exc.status, exc)
            return Answer(exc.status, exc.body, exc.content_type)
        line = cosign(cp.body(), self.name, self.key, timestamp=now)
        log.info("cosigned %s at size %d", cp.origin, cp.size)
        return Answer(200, line.encode("utf-8"), "text/plain; charset=utf-8")


def _origin_of(note: bytes) -> str:
    """The origin line of a note, for choosing the row to lock (checked again by decide)."""
    first, sep, _ = note.partition(b"\n")
    if not sep:
        raise Refusal(400, "not a checkpoint note: no origin line")
    try:
        return first.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "not a checkpoint note: origin is not UTF-8") from None


__all__ = ["Answer", "Witness", "init_witness", "load_log_keys"]
