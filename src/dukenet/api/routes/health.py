"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dukenet.api.deps import ServicesDep
from dukenet.errors import StoreError

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "PostgreSQL or Redis unreachable"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 only when PostgreSQL and Redis both answer; 503 names the one that does not."""
    checks: dict[str, str] = {}
    for name, probe in (("postgres", services.db.ping), ("redis", services.cache.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except StoreError as exc:
            checks[name] = f"unavailable: {exc.detail}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    down = [k for k, v in checks.items() if v != "ok"]
    return JSONResponse(
        {
            "type": "https://dukenet.dev/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": f"unreachable: {', '.join(down)}",
            "code": "NOT_READY",
            "checks": checks,
        },
        status_code=503,
        media_type="application/problem+json",
    )


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus exposition of request counts and latency histograms."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
