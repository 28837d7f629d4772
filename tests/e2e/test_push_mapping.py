"""The Bitrix24 mapping (config/mappings/bitrix24.yaml) on a real portal: checked against the portal
before pushing, pipeline/stage/source from config, deterministic round-robin managers."""

from __future__ import annotations

import pytest

from pipelines.push.mapping import Bitrix24Mapping, load_bitrix24_mapping
from resources.settings import ConfigError
from resources.store import outbox
from tests.e2e.push_fixtures import drain, make_leads, make_orders, running_stack

pytestmark = pytest.mark.e2e


def test_shipped_mapping_loads():
    mapping = load_bitrix24_mapping()
    assert mapping.originator_id == "zeta-bot"
    assert (mapping.deal.category_id, mapping.deal.stage_id) == (1, "C1:NEW")
    assert [mapping.managers.pick(seq) for seq in range(1, 7)] == [5, 7, 3, 5, 7, 3]


def test_bad_mapping_is_refused_with_the_key(tmp_path):
    bad = tmp_path / "b24.yaml"
    bad.write_text("deal:\n  category_id: 1\n  stage_id: NEW\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="deal.stage_id 'NEW' must start with 'C1:'"):
        load_bitrix24_mapping(bad)
    bad.write_text("managers:\n  rule: round_robin\n  users: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="managers"):
        load_bitrix24_mapping(bad)


def test_deals_and_leads_follow_the_mapping(tmp_path):
    with running_stack(tmp_path) as stack:
        orders = make_orders(stack, 6)
        leads, _ = make_leads(stack, 3)
        drain(stack.push, stack.db)
        state = stack.bitrix_state()
        rows = {r.id: r for r in outbox.list_rows(stack.db)}
        for deal in state["deals"]:
            row = rows[deal["ORIGIN_ID"]]
            assert (deal["CATEGORY_ID"], deal["STAGE_ID"], deal["SOURCE_ID"]) == (1, "C1:NEW", "UC_BOT")
            assert deal["ASSIGNED_BY_ID"] == stack.mapping.managers.pick(row.seq)
        for lead in state["leads"]:
            assert lead["SOURCE_ID"] == "UC_BOT" and lead["STATUS_ID"] == "NEW"
            assert lead["CONTACT_ID"] == rows[lead["ORIGIN_ID"]].b24_contact_id
        for task in state["tasks"]:
            row = next(r for r in rows.values() if f"[{r.id}]" in task["TITLE"])
            assert task["RESPONSIBLE_ID"] == stack.mapping.managers.pick(row.seq)
            entity = f"D_{row.b24_deal_id}" if row.kind == outbox.ORDER else f"L_{row.b24_lead_id}"
            assert entity in task["UF_CRM_TASK"] and f"C_{row.b24_contact_id}" in task["UF_CRM_TASK"]
        assert len(orders) + len(leads) == len(state["tasks"])


def test_ids_missing_on_the_portal_stop_the_push_with_a_clear_message(tmp_path):
    with running_stack(tmp_path) as stack:
        orders = make_orders(stack, 2)
        stack.mapping = Bitrix24Mapping.model_validate({
            "deal": {"category_id": 1, "stage_id": "C1:NO_SUCH_STAGE"},
            "managers": {"rule": "round_robin", "users": [3, 9]},  # 9 is not active
            "sources": {"default": "NO_SUCH_SOURCE"},
        })
        report = stack.push()
        assert report.summary()["retried"] == 2
        error = outbox.get(stack.db, orders[0]).last_error
        assert "deal.stage_id 'C1:NO_SUCH_STAGE' is not a stage of pipeline 1" in error
        assert "user 9 is not an active employee" in error
        assert "sources.default 'NO_SUCH_SOURCE'" in error
        assert stack.bitrix_state()["counts"]["deals"] == 0
        assert len(stack.onec_documents()) == 2  # 1C does not depend on the CRM mapping
