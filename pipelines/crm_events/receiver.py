"""The HTTP receiver of Bitrix24's outgoing webhook: verify, store once, answer at once.

    BITRIX24_EVENT_TOKEN=… python -m pipelines.crm_events --port 8090

`POST /bitrix24/events` takes the form-encoded call (reference §8), checks
`auth[application_token]` in constant time, and stores the event in `crm_events` (a repeat of
the same call is answered 200 and not stored twice). The work — reading the changed deal or lead —
is left to the `apply_crm_events` job that `crm_events_sensor` starts, because Bitrix24 gives a
handler little time and never resends a call that failed. Put it behind the HTTPS proxy that
Bitrix24 requires (no plain HTTP, no self-signed certificates).

`GET /metrics` serves the store's health figures in the Prometheus text format
(`resources/store/metrics.py`: catalogue size and age, outbox backlog, the event inbox); with
`ZETA_METRICS_TOKEN` set it wants that bearer token. Publish only `/bitrix24/events` through the
proxy: `/health` and `/metrics` are for the scraper on the inside.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from resources.bitrix24.events import MAX_BODY_BYTES, EventRejected, parse_event
from resources.settings import load_settings
from resources.store.crm_events import pending_summary, record_event
from resources.store.database import Database, get_database
from resources.store.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from resources.store.metrics import scrape

logger = logging.getLogger("integrations.bitrix24")

EVENTS_PATH = "/bitrix24/events"
TOKEN_ENV = "BITRIX24_EVENT_TOKEN"
METRICS_TOKEN_ENV = "ZETA_METRICS_TOKEN"
_FORM = "application/x-www-form-urlencoded"


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None as soon as it passes `MAX_BODY_BYTES` (declared or streamed in chunks):
    an unauthenticated caller cannot make the receiver hold a large body in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_receiver(db: Database, token: str, *, metrics_token: str = "") -> Starlette:
    """The receiver app over `db`; `token` is the outgoing webhook's application token; with a
    `metrics_token`, `/metrics` asks for it as a bearer token."""

    async def receive(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            return JSONResponse({"error": f"content-type: expected {_FORM}, got {content_type or 'none'!r}"}, 415)
        body = await _read_limited(request)
        if body is None:
            return JSONResponse({"error": f"body is over {MAX_BODY_BYTES} bytes"}, 413)
        try:
            event = parse_event(body, token)
        except EventRejected as exc:
            logger.warning("Bitrix24 event rejected (%d) from %s: %s", exc.status,
                           request.client.host if request.client else "?", exc)
            return JSONResponse({"error": str(exc)}, exc.status)
        event_id, created = await run_in_threadpool(record_event, db, event)
        logger.info("Bitrix24 event %s %s id=%d ts=%d %s", event.event, event.entity, event.entity_id, event.ts,
                    "stored" if created else "already stored")
        return JSONResponse({"accepted": True, "event_id": event_id, "duplicate": not created})

    async def health(request: Request) -> JSONResponse:
        summary = await run_in_threadpool(pending_summary, db)
        return JSONResponse({"ok": True, "pending_events": summary.count})

    async def metrics(request: Request) -> PlainTextResponse:
        if metrics_token and not hmac.compare_digest(request.headers.get("authorization", "").encode(),
                                                     f"Bearer {metrics_token}".encode()):
            return PlainTextResponse("metrics need the bearer token of ZETA_METRICS_TOKEN\n", 401)
        text = await run_in_threadpool(scrape, db)
        return PlainTextResponse(text, media_type=METRICS_CONTENT_TYPE)

    return Starlette(routes=[Route(EVENTS_PATH, receive, methods=["POST"]), Route("/health", health),
                             Route("/metrics", metrics)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Receiver of Bitrix24 outgoing-webhook events")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        parser.error(f"{TOKEN_ENV} is not set: copy the application token of the outgoing webhook from the portal")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    db = get_database(settings.database.url or None)
    logger.info("receiving Bitrix24 events on http://%s:%d%s into %s", args.host, args.port, EVENTS_PATH,
                db.safe_url)
    app = create_receiver(db, token, metrics_token=os.environ.get(METRICS_TOKEN_ENV, ""))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
