"""What both services share: the App on ``state``, error handlers, auth, the request
middleware, the operability routes, and a lifespan that opens the database before the first
request and closes everything after the last."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from sqlalchemy.exc import OperationalError

from ordtool import __version__
from ordtool.bootstrap import App
from ordtool.errors import DependencyUnavailable
from ordtool.logs import current_request_id
from ordtool.store.migrate import ServiceDatabase
from ordtool.web import operability, problems
from ordtool.web.auth import Caller
from ordtool.web.idempotency import HEADER as IDEMPOTENCY_HEADER
from ordtool.web.idempotency import Outcome, idempotent
from ordtool.web.middleware import RequestMiddleware

# Sync routes run in a thread pool; a place-order call may wait up to the customer check's
# deadline, so the pool is as large as the customer client's connection pool (default 100)
# rather than anyio's default of 40.
WORKER_THREADS = 100

log = logging.getLogger(__name__)


def build(
    app: App, service: ServiceDatabase, router: APIRouter, *, title: str, about: str
) -> FastAPI:
    api = FastAPI(
        title=title,
        description=f"{about} Every route but /healthz and /readyz needs "
        "Authorization: Bearer <key> (ordtool keys create).",
        version=__version__,
        lifespan=_lifespan,
    )
    api.state.app = app
    api.state.service = service  # auth checks keys against this service's database
    problems.install(api)
    api.include_router(operability.router)
    api.include_router(router)
    api.add_middleware(RequestMiddleware, service=service)
    return api


# The dependencies are async although they do no I/O: FastAPI runs a sync dependency in the
# thread pool, a round trip per request for nothing.
async def _app(request: Request) -> App:
    app: App = request.app.state.app
    return app


async def _request_id() -> str | None:
    return current_request_id()


@dataclass(frozen=True, slots=True)
class Submission:
    """A POST that creates something: its body as sent (an Idempotency-Key compares it) and
    the request id that becomes the events' correlation id."""

    request: Request
    body: bytes
    request_id: str | None

    @property
    def idempotent(self) -> bool:
        """The client sent an Idempotency-Key."""
        return IDEMPOTENCY_HEADER in self.request.headers

    def once(self, caller: Caller, route: str, handler: Callable[[], Outcome]) -> Response:
        """Run ``handler`` once per Idempotency-Key (or every time without one)."""
        return idempotent(self.request, caller, route, self.body, handler)


async def _submission(request: Request) -> Submission:
    # Starlette keeps the body, so the route's JSON body parameter reads the same bytes.
    return Submission(request, await request.body(), current_request_id())


# Route parameters: the process's App, the request id to use as correlation id, a POST that
# creates something.
AppDep = Annotated[App, Depends(_app)]
RequestId = Annotated[str | None, Depends(_request_id)]
Posted = Annotated[Submission, Depends(_submission)]


def also_during_lifespan(
    api: FastAPI, context: Callable[[], AbstractAsyncContextManager[None]]
) -> None:
    """Run ``context`` for as long as the app runs, inside whatever lifespan it already has
    (so the database is open before it starts and still open while it stops)."""
    previous = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with previous(served) as state, context():
            yield state

    api.router.lifespan_context = lifespan


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    app: App = api.state.app
    to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    await asyncio.to_thread(_open_database, app, api.state.service)
    try:
        yield
    finally:
        await asyncio.to_thread(app.close)


def _open_database(app: App, database: ServiceDatabase) -> None:
    """Create an empty embedded database now rather than in the first request. A server
    that is down is not fatal: /readyz says so until it is back."""
    try:
        app.engine(database)
    except (DependencyUnavailable, OperationalError) as exc:
        log.warning("the %s database is not reachable yet: %s", database, exc)


def page_body(items: list[dict[str, Any]], ids: list[int], limit: int) -> dict[str, Any]:
    """A list page: a full page offers the last id as the cursor of the next (like the CLI)."""
    return {"items": items, "next_cursor": ids[-1] if len(ids) == limit else None}
