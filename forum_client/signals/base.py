"""The signal type registry: :class:`SignalType`, :func:`register` and the lookups (see
:mod:`forum_client.signals`)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypeVar

from forum_client.errors import InvalidInputError
from forum_client.signals.versions import CURRENT


class ContentType(StrEnum):
    """What kind of content a signal was computed from."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    PDF = "pdf"
    TEXT = "text"
    URL = "url"
    OTHER = "other"


class SignalType(ABC):
    """One kind of signal.  Instances are stateless; the registry holds one of each."""

    name: ClassVar[str]
    """The wire name, e.g. ``"sha256"``: lowercase ASCII letters, digits and ``_``."""

    default_content_type: ClassVar[ContentType]
    """The content type assumed when a submission does not say."""

    @abstractmethod
    def normalize(self, value: str, version: int = CURRENT) -> str:
        """Return the canonical form of ``value`` under normalisation ``version``
        (:mod:`forum_client.signals.versions`; types whose rule never changed ignore it).

        Raises:
            InvalidInputError: field ``"value"``, if ``value`` can never be a valid signal.
        """

    def all_canonical(self, values: list[str], version: int = CURRENT) -> bool:
        """Whether every value is already in canonical form (``normalize(v, version) == v``).

        A fast path for checking whole batches; False says only that some value is not (the
        caller then finds which, and why, one by one).
        """
        try:
            return all(self.normalize(v, version) == v for v in values)
        except InvalidInputError:
            return False

    def __repr__(self) -> str:
        return f"<SignalType {self.name}>"


SIGNAL_TYPES: dict[str, SignalType] = {}
"""Every known signal type by name.  Filled by :func:`register`; treat as read-only."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")

_T = TypeVar("_T", bound=type[SignalType])


def register(cls: _T) -> _T:
    """Class decorator: add one instance of ``cls`` to :data:`SIGNAL_TYPES`.

    Raises:
        ValueError: the name is malformed or already taken (a programming error).
    """
    name = cls.name
    if not _NAME.fullmatch(name):
        raise ValueError(f"malformed signal type name {name!r}")
    if name in SIGNAL_TYPES:
        raise ValueError(f"signal type {name!r} is already registered")
    SIGNAL_TYPES[name] = cls()
    return cls


def get_signal_type(name: str) -> SignalType:
    """Look up a signal type by name (exact, or after stripping and lowercasing).

    Raises:
        InvalidInputError: field ``"type"``, if no such type is registered.
    """
    found = SIGNAL_TYPES.get(name) if type(name) is str else None
    if found is not None:
        return found
    if not isinstance(name, str):
        raise InvalidInputError.field("type", f"must be a string, got {type(name).__name__}")
    found = SIGNAL_TYPES.get(name.strip().lower())
    if found is not None:
        return found
    known = ", ".join(sorted(SIGNAL_TYPES))
    raise InvalidInputError.field(
        "type", f"unknown signal type {_preview(name)}; known types: {known}"
    )


def normalize(type_name: str, value: str, version: int = CURRENT) -> str:
    """Normalise ``value`` as a signal of type ``type_name`` (under ``version``, by default the
    current rules).

    Raises:
        InvalidInputError: field ``"type"`` for an unknown type, ``"value"`` for a bad value.
    """
    return get_signal_type(type_name).normalize(value, version)


@dataclass(frozen=True, slots=True)
class Signal:
    """A normalised signal.  Build it with :meth:`parse`; the constructor only accepts values
    that are already in canonical form (for example ones read back from the verified log)."""

    type: str
    value: str

    def __post_init__(self) -> None:
        signal_type = get_signal_type(self.type)
        if signal_type.name != self.type:
            raise InvalidInputError.field(
                "type", f"{self.type!r} is not canonical; use {signal_type.name!r}"
            )
        canonical = signal_type.normalize(self.value)
        if canonical != self.value:
            raise InvalidInputError.field(
                "value",
                f"not in canonical {self.type} form (expected {_preview(canonical)}); "
                "use Signal.parse",
            )

    @classmethod
    def parse(cls, type: str, value: str) -> Signal:
        """Normalise ``value`` as a signal of ``type``.

        Raises:
            InvalidInputError: field ``"type"`` or ``"value"``.
        """
        signal_type = get_signal_type(type)
        canonical = signal_type.normalize(value)
        # Already validated: skip __post_init__, which would normalise a second time.
        signal = object.__new__(cls)
        object.__setattr__(signal, "type", signal_type.name)
        object.__setattr__(signal, "value", canonical)
        return signal

    @property
    def content_type(self) -> ContentType:
        """The default content type of this signal's type."""
        return SIGNAL_TYPES[self.type].default_content_type


def _preview(value: str, limit: int = 80) -> str:
    """``repr`` of ``value`` cut to ``limit`` characters, for error messages."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"
