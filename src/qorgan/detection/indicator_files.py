"""Indicator files for ``qorgan hunt --indicators FILE``: JSON lines or CSV, one indicator each.

JSON lines (any name but ``*.csv``), one object per line::

    {"kind": "domain-name", "value": "evil.example", "ref": "indicator--0b7f...",
     "source": "kz-cert-main", "confidence": 85, "valid_until": "2027-01-01T00:00:00Z"}

CSV (``*.csv``): a header line naming the same columns, then one indicator per line.

``kind`` and ``value`` are required (kinds: :data:`~qorgan.detection.indicators.KINDS`);
``ref`` defaults to ``<file name>:<line>``, ``source`` to the file's name, ``confidence`` to
:data:`DEFAULT_CONFIDENCE`, ``valid_until`` (ISO 8601 with a time zone) to no expiry. Blank
lines and lines starting with ``#`` are skipped. A line that cannot be read or is refused (see
:func:`~qorgan.detection.indicators.canonical`) goes to the quarantine with its line number and
reason (``indicators: ...``), and the rest of the file is still loaded.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from qorgan.detection.indicators import (
    Indicator,
    IndicatorError,
    IndicatorSet,
    IndicatorSetBuilder,
    without_gc,
)
from qorgan.telemetry.quarantine import Quarantine

log = logging.getLogger(__name__)

COLUMNS = ("kind", "value", "ref", "source", "confidence", "valid_until")
_KNOWN = frozenset(COLUMNS)
#: The confidence of an indicator whose line gives none: STIX's "Med" (30-69), neither
#: dismissed nor trusted.
DEFAULT_CONFIDENCE = 50


def load_indicators(
    path: Path, quarantine: Quarantine, *, now: datetime | None = None
) -> IndicatorSet:
    """The indicators of ``path``; bad lines quarantined. IndicatorError when the file cannot
    be read at all."""
    builder = IndicatorSetBuilder(now)
    where = str(path)
    with without_gc():
        _load(path, where, builder, quarantine)
    return builder.finish()


def _load(path: Path, where: str, builder: IndicatorSetBuilder, quarantine: Quarantine) -> None:
    name = path.name
    # Feeds give many indicators one expiry: each text is parsed once.
    times: dict[str, datetime] = {}
    try:
        for line, raw, fields in _records(path):
            if isinstance(fields, str):
                quarantine.add(where, line, f"indicators: {fields}", raw)
                continue
            try:
                indicator = _indicator(fields, name, line, times)
            except IndicatorError as exc:
                builder.result.refused[str(exc)] += 1
                quarantine.add(where, line, f"indicators: {exc}", raw)
                continue
            reason = builder.add(indicator)
            if reason is not None:
                quarantine.add(where, line, f"indicators: {reason}", raw)
    except OSError as exc:
        raise IndicatorError(f"cannot read the indicator file {path}: {exc.strerror}") from None


def _records(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any] | str]]:
    """(line number, raw line, fields or the reason they cannot be read)."""
    with path.open("rb") as stream:
        if path.suffix.lower() == ".csv":
            yield from _csv(stream)
            return
        for number, raw in enumerate(stream, 1):
            text = raw.strip()
            if not text or text.startswith(b"#"):
                continue
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                yield number, raw, "not a JSON object (or not UTF-8)"
                continue
            if not isinstance(doc, dict):
                yield number, raw, "not a JSON object"
                continue
            yield number, raw, doc


def _csv(stream: Any) -> Iterator[tuple[int, bytes, dict[str, Any] | str]]:
    header: list[str] | None = None
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, raw, "not UTF-8 text"
            continue
        if not text.strip() or text.startswith("#"):
            continue
        try:
            row = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration):
            yield number, raw, "not a CSV line"
            continue
        if header is None:
            header = [name.strip().lower() for name in row]
            missing = {"kind", "value"} - set(header)
            unknown = set(header) - set(COLUMNS)
            if missing or unknown:
                raise IndicatorError(
                    f"the CSV header must name kind and value (columns: {', '.join(COLUMNS)})"
                )
            continue
        if len(row) != len(header):
            yield number, raw, f"{len(row)} columns where the header names {len(header)}"
            continue
        yield number, raw, {k: v for k, v in zip(header, row, strict=True) if v != ""}


def _indicator(
    fields: dict[str, Any], name: str, line: int, times: dict[str, datetime]
) -> Indicator:
    if not _KNOWN.issuperset(fields):
        raise IndicatorError(f"unknown keys (known: {', '.join(COLUMNS)})")
    confidence = fields.get("confidence", DEFAULT_CONFIDENCE)
    if isinstance(confidence, str) and confidence.strip().isdigit():
        confidence = int(confidence)
    if type(confidence) is not int:
        raise IndicatorError("confidence must be an integer from 0 to 100")
    until = fields.get("valid_until")
    if until is not None and type(until) is str and until in times:
        until = times[until]
    elif until is not None:
        text = until
        if not isinstance(until, str):
            raise IndicatorError("valid_until must be ISO 8601 text")
        try:
            until = datetime.fromisoformat(until.strip())  # Python 3.11 takes "Z" too
        except ValueError:
            raise IndicatorError("valid_until is not an ISO 8601 time") from None
        if until.tzinfo is None:
            raise IndicatorError("valid_until needs a time zone (Z or +hh:mm)")
        if len(times) < 4096:
            times[text] = until
    kind, value = fields.get("kind", ""), fields.get("value", "")
    ref, source = fields.get("ref") or f"{name}:{line}", fields.get("source") or name
    if type(kind) is not str or type(value) is not str:
        raise IndicatorError("kind and value must be text")
    if type(ref) is not str or type(source) is not str:
        raise IndicatorError("ref and source must be text")
    return Indicator(kind, value, ref, source, confidence, until)


class OrganisationIndicators:
    """Each organisation's indicator file in ``directory`` (``indicators-<id>.jsonl``, as
    ``qorgan intel indicators`` writes it), for live monitoring: read when first asked for and
    again whenever the file changes (its size, modification time or inode: the exporter
    renames a new file into place), so a new export takes effect at the next batch.

    A file that cannot be read keeps the set read before (or none), and says why in the log
    and in :attr:`problems`; bad lines go to :attr:`quarantine` with their line numbers.
    """

    def __init__(self, directory: Path, quarantine: Quarantine | None = None) -> None:
        self.directory = directory
        self.quarantine = quarantine or Quarantine()
        self.problems: dict[int, str] = {}
        self._sets: dict[int, tuple[tuple[int, int, int], IndicatorSet]] = {}

    def path(self, organisation_id: int) -> Path:
        return self.directory / f"indicators-{int(organisation_id)}.jsonl"

    def __call__(self, organisation_id: int) -> IndicatorSet | None:
        path = self.path(organisation_id)
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._sets.pop(organisation_id, None)
            return None
        except OSError as exc:
            return self._keep(organisation_id, f"cannot read {path.name}: {exc.strerror}")
        key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        known = self._sets.get(organisation_id)
        if known is not None and known[0] == key:
            return known[1]
        try:
            found = load_indicators(path, self.quarantine)
        except IndicatorError as exc:
            return self._keep(organisation_id, str(exc))
        self._sets[organisation_id] = (key, found)
        self.problems.pop(organisation_id, None)
        return found

    def _keep(self, organisation_id: int, problem: str) -> IndicatorSet | None:
        if self.problems.get(organisation_id) != problem:
            log.warning("indicators of organisation %s: %s", organisation_id, problem)
        self.problems[organisation_id] = problem
        known = self._sets.get(organisation_id)
        return known[1] if known is not None else None
