"""Shared helpers for the audit tests: signed registrations and waiting for the log."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from dukenet import crypto


def signed_registration(name: str = "Agent", **extra: Any) -> tuple[str, dict[str, Any]]:
    """A fresh agent's id and its signed registration payload, as an agent would send it."""
    key = crypto.generate_private_key()
    payload: dict[str, Any] = {
        "public_key": crypto.public_key_b64(key),
        "display_name": name,
        "description": "summarizes text",
        "endpoint_url": "https://agent.example/invoke",
        "capabilities": [{"name": "text.summarize", "version": "1.0.0", "price": "0.0100"}],
        "tags": ["nlp", "summaries"],
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **extra,
    }
    signed = crypto.sign_payload(key, payload)
    return crypto.agent_id_for(key.public_key()), signed


async def wait_included(
    http: httpx.AsyncClient, cid: str, patience: float = 15.0
) -> dict[str, Any]:
    """Poll until ``cid`` is covered by a signed checkpoint; return the inclusion proof."""
    deadline = time.monotonic() + patience
    while True:
        response = await http.get("/v1/audit/proof/inclusion", params={"cid": cid})
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} not checkpointed: {response.status_code} {response.text}")
        await asyncio.sleep(0.1)
