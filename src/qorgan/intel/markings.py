"""TLP 2.0 and PAP markings on STIX 2.1 objects, and the rule of who may receive what.

Everything here works on plain STIX JSON dicts and never mutates its input: the TAXII server and
the exporters call it on objects they hold, and the same functions serve the web layer's badges.

TLP 2.0 in STIX 2.1 is the OASIS "TLP 2.0 marking definition" property extension
(``extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d``): five fixed
``marking-definition`` objects, each with ``created`` 2022-10-01, a ``name`` such as
``TLP:AMBER+STRICT`` and an ``extensions`` block holding ``extension_type: property-extension``
and ``tlp_2_0``. They carry no ``created_by_ref``: the published objects have none, and another
instance of a TLP 2.0 marking must not be made, so we copy them to the letter (source:
oasis-open/cti-stix-common-objects, ``extension-definition-specifications/tlp-2.0/``, the
extension's JSON schema enumerates the ids and names, ``examples/`` holds the objects).

TLP 1.0 as predefined by STIX 2.1 (the four ``definition_type: tlp`` objects the ``stix2``
library ships as TLP_WHITE/GREEN/AMBER/RED) is read as its TLP 2.0 equivalent, WHITE as CLEAR.
We only ever write TLP 2.0.

PAP is written with the OASIS "PAP marking definition" property extension
(``extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b``, same repository,
``extension-definition-specifications/pap-marking-definition-f8d/``), whose fixed objects carry
``extensions.<id>.pap``. We chose it over what OpenCTI emits because it is the published,
fixed-id form a STIX validator accepts, while OpenCTI's export is a deprecated-style
``definition_type: "pap"`` / ``definition: {"pap": "pap:green"}`` object (not a STIX 2.1
definition type) whose id is OpenCTI's own: uuid5 over ``{"definition":"PAP:GREEN",
"definition_type":"PAP"}`` in OpenCTI's namespace. We still *read* OpenCTI's ids (that rule
reproduces the PAP:CLEAR and PAP:GREEN ids seen in OpenCTI's test fixtures; AMBER and RED are
computed the same way) and the extension's PAP:WHITE, read as CLEAR.

Which level governs an object (:func:`tlp_of`, :func:`pap_of`): every marking reference on it
counts, the object-level ``object_marking_refs`` and the ``marking_ref`` of each
``granular_markings`` entry, and when several TLP (or PAP) markings apply the most restrictive
wins. A granular TLP:RED on one property therefore makes the whole object RED for sharing: we
share whole objects, so the strictest part decides (strip or redact the part to share the rest).
Marking references we do not know (statements, copyrights, other extensions) are ignored.

Who may receive (:func:`may_receive`) is the rule the TAXII server applies per object. It reads
each TLP 2.0 level by FIRST's definition ("Traffic Light Protocol (TLP) FIRST Standards
Definitions and Usage Guidance, Version 2.0"; the one-line forms at https://www.first.org/tlp/),
and the sender always receives its own objects:

- CLEAR: "Recipients can spread this to the world, there is no limit on disclosure."
  Anyone receives it.
- GREEN: "Limited disclosure, recipients can spread this within their community." The sender's
  community (``Audience.community``) receives it, and so does everyone who may receive AMBER
  (the organisation and its clients are within its community).
- AMBER: "Limited disclosure, recipients can only spread this on a need-to-know basis within
  their organization and its clients." The sender's organisation and the sender's clients
  (``Audience.clients``) receive it, and so does everyone who may receive AMBER+STRICT.
- AMBER+STRICT: "Restricts sharing to the organization only." Only the sender's organisation.
- RED: "For the eyes and ears of individual recipients only, no further disclosure." Only the
  recipients the sender named (``Audience.named``) and the sender itself.

Organisations are ids: a member of the sender's organisation *is* the sender's id. The audiences
of CLEAR to AMBER+STRICT nest (each contains the next, stricter one's). RED's named recipients
are the exception: they are named for RED, which makes them neither clients nor community, so
being named does not by itself open GREEN or AMBER (add them to the community to share GREEN),
and never AMBER+STRICT, which does not leave the organisation.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from qorgan.core.errors import QorganError
from qorgan.core.tlp import Pap, Tlp

__all__ = [
    "PAP_EXTENSION_ID",
    "TLP2_EXTENSION_ID",
    "Audience",
    "MarkingError",
    "Pap",
    "Tlp",
    "filter_for",
    "mark",
    "mark_pap",
    "may_receive",
    "pap_marking_definition",
    "pap_of",
    "parse_pap",
    "parse_tlp",
    "tlp_marking_definition",
    "tlp_of",
]


class MarkingError(QorganError):
    """A marking that cannot be read or applied; the message never repeats the input."""


#: The OASIS TLP 2.0 property extension (cti-stix-common-objects, tlp-2.0).
TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_TLP2_CREATED = "2022-10-01T00:00:00.000Z"
_TLP2_IDS: dict[Tlp, str] = {
    Tlp.clear: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.green: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.amber: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.amber_strict: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.red: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
#: The STIX 2.1 predefined TLP 1.0 markings (stix2's TLP_WHITE/GREEN/AMBER/RED), read only.
_TLP1_IDS: dict[str, Tlp] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": Tlp.clear,  # TLP:WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": Tlp.green,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": Tlp.amber,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": Tlp.red,
}
_TLP_BY_ID: dict[str, Tlp] = {**{v: k for k, v in _TLP2_IDS.items()}, **_TLP1_IDS}

#: The OASIS PAP property extension (cti-stix-common-objects, pap-marking-definition-f8d).
PAP_EXTENSION_ID = "extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b"
#: Each PAP marking's id and ``created`` as published (the objects do not share one date; the
#: ids are in the extension's schema, the dates in its examples/pap-*.json).
_PAP_OBJECTS: dict[Pap, tuple[str, str]] = {
    Pap.clear: ("marking-definition--ad15a0cd-55b6-4588-a14c-a66105329b92", "2022-10-01"),
    Pap.green: ("marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9", "2022-10-09"),
    Pap.amber: ("marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab", "2022-10-02"),
    Pap.red: ("marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e", "2022-10-06"),
}
_PAP_BY_ID: dict[str, Pap] = {
    **{ident: level for level, (ident, _) in _PAP_OBJECTS.items()},
    # The extension's PAP:WHITE, the older name of CLEAR.
    "marking-definition--a3bea94c-b469-41dc-9cfe-d6e7daba7730": Pap.clear,
    # OpenCTI's own PAP markings (uuid5, OpenCTI namespace, see the module docstring).
    "marking-definition--4cdff7eb-acb8-543f-8573-829eb9fe8b34": Pap.clear,
    "marking-definition--89484dde-e3d2-547f-a6c6-d14824429eb1": Pap.green,
    "marking-definition--a6f20d4d-0360-59b6-ba22-3b48707828b1": Pap.amber,
    "marking-definition--4e4e3b84-de45-53df-9d9b-b21207699fd8": Pap.red,
}


def tlp_marking_definition(level: Tlp) -> dict[str, Any]:
    """The published TLP 2.0 ``marking-definition`` object for ``level``, as a fresh dict."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": _TLP2_IDS[level],
        "created": _TLP2_CREATED,
        "name": level.label,
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level.value}
        },
    }


def pap_marking_definition(level: Pap) -> dict[str, Any]:
    """The published PAP ``marking-definition`` object for ``level``, as a fresh dict."""
    ident, created = _PAP_OBJECTS[level]
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ident,
        "created": f"{created}T00:00:00.000Z",
        "name": level.label,
        "extensions": {
            PAP_EXTENSION_ID: {"extension_type": "property-extension", "pap": level.value}
        },
    }


def _marking_refs(obj: Mapping[str, Any]) -> list[str]:
    """Every marking id on ``obj``, object-level then granular; refuses malformed lists."""
    if not isinstance(obj, Mapping):
        raise MarkingError("a STIX object must be a JSON object")
    refs = obj.get("object_marking_refs", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise MarkingError("object_marking_refs must be a list of marking-definition ids")
    found = list(refs)
    granular = obj.get("granular_markings", [])
    if not isinstance(granular, list):
        raise MarkingError("granular_markings must be a list")
    for entry in granular:
        if not isinstance(entry, Mapping):
            raise MarkingError("each granular marking must be a JSON object")
        ref = entry.get("marking_ref")
        if ref is not None:  # a granular marking may carry a language instead
            if not isinstance(ref, str):
                raise MarkingError("a granular marking_ref must be a marking-definition id")
            found.append(ref)
    return found


def tlp_of(obj: Mapping[str, Any]) -> Tlp | None:
    """The TLP governing ``obj`` (TLP 2.0 or 1.0 ids), the most restrictive of several; or None."""
    levels = [_TLP_BY_ID[r] for r in _marking_refs(obj) if r in _TLP_BY_ID]
    return max(levels) if levels else None


def pap_of(obj: Mapping[str, Any]) -> Pap | None:
    """The PAP governing ``obj`` (OASIS or OpenCTI ids), the most restrictive; or None."""
    levels = [_PAP_BY_ID[r] for r in _marking_refs(obj) if r in _PAP_BY_ID]
    return max(levels) if levels else None


def _set_marking(obj: Mapping[str, Any], replaced: Iterable[str], new_id: str) -> dict[str, Any]:
    """A deep copy of ``obj`` whose object-level refs drop ``replaced`` and end with ``new_id``."""
    _marking_refs(obj)  # refuse malformed input before copying
    out = copy.deepcopy(dict(obj))
    drop = set(replaced)
    kept = [r for r in out.get("object_marking_refs", []) if r not in drop]
    out["object_marking_refs"] = [*kept, new_id]
    return out


def mark(obj: Mapping[str, Any], level: Tlp) -> dict[str, Any]:
    """A copy of ``obj`` marked ``level``: other TLP refs (2.0 or 1.0) go, other markings stay.

    Only ``object_marking_refs`` changes; granular markings are kept as they are, so a granular
    TLP stricter than ``level`` still governs the copy (see :func:`tlp_of`).
    """
    return _set_marking(obj, _TLP_BY_ID, _TLP2_IDS[Tlp(level)])


def mark_pap(obj: Mapping[str, Any], level: Pap) -> dict[str, Any]:
    """A copy of ``obj`` marked ``level`` with the OASIS PAP marking; other PAP refs go."""
    return _set_marking(obj, _PAP_BY_ID, _PAP_OBJECTS[Pap(level)][0])


_L = TypeVar("_L", Tlp, Pap)
_SEPARATORS = re.compile(r"[\s:_\-+./]+")
_TLP_WORDS: dict[str, Tlp] = {
    "clear": Tlp.clear,
    "white": Tlp.clear,
    "green": Tlp.green,
    "amber": Tlp.amber,
    "amber strict": Tlp.amber_strict,
    "amberstrict": Tlp.amber_strict,
    "red": Tlp.red,
}
_PAP_WORDS: dict[str, Pap] = {
    "clear": Pap.clear,
    "white": Pap.clear,
    "green": Pap.green,
    "amber": Pap.amber,
    "red": Pap.red,
}


def _lookup(text: object, prefix: str, table: Mapping[str, _L]) -> _L | None:
    """``text`` read leniently: lower case, separators as one space, an optional ``prefix``."""
    if not isinstance(text, str):
        raise MarkingError(f"a {prefix.upper()} level must be text")
    words = _SEPARATORS.sub(" ", text.strip().lower()).strip()
    for candidate in (words, words.removeprefix(prefix).strip()):  # "tlp:red", "TLPRED"
        if candidate in table:
            return table[candidate]
    return None


def parse_tlp(text: str) -> Tlp:
    """Read a TLP written in a feed or CSV: ``TLP:AMBER+STRICT``, ``tlp:white``, ``amber strict``.

    Case, a ``TLP`` prefix and separators (``:``, ``+``, ``-``, ``_``, spaces) do not matter;
    WHITE (TLP 1.0) reads as CLEAR. Anything else is refused with :class:`MarkingError`.
    """
    level = _lookup(text, "tlp", _TLP_WORDS)
    if level is None:
        raise MarkingError(
            "not a TLP level: expected TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT or"
            " TLP:RED (TLP:WHITE is read as TLP:CLEAR)"
        )
    return level


def parse_pap(text: str) -> Pap:
    """Read a PAP written in a feed or CSV: ``PAP:AMBER``, ``pap white``, ``green``.

    Case, a ``PAP`` prefix and separators do not matter; WHITE reads as CLEAR. Anything else is
    refused with :class:`MarkingError`.
    """
    level = _lookup(text, "pap", _PAP_WORDS)
    if level is None:
        raise MarkingError(
            "not a PAP level: expected PAP:CLEAR, PAP:GREEN, PAP:AMBER or PAP:RED"
            " (PAP:WHITE is read as PAP:CLEAR)"
        )
    return level


@dataclass(frozen=True, slots=True)
class Audience:
    """The sender's relationships that decide who receives its objects (organisation ids).

    ``named``: the organisations the sender named as recipients of its RED objects.
    ``clients``: organisation -> its client organisations (AMBER reaches the sender's clients).
    ``community``: the members of the constituency (GREEN reaches them).
    """

    named: frozenset[str] = field(default_factory=frozenset)
    clients: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    community: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        *,
        named: Iterable[str] = (),
        clients: Mapping[str, Iterable[str]] | None = None,
        community: Iterable[str] = (),
    ) -> Self:
        """An audience from any iterables, frozen so it can be shared between requests."""
        return cls(
            named=frozenset(named),
            clients={org: frozenset(cs) for org, cs in (clients or {}).items()},
            community=frozenset(community),
        )


def may_receive(level: Tlp, *, sender: str, recipient: str, audience: Audience) -> bool:
    """Whether ``recipient`` may receive ``sender``'s object marked ``level`` (see the module)."""
    level = Tlp(level)
    if recipient == sender or level is Tlp.clear:
        return True
    if level is Tlp.red:
        return recipient in audience.named
    if level is Tlp.amber_strict:
        return False  # the sender's organisation only, handled above
    is_client = recipient in audience.clients.get(sender, frozenset())
    if level is Tlp.amber:
        return is_client
    return is_client or recipient in audience.community  # green


def filter_for(
    objects: Iterable[Mapping[str, Any]],
    recipient: str,
    audience: Audience | Callable[[str], Audience],
    sender_of: Callable[[Mapping[str, Any]], str],
    *,
    default: Tlp,
) -> list[Mapping[str, Any]]:
    """The objects ``recipient`` may receive, in order.

    ``sender_of`` names the organisation that shared each object. ``audience`` is one
    :class:`Audience` for every object, or a function from a sender's id to that sender's
    audience: pass the function when a collection holds several senders' objects, since
    ``named`` is one sender's list and must not open another sender's RED objects.

    An object with no TLP marking is treated as the collection's ``default`` level, which the
    caller must pass: there is no built-in default, so an unmarked object is never shared wider
    than its collection allows. An object with malformed markings raises :class:`MarkingError`
    rather than being dropped or sent.
    """
    default = Tlp(default)
    audience_of = audience if callable(audience) else (lambda _sender: audience)
    chosen: list[Mapping[str, Any]] = []
    for obj in objects:
        level = tlp_of(obj)
        sender = sender_of(obj)
        if may_receive(
            default if level is None else level,
            sender=sender,
            recipient=recipient,
            audience=audience_of(sender),
        ):
            chosen.append(obj)
    return chosen
