"""Named SQL queries loaded once from ``.sql`` files.

A file holds blocks introduced by ``-- name: query_name``; every value in them is a bind
parameter. Domain packages keep their queries beside their code::

    QUERIES = load_queries("dukenet.registry", "queries.sql")
    await conn.fetchrow(QUERIES["get_agent"], agent_id)
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def load_queries(package: str, filename: str) -> dict[str, str]:
    """Parse ``filename`` in ``package`` into ``{name: sql}``."""
    text = (resources.files(package) / filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"duplicate query name {name!r} in {package}/{filename}")
        queries[name] = body.strip()
    return queries
