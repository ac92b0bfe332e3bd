"""The words of leak notices and of the report to the authorised body, in Kazakh, Russian and
English, kept together so a notice and the report name a category of data the same way.

They live here rather than in the console's gettext catalogues because they leave Qorgan: a
subject reads a notice without ever seeing the console, and the report goes to the
authorised body in the language the holder picks, whatever the console's. Times are written
``dd.mm.yyyy hh:mm`` in the service's zone (Asia/Almaty, UTC+5), unambiguous in all three.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("kk", "ru", "en")
#: The report to the authorised body is written in a state language.
REPORT_LANGUAGES = ("kk", "ru")

CATEGORIES: dict[str, dict[str, str]] = {
    "general": {
        "kk": "жалпы дербес деректер",
        "ru": "общие персональные данные",
        "en": "general personal data",
    },
    "restricted": {
        "kk": "қолжетімділігі шектеулі дербес деректер",
        "ru": "персональные данные ограниченного доступа",
        "en": "restricted-access personal data",
    },
    "biometric": {
        "kk": "биометриялық деректер",
        "ru": "биометрические данные",
        "en": "biometric data",
    },
    "special": {
        "kk": "арнайы санаттағы деректер (денсаулық, наным-сенім және т. б.)",
        "ru": "специальные категории данных (здоровье, убеждения и т. п.)",
        "en": "special categories of data (health, beliefs and the like)",
    },
}

UNKNOWN = {"kk": "белгісіз", "ru": "неизвестно", "en": "unknown"}

#: The report's labels (PDF) by language.
REPORT: dict[str, dict[str, str]] = {
    "kk": {
        "title": "Дербес деректердің заңсыз таралуы (жылыстауы) туралы хабарлама",
        "addressee": "Дербес деректерді қорғау саласындағы уәкілетті органға",
        "reference": "Хабарлама нөмірі",
        "holder": "Дербес деректерді иеленуші",
        "bin": "БСН",
        "system": "Ақпараттық жүйе",
        "owner": "Меншік иесі",
        "operator": "Операторы",
        "none": "көрсетілмеген",
        "categories": "Жылыстаған дербес деректердің санаттары",
        "description": "Не жылыстады",
        "occurred_at": "Жылыстау уақыты",
        "detected_at": "Анықталған уақыты",
        "due_at": "Уәкілетті органды хабардар ету мерзімі",
        "submitted_at": "Жіберілген уақыты",
        "not_submitted": "әлі жіберілмеген",
        "measures": "Қабылданған шаралар",
        "responsible": "Жауапты тұлға",
        "contacts": "Байланыс деректері",
        "incident": "Инцидент",
        "count": "Зардап шеккен субъектілер саны",
        "subjects": "Субъектілер (ЖСН жасырылған)",
        "number": "№",
        "iin": "ЖСН",
        "channel": "Хабарлау арнасы",
        "email": "электрондық пошта",
        "sms": "SMS",
        "notice": "Хабарлама",
        "generated": "Qorgan жасаған",
        "page": "Бет {page}/{pages}",
    },
    "ru": {
        "title": "Уведомление о неправомерном распространении (утечке) персональных данных",
        "addressee": "В уполномоченный орган в сфере защиты персональных данных",
        "reference": "Номер уведомления",
        "holder": "Обладатель персональных данных",
        "bin": "БИН",
        "system": "Информационная система",
        "owner": "Собственник",
        "operator": "Оператор",
        "none": "не указана",
        "categories": "Категории персональных данных, затронутых утечкой",
        "description": "Что произошло",
        "occurred_at": "Время утечки",
        "detected_at": "Время обнаружения",
        "due_at": "Срок уведомления уполномоченного органа",
        "submitted_at": "Направлено",
        "not_submitted": "ещё не направлено",
        "measures": "Принятые меры",
        "responsible": "Ответственное лицо",
        "contacts": "Контакты",
        "incident": "Инцидент",
        "count": "Количество затронутых субъектов",
        "subjects": "Субъекты (ИИН скрыт)",
        "number": "№",
        "iin": "ИИН",
        "channel": "Канал уведомления",
        "email": "электронная почта",
        "sms": "SMS",
        "notice": "Уведомление",
        "generated": "Сформировано Qorgan",
        "page": "Стр. {page} из {pages}",
    },
}


def leak_reference(leak_id: int) -> str:
    """The report's reference as people quote it."""
    return f"LEAK-{leak_id:06d}"


def categories(values: list[str], language: str) -> str:
    """The categories in ``language``, comma-separated."""
    return ", ".join(CATEGORIES.get(v, {}).get(language, v) for v in values)


def when(moment: datetime | None, language: str, zone: str = "Asia/Almaty") -> str:
    """``dd.mm.yyyy hh:mm`` in ``zone``, or "unknown" in ``language``."""
    if moment is None:
        return UNKNOWN[language]
    return f"{moment.astimezone(ZoneInfo(zone)):%d.%m.%Y %H:%M} ({zone})"
