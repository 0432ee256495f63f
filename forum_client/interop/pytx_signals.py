"""python-threatexchange signal types that the forum's values need and pytx 1.2 lacks.

pytx compares URLs as raw strings and has no domain, file MD5/SHA-1/SHA-256 types (its MD5
and SHA-256 are ``video_md5`` and ``video_sha256``, for video content).  These types fill the
gaps; the URL and domain ones normalise a query exactly as the forum does (the forum's own
:func:`forum_client.signals.normalize`), so ``threatexchange match url -- "HTTPS://Example.COM:443/a"``
finds the forum's ``https://example.com/a``.

Needs the ``pytx`` extra.  No ``from __future__ import annotations`` here: pytx reads these
classes at run time.
"""

import hashlib
import pathlib
import typing as t

from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.file import FileContent
from threatexchange.content_type.url import URLContent
from threatexchange.signal_type import signal_base
from threatexchange.signal_type.index import IndexMatch, SignalTypeIndex

from ..errors import InvalidInputError
from ..signals import normalize


class ForumNormalizingIndex(signal_base.TrivialSignalTypeIndex):  # type: ignore[type-arg]
    """Exact matches after normalising the query with the forum's rule for ``forum_type``."""

    forum_type: t.ClassVar[str] = "url"

    def query(self, query: str) -> list[IndexMatch]:  # type: ignore[type-arg]
        matches: list[IndexMatch] = []  # type: ignore[type-arg]
        for candidate in self.candidates(query):
            matches.extend(super().query(candidate))
        return matches

    @classmethod
    def candidates(cls, query: str) -> list[str]:
        try:
            return [normalize(cls.forum_type, query.strip())]
        except InvalidInputError:
            return []


class _UrlIndex(ForumNormalizingIndex):
    forum_type = "url"


class _DomainIndex(ForumNormalizingIndex):
    """A domain, or the host of a URL, and each parent domain of it (``a.b.example`` finds a
    forum signal on ``b.example``)."""

    forum_type = "domain"

    @classmethod
    def candidates(cls, query: str) -> list[str]:
        text = query.strip()
        try:
            if "://" in text:
                url = normalize("url", text)
                text = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
            labels = normalize("domain", text).split(".")
        except InvalidInputError:
            return []
        return [".".join(labels[i:]) for i in range(len(labels) - 1)]


class ForumURLSignal(signal_base.SimpleSignalType, signal_base.MatchesStr):
    """A URL normalised by the forum's rules (``forum_url``); queries are normalised too."""

    @classmethod
    def get_name(cls) -> str:
        return "forum_url"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [URLContent]

    @classmethod
    def get_index_cls(cls) -> type[SignalTypeIndex]:  # type: ignore[type-arg]
        return _UrlIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return normalize("url", signal_str)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def matches_str(cls, signal: str, haystack: str) -> signal_base.SignalComparisonResult:
        return signal_base.SignalComparisonResult.from_bool_only(
            signal in _UrlIndex.candidates(haystack)
        )

    @staticmethod
    def get_examples() -> list[str]:
        return ["https://example.com/a"]


class ForumDomainSignal(signal_base.SimpleSignalType, signal_base.MatchesStr):
    """A domain name normalised by the forum's rules (``forum_domain``); a query URL matches
    by its host and the host's parent domains."""

    @classmethod
    def get_name(cls) -> str:
        return "forum_domain"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [URLContent]

    @classmethod
    def get_index_cls(cls) -> type[SignalTypeIndex]:  # type: ignore[type-arg]
        return _DomainIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return normalize("domain", signal_str)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def matches_str(cls, signal: str, haystack: str) -> signal_base.SignalComparisonResult:
        return signal_base.SignalComparisonResult.from_bool_only(
            signal in _DomainIndex.candidates(haystack)
        )

    @staticmethod
    def get_examples() -> list[str]:
        return ["example.com"]


class _FileDigestSignal(signal_base.SimpleSignalType, signal_base.BytesHasher):
    """A cryptographic digest of a file's bytes."""

    forum_type: t.ClassVar[str] = "md5"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [FileContent]

    @classmethod
    def get_index_cls(cls) -> type[SignalTypeIndex]:  # type: ignore[type-arg]
        return signal_base.TrivialSignalTypeIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return normalize(cls.forum_type, signal_str)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return hashlib.new(cls.forum_type, bytes_).hexdigest()

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        digest = hashlib.new(cls.forum_type)
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


class FileMD5Signal(_FileDigestSignal):
    """MD5 of any file (``file_md5``); pytx's own ``video_md5`` covers videos only."""

    forum_type = "md5"

    @classmethod
    def get_name(cls) -> str:
        return "file_md5"


class FileSHA1Signal(_FileDigestSignal):
    """SHA-1 of any file (``file_sha1``): pytx 1.2 has no SHA-1 type."""

    forum_type = "sha1"

    @classmethod
    def get_name(cls) -> str:
        return "file_sha1"


class FileSHA256Signal(_FileDigestSignal):
    """SHA-256 of any file (``file_sha256``); pytx's own ``video_sha256`` covers videos only."""

    forum_type = "sha256"

    @classmethod
    def get_name(cls) -> str:
        return "file_sha256"


EXTENSION_SIGNAL_TYPES = (
    ForumURLSignal,
    ForumDomainSignal,
    FileMD5Signal,
    FileSHA1Signal,
    FileSHA256Signal,
)
