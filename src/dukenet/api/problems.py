"""RFC 9457 problem+json responses for every error the API can return."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dukenet.errors import DukenetError, RateLimited

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def problem_response(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response with a stable ``code``."""
    body: dict[str, Any] = {
        "type": f"https://dukenet.dev/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def json_pointer(location: tuple[Any, ...] | list[Any]) -> str:
    """Render a pydantic error location as a JSON Pointer (``body`` prefix dropped)."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def dukenet_error_response(exc: DukenetError) -> JSONResponse:
    """The problem+json response for a DukeNET error (``Retry-After`` on 429)."""
    response = JSONResponse(exc.to_problem(), status_code=exc.status, media_type=PROBLEM_JSON)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _dukenet_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DukenetError)
    return dukenet_error_response(exc)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(
            400, "MALFORMED_JSON", "Malformed JSON", "the request body is not valid JSON"
        )
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = tuple(first.get("loc", ()))
    where = location[0] if location else "body"
    field = json_pointer(location)
    if where == "query" and len(location) > 1:
        field = str(location[1])
    return problem_response(
        422,
        "VALIDATION_FAILED",
        "Invalid input",
        f"{field}: {first.get('msg', 'invalid')}",
        field=field,
        errors=[
            {"field": json_pointer(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in errors
        ],
    )


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    detail = exc.detail if isinstance(exc.detail, str) else code
    response = problem_response(exc.status_code, code, code.replace("_", " ").capitalize(), detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through problem+json."""
    app.add_exception_handler(DukenetError, _dukenet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
