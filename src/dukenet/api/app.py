"""The FastAPI app factory. The lifespan opens the stores and background jobs and closes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from dukenet import __version__
from dukenet.api.hot import HotRoutes
from dukenet.api.middleware import RequestEdge
from dukenet.api.problems import install_problem_handlers
from dukenet.api.routes import (
    admin_agents,
    agents,
    audit,
    balances,
    capabilities,
    gateway,
    health,
    network,
    subtasks,
    tasks,
    transactions,
)
from dukenet.api.routes import auth as auth_routes
from dukenet.api.routes import search as search_routes
from dukenet.api.routes import trust as trust_routes
from dukenet.audit import log as audit_log
from dukenet.audit import publisher as audit_publisher
from dukenet.config import Settings
from dukenet.market.sweeper import market_sweeper
from dukenet.orchestration.worker import run_embedded_worker
from dukenet.registry.heartbeats import heartbeat_sweeper
from dukenet.runtime import Services, freeze_startup_heap, open_services, thaw_heap
from dukenet.trust import cache as trust_cache
from dukenet.trust.events import run_event_consumer
from dukenet.trust.recompute import trust_recomputation_job

log = logging.getLogger(__name__)

# Background jobs started with the app (sweepers, the embedded worker): each takes the
# services and runs until cancelled. Domain issues register theirs in ``background_jobs``.
BackgroundJob = Callable[[Services], Coroutine[Any, Any, None]]
JOB_SHUTDOWN_GRACE = 10.0


def background_jobs(settings: Settings) -> list[BackgroundJob]:
    """The long-running jobs this API process hosts."""
    jobs: list[BackgroundJob] = [audit_log.run_sequencer, heartbeat_sweeper]
    jobs.append(market_sweeper)
    jobs += [run_event_consumer, trust_recomputation_job]
    if settings.ipfs_api:
        jobs.append(audit_publisher.run_publisher)
    if settings.embedded_worker:
        jobs.append(run_embedded_worker)
    return jobs


class DukenetAPI(FastAPI):
    """FastAPI behind its request edge (body limit, metrics) and the hot routes.

    A request meets ``edge`` first, then ``dukenet.api.hot.HotRoutes``, which serves the
    hottest routes itself and hands every other request to the FastAPI stack
    (``stack``)."""

    edge: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.edge is None:
            await super().__call__(scope, receive, send)
        else:
            await self.edge(scope, receive, send)

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app proper: middleware, exception handlers, router."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> DukenetAPI:
    """Build the API. ``settings`` default to the ``DUKENET_*`` environment."""
    settings = settings or Settings()
    trust_cache.use_invalidator(trust_routes.invalidate_agent_caches)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings))
            app.state.services = services
            tasks = [
                asyncio.create_task(job(services), name=getattr(job, "__name__", "job"))
                for job in background_jobs(settings)
            ]
            freeze_startup_heap()
            try:
                yield
            finally:
                thaw_heap()
                for task in tasks:
                    task.cancel()
                if tasks:
                    # Bounded: a job that ignores cancellation must not hang shutdown.
                    _, stuck = await asyncio.wait(tasks, timeout=JOB_SHUTDOWN_GRACE)
                    for task in stuck:
                        log.warning("background job %s did not stop in time", task.get_name())

    app = DukenetAPI(
        title="DukeNET",
        version=__version__,
        description="The open network where software agents register, get discovered, "
        "take on subtasks, get paid and earn trust.",
        lifespan=lifespan,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    for router in (health.router, network.router, audit.router, gateway.router):
        app.include_router(router)
    for router in (
        agents.router,
        auth_routes.router,
        capabilities.router,
        admin_agents.router,
        transactions.router,
        balances.router,
        tasks.router,
        subtasks.router,
        trust_routes.router,
        search_routes.router,
    ):
        app.include_router(router)
    app.edge = RequestEdge(HotRoutes(app, app.stack), limit=settings.max_body_bytes)
    return app
