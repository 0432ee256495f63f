"""What every RPC does around its handler, in one place: authenticate the caller, map domain
errors to precise gRPC statuses (with ``google.rpc`` details), and log one line per call
(method, member, status, duration; never key material)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from forum_client import errors
from forum_client.entries import Role

from ..auth import Authenticator, AuthError, Caller
from ..ratelimit import RateLimitedError

log = logging.getLogger("forum_server.calls")

Req = TypeVar("Req")
Resp = TypeVar("Resp")


_REJECT_CODES = {
    errors.REJECT_SIGNATURE: grpc.StatusCode.INVALID_ARGUMENT,
    errors.REJECT_BODY: grpc.StatusCode.INVALID_ARGUMENT,
    errors.REJECT_ORIGIN: grpc.StatusCode.INVALID_ARGUMENT,
    errors.REJECT_UNKNOWN_KEY: grpc.StatusCode.PERMISSION_DENIED,
    errors.REJECT_KEY_INACTIVE: grpc.StatusCode.PERMISSION_DENIED,
    errors.REJECT_PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    errors.REJECT_SUSPENDED: grpc.StatusCode.PERMISSION_DENIED,
    errors.REJECT_SEQUENCE: grpc.StatusCode.FAILED_PRECONDITION,
    errors.REJECT_CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
}
MAX_VIOLATIONS = 100


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, list[Any]]:
    """The gRPC code, message and google.rpc details for a domain error."""
    if isinstance(exc, AuthError):
        reason = exc.code.name.lower().replace("_", "-")  # unauthenticated, permission-denied
        return exc.code, str(exc), [error_details_pb2.ErrorInfo(reason=reason, domain="forum.v1")]
    if isinstance(exc, errors.EntryRejectedError):
        code = _REJECT_CODES.get(exc.reason, grpc.StatusCode.INVALID_ARGUMENT)
        info = error_details_pb2.ErrorInfo(reason=exc.reason, domain="forum.v1")
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=str(exc))
            ]
        )
        return code, str(exc), [info, bad]
    if isinstance(exc, errors.InvalidInputError):
        shown = exc.violations[:MAX_VIOLATIONS]
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.reason)
                for v in shown
            ]
        )
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc), [bad]
    if isinstance(exc, RateLimitedError):
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(
                seconds=int(exc.retry_after), nanos=int((exc.retry_after % 1) * 1e9)
            )
        )
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), [retry]
    if isinstance(exc, errors.StoreError):
        return grpc.StatusCode.UNAVAILABLE, "the forum's store is unavailable", []
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error", []


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    code, message, details = status_for(exc)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    for detail in details:
        status.details.add().Pack(detail)
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


def _identify(
    auth: Authenticator, context: grpc.aio.ServicerContext[Any, Any], roles: set[Role]
) -> Caller:
    auth_context = {k: list(v) for k, v in context.auth_context().items()}
    caller = auth.identify(auth_context)
    if caller.role not in roles:
        raise AuthError(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{caller.member_id} ({caller.role.label}) may not call this method",
        )
    return caller


class Guarded:
    """Base of servicers whose methods are decorated with :func:`unary` / :func:`stream`."""

    auth: Authenticator


S = TypeVar("S", bound=Guarded)


def unary(
    roles: set[Role],
) -> Callable[
    [Callable[[S, Req, Caller], Awaitable[Resp]]],
    Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
]:
    """Authenticate (only ``roles`` may call), run, map errors, log: for unary RPCs."""

    def wrap(
        handler: Callable[[S, Req, Caller], Awaitable[Resp]],
    ) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
        @functools.wraps(handler)
        async def run(self: S, request: Req, context: Any) -> Resp:
            started, member, outcome = time.perf_counter(), "-", "OK"
            try:
                caller = _identify(self.auth, context, roles)
                member = caller.member_id
                return await handler(self, request, caller)
            except Exception as exc:
                outcome = status_for(exc)[0].name
                await _abort(context, exc)
                raise  # unreachable: abort raises
            finally:
                _log_call(handler.__name__, member, outcome, started)

        return run

    return wrap


def stream(
    roles: set[Role],
) -> Callable[
    [Callable[[S, Req, Caller], AsyncIterator[Resp]]],
    Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
]:
    """The same as :func:`unary`, for server-streaming RPCs."""

    def wrap(
        handler: Callable[[S, Req, Caller], AsyncIterator[Resp]],
    ) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
        @functools.wraps(handler)
        async def run(self: S, request: Req, context: Any) -> AsyncIterator[Resp]:
            started, member, outcome = time.perf_counter(), "-", "OK"
            try:
                caller = _identify(self.auth, context, roles)
                member = caller.member_id
                async for item in handler(self, request, caller):
                    yield item
            except Exception as exc:
                outcome = status_for(exc)[0].name
                await _abort(context, exc)
            finally:
                _log_call(handler.__name__, member, outcome, started)

        return run

    return wrap


def _log_call(method: str, member: str, outcome: str, started: float) -> None:
    log.info(
        "call method=%s member=%s status=%s duration_ms=%.1f",
        method,
        member,
        outcome,
        (time.perf_counter() - started) * 1000,
    )


EVERYONE = {Role.OPERATOR, Role.MEMBER, Role.OBSERVER}
WRITERS = {Role.OPERATOR, Role.MEMBER}
OPERATOR = {Role.OPERATOR}
