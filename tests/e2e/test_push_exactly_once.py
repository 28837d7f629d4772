"""Orders and leads reach 1C and Bitrix24 exactly once: faults, lost create responses, a tight rate
limit, overlapping runs, a posting failure, and invalid orders that never enter the outbox.

Real HTTP over loopback to both simulators, a real SQLite file, the catalogue seeded by the real
catalogue sync; assertions go through the simulators' admin state.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from integrations.intake import submit_order
from pipelines.push.worker import PushOptions
from resources.store import outbox
from tests.e2e.push_fixtures import (
    FAST_POLICY,
    assert_delivered_exactly_once,
    drain,
    make_leads,
    make_orders,
    phone,
    running_stack,
)

pytestmark = pytest.mark.e2e


def test_200_orders_and_200_leads_through_faults_lost_responses_and_a_tight_rate_limit(tmp_path):
    with running_stack(tmp_path, bitrix_burst=12, bitrix_drain=10.0) as stack:
        orders = make_orders(stack, 200)
        leads, activities = make_leads(stack, 200, with_activity=True)
        activities = activities[:60]
        for extra in outbox.list_rows(stack.db, kind=outbox.ACTIVITY)[60:]:  # keep the run short
            with stack.db.write() as conn:
                conn.execute(outbox.outbox.delete().where(outbox.outbox.c.id == extra.id))
        # 20 % of 1C requests fail (5xx before processing); 20 % of creates commit and lose the reply
        stack.onec_faults(seed=5, error_rate=0.2, lose_create_response_rate=0.2)
        # Bitrix24: 20 % server errors *after* executing (the write is kept), 20 % lost create
        # replies, and a bucket of 12 draining 10/s while the client is allowed 25/s with a burst
        # of 25, so it meets QUERY_LIMIT_EXCEEDED and must back off and retry by itself
        stack.bitrix_faults(seed=5, error_rate=0.2, error_after_execute=True, lose_create_response_rate=0.2)
        totals = drain(lambda: stack.push(rate=25, burst=25, options=PushOptions(policy=FAST_POLICY, chunk_size=150,
                                                                                defer_seconds=0.05)), stack.db)
        stats = stack.bitrix_stats()
        stack.onec_faults()
        stack.bitrix_faults()

        assert totals["dead"] == 0
        assert totals["retried"] > 0, "the faults should have made some rows retry"
        assert stats["rate_limited_503"] > 0, "the client should have met the rate limit"
        assert stats["faults"].get("lost_create_drop", 0) > 0
        assert sum(v for k, v in stats["faults"].items() if k.startswith("error_")) > 0
        assert_delivered_exactly_once(stack, orders, leads, activities)


def test_overlapping_push_runs_double_nothing(tmp_path):
    with running_stack(tmp_path, bitrix_burst=40, bitrix_drain=40.0) as stack:
        orders = make_orders(stack, 80)
        leads, _ = make_leads(stack, 80)
        # the same customer on several orders: two runs must not both create that contact
        for i in range(10):
            answer = submit_order(stack.db, {
                "customer": {"name": "Постоянный Клиент", "phone": phone(5)},
                "products": [{"sku": stack.catalogue[i]["sku"], "quantity": 1, "price": stack.catalogue[i]["price"]}],
                "order_id": f"repeat-{i}"})
            assert answer["success"], answer
            orders.append(answer["order_id"])
        stack.bitrix_faults(seed=9, lose_create_response_rate=0.1)
        stack.onec_faults(seed=9, lose_create_response_rate=0.1)
        outcomes: Counter[str] = Counter()
        done_by_run: Counter[int] = Counter()
        lock = threading.Lock()
        errors: list[BaseException] = []

        def run(n: int) -> None:
            try:
                for _ in range(40):
                    report = stack.push(rate=40, burst=40, options=PushOptions(
                        policy=FAST_POLICY, chunk_size=15, owner=f"overlap-{n}", defer_seconds=0.05))
                    with lock:
                        outcomes.update(report.summary())
                        done_by_run[n] += report.summary()["done"]
                    counts = outbox.counts(stack.db)
                    if counts[outbox.DONE] == len(orders) + len(leads):
                        return
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        stack.onec_faults()
        stack.bitrix_faults()
        drain(stack.push, stack.db)
        assert outcomes["done"] >= len(orders) + len(leads) - 10
        assert len([n for n, done in done_by_run.items() if done]) >= 2, f"the runs did not overlap: {done_by_run}"
        assert_delivered_exactly_once(stack, orders, leads)
        same_customer = {r.b24_contact_id for r in outbox.list_rows(stack.db) if r.phone == phone(5)}
        assert len(same_customer) == 1


def test_posting_failure_keeps_one_unposted_document_and_replay_posts_it(tmp_path):
    with running_stack(tmp_path) as stack:
        orders = make_orders(stack, 3)
        stack.onec_faults(post_fails=True, post_fail_message="Недостаточно свободного остатка товара")
        report = stack.push()
        assert report.summary()["dead"] == 3
        docs = stack.onec_documents()
        assert sorted(d["НомерПоДаннымКлиента"] for d in docs) == orders
        assert not any(d["Posted"] for d in docs)
        for order_id in orders:
            row = outbox.get(stack.db, order_id)
            assert row.status == outbox.DEAD and row.onec_ref_key
            assert "Недостаточно свободного остатка товара" in row.last_error
            assert row.b24_deal_id  # the sales team still sees the order
        # a second push does not touch dead rows; a replay after the fix posts the same documents
        assert stack.push().summary()["done"] == 0
        stack.onec_faults()
        assert outbox.replay_dead(stack.db) == orders
        drain(stack.push, stack.db)
        assert_delivered_exactly_once(stack, orders, [])
        assert len(stack.onec_documents()) == 3


def test_1c_down_at_first_then_the_number_is_written_back_to_the_deal(tmp_path):
    with running_stack(tmp_path) as stack:
        orders = make_orders(stack, 5)
        stack.onec_faults(odata_disabled=True)  # the publication is off: HTML 404 everywhere
        first = stack.push()
        assert first.summary()["retried"] == 5
        state = stack.bitrix_state()
        assert len(state["deals"]) == 5  # Bitrix24 does not wait for 1C
        assert not any(d.get(stack.mapping.deal.onec_number_field) for d in state["deals"])
        assert all("OData is not published" in outbox.get(stack.db, o).last_error for o in orders)
        stack.onec_faults()
        drain(stack.push, stack.db)
        assert stack.bitrix_stats()["batch_commands"].get("crm.deal.update", 0) == 5
        assert_delivered_exactly_once(stack, orders, [])


def test_refused_create_is_dead_with_the_1c_message(tmp_path):
    with running_stack(tmp_path) as stack:
        orders = make_orders(stack, 2)
        stack.onec_faults(create_fails=True)
        report = stack.push(options=PushOptions(policy=FAST_POLICY))
        assert report.summary()["dead"] == 2
        assert stack.onec_documents() == []
        assert all("Не заполнено соглашение" in outbox.get(stack.db, o).last_error for o in orders)


def test_every_invalid_order_is_rejected_with_a_clear_message_and_never_enqueued(tmp_path):
    with running_stack(tmp_path) as stack:
        good = stack.catalogue[0]
        base = {"customer": {"name": "Иван Петров", "phone": "+7 (777) 123-45-67"},
                "products": [{"sku": good["sku"], "quantity": 2, "price": good["price"]}],
                "delivery": {"address": "Алматы, ул. Абая 10"}, "total": round(2 * good["price"], 2)}
        cases = {
            "customer.name": {**base, "customer": {"name": " ", "phone": "+77771234567"}},
            "customer.phone": {**base, "customer": {"name": "Иван", "phone": "call me"}},
            "products[0].sku: unknown SKU 'NO-SUCH-SKU'": {**base, "products": [
                {"sku": "NO-SUCH-SKU", "quantity": 1, "price": 10}], "total": 10},
            "products[0].quantity": {**base, "products": [{"sku": good["sku"], "quantity": 0, "price": good["price"]}],
                                     "total": 0},
            "products[0].price": {**base, "products": [{"sku": good["sku"], "quantity": 2, "price": -5}]},
            "does not match the catalogue price": {**base, "products": [
                {"sku": good["sku"], "quantity": 2, "price": good["price"] + 1}], "total": 2 * (good["price"] + 1)},
            "total:": {**base, "total": base["total"] + 100},
            "products: List should have at least 1 item": {**base, "products": []},
        }
        rng = random.Random(3)
        for expected, data in cases.items():
            answer = submit_order(stack.db, data)
            assert answer["success"] is False and expected in answer["error"], (expected, answer)
        # garbage in many shapes, none of it may reach the outbox
        for _ in range(100):
            junk = dict(base)
            key = rng.choice(["customer", "products", "total"])
            choices = ["", 0, -1, [], {}, "x" * 10, [{"sku": None}], {"name": 5}]
            junk[key] = rng.choice(choices if key == "total" else [None, *choices])  # total may be left out
            answer = submit_order(stack.db, junk)
            assert answer["success"] is False and answer["error"]
        assert sum(outbox.counts(stack.db).values()) == 0
        assert stack.push().summary() == {"done": 0, "retried": 0, "dead": 0, "skipped": 0, "dry_run": 0}
        assert stack.onec_documents() == []
        assert stack.bitrix_state()["counts"]["deals"] == 0
        assert submit_order(stack.db, base)["success"] is True
