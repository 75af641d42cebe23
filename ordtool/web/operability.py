"""/healthz, /readyz and /metrics: what an orchestrator and Prometheus ask each service.

- /healthz: the process answers. No auth, no I/O: a liveness probe must not fail because a
  dependency is down (restarting this process would not bring the dependency back).
- /readyz: may this replica take traffic? No auth. It runs a ``SELECT 1`` on the service's own
  database, reads the customer check's breaker from memory, and asks each probe registered in
  ``App.readiness_probes`` about a connection the process already holds, and reports the live
  hub's broker connection. It never opens a connection of its own to anything but its
  database's pool.
  An open breaker towards the customer service is reported but does not make the replica
  unready: every replica shares that dependency, so failing readiness would take the whole
  order service out of rotation, stale-cache accepts included, for an outage elsewhere.
- /metrics: the Prometheus exposition of ``ordtool.metrics``; needs a key with scope admin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from ordtool.bootstrap import App
from ordtool.store.migrate import ServiceDatabase
from ordtool.web import auth

CHECK_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)

Check = dict[str, Any]

router = APIRouter(tags=["operations"])


# Probes are async so that they never queue behind busy worker threads: a liveness probe that
# timed out while the thread pool waits on a slow dependency would get the process restarted.
@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, customer check, held connections")
async def readyz(request: Request) -> JSONResponse:
    app: App = request.app.state.app
    service: ServiceDatabase = request.app.state.service
    checks = {"database": await _bounded(partial(_database, app, service))}
    if service == "orders":
        checks["customer_service"] = _customer_check(app)
    for name, probe in app.readiness_probes.items():
        checks[name] = await _bounded(partial(_probe, probe))
    broker = _live_broker(request)
    if broker is not None:
        checks["live_broker"] = broker
    ready = all(check["ok"] for check in checks.values() if check.get("required", True))
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(auth.require("admin"))],
    response_class=Response,
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _bounded(check: Callable[[], Check]) -> Check:
    """Run a blocking check off the event loop; a hung dependency makes it fail, not hang."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer within {CHECK_TIMEOUT_S:g} s"}


def _database(app: App, database: ServiceDatabase) -> Check:
    try:
        with app.engine(database).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        # The reason goes to the log; this endpoint is unauthenticated, so it says little.
        log.warning("readiness: %s database: %s", database, exc)
        return {"ok": False, "detail": "unreachable or not migrated (see the service log)"}
    return {"ok": True}


def _customer_check(app: App) -> Check:
    health = app.customer_directory_health()
    breaker = health.get("breaker") or {}
    state = breaker.get("state", "closed")
    return {"ok": state != "open", "required": False, **health}


def _live_broker(request: Request) -> Check | None:
    """The live hub's own broker connection, read from memory. Reported, not required: while
    the broker is down orders still commit to the outbox; only the live page lags."""
    hub = getattr(request.app.state, "live_hub", None)
    connected = getattr(hub, "broker_connected", None)
    return None if connected is None else {"ok": bool(connected), "required": False}


def _probe(probe: Callable[[], bool]) -> Check:
    try:
        return {"ok": bool(probe())}
    except Exception as exc:
        log.warning("readiness probe failed: %s", exc)
        return {"ok": False}
