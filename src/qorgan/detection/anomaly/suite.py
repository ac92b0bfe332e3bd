"""One organisation's anomaly models run together: what hunts and live monitoring call.

The suite is where the two human duties of the AI law reach the models:

- **objections**: an event about a person who objected (one of their identifiers in an
  identifier field, :data:`IDENTIFIER_FIELDS`, or in its free text: a word such as a user
  name, an e-mail address or an IIN, a full name, or a phone number or IIN written in groups) is
  neither scored nor learned from, and no finding
  naming them is reported, from the moment the exclusion is given to the suite;
- **rejections**: a finding whose pattern a person rejected is not reported again, and each
  rejection is given once to its model's :meth:`~Detector.absorb`, so the baseline takes it in.

State is one JSON document per model under the organisation's own directory, written
atomically (a crash leaves the previous state whole).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from qorgan.core.identifiers import normalise_identifier
from qorgan.detection.anomaly.detector import Detector
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.errors import DetectionError
from qorgan.telemetry.batch import EventBatch

#: Fields of normalised events that name a person (Windows, Linux syslog/auditd, web logs,
#: Zeek): an objection's identifiers are looked for here.
IDENTIFIER_FIELDS = (
    "user",
    "User",
    "UserName",
    "TargetUserName",
    "SubjectUserName",
    "AccountName",
    "cs-username",
    "remote_user",
    "acct",
    "auid_name",
    "uid_name",
    "email",
    "sender",
    "recipient",
    "iin",
    "client_name",
)
#: Fields of free text whose words are compared with the excluded identifiers.
TEXT_FIELDS = ("message", "line", "raw", "request", "cs-uri-query")
#: A word of free text that may be an identifier: letters, digits and ``. _ @ + - \``
#: (user names, e-mail addresses, ``DOMAIN\user``, IINs); ``user=ann`` gives ``user`` and
#: ``ann``.
_TEXT_WORD = re.compile(r"[\w.@+\\-]+")
#: Identifiers written as several words: a name (two or three words of letters, ``Aigerim
#: Saparova``; a word may be initials, ``A.`` or ``А.Н.``, compared as its first letter) and a
#: number in groups (a phone ``+7 701 123-45-67``, an IIN ``880101 300123``).
_NAME_WORD = r"(?:(?:[^\W\d_]\.){1,3}|[^\W\d_]+(?:-[^\W\d_]+)*)"
_NAME_RUN = re.compile(rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD})+")
_GROUPED_NUMBER = re.compile(r"(?<![\w.])\+?\d+(?:(?:[ \t]*[()\-][ \t]*|[ \t]+)\d+)+(?![\w.])")
_DIGITS = re.compile(r"\d+")
#: Words of a name compared together, and digits of a grouped number (a phone number of 10 to
#: 15 digits, E.164's longest; an IIN's 12).
_NAME_WORDS = (2, 3)
_NUMBER_DIGITS = range(10, 16)
#: Words remembered with their verdict (cleared when full, and when an exclusion comes).
_MAX_VERDICTS = 100_000
STATE_VERSION = 1


def _candidates(text: str) -> Iterator[str]:
    """What in ``text`` may be a person's identifier: each word whole (``ann``, ``CORP\\ann``,
    ``dana@gov.kz``, an IIN), then each run of two or three words of letters (a name; initials
    ``А.Н.`` as ``А``: an objection keeps a name's spellings with an initial), then the
    digits of each run of number groups that holds 10 to 15 of them (a phone number or an IIN
    written with spaces, dashes or brackets; ``+7 (701) 123-45-67`` gives ``77011234567``)."""
    for word in _TEXT_WORD.findall(text):
        word = word.strip(".-")
        if word:
            yield word
    for run in _NAME_RUN.findall(text):
        words = [w[0] if w[-1] == "." else w for w in run.split()]
        for size in _NAME_WORDS:
            for start in range(len(words) - size + 1):
                yield " ".join(words[start : start + size])
    for run in _GROUPED_NUMBER.findall(text):
        groups = _DIGITS.findall(run)
        for start, first in enumerate(groups):
            digits = first
            for group in groups[start + 1 :]:
                digits += group
                if len(digits) > _NUMBER_DIGITS[-1]:
                    break
                if len(digits) in _NUMBER_DIGITS:
                    yield digits


class AnomalySuite:
    """The detectors of one organisation, with its exclusions and rejected patterns.

    ``identify`` gives the form an objection's identifier is kept in (by default
    :func:`normalise_identifier`; the findings store keeps a keyed hash of that, so it passes its
    own): ``excluded`` holds such forms, and each identifier of an event is put in that form to
    be compared."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        excluded: Iterable[str] = (),
        rejected: Iterable[Mapping[str, Any]] = (),
        identify: Callable[[str], str] = normalise_identifier,
    ) -> None:
        names = [d.model for d in detectors]
        if len(set(names)) != len(names):
            raise DetectionError(f"two detectors share a model name: {sorted(names)}")
        self.detectors = list(detectors)
        self._identify = identify
        self._excluded: frozenset[str] = frozenset()
        #: Words of free text already compared: whether each names an excluded person.
        self._verdicts: dict[str, bool] = {}
        self._rejected: set[str] = set()
        self._absorbed: set[str] = set()
        self.skipped_events = 0
        self.withheld_findings = 0
        #: Per model, the retraining its baselines start from (the register's time of it, ISO),
        #: kept in the state: a retraining recorded later drops them (:meth:`load`'s ``fresh``).
        self.retrained: dict[str, str] = {}
        self.exclude(excluded)
        self.reject(rejected)

    # ------------------------------------------------------------------ people's decisions

    def exclude(self, identifiers: Iterable[str]) -> None:
        """From now on, leave out every event and finding about these identifiers (each in the
        form ``identify`` gives)."""
        added = {i for i in identifiers if i} - self._excluded
        if added:  # the words' verdicts hold until someone new is excluded
            self._excluded = self._excluded | added
            self._verdicts.clear()

    def reject(self, findings: Iterable[Mapping[str, Any]]) -> None:
        """Rejected findings (as :meth:`Finding.to_dict`, or rows with ``model``,
        ``fingerprint`` and the finding's fields): their patterns stop firing, and each is
        absorbed once by its model."""
        by_model = {d.model: d for d in self.detectors}
        for finding in findings:
            fingerprint = str(finding["fingerprint"])
            self._rejected.add(fingerprint)
            if fingerprint in self._absorbed:
                continue
            detector = by_model.get(str(finding.get("model")))
            if detector is not None:
                detector.absorb(finding)
            self._absorbed.add(fingerprint)

    # ------------------------------------------------------------------ scoring

    def observe(self, batch: EventBatch) -> list[Finding]:
        """Every model's findings on ``batch`` that no person excluded or rejected."""
        if self._excluded:
            batch = self._without_excluded(batch)
            if not len(batch):
                return []
        return self._kept(f for detector in self.detectors for f in detector.observe(batch))

    def flush(self) -> list[Finding]:
        """The end of the input (a hunt's last batch): models that hold open work (sessions not
        yet ended) score it now."""
        return self._kept(
            f
            for detector in self.detectors
            if (flush := getattr(detector, "flush", None)) is not None
            for f in flush()
        )

    def _kept(self, findings: Iterable[Finding]) -> list[Finding]:
        found: list[Finding] = []
        for finding in findings:
            if finding.fingerprint in self._rejected or self._names_excluded(finding):
                self.withheld_findings += 1
                continue
            found.append(finding)
        return found

    def _names_excluded(self, finding: Finding) -> bool:
        excluded = self._excluded
        if not excluded:
            return False
        values = list(finding.identifiers) + list(finding.entity.values())
        identify = self._identify
        return any(identify(v) in excluded for v in values if isinstance(v, str) and v)

    def _text_names_excluded(self, event: Mapping[str, Any]) -> bool:
        """Whether the event's free text names an excluded person: one of its words, two or
        three words of a name together, or a number written in groups, read as its digits
        (each distinct candidate is put in the ``identify`` form once: a keyed hash costs more
        than a lookup)."""
        for name in TEXT_FIELDS:
            text = event.get(name)
            if isinstance(text, str) and text and any(map(self._names, _candidates(text))):
                return True
        return False

    def _names(self, candidate: str) -> bool:
        verdicts = self._verdicts
        verdict = verdicts.get(candidate)
        if verdict is None:
            if len(verdicts) >= _MAX_VERDICTS:
                verdicts.clear()
            verdict = verdicts[candidate] = self._identify(candidate) in self._excluded
        return verdict

    def _without_excluded(self, batch: EventBatch) -> EventBatch:
        excluded = self._excluded
        identify = self._identify
        keep: list[int] = []
        for i, event in enumerate(batch.events):
            if not any(
                isinstance(v := event.get(name), str) and v and identify(v) in excluded
                for name in IDENTIFIER_FIELDS
            ) and not self._text_names_excluded(event):
                keep.append(i)
        if len(keep) == len(batch.events):
            return batch
        self.skipped_events += len(batch.events) - len(keep)
        out = EventBatch(batch.path, batch.format, batch.logsource, offset=batch.offset)
        for i in keep:
            out.append(batch.events[i], batch.records[i], batch.times[i], batch.hosts[i])
        return out

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "absorbed": sorted(self._absorbed),
            "retrained": dict(sorted(self.retrained.items())),
            "models": {d.model: {"version": d.version, "state": d.state()} for d in self.detectors},
        }

    def load(self, state: Mapping[str, Any], *, fresh: Collection[str] = ()) -> None:
        """Continue from ``state``; a model whose saved version differs starts afresh (its
        baseline was learned by other code), and so does every model named in ``fresh`` (a
        person retrained it: it learns again from the next event, warm-up first)."""
        if state.get("version") != STATE_VERSION:
            raise DetectionError(f"anomaly state version {state.get('version')!r} is not known")
        self._absorbed = set(state.get("absorbed", ()))
        self.retrained = {str(k): str(v) for k, v in (state.get("retrained") or {}).items()}
        models = state.get("models", {})
        for detector in self.detectors:
            saved = models.get(detector.model)
            if detector.model in fresh:
                continue
            if saved is not None and saved.get("version") == detector.version:
                detector.load(saved["state"])

    def save(self, directory: Path) -> None:
        """Write the state to ``directory/anomaly-state.json`` atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "anomaly-state.json"
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(self.state(), out, ensure_ascii=False, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)

    def restore(self, directory: Path) -> bool:
        """Load ``directory``'s saved state; False when there is none yet."""
        target = directory / "anomaly-state.json"
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise DetectionError(f"anomaly state {target} cannot be read: {exc}") from exc
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise DetectionError(f"anomaly state {target} is not JSON: {exc}") from exc
        self.load(state)
        return True


SuiteFactory = Callable[[], AnomalySuite]
