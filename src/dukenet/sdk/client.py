"""``Client`` (blocking) and ``AsyncClient``: the DukeNET API from Python, on httpx.

Both expose the same operations, written once (see ``dukenet.sdk.base``)::

    with Client("http://127.0.0.1:8080", key="agent_key.pem") as dn:
        agent = dn.register(display_name="Summarizer", endpoint_url="https://...")
        dn.heartbeat()

    async with AsyncClient(transport=httpx.ASGITransport(app), key=key) as dn:
        await dn.register(display_name="Summarizer")

Other domains add their operations as mixins next to ``RegistryOperations``.
"""

from __future__ import annotations

from dukenet.sdk.base import AsyncDriver, SyncDriver
from dukenet.sdk.market import MarketOperations
from dukenet.sdk.registry import RegistryOperations
from dukenet.sdk.search import AsyncSearch, SyncSearch
from dukenet.sdk.tasks import AsyncTaskStreams, SyncTaskStreams


class Client(SyncSearch, SyncTaskStreams, MarketOperations, RegistryOperations, SyncDriver):
    """Blocking DukeNET client."""


class AsyncClient(AsyncSearch, AsyncTaskStreams, MarketOperations, RegistryOperations, AsyncDriver):
    """Async DukeNET client (``await`` every operation)."""
