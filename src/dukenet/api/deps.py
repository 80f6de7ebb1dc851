"""FastAPI dependencies: the process's services, handed out per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dukenet.runtime import Services


def services_of(request: Request) -> Services:
    """The ``Services`` opened by the app lifespan."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """``services_of`` as a dependency (async, so FastAPI needs no thread hop)."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
