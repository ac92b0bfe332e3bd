"""Incident task templates: the checklist an analyst applies once an incident is classified.

A template lists tasks per phase of the NIST SP 800-61 lifecycle, each titled and described in
Kazakh, Russian and English. The built-in templates ship as reviewed data
(``task_templates.yml`` next to this module); an organisation edits its own copies, which are
stored as JSON elsewhere. Both pass through :func:`parse_template`, so an edited copy is held
to exactly the rules of the shipped file. The module is pure (no web or database code): the
CLI, the web and the tests share it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from qorgan.core.errors import QorganError

#: The NIST SP 800-61 phases, in lifecycle order; ``review`` is the post-incident review.
PHASES: tuple[str, ...] = ("triage", "containment", "eradication", "recovery", "review")
#: Every text is written in these languages; English is the fallback.
LANGUAGES: tuple[str, ...] = ("kk", "ru", "en")

TEMPLATE_KEYS: tuple[str, ...] = ("name", "classes", "tasks")
TASK_KEYS: tuple[str, ...] = ("phase", "title", "description")
MAX_TASKS = 50
#: There are six KZ-CERT classes; the cap only bounds what an edited copy may store.
MAX_CLASSES = 32
MAX_TITLE = 200
MAX_DESCRIPTION = 2000

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: NUL breaks PostgreSQL text columns; a lone surrogate cannot be encoded as UTF-8 at all.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_RESOURCE = "task_templates.yml"


class TemplateError(QorganError):
    """A template is malformed. The message names the template and, where it applies, the
    task (``tasks[i]``, counted from 0), so the editor can point at the offending field."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        template_id: str | None = None,
        task_index: int | None = None,
    ) -> None:
        super().__init__(message, source=source)
        self.template_id = template_id
        self.task_index = task_index


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task of a template: the phase it belongs to and its texts in every language."""

    phase: str
    title: Mapping[str, str]
    description: Mapping[str, str]

    def __hash__(self) -> int:
        # The texts are read-only mappings, which do not hash; their items do.
        return hash((self.phase, tuple(self.title.items()), tuple(self.description.items())))

    def to_data(self) -> dict[str, Any]:
        """The JSON-able shape that :func:`parse_template` reads back."""
        return {
            "phase": self.phase,
            "title": dict(self.title),
            "description": dict(self.description),
        }


@dataclass(frozen=True, slots=True)
class Template:
    """A validated template. Build it with :func:`parse_template`, which enforces the rules."""

    id: str
    name: Mapping[str, str]
    classes: tuple[str, ...]
    tasks: tuple[TaskSpec, ...]

    def __hash__(self) -> int:
        return hash((self.id, tuple(self.name.items()), self.classes, self.tasks))

    def to_data(self) -> dict[str, Any]:
        """The JSON-able body, without the id (which is the key it is stored under): the
        inverse of :func:`parse_template`, so ``parse_template(t.id, t.to_data()) == t``."""
        return {
            "name": dict(self.name),
            "classes": list(self.classes),
            "tasks": [task.to_data() for task in self.tasks],
        }

    def tasks_in(self, phase: str) -> tuple[TaskSpec, ...]:
        """The tasks of one phase, in template order: how the checklist is shown."""
        return tuple(task for task in self.tasks if task.phase == phase)


# --------------------------------------------------------------------------- validation


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error message: repr (so NULs and surrogates show as escapes), cut short
    so that a hostile or runaway value does not flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> str | None:
    """The first problem with the keys of ``data`` (unknown or missing), or None."""
    unknown = [key for key in data if key not in allowed]
    if unknown:
        return (
            f"{where}: unknown key(s) {', '.join(_show(key) for key in unknown)} "
            f"(expected {', '.join(allowed)})"
        )
    missing = [key for key in allowed if key not in data]
    if missing:
        return f"{where}: missing {', '.join(missing)}"
    return None


def _check_string(value: Any, where: str, *, limit: int, required: bool) -> str | None:
    """The problem with one text value, or None: type, forbidden characters, emptiness, length."""
    if not isinstance(value, str):
        return f"{where} must be a string, not {type(value).__name__}"
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        kind = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
        return f"{where} contains {kind} ({_show(bad.group())} at position {bad.start()})"
    if required and not value.strip():
        return f"{where} is empty"
    if len(value) > limit:
        return f"{where} is {len(value)} characters long (at most {limit})"
    return None


def _check_texts(value: Any, where: str, *, limit: int, required: tuple[str, ...]) -> str | None:
    """The problem with a {kk, ru, en} mapping, or None. All three keys must be present; the
    languages in ``required`` must also be non-empty."""
    if not isinstance(value, Mapping):
        return f"{where} must map kk, ru and en to texts, not {type(value).__name__}"
    unknown = [key for key in value if key not in LANGUAGES]
    if unknown:
        return (
            f"{where}: unknown language(s) {', '.join(_show(key) for key in unknown)} "
            f"(expected {', '.join(LANGUAGES)})"
        )
    missing = [lang for lang in LANGUAGES if lang not in value]
    if missing:
        return f"{where}: missing language(s) {', '.join(missing)}"
    for lang in LANGUAGES:
        problem = _check_string(
            value[lang], f"{where}.{lang}", limit=limit, required=lang in required
        )
        if problem:
            return problem
    return None


def _texts(value: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy in the canonical language order, so equal texts compare and hash
    equal whatever order the source listed them in."""
    return MappingProxyType({lang: value[lang] for lang in LANGUAGES})


def parse_template(
    template_id: str,
    data: Mapping[str, Any],
    *,
    known_classes: Collection[str] | None = None,
    source: str | None = None,
) -> Template:
    """Validate one template given as plain data (a YAML entry or an organisation's JSON copy).

    ``known_classes``, when given, are the KZ-CERT class ids a template may name; ``source``
    (a file name, "database") is carried by the error. Every mistake raises
    :class:`TemplateError` naming the template and the task index.
    """
    label = f"template {_show(template_id)}"

    def fail(message: str, task_index: int | None = None) -> TemplateError:
        return TemplateError(
            f"{label}: {message}",
            source=source,
            template_id=template_id if isinstance(template_id, str) else None,
            task_index=task_index,
        )

    if not isinstance(template_id, str):
        raise fail(f"the id must be a string, not {type(template_id).__name__}")
    problem = _check_string(template_id, "the id", limit=64, required=True)
    if problem:
        raise fail(problem)
    if not _ID.fullmatch(template_id):
        raise fail(
            "the id must be 1-64 lower-case letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    if not isinstance(data, Mapping):
        raise fail(f"must be a mapping with {', '.join(TEMPLATE_KEYS)}")
    problem = _check_keys(data, TEMPLATE_KEYS, "the template")
    if problem:
        raise fail(problem)

    problem = _check_texts(data["name"], "name", limit=MAX_TITLE, required=LANGUAGES)
    if problem:
        raise fail(problem)

    classes = data["classes"]
    if not isinstance(classes, list | tuple):
        raise fail(f"classes must be a list of KZ-CERT class ids, not {type(classes).__name__}")
    if len(classes) > MAX_CLASSES:
        raise fail(f"names {len(classes)} classes (at most {MAX_CLASSES})")
    for index, class_id in enumerate(classes):
        problem = _check_string(class_id, f"classes[{index}]", limit=64, required=True)
        if problem:
            raise fail(problem)
        if known_classes is not None and class_id not in known_classes:
            raise fail(
                f"classes[{index}]: unknown KZ-CERT class {_show(class_id)} "
                f"(known: {', '.join(sorted(known_classes))})"
            )
        if class_id in classes[:index]:
            raise fail(f"classes[{index}]: {_show(class_id)} is listed twice")

    tasks = data["tasks"]
    if not isinstance(tasks, list | tuple):
        raise fail(f"tasks must be a list, not {type(tasks).__name__}")
    if not 1 <= len(tasks) <= MAX_TASKS:
        raise fail(f"has {len(tasks)} tasks (1 to {MAX_TASKS} allowed)")
    specs = []
    for index, task in enumerate(tasks):
        where = f"tasks[{index}]"
        if not isinstance(task, Mapping):
            raise fail(f"{where} must be a mapping with {', '.join(TASK_KEYS)}", index)
        problem = (
            _check_keys(task, TASK_KEYS, where)
            or _check_phase(task["phase"], f"{where}.phase")
            or _check_texts(task["title"], f"{where}.title", limit=MAX_TITLE, required=LANGUAGES)
            or _check_texts(
                task["description"],
                f"{where}.description",
                limit=MAX_DESCRIPTION,
                required=("en",),
            )
        )
        if problem:
            raise fail(problem, index)
        specs.append(
            TaskSpec(
                phase=task["phase"],
                title=_texts(task["title"]),
                description=_texts(task["description"]),
            )
        )
    return Template(
        id=template_id,
        name=_texts(data["name"]),
        classes=tuple(classes),
        tasks=tuple(specs),
    )


def _check_phase(value: Any, where: str) -> str | None:
    if isinstance(value, str) and value in PHASES:
        return None
    return f"{where}: unknown phase {_show(value)} (expected one of {', '.join(PHASES)})"


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a template id given twice would
    drop a template without a word, so this loader refuses it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_templates(
    text: str, *, source: str = "<memory>", known_classes: Collection[str] | None = None
) -> dict[str, Template]:
    """Parse a templates document (the format of ``task_templates.yml``), in file order."""
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise TemplateError(f"not valid YAML: {exc}", source=source) from exc
    if not isinstance(document, dict) or set(document) != {"templates"}:
        raise TemplateError("the document must be a mapping with only 'templates'", source=source)
    body = document["templates"]
    if not isinstance(body, dict) or not body:
        raise TemplateError("'templates' must map template ids to templates", source=source)
    return {
        template_id: parse_template(template_id, data, known_classes=known_classes, source=source)
        for template_id, data in body.items()
    }


@functools.cache
def _bundled() -> tuple[Template, ...]:
    text = resources.files(__package__).joinpath(_RESOURCE).read_text(encoding="utf-8")
    return tuple(load_templates(text, source=_RESOURCE).values())


def default_templates() -> dict[str, Template]:
    """The built-in templates by id, in file order. Read and validated once; each call returns
    a new dict, so a caller that edits its copy cannot change anyone else's."""
    return {template.id: template for template in _bundled()}


def for_class(kz_cert_class: str, templates: Mapping[str, Template]) -> Template | None:
    """The first template, in the mapping's order, that suits the KZ-CERT class; None when no
    template names it (the analyst then picks one by hand)."""
    return next((t for t in templates.values() if kz_cert_class in t.classes), None)


def localised(mapping: Mapping[str, str], language: str) -> str:
    """The text in ``language`` ("kk", "ru", "en"; a tag such as "ru-RU" counts as "ru"),
    falling back to English and then to any non-empty text, so a partly translated copy
    still shows something. Empty when every text is empty."""
    primary = language.replace("_", "-").split("-", 1)[0].lower()
    for text in _candidates(mapping, primary):
        if text.strip():
            return text
    return ""


def _candidates(mapping: Mapping[str, str], primary: str) -> Iterator[str]:
    yield mapping.get(primary, "")
    yield mapping.get("en", "")
    yield from mapping.values()
