"""What hashing media shares: the optional ``media`` extra and the PDQ quality floor."""

from __future__ import annotations

from typing import Final

from forum_client.errors import ConfigError

DEFAULT_MIN_QUALITY: Final = 50
"""PDQ hashes (of images, and of video frames) of lower quality are dropped (Meta's
recommendation)."""
MEDIA_EXTRA_HINT: Final = "pip install 'shared-signal-forum[media]'"


class MediaExtraMissing(ConfigError):
    """Hashing media needs the optional ``media`` extra (pdqhash, Pillow and PyAV)."""


__all__ = ["DEFAULT_MIN_QUALITY", "MEDIA_EXTRA_HINT", "MediaExtraMissing"]
