"""Rendering pages: Jinja2 with autoescaping, the request's language and the CSRF token.

Every template gets ``_`` (gettext in the request's language), ``_e`` (a service's message,
translated when it is one the catalogues know, also by pattern: see ``labels.MESSAGE_PATTERNS``),
``rule_title`` (a pack rule's title, translated), ``lang``, ``languages``, ``csrf_token``,
``actor`` (None on the sign-in pages), ``unread_notifications`` (the header's count), ``can``,
the ``localtime`` filter (UTC in, Asia/Almaty out, written the language's way) and the label
tables of ``labels``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError

from qorgan.core import sessions
from qorgan.core.i18n import LANGUAGE_NAMES, LANGUAGES, local_time, pick_language
from qorgan.core.roles import Permission
from qorgan.incidents import notifications
from qorgan.web.deps import LANGUAGE_COOKIE, PRE_SESSION_COOKIE, SESSION_COOKIE, state
from qorgan.web.i18n import pack_rule_ids, translations
from qorgan.web.labels import (
    ACTOR_LABELS,
    AUDIT_ACTION_LABELS,
    CHANNEL_LABELS,
    CLOCK_LABELS,
    CLOCK_STATE_LABELS,
    GROUP_LABELS,
    HISTORY_LABELS,
    HUNT_STATUS_LABELS,
    INCIDENT_STATUS_LABELS,
    LEVEL_LABELS,
    MESSAGE_KIND_LABELS,
    NOTIFICATION_LABELS,
    OBSERVABLE_LABELS,
    PERMISSION_LABELS,
    RESOLUTION_LABELS,
    ROLE_LABELS,
    RULE_STATUS_LABELS,
    SEVERITY_LABELS,
    SORT_LABELS,
    STATUS_LABELS,
    TARGET_LABELS,
    TASK_STATUS_LABELS,
    TIMELINE_LABELS,
    model_value,
    short_path,
    translate_message,
)
from qorgan.web.markdown import render_markdown

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Times in tables: short, and the same in every language.
COMPACT_TIME = "yyyy-MM-dd HH:mm:ss"
COMPACT_STRFTIME = "%Y-%m-%d %H:%M:%S"
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
)
templates.env.filters["markdown"] = render_markdown
templates.env.filters["model_value"] = model_value
templates.env.filters["short_path"] = short_path


def request_language(request: Request) -> str:
    actor = getattr(request.state, "actor", None)
    return pick_language(
        actor.user.language if actor is not None else None,
        request.cookies.get(LANGUAGE_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )


def csrf_for(request: Request) -> str:
    """The CSRF token for forms on this page (bound to the session, or the pre-session nonce)."""
    secret = state(request).secret
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token and getattr(request.state, "actor", None) is not None:
        return sessions.csrf_token(secret, session_token)
    pending = getattr(request.state, "pending_token", None) or session_token
    if pending:
        return sessions.csrf_token(secret, pending)
    nonce = request.cookies.get(PRE_SESSION_COOKIE) or getattr(request.state, "pre_nonce", "")
    return sessions.csrf_token(secret, "pre:" + nonce)


def unread_notifications(request: Request, actor: Any) -> int | None:
    """The header's count of the signed-in user's unread notifications (one indexed count;
    None for those who get none, or when the database does not answer: the page still shows)."""
    if actor is None or not actor.can(Permission.incidents_read):
        return None
    try:
        with state(request).factory() as session:
            return notifications.unread_count(session=session, user_id=actor.user.id)
    except SQLAlchemyError:
        return None


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    language = request_language(request)
    gettext = translations(language).gettext
    actor = getattr(request.state, "actor", None)
    zone = state(request).settings.timezone

    def localtime(value: Any, style: str = "medium") -> str:
        return local_time(value, language, zone, style)

    def shorttime(value: Any) -> str:
        """A compact, unambiguous local time for tables: 2026-11-29 23:31:04, the same in
        every language, so written by strftime (Babel took 85 µs a time: 50 ms for the 600
        times of an incident page with a large timeline)."""
        if value is None:
            return "—"
        return str(value.astimezone(ZoneInfo(zone)).strftime(COMPACT_STRFTIME))

    def rule_title(rule_id: str, title: str) -> str:
        """A rule's title, translated when the rule is one of Qorgan's own pack."""
        return gettext(title) if rule_id in pack_rule_ids() else title

    def translate_error(message: Any, sentence: bool = True) -> str:
        """A service's message in the page's language: whole, or part by part when it is
        several joined with "; " (parts it does not know are shown as written). As a
        ``sentence`` on the page it starts with a capital letter; otherwise (after a label
        and a colon) as written."""
        text = str(message)
        translated = translate_message(text, gettext)
        if translated is None:
            parts = text.split("; ")
            translated = "; ".join(translate_message(p, gettext) or p for p in parts)
        return translated[:1].upper() + translated[1:] if sentence else translated

    values = {
        "request": request,
        "_": gettext,
        "lang": language,
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "csrf_token": csrf_for(request),
        "actor": actor,
        "unread_notifications": unread_notifications(request, actor),
        "can": (lambda permission: actor is not None and actor.can(permission)),
        "localtime": localtime,
        "shorttime": shorttime,
        "rule_title": rule_title,
        "_e": translate_error,
        "role_names": ROLE_LABELS,
        "level_names": LEVEL_LABELS,
        "status_names": STATUS_LABELS,
        "hunt_status_names": HUNT_STATUS_LABELS,
        "sort_names": SORT_LABELS,
        "group_names": GROUP_LABELS,
        "permission_names": PERMISSION_LABELS,
        "rule_status_names": RULE_STATUS_LABELS,
        "audit_action_names": AUDIT_ACTION_LABELS,
        "history_action_names": HISTORY_LABELS,
        "target_names": TARGET_LABELS,
        "actor_names": ACTOR_LABELS,
        "incident_status_names": INCIDENT_STATUS_LABELS,
        "resolution_names": RESOLUTION_LABELS,
        "severity_names": SEVERITY_LABELS,
        "task_status_names": TASK_STATUS_LABELS,
        "clock_names": CLOCK_LABELS,
        "clock_state_names": CLOCK_STATE_LABELS,
        "observable_names": OBSERVABLE_LABELS,
        "timeline_names": TIMELINE_LABELS,
        "message_kind_names": MESSAGE_KIND_LABELS,
        "notification_names": NOTIFICATION_LABELS,
        "channel_names": CHANNEL_LABELS,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers["Content-Language"] = language
    return response
