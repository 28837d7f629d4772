"""Push one order row to 1C: look up, create only when absent, store the Ref_Key, post."""

from __future__ import annotations

import logging
from typing import Any

from resources.onec.errors import (
    OneCError,
    OneCODataError,
)
from resources.onec.orders import (
    OneCOrders,
    OrderDocument,
    OrderLine,
    OrderPostingError,
    OrderRequest,
    is_transient_refusal,
)

from .work import ONEC, Recorder, RowWork

logger = logging.getLogger("integrations.push")


def order_request(work: RowWork) -> OrderRequest:
    p = work.payload
    customer = p.get("customer") or {}
    delivery = p.get("delivery") or {}
    lines = [OrderLine(product_ref=li["onec_ref"], quantity=li["quantity"], price=li["price"],
                       amount=li.get("amount", li["quantity"] * li["price"]))
             for li in p.get("lines", [])]
    return OrderRequest(external_number=work.id, lines=lines, customer_name=customer.get("name", ""),
                        phone=customer.get("phone", ""), address=delivery.get("address"), comment=p.get("comment"))


def onec_complete(work: RowWork, post: bool = True) -> bool:
    return bool(work.row.onec_ref_key) and (work.row.onec_posted or not post)


def push_order_to_onec(orders: OneCOrders, recorder: Recorder, work: RowWork, *, post: bool = True) -> None:
    """Bring one order to 1C; the outcome lands in `work` (state stored, or an error)."""
    if work.lost or onec_complete(work, post):
        return
    known = None
    if work.row.onec_ref_key:
        known = OrderDocument(work.row.onec_ref_key, work.row.onec_number, work.row.onec_posted)

    def stored(doc: OrderDocument) -> None:
        state: dict[str, Any] = {"onec_ref_key": doc.ref_key, "onec_number": doc.number, "onec_error": None}
        if doc.posted:
            state["onec_posted"] = True
        recorder.save(work, **state)

    def posted() -> None:
        recorder.save(work, onec_posted=True, onec_error=None)

    try:
        orders.ensure_order(order_request(work), known=known, on_created=stored, post=post, on_posted=posted)
    except OrderPostingError as exc:
        message = f"1C kept order {work.row.onec_number or work.row.onec_ref_key} unposted: {exc}"
        recorder.save(work, onec_error=message[:4000])
        work.fail(ONEC, message, permanent=not is_transient_refusal(exc))
    except OneCODataError as exc:
        # 1C refused the document itself (code -1 from filling/checking code, a bad reference, …),
        # unless the text says it was a lock or DBMS problem
        recorder.save(work, onec_error=str(exc)[:4000])
        work.fail(ONEC, f"1C refused order {work.id}: {exc}", permanent=not is_transient_refusal(exc))
    except OneCError as exc:
        # transient, or the connection or the configuration (every order suffers): retry later
        work.fail(ONEC, str(exc))
    if work.lost:
        logger.warning("%s: lease lost during the 1C step", work.id)
