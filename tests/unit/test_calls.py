"""forum_server.services._calls: an internal error becomes INTERNAL and is logged once, with
its traceback; domain errors keep their own status (and are not logged as internal)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest

from forum_client import entries as e
from forum_client.errors import ForumError, InvalidInputError
from forum_server.auth import AuthError, Caller
from forum_server.services._calls import EVERYONE, Guarded, unary


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.aborted: list[grpc.StatusCode] = []

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    async def abort(self, code: grpc.StatusCode, details: str, metadata: Any) -> None:
        self.aborted.append(code)
        raise _Aborted(details)


class _Auth:
    def identify(self, auth_context: dict[str, list[bytes]]) -> Caller:
        return Caller("alice", e.Role.MEMBER, b"\0" * 32)


class _Service(Guarded):
    def __init__(self, error: Exception) -> None:
        self.auth = _Auth()  # type: ignore[assignment]
        self.error = error

    @unary(EVERYONE)
    async def Explode(self, request: object, caller: Caller) -> object:
        raise self.error


def _call(error: Exception) -> grpc.StatusCode:
    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(_Service(error).Explode(object(), context))  # type: ignore[arg-type]
    [code] = context.aborted
    return code


def test_an_internal_error_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="forum_server.calls"):
        assert _call(RuntimeError("disk on fire")) is grpc.StatusCode.INTERNAL
    internal = [r for r in caplog.records if r.getMessage() == "internal error"]
    assert len(internal) == 1 and internal[0].exc_info is not None
    assert "disk on fire" in str(internal[0].exc_info[1])
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("call ")]
    assert "method=Explode member=alice status=INTERNAL" in line


def test_domain_errors_keep_their_status_and_are_not_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="forum_server.calls"):
        assert _call(InvalidInputError.field("x", "bad")) is grpc.StatusCode.INVALID_ARGUMENT
        denied = AuthError(grpc.StatusCode.PERMISSION_DENIED, "no")
        assert _call(denied) is grpc.StatusCode.PERMISSION_DENIED
    assert not [r for r in caplog.records if r.getMessage() == "internal error"]


def test_auth_error_is_a_forum_error() -> None:
    assert isinstance(AuthError(grpc.StatusCode.UNAUTHENTICATED, "who?"), ForumError)
