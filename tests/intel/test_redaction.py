"""Redaction before sharing: each detector finds its kind, and leaves its neighbours alone."""

from __future__ import annotations

import copy
import re
from datetime import date

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from qorgan.core.identifiers import check_digit, is_valid_iin
from qorgan.intel.redaction import (
    GREEN,
    Kind,
    Mark,
    Mode,
    PathMark,
    RedactionError,
    RedactionPolicy,
    Victim,
    preview,
    redact_object,
    redact_text,
)

KEY = b"test-key-0123456789abcdef"
OTHER_KEY = b"another-key-0123456789abcdef"
VICTIM = Victim(names=("Halyk Bank", "Halyk", "Халык Банк"), sector="a bank")
POLICY = GREEN(internal_networks=["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"], victim=VICTIM)
PSEUDO = GREEN(internal_networks=["10.0.0.0/8"], victim=VICTIM, mode=Mode.pseudonymise, key=KEY)

# Valid IINs (check digits computed with qorgan.core.identifiers.check_digit).
IIN = "900101300126"  # 1990-01-01, male
IIN_2 = "850505401234"  # 1985-05-05, female
HASH_SHA256 = "e3b0c44298fc1c149afbfc8996fb92427ae41e4649b934ca495991b7852b855"
HASH_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def kinds(text: str, policy: RedactionPolicy = POLICY) -> list[tuple[str, Kind]]:
    """What was found, as (original span, kind), in order."""
    return [(text[m.start : m.end], m.kind) for m in redact_text(text, policy).marks]


def apply(text: str, marks: tuple[Mark, ...]) -> str:
    """The marks applied to the original: what the preview shows must be what is sent."""
    out, pos = [], 0
    for m in marks:
        assert pos <= m.start < m.end  # sorted, non-overlapping
        out += [text[pos : m.start], m.replacement]
        pos = m.end
    return "".join([*out, text[pos:]])


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# --- the helpers the tests rely on -------------------------------------------------------------


def test_the_example_iins_are_valid() -> None:
    assert is_valid_iin(IIN) and is_valid_iin(IIN_2)


# --- IIN ---------------------------------------------------------------------------------------


def test_an_iin_is_redacted_plain_and_in_groups() -> None:
    text = f"ИИН {IIN}, жеке сәйкестендіру нөмірі 850505 401 234, ИИН:{IIN}."
    assert redact_text(text, POLICY).text == (
        "ИИН [IIN], жеке сәйкестендіру нөмірі [IIN], ИИН:[IIN]."
    )


def test_twelve_digits_with_a_wrong_check_digit_are_kept() -> None:
    order = IIN[:11] + str((int(IIN[11]) + 1) % 10)
    text = f"Заказ № {order} оплачен; a birth date in the future: 920229600016."
    assert redact_text(text, POLICY).marks == ()


def test_hashes_and_longer_numbers_are_kept_even_when_they_hold_an_iin() -> None:
    text = (
        f"sha256 {HASH_SHA256} md5 {HASH_MD5} file ab{IIN}cd serial 7{IIN}3 version 1.{IIN} {IIN}.5"
    )
    assert redact_text(text, POLICY).marks == ()


# --- phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+7 (701) 234-56-78",
        "+77012345678",
        "8 701 234 56 78",
        "8-701-234-56-78",
        "8(701)2345678",
        "+7.701.234.56.78",
        "87012345678",
        "7 701 234 5678",
        "8 (7172) 55-66-77",
        "+7 727 272 00 00",
        "701 234 56 78",
    ],
)
def test_a_kazakh_phone_number_is_redacted(phone: str) -> None:
    text = f"Хабарласу: {phone}."
    assert kinds(text) == [(phone, Kind.phone)]
    assert redact_text(text, POLICY).text == "Хабарласу: [phone]."
    assert redact_text(f"тел.:{phone}", POLICY).text == "тел.:[phone]"


@pytest.mark.parametrize(
    "text",
    [
        "Call +1 202 555 0143 or +44 20 7946 0958.",  # other countries
        "Звонок с +7 916 123-45-67 (Москва).",  # +7 9xx is Russia
        "Event ID 4624 and 4625, port 3389, PID 7012.",
        "At 2024-03-01 12:34:56 UTC, 2024-07-01T17:01:22+05:00.",
        "From 185.220.101.5:7701 and 77.88.55.66.",
        "Record 7012345678 of the proxy log, build 20240301123456.",
        "CVE-2024-7012345 and KB5034441.",
    ],
)
def test_what_is_not_a_kazakh_phone_number_is_kept(text: str) -> None:
    assert redact_text(text, POLICY).marks == ()


# --- e-mail ------------------------------------------------------------------------------------


def test_an_email_with_digits_is_one_email_not_a_phone() -> None:
    text = "Письмо с ivan.87012345678@mail.kz пришло."
    assert kinds(text) == [("ivan.87012345678@mail.kz", Kind.email)]


def test_an_email_inside_a_url_is_redacted_and_a_domain_alone_is_kept() -> None:
    text = "Lure at https://evil.example.kz/reset?u=a.nurlanova@gov.kz from evil.example.kz."
    assert redact_text(text, POLICY).text == (
        "Lure at https://evil.example.kz/reset?u=[e-mail] from evil.example.kz."
    )


# --- account -----------------------------------------------------------------------------------


def test_accounts_are_redacted_in_their_usual_forms() -> None:
    text = (
        "Logon by CORP\\jdoe and asmith@corp.local; user: bsmith; Account Name: ckent; "
        "profile C:\\Users\\dprince\\AppData and /home/eve."
    )
    assert [s for s, k in kinds(text) if k is Kind.account] == [
        "CORP\\jdoe",
        "asmith@corp.local",
        "bsmith",
        "ckent",
        "dprince",
        "eve",
    ]


def test_built_in_accounts_are_kept() -> None:
    text = (
        "Run as NT AUTHORITY\\SYSTEM and NT AUTHORITY\\LOCAL SERVICE; brute force of "
        "Administrator (user: Administrator), CORP\\krbtgt, machine CORP\\WS01$, "
        "C:\\Users\\Public; Account Name: -, Logon ID: 0x3E7."
    )
    assert redact_text(text, POLICY).marks == ()


# --- internal address --------------------------------------------------------------------------


def test_internal_addresses_are_redacted_and_attacker_addresses_kept() -> None:
    text = (
        "Beacon from 10.1.2.3 and 192.168.5.0/24 and fd00::12 to 185.220.101.5, "
        "2a01:4f8::1 and 8.8.8.8; not 10.1.2 nor 10.1.2.3.4."
    )
    assert redact_text(text, POLICY).text == (
        "Beacon from [internal address] and [internal address] and [internal address] to "
        "185.220.101.5, 2a01:4f8::1 and 8.8.8.8; not 10.1.2 nor 10.1.2.3.4."
    )


def test_without_internal_networks_no_address_is_redacted() -> None:
    assert redact_text("Host 10.1.2.3", GREEN()).marks == ()


# --- person names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Nurlan Abenov",
        "A. Abenova",
        "A. Smith",
        "J.R. Abenov",
        "Aigerim Nurlanovna Seitkali",
        "Aigerim S.",
        "John Smith",
        "Иванов Иван Иванович",
        "Сейткали Айгерим Нурлановна",
        "Айгерим Сейткали",
        "А.Б. Абенов",
        "Абенов А.Б.",
        "Нұрлан Ерланұлы",
    ],
)
def test_a_person_name_is_redacted(name: str) -> None:
    text = f"Во вторник {name} сообщил о письме."
    assert kinds(text) == [(name, Kind.person_name)]


def test_a_surname_after_a_cue_is_a_person() -> None:
    text = "Пользователь Иванов сообщил; Mr Smith, user Abenova and г-н Абенов confirmed."
    assert [s for s, _ in kinds(text)] == ["Иванов", "Smith", "Abenova", "Абенов"]


def test_a_role_before_an_ordinary_word_is_no_person() -> None:
    text = "The user Administrator, engineer Support and пользователь Windows were seen."
    assert redact_text(text, POLICY).marks == ()


@pytest.mark.parametrize(
    "text",
    [
        "Mimikatz dumped credentials, then Cobalt Strike beacons and Emotet followed.",
        "Windows Server 2019 with Kaspersky Endpoint Security and Microsoft Defender.",
        "Attackers Used PowerShell. Then Lateral Movement Began.",
        "Пользователь Windows сообщил. Сообщила Айгерим, что Active Directory недоступен.",
        "Сервер Казахстан Банк в Алматы; Threat Report Appendix A. Table B.",
        "Злоумышленники использовали Mimikatz и Cobalt Strike.",
        "Sanctions by the U.S. Treasury and the E.U. Council.",
    ],
)
def test_tools_products_and_sentence_starts_are_not_persons(text: str) -> None:
    assert [k for _, k in kinds(text)] == []


# --- victim ------------------------------------------------------------------------------------


def test_the_victim_is_replaced_by_its_sector() -> None:
    text = "Halyk Bank was hit; staff at Халык Банк and HALYK were told."
    assert redact_text(text, POLICY).text == (
        "A bank was hit; staff at a bank and a bank were told."
    )


# --- modes -------------------------------------------------------------------------------------


def test_pseudonyms_are_stable_per_key_and_normalised() -> None:
    text = "Тел. +7 701 234 56 78 и 87012345678; Nurlan Abenov и nurlan  abenov? Nurlan Abenov."
    first = redact_text(text, PSEUDO)
    phones = [m.replacement for m in first.marks if m.kind is Kind.phone]
    persons = [m.replacement for m in first.marks if m.kind is Kind.person_name]
    assert len(set(phones)) == 1 and re.fullmatch(r"\[phone-[0-9a-f]{8}\]", phones[0])
    assert len(persons) == 2 and len(set(persons)) == 1
    assert redact_text(text, PSEUDO) == first
    other = GREEN(victim=VICTIM, mode=Mode.pseudonymise, key=OTHER_KEY)
    assert redact_text(text, other).text != first.text


def test_pseudonymise_needs_a_key_and_never_shows_it() -> None:
    with pytest.raises(RedactionError):
        GREEN(mode=Mode.pseudonymise)
    with pytest.raises(RedactionError):
        GREEN(mode=Mode.pseudonymise, key=b"short")
    assert KEY.decode() not in repr(PSEUDO)


def test_a_policy_redacts_only_its_kinds() -> None:
    only_iin = RedactionPolicy(kinds=frozenset({Kind.iin}))
    text = f"ИИН {IIN}, тел. 87012345678, ivan@mail.kz"
    assert redact_text(text, only_iin).text == "ИИН [IIN], тел. 87012345678, ivan@mail.kz"


def test_a_bad_network_is_refused() -> None:
    with pytest.raises(RedactionError):
        GREEN(internal_networks=["10.0.0.300/8"])


# --- properties --------------------------------------------------------------------------------


@st.composite
def iins(draw: st.DrawFn) -> str:
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)))
    female = draw(st.booleans())
    century = {19: 3, 20: 5}[born.year // 100] + female
    first11 = born.strftime("%y%m%d") + str(century) + draw(st.from_regex(r"\A[0-9]{4}\Z"))
    check = check_digit(first11)
    assume(check is not None)  # by the rule, these 11 digits have no valid IIN
    return first11 + str(check)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """A Kazakh number as people write it, and its ten national digits."""
    code = draw(st.sampled_from(["700", "701", "702", "705", "707", "747", "771", "775", "777"]))
    rest = draw(st.from_regex(r"\A[0-9]{7}\Z"))
    national = code + rest
    prefix = draw(st.sampled_from(["+7", "+7 ", "8", "8 ", "8-", "+7-", "7 "]))
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    body = draw(
        st.sampled_from(
            [
                f"{a} {b} {c} {d}",
                f"({a}) {b}-{c}-{d}",
                f"({a}){b}{c}{d}",
                f"{a}-{b}-{c}-{d}",
                f"{a}.{b}.{c}.{d}",
                f"{a}{b}{c}{d}",
                f"{a} {b} {c}{d}",
            ]
        )
    )
    return prefix + body, national


emails = st.builds(
    lambda user, sep, n, domain: f"{user}{sep}{n}@{domain}",
    st.sampled_from(["ivan", "a.nurlanova", "serik_b", "aigerim", "j.smith", "info", "d-k"]),
    st.sampled_from(["", ".", "_"]),
    st.sampled_from(["", "1990", "87", "7012345678"]),
    st.sampled_from(["mail.kz", "gov.kz", "halyk.kz", "gmail.com", "sub.akimat.almaty.kz"]),
)

SENTENCES = [
    "Пользователь {} сообщил о подозрительном письме.",
    "Хабарласу: {}",
    "Contact the victim at {}.",
    "Жәбірленуші {} арқылы хабарласты.",
    "Получено письмо ({}), вложение удалено.",
    "Reported by {}, see ticket.",
]


@given(iin=iins(), sentence=st.sampled_from(SENTENCES))
@SETTINGS
def test_no_iin_survives(iin: str, sentence: str) -> None:
    assert is_valid_iin(iin)
    text = sentence.format(f"ИИН {iin}")
    result = redact_text(text, POLICY)
    assert iin not in digits(result.text)
    assert result.text == apply(text, result.marks)


@given(phone=phones(), sentence=st.sampled_from(SENTENCES))
@SETTINGS
def test_no_kazakh_phone_survives(phone: tuple[str, str], sentence: str) -> None:
    written, national = phone
    text = sentence.format(written)
    result = redact_text(text, POLICY)
    assert national not in digits(result.text)
    assert result.text == apply(text, result.marks)


@given(email=emails, sentence=st.sampled_from(SENTENCES))
@example(email="ivan.@mail.kz", sentence=SENTENCES[0])  # a dot before the @ is still a mailbox
@SETTINGS
def test_no_email_survives(email: str, sentence: str) -> None:
    text = sentence.format(email)
    result = redact_text(text, POLICY)
    assert "@" not in result.text
    assert [m.kind for m in result.marks] == [Kind.email]
    assert result.text == apply(text, result.marks)


@given(iin=iins(), phone=phones(), email=emails)
@settings(SETTINGS, max_examples=100)  # four detectors per example: half the examples, ~1.5 s
def test_all_together_in_one_write_up(iin: str, phone: tuple[str, str], email: str) -> None:
    text = (
        f"Пользователь Иванов Иван (ИИН {iin}) сообщил. Хабарласу: {phone[0]}. "
        f"Contact the victim at {email} or Nurlan Abenov."
    )
    result = redact_text(text, POLICY)
    out = digits(result.text)
    assert iin not in out and phone[1] not in out and "@" not in result.text
    assert "Иванов" not in result.text and "Abenov" not in result.text
    assert result.text == apply(text, result.marks)


# --- STIX objects ------------------------------------------------------------------------------

INDICATOR = {
    "type": "indicator",
    "spec_version": "2.1",
    "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
    "created": "2026-11-30T10:00:00.000Z",
    "modified": "2026-11-30T10:00:00.000Z",
    "name": "Phishing sender",
    "pattern": "[email-addr:value = 'ivan@mail.kz'] OR [ipv4-addr:value = '185.220.101.5']",
    "pattern_type": "stix",
    "valid_from": "2026-11-30T10:00:00Z",
    "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
}


def test_an_indicator_pattern_keeps_its_syntax() -> None:
    before = copy.deepcopy(INDICATOR)
    result = redact_object(INDICATOR, POLICY)
    assert before == INDICATOR
    assert result.object == {
        **INDICATOR,
        "pattern": "[email-addr:value = '[e-mail]'] OR [ipv4-addr:value = '185.220.101.5']",
    }
    assert result.marks == (PathMark(("pattern",), Mark(21, 33, Kind.email, "[e-mail]")),)


def unescaped_quotes(pattern: str) -> int:
    return len(re.findall(r"(?<!\\)'", pattern.replace("\\\\", "")))


def test_pattern_strings_of_accounts_and_display_names_are_redacted_whole() -> None:
    obj = {
        "type": "indicator",
        "pattern": (
            "[user-account:account_login = 'CORP\\\\jdoe' OR user-account:account_login = 'nabenov'"
            " OR user-account:account_login = 'SYSTEM'] AND [email-message:from_ref.display_name"
            " = 'Seitkali' AND file:name = 'it\\'s from ivan@mail.kz']"
        ),
    }
    pattern = redact_object(obj, POLICY).object["pattern"]
    assert pattern == (
        "[user-account:account_login = '[account]' OR user-account:account_login = '[account]'"
        " OR user-account:account_login = 'SYSTEM'] AND [email-message:from_ref.display_name"
        " = '[person]' AND file:name = 'it\\'s from [e-mail]']"
    )
    assert unescaped_quotes(pattern) == unescaped_quotes(obj["pattern"])
    pseudo = redact_object(obj, PSEUDO).object["pattern"]
    assert unescaped_quotes(pseudo) == unescaped_quotes(obj["pattern"])
    assert "jdoe" not in pseudo and "nabenov" not in pseudo and "Seitkali" not in pseudo


REPORT = {
    "type": "report",
    "spec_version": "2.1",
    "id": "report--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
    "created": "2026-11-30T10:00:00.000Z",
    "modified": "2026-11-30T10:00:00.000Z",
    "published": "2026-11-30T10:00:00Z",
    "name": "Phishing at Halyk Bank",
    "description": f"Сотрудник Абенов Нурлан (ИИН {IIN}) открыл вложение; Mimikatz найден.",
    "labels": ["phishing", "Halyk"],
    "object_refs": ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"],
    "x_qorgan_contact": "Aigerim S., +7 701 234 56 78",
}


def test_a_report_loses_the_person_the_iin_and_the_victim() -> None:
    before = copy.deepcopy(REPORT)
    result = redact_object(REPORT, POLICY)
    assert before == REPORT
    assert result.object == {
        **REPORT,
        "name": "Phishing at a bank",
        "description": "Сотрудник [person] (ИИН [IIN]) открыл вложение; Mimikatz найден.",
        "labels": ["phishing", "a bank"],
        "x_qorgan_contact": "[person], [phone]",
    }
    assert [(m.path, m.mark.kind) for m in result.marks] == [
        (("name",), Kind.victim),
        (("description",), Kind.person_name),
        (("description",), Kind.iin),
        (("labels", 1), Kind.victim),
        (("x_qorgan_contact",), Kind.person_name),
        (("x_qorgan_contact",), Kind.phone),
    ]


def test_remove_and_pseudonymise_differ_and_pseudonyms_follow_the_key() -> None:
    removed = redact_object(REPORT, POLICY).object["description"]
    first = redact_object(REPORT, PSEUDO).object["description"]
    again = redact_object(REPORT, PSEUDO).object["description"]
    other_policy = GREEN(victim=VICTIM, mode=Mode.pseudonymise, key=OTHER_KEY)
    other = redact_object(REPORT, other_policy).object["description"]
    assert "[person]" in removed and "[IIN]" in removed
    assert re.fullmatch(
        r"Сотрудник \[person-[0-9a-f]{8}\] \(ИИН \[IIN-[0-9a-f]{8}\]\) открыл вложение; "
        r"Mimikatz найден\.",
        first,
    )
    assert first == again and first != other


VICTIM_IDENTITY = {
    "type": "identity",
    "spec_version": "2.1",
    "id": "identity--e5f1b90a-d9b6-40ab-81a9-8a29df4b6b65",
    "created": "2026-11-30T10:00:00.000Z",
    "modified": "2026-11-30T10:00:00.000Z",
    "name": "Halyk Bank",
    "identity_class": "organization",
    "sectors": ["financial-services"],
    "contact_information": "soc@halyk.kz, +7 727 259 07 77",
}


def test_the_victim_identity_becomes_its_sector() -> None:
    before = copy.deepcopy(VICTIM_IDENTITY)
    result = redact_object(VICTIM_IDENTITY, POLICY)
    assert before == VICTIM_IDENTITY
    expected = {k: v for k, v in VICTIM_IDENTITY.items() if k != "contact_information"}
    assert result.object == {**expected, "name": "a bank"}
    assert result.marks == (
        PathMark(("name",), Mark(0, 10, Kind.victim, "a bank")),
        PathMark(("contact_information",), Mark(0, 30, Kind.victim, "")),
    )


def test_an_individual_identity_is_a_person() -> None:
    obj = {"type": "identity", "name": "Nurlan Abenov", "identity_class": "individual"}
    assert redact_object(obj, POLICY).object == {**obj, "name": "[person]"}


USER_ACCOUNT = {
    "type": "user-account",
    "spec_version": "2.1",
    "id": "user-account--0d5b424b-93b8-5cd8-ac36-306e1789d63c",
    "account_login": "nabenov",
    "display_name": "Nurlan Abenov",
    "user_id": "S-1-5-21-1004336348-1177238915-682003330-1104",
    "account_type": "windows-domain",
}


def test_a_user_account_loses_its_login_name_and_id() -> None:
    result = redact_object(USER_ACCOUNT, POLICY)
    assert result.object == {
        **USER_ACCOUNT,
        "account_login": "[account]",
        "display_name": "[account]",
        "user_id": "[account]",
    }
    builtin = {**USER_ACCOUNT, "account_login": "SYSTEM", "display_name": "SYSTEM"}
    assert redact_object(builtin, POLICY).object["account_login"] == "SYSTEM"


OBSERVED = {
    "type": "observed-data",
    "spec_version": "2.1",
    "id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
    "created": "2026-11-30T10:00:00.000Z",
    "modified": "2026-11-30T10:00:00.000Z",
    "first_observed": "2026-11-30T09:00:00Z",
    "last_observed": "2026-11-30T09:05:00Z",
    "number_observed": 1,
    "objects": {
        "0": {"type": "user-account", "account_login": "CORP\\jdoe"},
        "1": {"type": "ipv4-addr", "value": "10.20.30.40"},
        "2": {
            "type": "file",
            "hashes": {"MD5": HASH_MD5},
            "extensions": {
                "x-qorgan-note-ext": {
                    "extension_type": "property-extension",
                    "note": "Opened by Aigerim S. on 10.20.30.40 from 185.220.101.5",
                }
            },
        },
    },
}


def test_nested_observed_objects_and_extensions_are_walked() -> None:
    before = copy.deepcopy(OBSERVED)
    result = redact_object(OBSERVED, POLICY)
    assert before == OBSERVED
    objects = result.object["objects"]
    assert objects["0"] == {"type": "user-account", "account_login": "[account]"}
    assert objects["1"] == {"type": "ipv4-addr", "value": "[internal address]"}
    assert objects["2"]["hashes"] == {"MD5": HASH_MD5}
    note = objects["2"]["extensions"]["x-qorgan-note-ext"]["note"]
    assert note == "Opened by [person] on [internal address] from 185.220.101.5"
    assert [m.path for m in result.marks] == [
        ("objects", "0", "account_login"),
        ("objects", "1", "value"),
        ("objects", "2", "extensions", "x-qorgan-note-ext", "note"),
        ("objects", "2", "extensions", "x-qorgan-note-ext", "note"),
    ]
    assert {k: result.object[k] for k in before if k != "objects"} == {
        k: v for k, v in before.items() if k != "objects"
    }


def test_the_preview_is_what_is_sent() -> None:
    for obj in (INDICATOR, REPORT, VICTIM_IDENTITY, USER_ACCOUNT, OBSERVED):
        assert preview(obj, PSEUDO) == redact_object(obj, PSEUDO)
