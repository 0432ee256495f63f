"""What every RPC does around its handler, in one place: authenticate the caller, map domain
errors to precise gRPC statuses (with ``google.rpc`` details), and log one line per call
(method, member, status, duration; never key material)."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from forum_client import errors
from forum_client.entries import Role
from forum_client.protocol import messages as forum_pb2

from ..auth import Authenticator, AuthError, Caller
from ..limits import ConcurrencyLimiter
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
    errors.REJECT_THRESHOLD: grpc.StatusCode.PERMISSION_DENIED,
    errors.REJECT_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
}
MAX_VIOLATIONS = 100


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, list[Any]]:
    """The gRPC code, message and google.rpc details for a domain error.  Anything else is an
    internal error, logged here with its traceback (call this once per failed call)."""
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


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], mapped: tuple[grpc.StatusCode, str, list[Any]]
) -> None:
    code, message, details = mapped
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    for detail in details:
        status.details.add().Pack(detail)
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


class Undecodable:
    """What a request that did not parse becomes, so the guard can answer INVALID_ARGUMENT
    with details (gRPC would otherwise answer UNKNOWN before any of our code runs)."""

    def __init__(self, message_name: str, error: str) -> None:
        self.message_name = message_name
        self.error = error


def _decoder(message_class: Any) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Undecodable(message_class.DESCRIPTOR.name, str(exc) or "malformed")

    return decode


def add_service(server: grpc.aio.Server, servicer: object, service: str) -> None:
    """Register ``servicer``'s methods for ``forum.v1.<service>``; a request that does not
    parse reaches the guard as :class:`Undecodable`."""
    descriptor = forum_pb2.DESCRIPTOR.services_by_name[service]
    handlers = {}
    for method in descriptor.methods:
        request = getattr(forum_pb2, method.input_type.name)
        response = getattr(forum_pb2, method.output_type.name)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_decoder(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )


def _check_decoded(request: object) -> None:
    if isinstance(request, Undecodable):
        raise errors.InvalidInputError.field(
            "request", f"not a valid {request.message_name}: {request.error}"
        )


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
    # Told of every call: (method, status code name, seconds).  Set for metrics.
    on_call: Callable[[str, str, float], None] | None = None
    # Awaited before every call: a follower takes in what the leader committed, so that
    # no call sees the log (or the membership) older than something already acknowledged.
    before_call: Callable[[], Awaitable[None]] | None = None
    limiter: ConcurrencyLimiter | None = None  # each member's share of the call slots

    def _hold(self, member: str, streaming: bool) -> contextlib.AbstractContextManager[None]:
        if self.limiter is None:
            return contextlib.nullcontext()
        return self.limiter.hold(member, streaming=streaming)


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
                if self.before_call is not None:
                    await self.before_call()
                caller = _identify(self.auth, context, roles)
                member = caller.member_id
                _check_decoded(request)
                with self._hold(member, streaming=False):
                    return await handler(self, request, caller)
            except Exception as exc:
                mapped = status_for(exc)  # once: an internal error is logged once
                outcome = mapped[0].name
                await _abort(context, mapped)
                raise  # unreachable: abort raises
            finally:
                _log_call(self, handler.__name__, member, outcome, started)

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
                if self.before_call is not None:
                    await self.before_call()
                caller = _identify(self.auth, context, roles)
                member = caller.member_id
                _check_decoded(request)
                with self._hold(member, streaming=True):
                    async for item in handler(self, request, caller):
                        yield item
            except Exception as exc:
                mapped = status_for(exc)
                outcome = mapped[0].name
                await _abort(context, mapped)
            finally:
                _log_call(self, handler.__name__, member, outcome, started)

        return run

    return wrap


def _log_call(servicer: Guarded, method: str, member: str, outcome: str, started: float) -> None:
    seconds = time.perf_counter() - started
    log.info(
        "call method=%s member=%s status=%s duration_ms=%.1f",
        method,
        member,
        outcome,
        seconds * 1000,
    )
    if servicer.on_call is not None:
        servicer.on_call(method, outcome, seconds)


EVERYONE = {Role.OPERATOR, Role.MEMBER, Role.OBSERVER}
WRITERS = {Role.OPERATOR, Role.MEMBER}
OPERATOR = {Role.OPERATOR}
