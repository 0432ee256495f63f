"""mTLS identity -> member and role, before any handler logic runs.

gRPC's TLS checks the chain and expiry but not revocation, so every call also looks the
certificate up in the application's own list: a certificate must have been registered for
its member (``forum-admin`` does that on enrollment) and not revoked since (``credentials
reissue`` revokes the old ones).  Membership status comes from the log's own state, so a
suspension takes effect on the next call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from forum_client import entries as e
from forum_client.errors import ForumError
from forum_client.verifier import LogState

from .storage import ServerStore

MEMBER_URI_PREFIX = "urn:forum:member:"


class AuthError(ForumError):
    """The caller is not who it must be or may not call this: ``code`` is
    ``UNAUTHENTICATED`` (no valid, registered, unrevoked certificate) or
    ``PERMISSION_DENIED`` (its member is suspended, or its role may not call the method)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Caller:
    member_id: str
    role: e.Role
    certificate_sha256: bytes


@dataclass(frozen=True)
class _CertInfo:
    member_id: str | None
    sha256: bytes


def member_uri(member_id: str) -> str:
    return MEMBER_URI_PREFIX + member_id


class Authenticator:
    """Maps the peer certificate of a call to a :class:`Caller`, or raises AuthError."""

    def __init__(self, store: ServerStore, state: Callable[[], LogState]) -> None:
        self._store = store
        self._state = state
        self._certs: OrderedDict[bytes, _CertInfo] = OrderedDict()

    def identify(self, auth_context: dict[str, list[bytes]]) -> Caller:
        pems = auth_context.get("x509_pem_cert")
        if not pems:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        info = self._cert_info(pems[0])
        if info.member_id is None:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the client certificate names no member ({MEMBER_URI_PREFIX}<id> URI SAN)",
            )
        credential = self._store.credential(info.sha256)
        if credential is None or credential.member_id != info.member_id:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                f"certificate for {info.member_id} is not registered with this forum",
            )
        if credential.revoked_unix_ms is not None:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                f"certificate for {info.member_id} was revoked (credentials reissued)",
            )
        member = self._state().members.get(info.member_id)
        if member is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, f"{info.member_id} is not a member")
        if member.status is not e.MemberStatus.ACTIVE:
            raise AuthError(
                grpc.StatusCode.PERMISSION_DENIED, f"member {info.member_id} is suspended"
            )
        return Caller(info.member_id, member.role, info.sha256)

    def _cert_info(self, pem: bytes) -> _CertInfo:
        cached = self._certs.get(pem)
        if cached is not None:
            self._certs.move_to_end(pem)
            return cached
        cert = x509.load_pem_x509_certificate(pem)
        der = cert.public_bytes(Encoding.DER)
        member_id = None
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
                if uri.startswith(MEMBER_URI_PREFIX):
                    member_id = uri[len(MEMBER_URI_PREFIX) :]
        except x509.ExtensionNotFound:
            pass
        info = _CertInfo(member_id, hashlib.sha256(der).digest())
        self._certs[pem] = info
        if len(self._certs) > 4096:
            self._certs.popitem(last=False)
        return info
