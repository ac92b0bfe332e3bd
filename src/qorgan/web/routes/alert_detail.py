"""One alert in full: its classification, rule, event, history, related alerts and comments.

The page is an analyst's whole view of one alert, the most important facts first: what fired
and how bad (level, rule, status), on what (host, user, addresses, each a pivot into the
inbox), how it is classified (KZ-CERT, ENISA RSIT, candidate Criminal Code articles, ATT&CK
with names), then the rule's description, false positives and references, the event with the
fields the rule matched highlighted and empty fields folded, the correlation's member alerts,
related alerts, comments and the alert's history. Reading it is audited (``alert.read``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core import accounts
from qorgan.core.errors import QorganError
from qorgan.core.models import User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.core.timeutil import parse_time
from qorgan.detection.attack import load_attack
from qorgan.detection.classification import attack_ids, load_taxonomy
from qorgan.detection.explain import explain, rule_meta
from qorgan.detection.plan import Plan, RuleMeta
from qorgan.incidents import alerts as service
from qorgan.incidents import comments as comment_service
from qorgan.incidents import history as history_service
from qorgan.incidents import related as related_service
from qorgan.incidents.models import StoredAlert
from qorgan.web.api.alert_detail import add_comment
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.i18n import _l
from qorgan.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.alerts_read))]
Triager = Annotated[Actor, Depends(page_actor(Permission.alerts_triage))]

#: Observables that pivot into the inbox: (label, inbox parameter).
PIVOTS = {
    "host": (_l("Host"), "host"),
    "user": (_l("User account"), "user"),
    "address": (_l("Source IP address"), "address"),
    "destination": (_l("Destination IP address"), "address"),
}
#: Values shown folded away as empty.
EMPTY_TEXT = frozenset({"", "-"})


@dataclass(frozen=True, slots=True)
class EventField:
    name: str
    value: str
    state: str | None  # "matched", "read" (by the rule) or None


def _assignees(db: Db, actor: Actor) -> list[User]:
    triage_roles = [r for r, p in ROLE_PERMISSIONS.items() if Permission.alerts_triage in p]
    return list(
        db.scalars(
            select(User)
            .where(User.organisation_id == actor.organisation_id, User.role.in_(triage_roles))
            .order_by(User.display_name)
        )
    )


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in EMPTY_TEXT
    return isinstance(value, list | dict) and not value


def _text(value: Any) -> str:
    import orjson

    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def event_fields(
    event: dict[str, Any], matches: dict[str, Any] | None
) -> tuple[list[EventField], list[EventField]]:
    """The event's fields, sorted by name: those with a value, and the empty ones (null, "",
    "-", an empty list or object), each marked matched or read by the rule where it is."""
    filled, empty = [], []
    for name in sorted(event, key=str.casefold):
        value = event[name]
        found = (matches or {}).get(name)
        mark = ("matched" if found.matched else "read") if found is not None else None
        item = EventField(name, "" if value is None else _text(value), mark)
        (empty if _is_empty(value) else filled).append(item)
    return filled, empty


#: The console's compiled rules, per rule set, with when they were loaded: kept for a while so
#: a page view does not re-read every rule file (the plan's disk cache is keyed by their
#: content), then loaded again so edited rules show.
_PLANS: dict[Any, tuple[float, Plan]] = {}
_PLAN_LOCK = threading.Lock()
PLAN_TTL = 300.0


def console_plan(request: Request) -> Plan:
    """The rules the console's hunts use (the built-in pack and ``QORGAN_RULES``), compiled."""
    spec = state(request).runner.plan  # a PlanSpec (``load()``), or a loader function
    now = time.monotonic()
    with _PLAN_LOCK:
        found = _PLANS.get(spec)
        if found is not None and now - found[0] < PLAN_TTL:
            return found[1]
        plan = spec.load() if hasattr(spec, "load") else spec()
        _PLANS.clear()
        _PLANS[spec] = (now, plan)
        return plan


def _rule(request: Request, rule_id: str) -> tuple[Plan | None, RuleMeta | None]:
    """The console's compiled rules and the rule's metadata; (None, None) when the rules could
    not be loaded (the page then shows what the alert carries)."""
    try:
        plan = console_plan(request)
    except (QorganError, OSError) as exc:
        log.warning("the rules could not be loaded for the alert page: %s", exc)
        return None, None
    return plan, rule_meta(plan, rule_id)


def _classification(body: dict[str, Any], tags: list[str], language: str) -> dict[str, Any]:
    taxonomy = load_taxonomy()
    attack = load_attack()
    found = body.get("classification") if isinstance(body.get("classification"), dict) else {}
    kz_cert = found.get("kz_cert")
    kz_label = None
    if isinstance(kz_cert, str):
        labels = taxonomy.kz_cert.get(kz_cert) or found.get("kz_cert_label") or {}
        kz_label = labels.get(language) if isinstance(labels, dict) else None
    rsit = found.get("rsit") if isinstance(found.get("rsit"), dict) else {}
    rsit_class, rsit_type = rsit.get("class"), rsit.get("type")
    articles = [
        (str(a), taxonomy.article_name(str(a), language))
        for a in found.get("criminal_code") or ()
        if isinstance(a, str | int)
    ]
    techniques: list[str] = []
    tactics: list[str] = []
    declared = found.get("attack") if isinstance(found.get("attack"), dict) else None
    if declared:
        techniques = [str(t) for t in declared.get("techniques") or () if isinstance(t, str)]
        tactics = [str(t) for t in declared.get("tactics") or () if isinstance(t, str)]
    else:
        techniques, tactics = (list(x) for x in attack_ids(tags))
    return {
        "kz_cert": kz_cert,
        "kz_cert_label": kz_label,
        "rsit_class": rsit_class,
        "rsit_class_label": taxonomy.rsit_label(rsit_class, None, language)
        if isinstance(rsit_class, str)
        else None,
        "rsit_type": rsit_type,
        "rsit_type_label": taxonomy.rsit_label(rsit_class, rsit_type, language)
        if isinstance(rsit_class, str) and isinstance(rsit_type, str)
        else None,
        "articles": articles,
        "techniques": attack.techniques_of(techniques),
        "tactics": attack.tactics_of(tactics),
        "attack_version": attack.version,
        "source": found.get("source"),
    }


def _window(correlation: Any) -> tuple[Any, Any]:
    """A correlation's window (start, end) as times, for showing in Almaty time."""
    if not isinstance(correlation, dict):
        return None, None
    return parse_time(correlation.get("start")), parse_time(correlation.get("end"))


def _pivot(parameter: str, value: str) -> str:
    return "/alerts?" + urlencode({parameter: value})


def _history_details(entry: history_service.HistoryEntry, names: dict[int, str]) -> dict[str, Any]:
    details = entry.details
    out: dict[str, Any] = {}
    if entry.action == "alert.assign":
        target = details.get("assignee_to")
        out["assignee"] = names.get(target, f"#{target}") if isinstance(target, int) else None
    if "status_from" in details and "status_to" in details:
        out["status_from"], out["status_to"] = details["status_from"], details["status_to"]
    if "comment_id" in details:
        out["comment_id"] = details["comment_id"]
    return out


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, db: Db, actor: Reader, alert_id: RecordId) -> Response:
    organisations = accounts.visible_organisations(
        session=db, organisation_id=actor.organisation_id, resource="alerts"
    )
    row = service.get_alert(session=db, organisation_ids=organisations, alert_id=alert_id)
    if row is None:
        raise HTTPException(404, _l("no such alert"))
    service.record_read(
        session=db, user_id=actor.user.id, organisation_id=actor.organisation_id, alert_id=row.id
    )
    db.commit()
    return render(request, "alert.html", _context(request, db, actor, row))


def _context(request: Request, db: Db, actor: Actor, row: StoredAlert) -> dict[str, Any]:
    from qorgan.web.templating import request_language

    language = request_language(request)
    body = row.body if isinstance(row.body, dict) else {}
    carried = body.get("rule") if isinstance(body.get("rule"), dict) else {}
    plan, meta = _rule(request, row.rule_id)
    tags = list(meta.tags) if meta is not None else list(carried.get("tags") or [])
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    matches = explain(plan, row.rule_id, event, body.get("time")) if plan is not None else None
    filled, empty = event_fields(event, matches)
    own = row.organisation_id == actor.organisation_id
    entries, names = history_service.alert_history(
        session=db, alert=row, reader_organisation_id=actor.organisation_id
    )
    related = related_service.related_alerts(session=db, alert=row)
    observables = [
        (kind, value)
        for kind, value in (
            ("host", row.host),
            ("user", row.user_name),
            ("address", row.source_ip),
            ("destination", row.destination_ip),
        )
        if value
    ]
    return {
        "alert": row,
        "body": body,
        "carried_rule": carried,
        "rule": meta,
        "rules_loaded": plan is not None,
        "tags": tags,
        "classification": _classification(body, tags, language),
        "own": own,
        "assignees": _assignees(db, actor),
        "observables": [
            (kind, PIVOTS[kind][0], value, _pivot(PIVOTS[kind][1], value))
            for kind, value in observables
        ],
        "rule_link": _pivot("rule", row.rule_id),
        "fields": filled,
        "empty_fields": empty,
        "matched": [f.name for f in filled if f.state == "matched"],
        "correlation": body.get("correlation")
        if isinstance(body.get("correlation"), dict)
        else None,
        "members": [
            (m, parse_time(m.time))
            for m in related_service.correlation_members(session=db, alert=row)
        ],
        "window": _window(body.get("correlation")),
        "related": related,
        "related_window": int(related_service.WINDOW.total_seconds() // 60),
        "related_labels": {kind: label for kind, (label, _p) in PIVOTS.items()},
        "related_links": {g.kind: _pivot(PIVOTS[g.kind][1], g.value) for g in related},
        "comments": comment_service.list_comments(
            session=db, organisation_ids=[row.organisation_id], alert_id=row.id
        ),
        "comment_limit": comment_service.MAX_COMMENT,
        "can_comment": own and actor.can(Permission.alerts_triage),
        "history": [(e, _history_details(e, names)) for e in entries],
    }


@router.post("/alerts/{alert_id}/comments/new")
def comment(
    db: Db, actor: Triager, alert_id: RecordId, text: Annotated[str, Form(max_length=20_000)]
) -> Response:
    """Add a comment from the page's form (the comments' own route, ``/alerts/{id}/comments``,
    is taken by the inbox's ``/alerts/{id}/{action}``, which is matched first)."""
    added = add_comment(db, actor, alert_id, text)
    return RedirectResponse(f"/alerts/{alert_id}#comment-{added.id}", status_code=303)
