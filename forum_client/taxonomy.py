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


def load_labels(path: Path) -> tuple[Label, ...]:
    """Read a vocabulary file: a JSON list of {id, kind, title, description}."""
    try:
        doc = json.loads(read_bounded(path, MAX_TAXONOMY_BYTES, "a taxonomy file"))
        labels = tuple(
            Label(str(x["id"]), str(x["kind"]), str(x["title"]), str(x.get("description", "")))
            for x in doc
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError.field("taxonomy", f"{path}: {exc}") from None
    check_labels(labels)
    return labels
