"""How each forum signal type is named in STIX 2.1, MISP and python-threatexchange.

=========  ==========================  =====================  ================================
forum      STIX 2.1 pattern            MISP attribute         python-threatexchange 1.2
=========  ==========================  =====================  ================================
md5        ``file:hashes.MD5``         ``md5``                ``md5`` (``video_md5`` when the
                                                              content type is video)
sha1       ``file:hashes.'SHA-1'``     ``sha1``               none: pytx has no SHA-1 type
sha256     ``file:hashes.'SHA-256'``   ``sha256``             ``sha256`` (this extension's)
pdq        ``file:hashes.PDQ``         ``text`` + type tag    ``pdq``
url        ``url:value``               ``url``                ``forum_url`` (this extension's)
domain     ``domain-name:value``       ``domain``             ``forum_domain`` (this extension's)
vpdq       ``file:hashes.VPDQ``        ``text`` + type tag    ``vpdq`` (pytx's vpdq extension)
=========  ==========================  =====================  ================================

PDQ: STIX allows custom hash names and the community writes ``PDQ``; MISP has no ``pdq``
attribute type (PyMISP refuses unknown types), so a PDQ hash is a ``text`` attribute tagged
``shared-signal-forum:signal-type="pdq"``, which the importer reads back.  vPDQ (issue 14)
and any signal type added later are written the same way: STIX custom hash name ``VPDQ``
(the value is python-threatexchange's vPDQ JSON, as pytx and HMA exchange it), MISP ``text``
with its ``signal-type`` tag, python-threatexchange under its own name.

Labels become MISP tags ``shared-signal-forum:<kind>="<id>"`` (``behaviour:x`` ->
``shared-signal-forum:behaviour="x"``) and STIX ``labels``.
"""

from __future__ import annotations

import re

STIX_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "pdq": "PDQ"}
"""Forum hash type -> STIX hash name (pattern path ``file:hashes.<name>``)."""

STIX_HASH_TYPES = {
    **{name.upper(): type_ for type_, name in STIX_HASH_NAMES.items()},
    "SHA1": "sha1",
    "SHA256": "sha256",
}
"""STIX hash name (upper-cased) -> forum type; also the spellings without a dash."""

STIX_OBJECT_PATHS = {"url": "url:value", "domain": "domain-name:value"}

MISP_TYPES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "pdq": "text",
    "url": "url",
    "domain": "domain",
}
MISP_CATEGORIES = {
    "md5": "Payload delivery",
    "sha1": "Payload delivery",
    "sha256": "Payload delivery",
    "pdq": "Payload delivery",
    "url": "Network activity",
    "domain": "Network activity",
}
MISP_FORUM_TYPES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "url": "url"}
MISP_FORUM_TYPES.update({"domain": "domain", "hostname": "domain", "link": "url"})
"""MISP attribute type -> forum type (``text`` is PDQ only with the type tag)."""

TAG_NAMESPACE = "shared-signal-forum"
TYPE_TAG_PDQ = f'{TAG_NAMESPACE}:signal-type="pdq"'
_TYPE_TAG = re.compile(rf'{TAG_NAMESPACE}:signal-type="([a-z][a-z0-9_]*)"')


def stix_hash_name(forum_type: str) -> str:
    """The STIX hash name of a forum type: the table above, else the type upper-cased (a
    custom hash name, e.g. ``VPDQ`` for a type added later)."""
    return STIX_HASH_NAMES.get(forum_type, forum_type.upper())


def misp_type(forum_type: str) -> tuple[str, str, str | None]:
    """``(MISP type, category, type tag or None)`` of a forum type; a type MISP has no
    attribute type for is ``text`` with a ``signal-type`` tag."""
    if forum_type in MISP_TYPES and forum_type != "pdq":
        return MISP_TYPES[forum_type], MISP_CATEGORIES[forum_type], None
    return "text", "Payload delivery", f'{TAG_NAMESPACE}:signal-type="{forum_type}"'


def type_from_tags(tags: list[str]) -> str | None:
    """The forum type a ``signal-type`` tag names, if any."""
    for tag in tags:
        match = _TYPE_TAG.fullmatch(tag)
        if match:
            return match.group(1)
    return None


_LABEL_TAG = re.compile(rf'{TAG_NAMESPACE}:(behaviour|entity|incident)="([a-z0-9][a-z0-9-]*)"')


def label_to_tag(label: str) -> str:
    """``behaviour:x`` -> ``shared-signal-forum:behaviour="x"`` (a MISP machine tag)."""
    kind, _, name = label.partition(":")
    return f'{TAG_NAMESPACE}:{kind}="{name}"'


def tag_to_label(tag: str) -> str | None:
    """The forum label of a MISP tag, or None for a tag that is not one."""
    match = _LABEL_TAG.fullmatch(tag)
    return f"{match.group(1)}:{match.group(2)}" if match else None


__all__ = [
    "MISP_CATEGORIES",
    "MISP_FORUM_TYPES",
    "MISP_TYPES",
    "STIX_HASH_NAMES",
    "STIX_HASH_TYPES",
    "STIX_OBJECT_PATHS",
    "TAG_NAMESPACE",
    "TYPE_TAG_PDQ",
    "label_to_tag",
    "misp_type",
    "stix_hash_name",
    "tag_to_label",
    "type_from_tags",
]
