"""Bot intake: validation messages name the field, nothing invalid is enqueued, double submits dedup."""

from __future__ import annotations

from datetime import datetime

import pytest

from integrations.intake import get_outbox_status, log_activity, normalize_phone, submit_lead, submit_order
from resources.store import outbox
from resources.store.database import Database, get_database
from resources.store.schema import products

NOW = datetime(2026, 1, 15, 10, 0)


def _product(sku: str, price: float | None, active: bool = True, n: int = 1) -> dict:
    return dict(sku=sku, name=f"Товар {sku}", price=price, currency="KZT", stock=5, is_active=active,
                onec_ref=f"00000000-0000-0000-0000-{n:012d}", synced_at=NOW, deletion_mark=not active,
                content_hash="h", updated_at=NOW)


@pytest.fixture()
def db(tmp_path) -> Database:
    database = get_database(f"sqlite:///{tmp_path / 'intake.db'}")
    with database.write() as conn:
        conn.execute(products.insert(), [_product("ART001", 45000, n=1), _product("ART002", 1500.5, n=2),
                                         _product("OLD1", 100, active=False, n=3), _product("NOPRICE", None, n=4)])
    return database


def order(**changes) -> dict:
    data = {"customer": {"name": "Иван Петров", "phone": "+77771234567"},
            "products": [{"sku": "ART001", "quantity": 1, "price": 45000}],
            "delivery": {"address": "Алматы, ул. Абая 10"}, "total": 45000}
    data.update(changes)
    return data


@pytest.mark.parametrize("raw", ["8 777 123 45 67", "+7 (777) 123-45-67", "87771234567", "77771234567",
                                 "7771234567", "+7 777 123 4567", "0077771234567", " +7-777-123-45-67 "])
def test_kazakhstan_formats_normalise_to_e164(raw):
    assert normalize_phone(raw) == "+77771234567"


def test_other_e164_numbers_are_kept():
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["", "abc", "12345", "+7 777 123", "+7 777 123 45 678", "8 (777) 12x-45-67",
                                 "+7 077 123 45 67", "777-12-34", "+0123456789", 77771234567, None])
def test_garbage_phones_are_refused(raw):
    with pytest.raises(ValueError):
        normalize_phone(raw)


def test_the_seed_order_is_queued_with_a_bot_order_id(db):
    answer = submit_order(db, order())
    assert answer == {"success": True, "order_id": "BOT-000001", "status": "queued"}
    row = outbox.get(db, "BOT-000001")
    assert row.kind == outbox.ORDER and row.phone == "+77771234567"
    line = row.payload["lines"][0]
    assert line == {"sku": "ART001", "name": "Товар ART001", "onec_ref": "00000000-0000-0000-0000-000000000001",
                    "quantity": 1.0, "price": 45000.0, "amount": 45000.0}
    assert row.payload["delivery"] == {"address": "Алматы, ул. Абая 10"} and row.payload["total"] == 45000


@pytest.mark.parametrize(("changes", "message"), [
    ({"customer": {"name": "", "phone": "+77771234567"}}, "customer.name:"),
    ({"customer": {"name": "12345", "phone": "+77771234567"}}, "customer.name: '12345' is not a name"),
    ({"customer": {"name": "Иван", "phone": "не телефон"}}, "customer.phone: 'не телефон' is not a phone number"),
    ({"customer": {"name": "Иван"}}, "customer.phone: required"),
    ({"customer": None}, "customer:"),
    ({"products": []}, "products: List should have at least 1 item"),
    ({"products": [{"sku": "ART001", "quantity": 1, "price": 45000}, {"sku": "X", "quantity": 1, "price": 5}],
      "total": 45005}, "products[1].sku: unknown SKU 'X'"),
    ({"products": [{"sku": "OLD1", "quantity": 1, "price": 100}], "total": 100},
     "products[0].sku: SKU 'OLD1' is not on sale"),
    ({"products": [{"sku": "NOPRICE", "quantity": 1, "price": 100}], "total": 100},
     "products[0].sku: SKU 'NOPRICE' has no price"),
    ({"products": [{"sku": "ART001", "quantity": 0, "price": 45000}]}, "products[0].quantity: Input should be greater than 0"),
    ({"products": [{"sku": "ART001", "quantity": -2, "price": 45000}]}, "products[0].quantity:"),
    ({"products": [{"sku": "ART001", "quantity": "два", "price": 45000}]}, "products[0].quantity:"),
    ({"products": [{"sku": "ART001", "quantity": True, "price": 45000}]}, "products[0].quantity: must be a number"),
    ({"products": [{"sku": "ART001", "quantity": 1, "price": 0}]}, "products[0].price: Input should be greater than 0"),
    ({"products": [{"sku": "ART001", "quantity": 1, "price": 40000}], "total": 40000},
     "products[0].price: 40000 does not match the catalogue price 45000"),
    ({"products": [{"sku": "ART001", "quantity": 1}]}, "products[0].price: required"),
    ({"products": [{"quantity": 1, "price": 45000}]}, "products[0].sku: required"),
    ({"total": 90000}, "total: 90000 does not equal the sum of quantity × price over products (45000)"),
    ({"total": -1}, "total:"),
    ({"products": "ART001"}, "products:"),
])
def test_invalid_orders_name_the_field_and_are_never_enqueued(db, changes, message):
    answer = submit_order(db, order(**changes))
    assert answer["success"] is False
    assert message in answer["error"], answer["error"]
    assert outbox.counts(db)[outbox.PENDING] == 0


def test_not_a_dict_is_refused(db):
    assert submit_order(db, "ART001 x1") == {"success": False, "error": "order_data must be an object (a dict), got str"}
    assert submit_order(db, None)["success"] is False


def test_total_is_optional_and_tolerates_a_cent(db):
    lines = [{"sku": "ART002", "quantity": 3, "price": 1500.5}]
    assert submit_order(db, order(products=lines, total=None))["success"]
    assert submit_order(db, order(products=lines, total=4501.509))["success"]
    assert outbox.counts(db)[outbox.PENDING] == 2


def test_double_submit_with_the_bot_order_id_is_queued_once(db):
    first = submit_order(db, order(order_id="tg-42"))
    again = submit_order(db, order(order_id="tg-42"))
    assert again == {**first, "duplicate": True}
    other = submit_order(db, order(order_id="tg-42", products=[{"sku": "ART001", "quantity": 2, "price": 45000}],
                                   total=90000))
    assert other["success"] is False and "order_id: 'tg-42' was already used for order BOT-000001" in other["error"]
    assert outbox.counts(db)[outbox.PENDING] == 1


def test_same_order_in_the_same_conversation_is_queued_once(db):
    a = submit_order(db, order(conversation_id="conv-1"))
    b = submit_order(db, order(conversation_id="conv-1"))
    c = submit_order(db, order(conversation_id="conv-1", products=[{"sku": "ART002", "quantity": 1, "price": 1500.5}],
                               total=1500.5))
    assert b["order_id"] == a["order_id"] and b["duplicate"]
    assert c["order_id"] != a["order_id"]


def test_lead_is_one_per_conversation(db):
    lead = {"customer": {"name": "Әлия Жұмабаева", "phone": "8 701 555 44 33"}, "source": "telegram",
            "title": "Консультация", "comment": "Хочет чайник", "conversation_id": "c-7"}
    first = submit_lead(db, lead)
    assert first == {"success": True, "lead_id": "LEAD-000001", "status": "queued"}
    assert submit_lead(db, {**lead, "comment": "ещё раз"}) == {**first, "duplicate": True}
    row = outbox.get(db, "LEAD-000001")
    assert row.phone == "+77015554433" and row.payload["source"] == "telegram" and row.source == "telegram"
    bad = submit_lead(db, {"customer": {"name": "A", "phone": "123"}, "source": "telegram"})
    assert bad["success"] is False and bad["error"].startswith("customer.phone:")


def test_lead_transcript_as_messages(db):
    answer = submit_lead(db, {"customer": {"name": "Иван", "phone": "+77771234567"}, "source": "whatsapp",
                              "transcript": [{"role": "user", "text": "Есть чайник?"}, {"role": "bot", "text": "Да"}]})
    assert answer["success"]
    assert outbox.get(db, answer["lead_id"]).payload["transcript"] == "user: Есть чайник?\nbot: Да"


def test_activity_needs_text_and_somewhere_to_log(db):
    ok = log_activity(db, {"conversation_id": "c-7", "summary": "Клиент выбрал чайник"})
    assert ok == {"success": True, "activity_id": "ACT-000001", "status": "queued"}
    assert log_activity(db, {"conversation_id": "c-7", "summary": "Клиент выбрал чайник"})["duplicate"]
    assert log_activity(db, {"conversation_id": "c-7"})["error"] == "summary or transcript: one of them is required"
    assert log_activity(db, {"summary": "x"})["error"].startswith("conversation_id: required")
    assert log_activity(db, {"customer": {"phone": "+77771234567"}, "transcript": "..."})["success"]
    assert log_activity(db, {"lead_id": "LEAD-000404", "summary": "x"})["error"] == \
        "lead_id: no lead or order 'LEAD-000404' in the outbox"


def test_status_for_the_bot(db):
    order_id = submit_order(db, order())["order_id"]
    status = get_outbox_status(db, order_id)
    assert status["success"] and status["status"] == "queued" and status["kind"] == "order"
    assert get_outbox_status(db, "BOT-404")["success"] is False
