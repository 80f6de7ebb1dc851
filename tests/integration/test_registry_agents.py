"""Agent registration, lookup, listing, profile, tags, deregistration and suspension,
over HTTP against the app on real PostgreSQL and Redis."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.sdk import AsyncClient, build_registration, errors

ADMIN = {"authorization": "Bearer test-admin-token"}
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
MakeAgent = Callable[..., Awaitable[AsyncClient]]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dukenet.test") as client:
        yield client


@pytest.fixture
async def make_agent(app: FastAPI) -> AsyncIterator[MakeAgent]:
    """Register a fresh agent and hand back an SDK client logged in as it."""
    opened: list[AsyncClient] = []

    async def make(display_name: str = "Agent", **profile: Any) -> AsyncClient:
        sdk = AsyncClient(
            "http://dukenet.test",
            key=crypto.generate_private_key(),
            transport=httpx.ASGITransport(app=app),
        )
        opened.append(sdk)
        await sdk.register(display_name, **profile)
        return sdk

    yield make
    for sdk in opened:
        await sdk.aclose()


def signed(**overrides: Any) -> tuple[dict[str, Any], Any]:
    key = crypto.generate_private_key()
    profile = {"description": "summarizes text", "tags": ["nlp"]} | overrides
    return build_registration(key, "Summarizer", **profile), key


async def test_registration_round_trip_keeps_the_signed_payload(
    http: httpx.AsyncClient, database_url: str
) -> None:
    payload, key = signed(
        endpoint_url="https://agent.example/run",
        owner_address="0x52908400098527886e0f7030069857d2e4169ee7",
        metadata={"model": "small", "weights": [1, 2.5]},
        tags=[" NLP ", "Summaries", "nlp"],
        capabilities=[
            {
                "name": "text.summarize",
                "version": "1.0.0",
                "input_schema": SCHEMA,
                "output_schema": {"type": "object"},
                "pricing_model": "per_call",
                "price": "0.0100",
            }
        ],
    )
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 201, response.text
    agent = response.json()
    agent_id = crypto.agent_id_for(key.public_key())
    assert response.headers["location"] == f"/v1/agents/{agent_id}"
    assert agent["agent_id"] == agent_id
    assert agent["status"] == "ACTIVE"
    assert agent["trust_score"] == 50.0
    assert agent["tags"] == ["nlp", "summaries"]
    # stored EIP-55 checksummed
    assert agent["owner_address"] == "0x52908400098527886E0F7030069857D2E4169EE7"
    assert agent["audit_cid"].startswith("bafy")

    fetched = (await http.get(f"/v1/agents/{agent_id}")).json()
    assert fetched == agent | {"last_heartbeat": fetched["last_heartbeat"]}

    stored = (await http.get(f"/v1/agents/{agent_id}/registration")).json()
    assert stored["payload"] == payload
    crypto.verify_payload(crypto.load_public_key(payload["public_key"]), stored["payload"])

    capabilities = (await http.get(f"/v1/agents/{agent_id}/capabilities")).json()["items"]
    assert [(c["name"], c["price"]) for c in capabilities] == [("text.summarize", "0.0100")]

    conn = await asyncpg.connect(database_url)
    try:
        history = await conn.fetch(
            "SELECT event, new_status FROM agent_status_changes WHERE agent_id = $1", agent_id
        )
    finally:
        await conn.close()
    assert [(r["event"], r["new_status"]) for r in history] == [("REGISTERED", "ACTIVE")]


async def test_forged_signature_is_refused(http: httpx.AsyncClient) -> None:
    payload, _ = signed()
    payload["display_name"] = "Someone Else"  # changed after signing
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "INVALID_SIGNATURE"


async def test_signature_by_another_key_is_refused(http: httpx.AsyncClient) -> None:
    payload, _ = signed()
    impostor = crypto.generate_private_key()
    payload = crypto.sign_payload(impostor, payload)  # keeps the victim's public_key
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_SIGNATURE"


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_stale_or_future_timestamp_is_refused(
    http: httpx.AsyncClient, skew: timedelta
) -> None:
    key = crypto.generate_private_key()
    payload = build_registration(key, "Late", timestamp=datetime.now(UTC) + skew)
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert "timestamp" in response.json()["detail"]


async def test_replayed_registration_is_a_conflict(
    http: httpx.AsyncClient, database_url: str
) -> None:
    payload, _ = signed()
    created = await http.post("/v1/agents", json=payload)
    assert created.status_code == 201
    agent = created.json()
    # The audit record was written with the agent: its path resolves to the agent's CID,
    # the record holds the signed payload, and it waits in the log queue exactly once.
    path = f"/dukenet/agents/{agent['agent_id']}/registration"
    resolved = await http.get("/v1/audit/resolve", params={"path": path})
    assert resolved.json()["cid"] == agent["audit_cid"]
    record = (await http.get(f"/v1/audit/records/{agent['audit_cid']}")).json()
    assert record["registration"] == payload and "previous" not in record
    again = await http.post("/v1/agents", json=payload)
    assert again.status_code == 409
    assert again.json()["code"] == "AGENT_EXISTS"
    conn = await asyncpg.connect(database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM audit_paths WHERE path = $1) AS paths,"
            " (SELECT count(*) FROM audit_log_queue WHERE cid = $2)"
            " + (SELECT count(*) FROM audit_log_leaves WHERE cid = $2) AS logged,"
            " (SELECT count(*) FROM agent_registrations WHERE agent_id = $3) AS registrations",
            path,
            agent["audit_cid"],
            agent["agent_id"],
        )
    finally:
        await conn.close()
    assert dict(counts) == {"paths": 1, "logged": 1, "registrations": 1}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"owner_address": "0x52908400098527886E0F7030069857D2E4169Ee7"}, "/owner_address"),
        ({"owner_address": "0x1234"}, "/owner_address"),
        ({"endpoint_url": "ftp://agent.example"}, "/endpoint_url"),
        ({"avatar_url": "not a url"}, "/avatar_url"),
        ({"metadata": {"blob": "x" * 20_000}}, "/metadata"),
        ({"metadata": ["not", "an", "object"]}, "/metadata"),
        ({"tags": ["ok", "   "]}, "/tags/1"),
        ({"tags": ["x" * 101]}, "/tags/0"),
        ({"tags": [f"t{i}" for i in range(33)]}, "/tags"),
        ({"tags": [5]}, "/tags/0"),
        ({"version": "v" * 21}, "/version"),
        ({"unexpected": True}, "/unexpected"),
        (
            {
                "capabilities": [
                    {
                        "name": "Bad Name",
                        "version": "1.0.0",
                        "input_schema": {},
                        "output_schema": {},
                    }
                ]
            },
            "/capabilities/0/name",
        ),
    ],
)
async def test_malformed_registration_names_the_field(
    http: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    payload, _ = signed(**overrides)
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert problem["field"] == field


async def test_invalid_capability_schema_at_registration_points_inside_it(
    http: httpx.AsyncClient,
) -> None:
    payload, _ = signed(
        capabilities=[
            {
                "name": "text.summarize",
                "version": "1.0.0",
                "input_schema": {"type": "object", "properties": {"x": {"type": "strng"}}},
                "output_schema": {},
            }
        ]
    )
    response = await http.post("/v1/agents", json=payload)
    assert response.status_code == 422
    assert response.json()["code"] == "SCHEMA_INVALID"
    assert response.json()["field"] == "/capabilities/0/input_schema/properties/x/type"


async def test_bad_public_key_and_mismatched_agent_id(http: httpx.AsyncClient) -> None:
    payload, _ = signed()
    payload["public_key"] = base64.b64encode(b"short").decode()
    response = await http.post("/v1/agents", json=payload)
    assert (response.status_code, response.json()["field"]) == (422, "/public_key")

    key = crypto.generate_private_key()
    payload = build_registration(key, "X", agent_id="0" * 64)
    response = await http.post("/v1/agents", json=payload)
    assert (response.status_code, response.json()["field"]) == (422, "/agent_id")


async def test_malformed_json_and_unknown_agent(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/agents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    missing = await http.get(f"/v1/agents/{'a' * 64}")
    assert (missing.status_code, missing.json()["code"]) == (404, "AGENT_NOT_FOUND")
    bad_id = await http.get("/v1/agents/not-an-id")
    assert (bad_id.status_code, bad_id.json()["field"]) == (422, "/agent_id")


async def test_profile_update_is_visible_immediately(make_agent: MakeAgent) -> None:
    sdk = await make_agent("Before", description="old", version="1.0.0")
    assert (await sdk.get_agent()).display_name == "Before"  # now cached
    updated = await sdk.update_agent(display_name="After", description=None)
    assert (updated.display_name, updated.description, updated.version) == ("After", None, "1.0.0")
    again = await sdk.get_agent()
    assert (again.display_name, again.description) == ("After", None)
    with pytest.raises(errors.ValidationFailed) as refused:
        await sdk.update_agent(owner_address="0xZZ")
    assert refused.value.field == "/owner_address"


async def test_tags_replace_the_set(make_agent: MakeAgent) -> None:
    sdk = await make_agent(tags=["old"])
    result = await sdk.set_tags([" Search ", "NLP", "nlp"])
    assert result.tags == ["nlp", "search"]
    assert (await sdk.get_agent()).tags == ["nlp", "search"]
    with pytest.raises(errors.ValidationFailed) as refused:
        await sdk.set_tags([f"t{i}" for i in range(40)])
    assert refused.value.field == "/tags"


async def test_list_filters_and_keyset_pagination(
    make_agent: MakeAgent, http: httpx.AsyncClient
) -> None:
    marker = f"batch-{datetime.now(UTC).timestamp():.0f}"
    created = [await make_agent(f"Lister {i}", tags=[marker, f"n{i % 2}"]) for i in range(5)]
    ids = [sdk.agent_id for sdk in reversed(created)]  # newest first

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"tag": marker, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/agents", params=params)).json()
        seen += [a["agent_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    both = (await http.get("/v1/agents", params=[("tag", marker), ("tag", "n0")])).json()
    assert {a["agent_id"] for a in both["items"]} == {created[i].agent_id for i in (0, 2, 4)}
    assert (await http.get("/v1/agents", params={"tag": marker, "min_trust": 51})).json()[
        "items"
    ] == []
    bad = await http.get("/v1/agents", params={"cursor": "garbage!"})
    assert (bad.status_code, bad.json()["field"]) == (422, "cursor")
    bad = await http.get("/v1/agents", params={"status": "SLEEPING"})
    assert bad.status_code == 422


async def test_deregistration_removes_capabilities_and_tags_but_keeps_history(
    make_agent: MakeAgent, http: httpx.AsyncClient, database_url: str
) -> None:
    sdk = await make_agent(
        tags=["gone"],
        capabilities=[{"name": "x.y", "version": "1.0.0", "input_schema": {}, "output_schema": {}}],
    )
    agent_id = sdk.agent_id
    token = (await sdk.login()).token
    assert (await http.get(f"/v1/agents/{agent_id}")).status_code == 200  # cached
    await sdk.deregister()

    after = await http.get(f"/v1/agents/{agent_id}")
    assert (after.status_code, after.json()["code"]) == (404, "AGENT_NOT_FOUND")
    assert (await http.get(f"/v1/agents/{agent_id}/capabilities")).status_code == 404
    listed = (await http.get("/v1/agents", params={"tag": "gone"})).json()["items"]
    assert agent_id not in [a["agent_id"] for a in listed]
    # the registration record and the row stay for history
    assert (await http.get(f"/v1/agents/{agent_id}/registration")).status_code == 200
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT deregistered_at, (SELECT count(*) FROM agent_capabilities c"
            " WHERE c.agent_id = a.agent_id) AS caps FROM agents a WHERE agent_id = $1",
            agent_id,
        )
    finally:
        await conn.close()
    assert row["deregistered_at"] is not None and row["caps"] == 0
    # its session is dead, it cannot log in, and the key cannot register again
    beat = await http.post(
        f"/v1/agents/{agent_id}/heartbeat", headers={"authorization": f"Bearer {token}"}
    )
    assert (beat.status_code, beat.json()["code"]) == (401, "UNAUTHORIZED")
    with pytest.raises(errors.AgentNotFound):
        await sdk.login()
    with pytest.raises(errors.AgentExists):
        await sdk.register("Again")


async def test_every_write_route_refuses_another_agent(
    make_agent: MakeAgent, http: httpx.AsyncClient
) -> None:
    victim = await make_agent(
        "Victim",
        capabilities=[{"name": "x.y", "version": "1.0.0", "input_schema": {}, "output_schema": {}}],
    )
    attacker = await make_agent("Attacker")
    session = await attacker.login()
    auth = {"authorization": f"Bearer {session.token}"}
    target = victim.agent_id
    capability_id = (await victim.list_capabilities()).items[0].capability_id
    routes = [
        ("PATCH", f"/v1/agents/{target}", {"display_name": "pwned"}),
        ("DELETE", f"/v1/agents/{target}", None),
        ("PUT", f"/v1/agents/{target}/tags", {"tags": ["pwned"]}),
        ("POST", f"/v1/agents/{target}/heartbeat", None),
        (
            "POST",
            f"/v1/agents/{target}/capabilities",
            {"name": "a.b", "version": "1.0.0", "input_schema": {}, "output_schema": {}},
        ),
        ("PATCH", f"/v1/capabilities/{capability_id}", {"deprecated": True}),
        ("DELETE", f"/v1/capabilities/{capability_id}", None),
    ]
    for method, path, body in routes:
        response = await http.request(method, path, json=body, headers=auth)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "FORBIDDEN"
        anonymous = await http.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    unchanged = await victim.get_agent()
    assert unchanged.display_name == "Victim" and unchanged.tags == []
    assert (await victim.get_capability(capability_id)).deprecated is False


async def test_operator_suspends_and_reinstates_with_reasons(
    make_agent: MakeAgent, http: httpx.AsyncClient, database_url: str
) -> None:
    sdk = await make_agent("Suspect")
    await sdk.login()
    agent_id = sdk.agent_id
    path = f"/v1/admin/agents/{agent_id}/suspend"
    assert (await http.post(path, json={"reason": "spam"})).status_code == 401
    wrong = await http.post(path, json={"reason": "spam"}, headers={"authorization": "Bearer no"})
    assert wrong.status_code == 403
    assert (await http.post(path, json={}, headers=ADMIN)).json()["field"] == "/reason"

    suspended = await http.post(path, json={"reason": "spam"}, headers=ADMIN)
    assert suspended.status_code == 200
    assert (suspended.json()["status"], suspended.json()["status_reason"]) == ("SUSPENDED", "spam")
    assert (await http.post(path, json={"reason": "again"}, headers=ADMIN)).status_code == 409

    # the live session stops working and a new login is refused
    with pytest.raises(errors.AgentSuspended):
        await sdk.heartbeat()
    sdk.session = None
    with pytest.raises(errors.AgentSuspended):
        await sdk.login()
    assert (await sdk.get_agent()).status == "SUSPENDED"

    reinstated = await http.post(
        f"/v1/admin/agents/{agent_id}/reinstate", json={"reason": "appeal accepted"}, headers=ADMIN
    )
    assert reinstated.json()["status"] == "ACTIVE"
    assert (await sdk.heartbeat()).status == "ACTIVE"
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event, actor, reason FROM agent_status_changes WHERE agent_id = $1"
            " ORDER BY change_id",
            agent_id,
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows][1:] == [
        ("SUSPENDED", "operator", "spam"),
        ("REINSTATED", "operator", "appeal accepted"),
    ]
