"""Field definitions of leads, contacts and deals, and the UPPER_CASE ↔ camelCase mapping.

One table drives input coercion (unknown fields dropped, read-only fields ignored), output
formatting (classic methods return every scalar as a string), list filtering (numeric vs text
comparison), `select` (`*` omits multifields and `UF_*`), `crm.*.fields` and the `crm.item.*`
camelCase view, so the families cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MULTIFIELD_TYPES = ("PHONE", "EMAIL", "WEB", "IM")
ENTITY_TYPE_IDS = {"lead": 1, "deal": 2, "contact": 3, "company": 4}
ENTITY_BY_TYPE_ID = {v: k for k, v in ENTITY_TYPE_IDS.items()}
EVENT_PREFIX = {"lead": "ONCRMLEAD", "deal": "ONCRMDEAL", "contact": "ONCRMCONTACT"}


@dataclass(frozen=True)
class FieldDef:
    """One entity field as `crm.*.fields` describes it."""

    type: str
    title: str
    read_only: bool = False
    immutable: bool = False
    multiple: bool = False
    required: bool = False
    status_type: str | None = None
    hidden_in_get: bool = False  # write-only (CONTACT_IDS on classic get)

    @property
    def numeric(self) -> bool:
        return self.type in {"integer", "double", "user", "crm_category", "crm_contact", "crm_company", "crm_lead"}


def _f(type_: str, title: str, **kw: object) -> FieldDef:
    return FieldDef(type_, title, **kw)  # type: ignore[arg-type]


_COMMON_HEAD = {
    "ID": _f("integer", "ID", read_only=True),
}
_UTM = {
    "UTM_SOURCE": _f("string", "Рекламная система"),
    "UTM_MEDIUM": _f("string", "Тип трафика"),
    "UTM_CAMPAIGN": _f("string", "Обозначение рекламной кампании"),
    "UTM_CONTENT": _f("string", "Содержание кампании"),
    "UTM_TERM": _f("string", "Условие поиска кампании"),
}
_AUDIT = {
    "DATE_CREATE": _f("datetime", "Дата создания", read_only=True),
    "DATE_MODIFY": _f("datetime", "Дата изменения", read_only=True),
    "CREATED_BY_ID": _f("user", "Кем создан", read_only=True),
    "MODIFY_BY_ID": _f("user", "Кем изменён", read_only=True),
}
_ORIGIN = {
    "ORIGINATOR_ID": _f("string", "Внешний источник"),
    "ORIGIN_ID": _f("string", "Идентификатор элемента во внешнем источнике"),
}
_MULTI = {name: _f("crm_multifield", name, multiple=True) for name in MULTIFIELD_TYPES}

FIELDS: dict[str, dict[str, FieldDef]] = {
    "lead": {
        **_COMMON_HEAD,
        "TITLE": _f("string", "Название лида"),
        "HONORIFIC": _f("crm_status", "Обращение", status_type="HONORIFIC"),
        "NAME": _f("string", "Имя"),
        "SECOND_NAME": _f("string", "Отчество"),
        "LAST_NAME": _f("string", "Фамилия"),
        "BIRTHDATE": _f("date", "Дата рождения"),
        "COMPANY_TITLE": _f("string", "Название компании"),
        "SOURCE_ID": _f("crm_status", "Источник", status_type="SOURCE"),
        "SOURCE_DESCRIPTION": _f("string", "Дополнительно об источнике"),
        "STATUS_ID": _f("crm_status", "Стадия", status_type="STATUS"),
        "STATUS_DESCRIPTION": _f("string", "Дополнительно о стадии"),
        "STATUS_SEMANTIC_ID": _f("string", "Состояние статуса", read_only=True),
        "POST": _f("string", "Должность"),
        "ADDRESS": _f("string", "Адрес"),
        "CURRENCY_ID": _f("crm_currency", "Валюта"),
        "OPPORTUNITY": _f("double", "Сумма"),
        "IS_MANUAL_OPPORTUNITY": _f("char", "Сумма заполняется вручную"),
        "OPENED": _f("char", "Доступен для всех"),
        "COMMENTS": _f("string", "Комментарий"),
        "HAS_PHONE": _f("char", "Задан телефон", read_only=True),
        "HAS_EMAIL": _f("char", "Задан e-mail", read_only=True),
        "HAS_IMOL": _f("char", "Задана открытая линия", read_only=True),
        "ASSIGNED_BY_ID": _f("user", "Ответственный"),
        **_AUDIT,
        "COMPANY_ID": _f("crm_company", "Компания"),
        "CONTACT_ID": _f("crm_contact", "Контакт"),
        "CONTACT_IDS": _f("crm_contact", "Контакты", multiple=True, hidden_in_get=True),
        "IS_RETURN_CUSTOMER": _f("char", "Повторный лид", read_only=True),
        "DATE_CLOSED": _f("datetime", "Дата закрытия", read_only=True),
        **_ORIGIN,
        **_UTM,
        **_MULTI,
    },
    "contact": {
        **_COMMON_HEAD,
        "HONORIFIC": _f("crm_status", "Обращение", status_type="HONORIFIC"),
        "NAME": _f("string", "Имя"),
        "SECOND_NAME": _f("string", "Отчество"),
        "LAST_NAME": _f("string", "Фамилия"),
        "PHOTO": _f("file", "Фотография"),
        "BIRTHDATE": _f("date", "Дата рождения"),
        "TYPE_ID": _f("crm_status", "Тип контакта", status_type="CONTACT_TYPE"),
        "SOURCE_ID": _f("crm_status", "Источник", status_type="SOURCE"),
        "SOURCE_DESCRIPTION": _f("string", "Дополнительно об источнике"),
        "POST": _f("string", "Должность"),
        "ADDRESS": _f("string", "Адрес"),
        "COMMENTS": _f("string", "Комментарий"),
        "OPENED": _f("char", "Доступен для всех"),
        "EXPORT": _f("char", "Участвует в экспорте контактов"),
        "HAS_PHONE": _f("char", "Задан телефон", read_only=True),
        "HAS_EMAIL": _f("char", "Задан e-mail", read_only=True),
        "HAS_IMOL": _f("char", "Задана открытая линия", read_only=True),
        "ASSIGNED_BY_ID": _f("user", "Ответственный"),
        **_AUDIT,
        "COMPANY_ID": _f("crm_company", "Компания"),
        "COMPANY_IDS": _f("crm_company", "Компании", multiple=True, hidden_in_get=True),
        "LEAD_ID": _f("crm_lead", "Лид", read_only=True),
        **_ORIGIN,
        **_UTM,
        **_MULTI,
    },
    "deal": {
        **_COMMON_HEAD,
        "TITLE": _f("string", "Название"),
        "TYPE_ID": _f("crm_status", "Тип", status_type="DEAL_TYPE"),
        "CATEGORY_ID": _f("crm_category", "Воронка", immutable=True),
        "STAGE_ID": _f("crm_status", "Стадия сделки", status_type="DEAL_STAGE"),
        "STAGE_SEMANTIC_ID": _f("string", "Группа стадии", read_only=True),
        "IS_NEW": _f("char", "Новая сделка", read_only=True),
        "IS_RECURRING": _f("char", "Регулярная сделка"),
        "IS_RETURN_CUSTOMER": _f("char", "Повторная сделка", read_only=True),
        "PROBABILITY": _f("integer", "Вероятность"),
        "CURRENCY_ID": _f("crm_currency", "Валюта"),
        "OPPORTUNITY": _f("double", "Сумма"),
        "IS_MANUAL_OPPORTUNITY": _f("char", "Сумма заполняется вручную"),
        "TAX_VALUE": _f("double", "Ставка налога"),
        "COMPANY_ID": _f("crm_company", "Компания"),
        "CONTACT_ID": _f("crm_contact", "Контакт"),
        "CONTACT_IDS": _f("crm_contact", "Контакты", multiple=True, hidden_in_get=True),
        "BEGINDATE": _f("date", "Дата начала"),
        "CLOSEDATE": _f("date", "Предполагаемая дата закрытия"),
        "OPENED": _f("char", "Доступна для всех"),
        "CLOSED": _f("char", "Закрыта"),
        "COMMENTS": _f("string", "Комментарий"),
        "ASSIGNED_BY_ID": _f("user", "Ответственный"),
        **_AUDIT,
        "SOURCE_ID": _f("crm_status", "Источник", status_type="SOURCE"),
        "SOURCE_DESCRIPTION": _f("string", "Дополнительно об источнике"),
        "LEAD_ID": _f("crm_lead", "Лид"),
        "ADDITIONAL_INFO": _f("string", "Дополнительная информация"),
        **_ORIGIN,
        **_UTM,
    },
}

CAMEL_ALIASES: dict[str, str] = {
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
    "BEGINDATE": "begindate",
    "CLOSEDATE": "closedate",
    "STATUS_ID": "stageId",  # lead status is `stageId` in crm.item.* (the docs also say statusId)
    "STATUS_SEMANTIC_ID": "stageSemanticId",
}
UPPER_ALIASES: dict[str, str] = {v.lower(): k for k, v in CAMEL_ALIASES.items()
                                 if k not in ("STATUS_ID", "STATUS_SEMANTIC_ID")}


def to_camel(name: str) -> str:
    """ASSIGNED_BY_ID → assignedById; UF_CRM_1700 → ufCrm1700."""
    if name in CAMEL_ALIASES:
        return CAMEL_ALIASES[name]
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def to_upper(name: str, kind: str | None = None) -> str:
    """assignedById → ASSIGNED_BY_ID; for leads stageId/statusId → STATUS_ID."""
    if kind == "lead" and name.lower() in ("stageid", "statusid"):
        return "STATUS_ID"
    alias = UPPER_ALIASES.get(name.lower())
    if alias:
        return alias
    if name.isupper() or "_" in name:
        return name.upper()
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()


def is_user_field(name: str) -> bool:
    return name.upper().startswith("UF_")


def describe_fields(kind: str) -> dict[str, dict[str, object]]:
    """`crm.<kind>.fields` result (minimal attributes, no UF definitions)."""
    result: dict[str, dict[str, object]] = {}
    for name, fd in FIELDS[kind].items():
        entry: dict[str, object] = {
            "type": fd.type,
            "isRequired": fd.required,
            "isReadOnly": fd.read_only,
            "isImmutable": fd.immutable,
            "isMultiple": fd.multiple,
            "isDynamic": False,
            "title": fd.title,
        }
        if fd.status_type:
            entry["statusType"] = fd.status_type
        result[name] = entry
    return result
