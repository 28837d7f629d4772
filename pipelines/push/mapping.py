"""The Bitrix24 CRM mapping (`config/mappings/bitrix24.yaml`): load, validate, check on the portal."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from resources.settings import PROJECT_ROOT, StrictModel, read_yaml_mapping, validate_config

MAPPINGS_DIR = PROJECT_ROOT / "config" / "mappings"
DEFAULT_MAPPING_PATH = MAPPINGS_DIR / "bitrix24.yaml"


class ContactMapping(StrictModel):
    type_id: str | None = "CLIENT"
    phone_value_type: str = "MOBILE"


class LeadMapping(StrictModel):
    status_id: str = "NEW"
    title: str = "Чат-бот: {name}"


class DealMapping(StrictModel):
    category_id: int = Field(0, ge=0)
    stage_id: str | None = None
    type_id: str | None = "SALE"
    title: str = "Заказ {id}: {name}"
    onec_number_field: str | None = "UF_CRM_ZETA_1C_NUMBER"

    @model_validator(mode="after")
    def _stage_prefix(self) -> DealMapping:
        if self.stage_id and self.category_id and not self.stage_id.startswith(f"C{self.category_id}:"):
            raise ValueError(f"deal.stage_id {self.stage_id!r} must start with 'C{self.category_id}:' "
                             f"(stages of pipeline {self.category_id} carry that prefix)")
        return self


class ManagersMapping(StrictModel):
    rule: Literal["fixed", "round_robin"] = "fixed"
    fixed: int = Field(1, ge=1)
    users: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _users_for_round_robin(self) -> ManagersMapping:
        if self.rule == "round_robin" and not self.users:
            raise ValueError("managers.users: round_robin needs at least one user id")
        return self

    def pick(self, seq: int) -> int:
        """The manager of outbox row `seq`: deterministic, so a retry picks the same person."""
        if self.rule == "fixed":
            return self.fixed
        return self.users[seq % len(self.users)]

    def all_ids(self) -> list[int]:
        return sorted({self.fixed, *self.users}) if self.rule == "fixed" else sorted(set(self.users))


class TaskMapping(StrictModel):
    enabled: bool = True
    title: str = "Связаться с клиентом: {name}, {phone} [{id}]"
    deadline_hours: float = Field(2.0, gt=0)
    created_by: int | None = None


class CommentMapping(StrictModel):
    enabled: bool = True


class Bitrix24Mapping(StrictModel):
    originator_id: str = Field("zeta-bot", min_length=1, max_length=64)
    currency: str = "KZT"
    timezone: str = "Asia/Almaty"
    sources: dict[str, str] = Field(default_factory=lambda: {"default": "WEB"})
    contact: ContactMapping = Field(default_factory=ContactMapping)
    lead: LeadMapping = Field(default_factory=LeadMapping)
    deal: DealMapping = Field(default_factory=DealMapping)
    managers: ManagersMapping = Field(default_factory=ManagersMapping)
    task: TaskMapping = Field(default_factory=TaskMapping)
    comment: CommentMapping = Field(default_factory=CommentMapping)
    source: str = Field("", exclude=True)

    def source_id(self, bot_source: str | None) -> str:
        key = (bot_source or "").strip().lower()
        return self.sources.get(key) or self.sources.get("default") or "WEB"


def load_bitrix24_mapping(name_or_path: str | Path | None = None) -> Bitrix24Mapping:
    """Read and validate the mapping, by name (`bitrix24`, under config/mappings) or path (relative
    to the project); `ConfigError` names the file and the key."""
    file = Path(name_or_path) if name_or_path else DEFAULT_MAPPING_PATH
    if file.suffix not in (".yaml", ".yml"):
        file = MAPPINGS_DIR / f"{name_or_path}.yaml"
    elif not file.is_absolute():
        file = PROJECT_ROOT / file
    data = read_yaml_mapping(file, "Bitrix24 mapping")
    mapping = validate_config(Bitrix24Mapping, data, file)
    mapping.source = str(file)
    return mapping


def portal_check_commands(mapping: Bitrix24Mapping) -> dict[str, tuple[str, dict[str, Any]]]:
    """Read-only batch commands that fetch what `check_against_portal` needs (one request)."""
    stage_entity = "DEAL_STAGE" if mapping.deal.category_id == 0 else f"DEAL_STAGE_{mapping.deal.category_id}"
    return {
        "stages": ("crm.status.list", {"filter": {"ENTITY_ID": stage_entity}, "order": {"SORT": "ASC"}}),
        "sources": ("crm.status.list", {"filter": {"ENTITY_ID": "SOURCE"}, "order": {"SORT": "ASC"}}),
        "lead_statuses": ("crm.status.list", {"filter": {"ENTITY_ID": "STATUS"}, "order": {"SORT": "ASC"}}),
        "categories": ("crm.category.list", {"entityTypeId": 2}),
        "users": ("user.get", {"FILTER": {"ACTIVE": True}, "sort": "ID", "order": "ASC"}),
    }


def _status_ids(result: Any) -> set[str]:
    rows = result if isinstance(result, list) else []
    return {str(r.get("STATUS_ID")) for r in rows if isinstance(r, dict)}


def check_against_portal(mapping: Bitrix24Mapping, results: dict[str, Any]) -> list[str]:
    """Problems of the mapping on this portal (empty when every configured id exists)."""
    problems: list[str] = []
    where = mapping.source or "bitrix24 mapping"
    stages = _status_ids(results.get("stages"))
    if mapping.deal.category_id:
        cats = results.get("categories")
        rows = cats.get("categories", []) if isinstance(cats, dict) else []
        if mapping.deal.category_id not in {int(c.get("id", -1)) for c in rows if isinstance(c, dict)}:
            problems.append(f"{where}: deal.category_id {mapping.deal.category_id} is not a deal pipeline on the portal")
    if mapping.deal.stage_id and stages and mapping.deal.stage_id not in stages:
        problems.append(f"{where}: deal.stage_id {mapping.deal.stage_id!r} is not a stage of pipeline "
                        f"{mapping.deal.category_id} (known: {', '.join(sorted(stages))})")
    sources = _status_ids(results.get("sources"))
    for key, value in mapping.sources.items():
        if sources and value not in sources:
            problems.append(f"{where}: sources.{key} {value!r} is not a SOURCE_ID on the portal")
    statuses = _status_ids(results.get("lead_statuses"))
    if statuses and mapping.lead.status_id not in statuses:
        problems.append(f"{where}: lead.status_id {mapping.lead.status_id!r} is not a lead status on the portal")
    users = results.get("users")
    active = {int(u["ID"]) for u in users if isinstance(u, dict) and str(u.get("ID", "")).isdigit()} \
        if isinstance(users, list) else set()
    if active and len(users) < 50:  # a complete first page; a longer list would need paging
        for uid in mapping.managers.all_ids():
            if uid not in active:
                problems.append(f"{where}: managers: user {uid} is not an active employee on the portal")
        if mapping.task.created_by and mapping.task.created_by not in active:
            problems.append(f"{where}: task.created_by {mapping.task.created_by} is not an active employee")
    return problems
