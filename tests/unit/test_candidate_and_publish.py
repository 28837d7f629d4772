"""Mapping and publish rules on staged rows in a real SQLite file (no HTTP)."""

from pathlib import Path

import pytest
from sqlalchemy import text

from assets.catalogue.candidate import build_candidate
from assets.catalogue.checks import check_no_negative_prices, check_shrink_guard, check_unique_skus
from assets.catalogue.extract import StockStager
from assets.catalogue.publish import ShrinkGuardError, publish_candidate
from assets.catalogue.staging import MissingExtractError, complete_batch, insert_rows, open_batch
from resources.onec.profile import load_profile
from resources.store.database import Database
from resources.store.schema import raw_catalogue, raw_prices, raw_reference

PROFILE = load_profile("ut11")
WH = {"w1": "Основной склад", "w2": "Склад Алматы", "w3": "Склад Астана"}


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(f"sqlite:///{tmp_path / 'zeta.db'}")
    d.migrate()
    return d


def stage(db: Database, products: list[dict], prices: list[tuple], stock: list[tuple],
          units: dict[str, float] | None = None) -> None:
    cb = open_batch(db, "catalogue")
    insert_rows(db, raw_catalogue, [{"batch_id": cb, "data_version": "AAA=", "parent": "g1", "unit": None,
                                     "deletion_mark": False, "article": "", **p} for p in products])
    insert_rows(db, raw_reference, [{"batch_id": cb, "kind": "group", "ref": "g1", "name": "Молочные продукты", "extra": None}]
                + [{"batch_id": cb, "kind": "unit", "ref": u, "name": u, "extra": str(r)} for u, r in (units or {}).items()])
    complete_batch(db, cb, len(products))
    pb = open_batch(db, "prices")
    insert_rows(db, raw_prices, [{"batch_id": pb, "product": p, "price": v, "package": pk, "characteristic": ch}
                                 for p, v, pk, ch in prices])
    complete_batch(db, pb, len(prices), {"currency": "KZT"})
    sb = open_batch(db, "stock")
    insert_rows(db, raw_reference, [{"batch_id": sb, "kind": "warehouse", "ref": k, "name": v} for k, v in WH.items()])
    stager = StockStager(db, sb, "AccumulationRegister_ЗапасыИПотребности")  # as the extract stages them
    stager.add([(p, WH.get(w, w), float(q)) for p, w, q in sorted(stock, key=lambda row: row[0])])
    stager.finish()
    complete_batch(db, sb, len(stock))


def sync(db: Database, max_drop: float | None = 0.5):
    cand = build_candidate(db, PROFILE)
    return cand, publish_candidate(db, cand.candidate_id, max_active_drop=max_drop)


def rows(db: Database) -> dict[str, dict]:
    with db.read() as conn:
        return {r["sku"]: dict(r) for r in conn.execute(text("SELECT * FROM products")).mappings()}


BASE = [
    {"ref": "r1", "code": "00-001", "article": "ART001", "name": "Молоко 3,2% 1 л"},
    {"ref": "r2", "code": "00-002", "article": "", "name": "Сүт 2,5% 1 л"},
    {"ref": "r3", "code": "00-003", "article": "DUP", "name": "Қант 1 кг", "deletion_mark": True},
    {"ref": "r4", "code": "00-004", "article": "DUP", "name": "Сахар 1 кг"},
    {"ref": "r5", "code": "00-005", "article": "ART005", "name": "Без цены"},
]
PRICES = [("r1", 450.0, None, None), ("r2", 390.0, None, None), ("r3", 600.0, None, None),
          ("r4", 5400.0, "box", None), ("r1", 999.0, None, "char1")]
STOCK = [("r1", "w1", 10), ("r1", "w2", 5), ("r2", "w3", 7)]


def test_sku_rule_price_stock_currency_and_flags(db):
    stage(db, BASE, PRICES, STOCK, units={"box": 10})
    cand, pub = sync(db)
    got = rows(db)
    assert set(got) == {"ART001", "00-002", "00-003", "DUP", "ART005"}
    assert got["ART001"]["price"] == 450.0 and got["ART001"]["stock"] == 15 and got["ART001"]["currency"] == "KZT"
    assert got["00-002"]["stock"] == 7 and got["00-002"]["group_name"] == "Молочные продукты"
    # the live product keeps the duplicated article; the deletion-marked one falls back to its code
    assert got["DUP"]["onec_ref"] == "r4" and got["DUP"]["price"] == 540.0  # package price per base unit
    assert got["00-003"]["is_active"] is False or got["00-003"]["is_active"] == 0
    assert got["ART005"]["price"] is None and got["ART005"]["stock"] == 0
    assert cand.sku_collision_count == 1 and pub.inserted == 5 and pub.active == 4
    with db.read() as conn:
        stock = conn.execute(text("SELECT warehouse, quantity FROM product_stock WHERE sku='ART001' "
                                  "ORDER BY warehouse")).all()
    assert stock == [("Основной склад", 10.0), ("Склад Алматы", 5.0)]


def test_resync_rewrites_only_changed_rows_and_deactivates_vanished(db):
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    before = rows(db)
    changed = [dict(p) for p in BASE if p["ref"] != "r5"]  # r5 vanished from 1C
    changed[0]["name"] = "Молоко 3,2% 1 л (новое)"
    stage(db, changed, PRICES, [("r1", "w1", 10), ("r1", "w2", 5), ("r2", "w3", 8)])
    _, pub = sync(db)
    after = rows(db)
    assert (pub.inserted, pub.updated, pub.deactivated, pub.unchanged) == (0, 2, 1, 2)
    assert after["ART005"]["is_active"] in (False, 0) and after["ART005"]["stock"] == 0
    assert after["DUP"]["updated_at"] == before["DUP"]["updated_at"]  # unchanged content not rewritten
    assert after["DUP"]["synced_at"] > before["DUP"]["synced_at"]  # …but confirmed by this sync
    assert after["ART005"]["synced_at"] == before["ART005"]["synced_at"]  # vanished: not confirmed
    # a product that comes back is active again
    stage(db, BASE, PRICES, STOCK)
    _, pub = sync(db)
    assert rows(db)["ART005"]["is_active"] in (True, 1) and pub.inserted == 0


def test_article_change_moves_the_row_to_the_new_sku(db):
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    moved = [dict(p) for p in BASE]
    moved[0]["article"] = "ART001-NEW"
    stage(db, moved, PRICES, STOCK)
    sync(db)
    got = rows(db)
    assert "ART001" not in got and got["ART001-NEW"]["onec_ref"] == "r1" and got["ART001-NEW"]["stock"] == 15


def test_shrink_guard_blocks_publish_and_keeps_table(db):
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    before = rows(db)
    stage(db, BASE[:1], PRICES, STOCK)  # 4 active → 1 active
    cand = build_candidate(db, PROFILE)
    with db.read() as conn:
        outcome = check_shrink_guard(conn, cand.candidate_id, 0.2)
    assert not outcome.passed and "blocked" in outcome.description
    with pytest.raises(ShrinkGuardError):
        publish_candidate(db, cand.candidate_id, max_active_drop=0.2)
    assert rows(db) == before
    with db.read() as conn:
        status = conn.execute(text("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1")).scalar_one()
    assert status == "blocked"


def test_checks_catch_duplicate_skus_and_negative_prices(db):
    stage(db, BASE, PRICES, STOCK)
    cand = build_candidate(db, PROFILE)
    with db.write() as conn:  # corrupt the candidate the way a bad mapping would
        conn.execute(text("UPDATE products_next SET sku = 'ART001', price = -1 WHERE onec_ref = 'r2'"))
    with db.read() as conn:
        uniq = check_unique_skus(conn, cand.candidate_id)
        neg = check_no_negative_prices(conn, cand.candidate_id)
    assert not uniq.passed and "ART001" in uniq.description
    assert not neg.passed and neg.metadata["negative_prices"] == 1


def test_candidate_needs_all_three_extracts(db):
    with pytest.raises(MissingExtractError, match="catalogue"):
        build_candidate(db, PROFILE)


def test_a_reader_sees_the_old_or_the_new_catalogue_never_a_mix(db):
    import threading

    many = [{"ref": f"r{i:05d}", "code": f"00-{i:05d}", "article": f"A{i:05d}", "name": f"Товар {i}"}
            for i in range(3000)]
    stage(db, many, [(p["ref"], 100.0, None, None) for p in many], [(p["ref"], "w1", 1) for p in many])
    sync(db)
    stage(db, many, [(p["ref"], 200.0, None, None) for p in many], [(p["ref"], "w1", 2) for p in many])
    cand = build_candidate(db, PROFILE)
    seen: set[tuple] = set()
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            with db.read() as conn:
                seen.add(tuple(conn.execute(text(
                    "SELECT SUM(price), SUM(stock), (SELECT SUM(quantity) FROM product_stock) FROM products")).one()))

    thread = threading.Thread(target=reader)
    thread.start()
    publish_candidate(db, cand.candidate_id, max_active_drop=0.5)
    done.set()
    thread.join()
    with db.read() as conn:
        seen.add(tuple(conn.execute(text(
            "SELECT SUM(price), SUM(stock), (SELECT SUM(quantity) FROM product_stock) FROM products")).one()))
    assert seen <= {(300000.0, 3000.0, 3000.0), (600000.0, 6000.0, 6000.0)}
    assert (600000.0, 6000.0, 6000.0) in seen


def test_a_bulk_publish_fills_the_identifier_index_exactly_as_the_triggers_would(db, monkeypatch):
    """The bulk path copies the candidate's precomputed keys (ASCII) and evaluates the 0002
    expression for the rest (Cyrillic, a changed SKU, no staged key): same rows either way."""
    import assets.catalogue.publish as publish_module
    from resources.store.search.document import ident_key
    from resources.store.search.sqlite import rebuild_index

    monkeypatch.setattr(publish_module, "BULK_MIN_ROWS", 1)
    articles = ["ab-12/3", "АБ-7", "", "dup 1", "dup 1", " x.y ", "Кк-ab", "Q\t9", "10\u212a"]  # Kelvin sign
    products = []
    for i, article in enumerate(articles):
        code = f"00-{i:03d}" if i != 5 else "00.кз 5"
        row = {"ref": f"r{i}", "code": code, "article": article.strip(), "name": f"Товар {i}",
               "article_key": ident_key(article.strip()).lower(), "code_key": ident_key(code).lower()}
        if i == 7:  # one row staged without keys, as an older extract would have
            row |= {"article_key": None, "code_key": None}
        products.append(row)
    stage(db, products, [], [])
    sync(db)
    with db.read() as conn:
        published = sorted(conn.execute(text("SELECT ident, kind, sku FROM product_idents")).all())
        precomputed = conn.execute(text(
            "SELECT COUNT(sku_ident), COUNT(article_ident), COUNT(code_ident) FROM products_next")).one()
    assert precomputed[1] >= 4 and precomputed[2] >= 5, "the keys were not precomputed"
    with db.write() as conn:
        rebuild_index(conn, recompute_text=False)  # the 0002 expression over `products`
        expected = sorted(conn.execute(text("SELECT ident, kind, sku FROM product_idents")).all())
    assert published == expected
    with db.write() as conn:  # and the triggers (migration 0013): every row unindexed, then indexed again
        conn.execute(text("UPDATE products SET is_active = 0"))
        assert conn.execute(text("SELECT COUNT(*) FROM product_idents")).scalar() == 0
        conn.execute(text("UPDATE products SET is_active = 1"))
        by_triggers = sorted(conn.execute(text("SELECT ident, kind, sku FROM product_idents")).all())
    assert published == by_triggers
    # the SKU is the article here: its key is kept once, under the better kind
    assert ("AB123", "sku", "ab-12/3") in published and ("АБ7", "sku", "АБ-7") in published
    assert not any(kind == "article" and ident in {"AB123", "АБ7"} for ident, kind, _ in published)


def test_stock_is_summed_per_warehouse_name_across_page_boundaries(db):
    sb = open_batch(db, "stock")
    stager = StockStager(db, sb, "AccumulationRegister_ЗапасыИПотребности")
    stager.add([("r1", "Склад Алматы", 1.0), ("r2", "Склад Алматы", 2.0), ("r2", "Склад Астана", 3.0)])
    stager.add([("r2", "Склад Алматы", 4.0), ("r3", "Склад Астана", 5.0)])  # r2 goes on over the page break
    stager.finish()
    with db.read() as conn:
        totals = conn.execute(text("SELECT product, total, detail FROM raw_stock_totals "
                                   "WHERE batch_id = :b ORDER BY 1"), {"b": sb}).all()
    assert totals == [("r1", 1.0, '{"Склад Алматы":1.0}'), ("r2", 9.0, '{"Склад Алматы":6.0,"Склад Астана":3.0}'),
                      ("r3", 5.0, '{"Склад Астана":5.0}')]


def test_stock_rows_of_one_product_on_non_adjacent_pages_fail_the_extract_by_name(db):
    from resources.onec.errors import OneCBadResponse

    stager = StockStager(db, open_batch(db, "stock"), "AccumulationRegister_ЗапасыИПотребности")
    stager.add([("r1", "Склад Алматы", 1.0), ("r2", "Склад Алматы", 2.0)])
    with pytest.raises(OneCBadResponse, match="ЗапасыИПотребности.*came back apart.*orderby"):
        stager.add([("r3", "Склад Алматы", 1.0), ("r1", "Склад Алматы", 4.0), ("r4", "Склад Астана", 1.0)])
        stager.finish()  # staged rows are written in blocks: the clash shows when the block is


def test_a_candidate_whose_stock_batch_was_pruned_is_not_published(db):
    from assets.catalogue.publish import StaleCandidateError

    stage(db, BASE, PRICES, STOCK)
    cand = build_candidate(db, PROFILE)
    with db.write() as conn:
        conn.execute(text("UPDATE extract_batches SET status = 'pruned' WHERE id = :b"),
                     {"b": cand.batches["stock"]})
    with pytest.raises(StaleCandidateError, match=f"stock batch {cand.batches['stock']}.*products_candidate"):
        publish_candidate(db, cand.candidate_id)
    assert rows(db) == {}


@pytest.mark.parametrize("change, field", [
    ({"ref": "r1", "code": "00-001x"}, "code"), ({"ref": "r2", "article": "NEW-ART"}, "article"),
    ({"ref": "r1", "deletion_mark": True}, "is_active"), ({"ref": "r1", "parent": None}, "group_name"),
])
def test_any_mapped_column_change_rewrites_the_row_and_nothing_else(db, change, field):
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    changed = [{**p, **change} if p["ref"] == change["ref"] else p for p in BASE]
    stage(db, changed, PRICES, STOCK)
    _, pub = sync(db)
    assert pub.rows_written == 1 and pub.unchanged == 4, field


def test_stock_moved_between_warehouses_with_the_same_total_is_a_change(db):
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    stage(db, BASE, PRICES, [("r1", "w1", 5), ("r1", "w2", 10), ("r2", "w3", 7)])  # r1: 15 in all, as before
    _, pub = sync(db)
    assert (pub.updated, pub.unchanged) == (1, 4)
    with db.read() as conn:
        assert conn.execute(text("SELECT warehouse, quantity FROM product_stock WHERE sku = 'ART001' "
                                 "ORDER BY warehouse")).all() == [("Основной склад", 5.0), ("Склад Алматы", 10.0)]


def test_a_candidate_built_on_an_empty_table_is_compared_again_if_products_filled_up_since(db):
    """The candidate step marks every row 'insert' when `products` is empty; a publish that finds
    `products` filled by another publish in between compares the rows itself."""
    stage(db, BASE, PRICES, STOCK)
    early = build_candidate(db, PROFILE)
    sync(db)  # another candidate of the same content is published first
    pub = publish_candidate(db, early.candidate_id, max_active_drop=0.5)
    assert (pub.inserted, pub.updated, pub.unchanged) == (0, 0, 5)


def test_the_publish_checks_every_guessed_change_mark_and_writes_only_wrong_ones(db):
    """The candidate guesses 'same' for every row of a re-sync; the publish compares each row with
    `products` as it is at publish time (another publish or a hand edit may have come between) and
    rewrites only the marks that are wrong."""
    stage(db, BASE, PRICES, STOCK)
    sync(db)
    changed = [{**p, "name": "Молоко (новое)"} if p["ref"] in ("r1", "r5") else p for p in BASE]
    stage(db, changed, PRICES, STOCK)
    cand = build_candidate(db, PROFILE)

    def marks() -> dict[str, str | None]:
        with db.read() as conn:
            return dict(conn.execute(text("SELECT onec_ref, change FROM products_next WHERE candidate_id = :c"),
                                     {"c": cand.candidate_id}).all())

    # r3 lost the duplicated article to r4: rows the SKU rule rewrites carry no guess at all
    assert marks() == {"r1": "same", "r2": "same", "r3": None, "r4": "same", "r5": "same"}
    with db.write() as conn:  # products moves on before the publish:
        conn.execute(text("UPDATE products SET name = 'Молоко (новое)' WHERE onec_ref = 'r1'"))  # r1 now equal
        conn.execute(text("UPDATE products SET price = 1 WHERE onec_ref = 'r2'"))  # r2 now differs
    pub = publish_candidate(db, cand.candidate_id, max_active_drop=0.5)
    assert marks() == {"r1": "same", "r2": "update", "r3": "same", "r4": "same", "r5": "update"}
    assert (pub.updated, pub.unchanged) == (2, 3)
    got = rows(db)
    assert got["00-002"]["price"] == 390.0 and got["ART005"]["name"] == "Молоко (новое)"


def test_checks_count_every_offender_past_the_listed_sample(db):
    rows = [{"candidate_id": 9, "onec_ref": f"r{i}", "sku": f"S{i // 2}" if i < 50 else f"U{i}", "name": "x",
             "price": -1.0 if i >= 40 else 1.0, "stock": 0.0, "is_active": True, "deletion_mark": False,
             "content_hash": ""} for i in range(100)]
    from resources.store.schema import products_next
    insert_rows(db, products_next, rows)
    with db.read() as conn:
        dupes, negative = check_unique_skus(conn, 9), check_no_negative_prices(conn, 9)
        guard = check_shrink_guard(conn, 9, 0.2)  # no batch row with a kept count: the rows are counted
    assert guard.metadata["active_next"] == 100
    assert dupes.metadata["duplicate_skus"] == 25 and len(dupes.metadata["sample"]) == 20
    assert negative.metadata["negative_prices"] == 60 and len(negative.metadata["sample"]) == 20


@pytest.mark.parametrize("item", [
    {"Ref_Key": "r1", "Code": "00-001", "Артикул": "ART-1", "Description": "Молоко 3,2%  1л"},
    {"Ref_Key": "r2", "Code": "00-002", "Артикул": "", "Description": "Сүт «Ақ» 1 л", "Parent_Key": "g1"},
    {"Ref_Key": "r3", "Code": "", "Артикул": " ", "Description": ""},
    {"Ref_Key": "r4", "Code": "КЗ.5", "Артикул": "ab/12", "Description": "Nestlé мoлоко", "Parent_Key": "g9"},
])
def test_the_staged_search_text_is_document_search_text_of_the_first_choice(item):
    from assets.catalogue.extract import _CATALOGUE_COLUMNS, _catalogue_row, first_choice_sku
    from resources.store.search.document import search_text

    f = PROFILE.products.fields
    item = {f.deletion_mark: False, f.data_version: "AAA=", **item}
    row = dict(zip(_CATALOGUE_COLUMNS,
                   _catalogue_row(1, item, f, "Catalog_Номенклатура", ["article", "code"], {"g1": "Молочные"}),
                   strict=True))
    sku = first_choice_sku(row["ref"], row["article"], row["code"], ["article", "code"])
    group = {"g1": "Молочные"}.get(row["parent"]) if row["parent"] else None
    assert row["search_text"] == search_text(row["name"] or sku, sku, row["article"] or None, row["code"], None, group)
