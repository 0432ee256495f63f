"""The label vocabulary: versioned, published by the operator as a signed log entry.

Three kinds of label: ``behaviour:*`` (what the content does, after the industry's
behavioural taxonomy), ``entity:*`` (designated terrorist and violent-extremist
organisations) and ``incident:*`` (crisis-response incidents; an opened incident also
makes its ``incident:<id>`` label valid).  A label not in the current vocabulary is an
error, never silently kept.

>>> [label.id for label in DEFAULT_LABELS if label.kind == "behaviour"][:2]
['behaviour:imminent-credible-threat', 'behaviour:graphic-violence-defenceless']
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .entries import Label
from .errors import InvalidInputError
from .files import MAX_TAXONOMY_BYTES, read_bounded

KINDS = ("behaviour", "entity", "incident")
LABEL_ID_RE = re.compile(r"(behaviour|entity|incident):[a-z0-9][a-z0-9-]{0,62}")

DEFAULT_VERSION = 1
DEFAULT_LABELS: tuple[Label, ...] = (
    Label(
        "behaviour:imminent-credible-threat",
        "behaviour",
        "Imminent credible threat",
        "A credible threat of imminent violence against people or places.",
    ),
    Label(
        "behaviour:graphic-violence-defenceless",
        "behaviour",
        "Graphic violence against defenceless people",
        "Depiction of killing, torture or abuse of defenceless people.",
    ),
    Label(
        "behaviour:glorification-terrorist-acts",
        "behaviour",
        "Glorification of terrorist acts",
        "Praise or celebration of terrorist acts or their perpetrators.",
    ),
    Label(
        "behaviour:radicalisation-recruitment-instruction",
        "behaviour",
        "Radicalisation, recruitment or instruction",
        "Content that radicalises, recruits, or instructs in terrorist methods.",
    ),
    Label(
        "behaviour:terrorist-publication",
        "behaviour",
        "Terrorist publication or attacker manifesto",
        "Official publications of designated groups, or an attacker's manifesto.",
    ),
    Label("entity:isil", "entity", "ISIL (Da'esh)", "Designated entity."),
    Label("entity:al-qaida", "entity", "Al-Qaida", "Designated entity."),
    Label("entity:al-shabaab", "entity", "Al-Shabaab", "Designated entity."),
    Label("entity:boko-haram", "entity", "Boko Haram", "Designated entity."),
    Label(
        "entity:violent-extremist-other",
        "entity",
        "Other violent extremist actor",
        "An actor not individually listed; describe it in the descriptor's scope.",
    ),
)


def check_labels(labels: tuple[Label, ...]) -> None:
    """Raise InvalidInputError unless every label is well formed and ids are unique."""
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not LABEL_ID_RE.fullmatch(label.id):
            raise InvalidInputError.field(
                f"labels[{i}].id", f"{label.id!r} is not kind:name (kinds: {', '.join(KINDS)})"
            )
        if label.kind != label.id.split(":", 1)[0]:
            raise InvalidInputError.field(f"labels[{i}].kind", "does not match the id's prefix")
        if not label.title.strip():
            raise InvalidInputError.field(f"labels[{i}].title", "empty")
        if label.id in seen:
            raise InvalidInputError.field(f"labels[{i}].id", f"{label.id} twice")
        seen.add(label.id)


_SHAPE = 'a JSON list of {"id", "kind", "title", "description"} objects'


def load_labels(path: Path) -> tuple[Label, ...]:
    """Read a vocabulary file: a JSON list of {id, kind, title, description}.

    Raises InvalidInputError naming the file and, for a label of the wrong shape, which one:

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "labels.json"
    >>> _ = bad.write_text('[{"id": "entity:x", "title": "X"}]')
    >>> load_labels(bad)
    Traceback (most recent call last):
    ...
    forum_client.errors.InvalidInputError: taxonomy: ...labels.json: labels[0] has no "kind" (...)
    """
    try:
        doc = json.loads(read_bounded(path, MAX_TAXONOMY_BYTES, "a taxonomy file"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError.field("taxonomy", f"{path}: {exc}") from None

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError.field("taxonomy", f"{path}: {what} (it should be {_SHAPE})")

    if not isinstance(doc, list):
        raise bad(f"a JSON {type(doc).__name__}, not a list")
    labels = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise bad(f"labels[{i}] is not an object")
        for key in ("id", "kind", "title"):
            if key not in item:
                raise bad(f'labels[{i}] has no "{key}"')
        fields = [item["id"], item["kind"], item["title"], item.get("description", "")]
        if not all(isinstance(x, str) for x in fields):
            raise bad(f"labels[{i}]: id, kind, title and description must be strings")
        labels.append(Label(*fields))
    check_labels(tuple(labels))
    return tuple(labels)
