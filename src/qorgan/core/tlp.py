"""TLP 2.0 and PAP as ordered levels, the one definition incidents and intel share.

An incident's TLP and an intel object's TLP are the same value, so a published incident keeps its
level and a comparison (``Tlp.amber < Tlp.red``) means the same everywhere. The STIX marking
objects and the rule of who may receive each level live in :mod:`qorgan.intel.markings`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Pap", "Tlp"]


class _Ranked(StrEnum):
    """A StrEnum ordered by declaration (least restrictive first), not alphabetically.

    Ordering against anything but the same enum (a plain string, the other protocol) is a
    ``TypeError``; equality with the value string still holds, as for any StrEnum.
    """

    @property
    def rank(self) -> int:
        """The position from the least restrictive level, 0 first."""
        return list(type(self)).index(self)

    def _same_kind(self, other: object) -> None:
        # Refuse rather than return NotImplemented: str's reflected comparison would then order
        # the values alphabetically ("red" < "amber" is False, "amber" < "green" by chance).
        if type(other) is not type(self):
            raise TypeError(f"cannot order {type(self).__name__} against {type(other).__name__}")

    def __lt__(self, other: object) -> bool:
        self._same_kind(other)
        return self.rank < other.rank  # type: ignore[attr-defined]

    def __le__(self, other: object) -> bool:
        self._same_kind(other)
        return self.rank <= other.rank  # type: ignore[attr-defined]

    def __gt__(self, other: object) -> bool:
        self._same_kind(other)
        return self.rank > other.rank  # type: ignore[attr-defined]

    def __ge__(self, other: object) -> bool:
        self._same_kind(other)
        return self.rank >= other.rank  # type: ignore[attr-defined]


class Tlp(_Ranked):
    """Traffic Light Protocol 2.0, least restrictive first; values are the extension's ``tlp_2_0``.

    Incidents store the value; the intel store and the TAXII server compare levels.
    """

    clear = "clear"
    green = "green"
    amber = "amber"
    amber_strict = "amber+strict"
    red = "red"

    @property
    def label(self) -> str:
        """The printed form, also the marking-definition's ``name``: ``TLP:AMBER+STRICT``."""
        return f"TLP:{self.value.upper()}"


class Pap(_Ranked):
    """Permissible Actions Protocol, least restrictive first; values are the extension's ``pap``."""

    clear = "clear"
    green = "green"
    amber = "amber"
    red = "red"

    @property
    def label(self) -> str:
        """The printed form, also the marking-definition's ``name``: ``PAP:AMBER``."""
        return f"PAP:{self.value.upper()}"
