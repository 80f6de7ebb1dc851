"""The FastAPI app factory. The lifespan opens the stores and background jobs and closes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from dukenet import __version__
from dukenet.api.middleware import BodySizeLimit, Metrics
from dukenet.api.problems import install_problem_handlers
from dukenet.api.routes import health, network
from dukenet.config import Settings
from dukenet.runtime import Services, open_services

log = logging.getLogger(__name__)

# Background jobs started with the app (sweepers, the embedded worker): each takes the
# services and runs until cancelled. Domain issues register theirs in ``background_jobs``.
BackgroundJob = Callable[[Services], Coroutine[Any, Any, None]]


def background_jobs(settings: Settings) -> list[BackgroundJob]:
    """The long-running jobs this API process hosts."""
    return []


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. ``settings`` default to the ``DUKENET_*`` environment."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings))
            app.state.services = services
            tasks = [
                asyncio.create_task(job(services), name=getattr(job, "__name__", "job"))
                for job in background_jobs(settings)
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="DukeNET",
        version=__version__,
        description="The open network where software agents register, get discovered, "
        "take on subtasks, get paid and earn trust.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    for router in (health.router, network.router):
        app.include_router(router)
    app.add_middleware(Metrics)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app
