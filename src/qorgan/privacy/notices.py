"""The words of a leak notice to a subject: what leaked, when, what the holder did, and whom to
ask, in Kazakh, Russian and English one after the other (the holder's list gives no language,
and the subject must understand it whichever they read).

A notice never carries the IIN, not even masked: it may be forwarded, read over a shoulder or
sit in a shared mailbox, and the person knows their own number. It carries the subject's name
(e-mail only), so the reader can tell it is meant for them, and a line saying it never asks
for a password, a code or money: a leak is what phishers follow up on.

An e-mail gets the whole text; an SMS a short one (the holder, the categories, the date found,
whom to ask) in Kazakh and Russian, which fits in a few segments. Pure: no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from qorgan.privacy.leak_words import categories, leak_reference, when

_ZONE = ZoneInfo("Asia/Almaty")


@dataclass(frozen=True, repr=False)
class NoticeFacts:
    """What a notice says. Its ``repr`` leaves out everything personal."""

    leak_id: int
    holder_name: str
    holder_bin: str
    categories: list[str]
    description: str
    occurred_at: datetime | None
    detected_at: datetime
    measures: str
    responsible_person: str
    contacts: str
    subject_name: str

    def __repr__(self) -> str:
        return f"NoticeFacts(leak_id={self.leak_id})"


SUBJECT = (
    "Дербес деректеріңіздің жылыстауы туралы хабарлама / Уведомление об утечке ваших "
    "персональных данных / Notice of a leak of your personal data ({reference})"
)

_BODY = {
    "kk": """Құрметті {name}!

{holder} (БСН {bin}) сіздің дербес деректеріңіз заңсыз таралғанын (жылыстағанын) хабарлайды.

Жылыстаған деректер: {categories}.
Не болды: {description}
Жылыстау уақыты: {occurred}. Анықталған уақыты: {detected}.
Қабылданған шаралар: {measures}
Сұрақтар бойынша: {responsible}, {contacts}.

Бұл хабарлама сізден құпиясөзді, SMS-кодты немесе төлемді ешқашан сұрамайды.
Хабарлама нөмірі: {reference}.""",
    "ru": """Уважаемый(ая) {name}!

{holder} (БИН {bin}) сообщает о неправомерном распространении (утечке) ваших персональных данных.

Затронутые данные: {categories}.
Что произошло: {description}
Время утечки: {occurred}. Время обнаружения: {detected}.
Принятые меры: {measures}
По вопросам обращайтесь: {responsible}, {contacts}.

Это уведомление никогда не запрашивает у вас пароль, код из SMS или оплату.
Номер уведомления: {reference}.""",
    "en": """Dear {name},

{holder} (BIN {bin}) informs you that your personal data leaked.

Data concerned: {categories}.
What happened: {description}
When it happened: {occurred}. When it was found: {detected}.
Measures taken: {measures}
For questions, contact: {responsible}, {contacts}.

This notice never asks you for a password, a code from an SMS or a payment.
Notice reference: {reference}.""",
}

_SMS = {
    "kk": "{holder}: {detected} сіздің дербес деректеріңіздің жылыстауы анықталды ({categories}). "
    "Сұрақтар: {contacts}.",
    "ru": "{holder}: {detected} обнаружена утечка ваших персональных данных ({categories}). "
    "Вопросы: {contacts}.",
}


def _values(facts: NoticeFacts, language: str) -> dict[str, str]:
    return {
        "name": facts.subject_name,
        "holder": facts.holder_name,
        "bin": facts.holder_bin,
        "categories": categories(facts.categories, language),
        "description": facts.description,
        "occurred": when(facts.occurred_at, language),
        "detected": when(facts.detected_at, language),
        "measures": facts.measures,
        "responsible": facts.responsible_person,
        "contacts": facts.contacts,
        "reference": leak_reference(facts.leak_id),
    }


def email_text(facts: NoticeFacts) -> tuple[str, str]:
    """The e-mail's subject line and plain-text body, Kazakh first."""
    parts = [_BODY[language].format(**_values(facts, language)) for language in ("kk", "ru", "en")]
    subject = SUBJECT.format(reference=leak_reference(facts.leak_id))
    return subject, "\n\n— — —\n\n".join(parts) + "\n"


def sms_text(facts: NoticeFacts) -> str:
    """The SMS: Kazakh, then Russian; the date found without the time or zone."""
    out = []
    for language in ("kk", "ru"):
        values = _values(facts, language)
        values["detected"] = f"{facts.detected_at.astimezone(_ZONE):%d.%m.%Y}"
        out.append(_SMS[language].format(**values))
    return " / ".join(out)
