"""FastAPI dependencies: the process's services, handed out per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dukenet.runtime import Services


async def get_services(request: Request) -> Services:
    """The ``Services`` opened by the app lifespan (async, so FastAPI needs no thread hop)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
