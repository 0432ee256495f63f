"""The mTLS channel to a forum and the one place where gRPC failures become SDK errors."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from .errors import ConfigError, TransportError, Violation
from .profile import Bundle

T = TypeVar("T")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest request sent: the default genesis ``Limits.max_message_bytes``."""
RECEIVE_MARGIN_BYTES = 1024 * 1024
"""What a response may hold beyond one largest entry: a ``GetEntries`` batch is at most
4 MiB, or one entry alone when that entry is larger, plus framing and a checkpoint."""


def open_channel(bundle: Bundle, server: str | None = None) -> grpc.Channel:
    """A secure channel that presents the member's certificate and trusts only the forum CA."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=bundle.ca_certificate,
        private_key=bundle.client_key,
        certificate_chain=bundle.client_certificate,
    )
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES + RECEIVE_MARGIN_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    target, extra = channel_target(server or bundle.server)
    return grpc.secure_channel(target, credentials, options=options + extra)


def channel_target(server: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target (and channel options) for ``server``: one ``HOST:PORT``, or several
    separated by commas (servers of one forum in front of one PostgreSQL database).

    With several, calls are spread round-robin over the ones that are up and a server that
    goes down is skipped; the TLS name checked is the first host's.  IP addresses are used as
    they are; host names are resolved once, here (use a load balancer to follow DNS changes).
    """
    parts = [p.strip() for p in server.split(",") if p.strip()]
    if len(parts) <= 1:
        return server, []
    addresses: list[str] = []
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"server address {part!r} is not HOST:PORT")
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConfigError(f"cannot resolve {host!r}: {exc}") from exc
        for info in infos:
            ip = str(info[4][0])
            address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            if address not in addresses:
                addresses.append(address)
    first_host = parts[0].rpartition(":")[0].strip("[]")
    options: list[tuple[str, Any]] = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.ssl_target_name_override", first_host),
        ("grpc.default_authority", first_host),
    ]
    v6 = [a.startswith("[") for a in addresses]
    if any(v6) and not all(v6):
        raise ConfigError(f"{server!r} mixes IPv4 and IPv6 servers: list one family")
    return ("ipv6:" if all(v6) else "ipv4:") + ",".join(addresses), options


def error_from_rpc(exc: grpc.RpcError) -> TransportError:
    """Translate a failed call, reading the ``google.rpc`` details the server attached."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    violations: list[Violation] = []
    reason = ""
    retry_after = None
    status = rpc_status.from_call(exc) if isinstance(exc, grpc.Call) else None
    details: list[Any] = list(status.details) if status is not None else []
    for detail in details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [Violation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    name = code.name if code is not None else "UNKNOWN"
    return TransportError(f"{name}: {message}", name, violations, reason, retry_after)


def call(method: Callable[..., T], request: Any, timeout: float | None) -> T:
    """Invoke one unary RPC; raise TransportError on any failure."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc) from None
