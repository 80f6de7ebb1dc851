"""Ratings over HTTP with real sessions: every acceptance rule, listing, and the trust
recomputation each accepted rating triggers (score, record, caches)."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_trust_support import (
    TrustNetwork,
    insert_task,
    network,
    records_of,
    trust_of,
)

__all__ = ["network"]


async def _rated_setup(
    net: TrustNetwork, **task: object
) -> tuple[str, dict[str, str], str, uuid.UUID]:
    """A rater (logged in), an agent that worked on the rater's task; (rater, auth, agent, task)."""
    rater, auth = await net.register("Buyer")
    agent, _ = await net.register("Seller")
    async with net.services.db.acquire() as conn:
        task_id, _ = await insert_task(conn, rater, agent, **task)  # type: ignore[arg-type]
    return rater, auth, agent, task_id


async def test_accepted_rating_is_listed_and_moves_trust_immediately(
    network: TrustNetwork,
) -> None:
    rater, auth, agent, task_id = await _rated_setup(network)
    before = (await network.http.get(f"/v1/agents/{agent}")).json()  # fills agent:{id}
    assert before["trust_score"] == 50.0

    response = await network.http.post(
        f"/v1/agents/{agent}/ratings",
        json={"task_id": str(task_id), "rating": 5, "review": "fast and correct"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    rating = response.json()
    assert rating["agent_id"] == agent
    assert rating["rater_agent_id"] == rater
    assert rating["task_id"] == str(task_id)
    assert rating["rating"] == 5.0
    assert rating["review"] == "fast and correct"
    assert rating["task_value"] == "2.0000"
    assert response.headers["location"].startswith(f"/v1/agents/{agent}/ratings")

    # the score moved up, a trust record says why, and the cached agent shows it at once
    score = await trust_of(network.services, agent)
    assert score > 50.0
    records = await records_of(network.services, agent)
    assert [r["reason"] for r in records] == ["rating"]
    assert float(records[-1]["trust_score"]) == score
    assert records[-1]["total_ratings"] == 1
    after = (await network.http.get(f"/v1/agents/{agent}")).json()
    assert after["trust_score"] == score

    listed = (await network.http.get(f"/v1/agents/{agent}/ratings")).json()
    assert [item["rating_id"] for item in listed["items"]] == [rating["rating_id"]]
    assert listed["next_cursor"] is None


async def test_ratings_list_newest_first_with_pages(network: TrustNetwork) -> None:
    rater, auth = await network.register("Buyer")
    agent, _ = await network.register("Seller")
    ids = []
    for value in ("1.5", "2.25", "4.75"):
        async with network.services.db.acquire() as conn:
            task_id, _ = await insert_task(conn, rater, agent)
        response = await network.http.post(
            f"/v1/agents/{agent}/ratings",
            json={"task_id": str(task_id), "rating": value},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["rating_id"])
    first = (await network.http.get(f"/v1/agents/{agent}/ratings", params={"limit": 2})).json()
    assert [r["rating_id"] for r in first["items"]] == ids[::-1][:2]
    assert [r["rating"] for r in first["items"]] == [4.75, 2.25]
    second = (
        await network.http.get(
            f"/v1/agents/{agent}/ratings", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [r["rating_id"] for r in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    bad = await network.http.get(f"/v1/agents/{agent}/ratings", params={"cursor": "nonsense"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "cursor"


async def test_one_rating_per_agent_rater_and_task(network: TrustNetwork) -> None:
    _, auth, agent, task_id = await _rated_setup(network)
    body = {"task_id": str(task_id), "rating": 4}
    assert (
        await network.http.post(f"/v1/agents/{agent}/ratings", json=body, headers=auth)
    ).status_code == 201
    again = await network.http.post(f"/v1/agents/{agent}/ratings", json=body, headers=auth)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "RATING_EXISTS"
    assert len(await records_of(network.services, agent)) == 1


async def test_no_self_rating(network: TrustNetwork) -> None:
    agent, auth = await network.register("Solo")
    async with network.services.db.acquire() as conn:
        task_id, _ = await insert_task(conn, agent, agent)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(task_id), "rating": 5}, headers=auth
    )
    assert response.status_code == 403
    assert response.json()["code"] == "SELF_RATING"


async def test_only_the_task_creator_rates(network: TrustNetwork) -> None:
    _, _, agent, task_id = await _rated_setup(network)
    _, stranger_auth = await network.register("Stranger")
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings",
        json={"task_id": str(task_id), "rating": 5},
        headers=stranger_auth,
    )
    assert response.status_code == 403
    assert response.json()["code"] == "NOT_TASK_CREATOR"
    assert response.json()["field"] == "/task_id"


@pytest.mark.parametrize("status", ["PENDING", "EXECUTING", "FAILED", "CANCELLED"])
async def test_only_completed_tasks(network: TrustNetwork, status: str) -> None:
    _, auth, agent, task_id = await _rated_setup(network, status=status)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(task_id), "rating": 3}, headers=auth
    )
    assert response.status_code == 409
    assert response.json()["code"] == "TASK_NOT_COMPLETED"


async def test_the_agent_must_have_completed_a_subtask(network: TrustNetwork) -> None:
    rater, auth = await network.register("Buyer")
    agent, _ = await network.register("Seller")
    other, _ = await network.register("Other")
    async with network.services.db.acquire() as conn:
        failed_task, _ = await insert_task(conn, rater, agent, subtask_status="FAILED")
        others_task, _ = await insert_task(conn, rater, other)
    for task_id in (failed_task, others_task):
        response = await network.http.post(
            f"/v1/agents/{agent}/ratings",
            json={"task_id": str(task_id), "rating": 1},
            headers=auth,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "AGENT_NOT_IN_TASK"


async def test_within_thirty_days_of_completion(network: TrustNetwork) -> None:
    rater, auth = await network.register("Buyer")
    agent, _ = await network.register("Seller")
    async with network.services.db.acquire() as conn:
        old, _ = await insert_task(conn, rater, agent, completed_days_ago=31)
        recent, _ = await insert_task(conn, rater, agent, completed_days_ago=29)
    late = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(old), "rating": 4}, headers=auth
    )
    assert late.status_code == 409
    assert late.json()["code"] == "RATING_WINDOW_CLOSED"
    on_time = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(recent), "rating": 4}, headers=auth
    )
    assert on_time.status_code == 201


async def test_unknown_task_and_agent(network: TrustNetwork) -> None:
    _, auth, agent, _ = await _rated_setup(network)
    missing_task = await network.http.post(
        f"/v1/agents/{agent}/ratings",
        json={"task_id": str(uuid.uuid4()), "rating": 4},
        headers=auth,
    )
    assert missing_task.status_code == 404
    assert missing_task.json()["code"] == "TASK_NOT_FOUND"
    missing_agent = await network.http.post(
        f"/v1/agents/{'ab' * 32}/ratings",
        json={"task_id": str(uuid.uuid4()), "rating": 4},
        headers=auth,
    )
    assert missing_agent.status_code == 404
    assert missing_agent.json()["code"] == "AGENT_NOT_FOUND"
    listing = await network.http.get(f"/v1/agents/{'ab' * 32}/ratings")
    assert listing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": 5.01}, "/rating"),
        ({"rating": -0.5}, "/rating"),
        ({"rating": "4.555"}, "/rating"),
        ({"rating": "many"}, "/rating"),
        ({"rating": 4, "review": "x" * 2001}, "/review"),
        ({"rating": 4, "task_id": "not-a-uuid"}, "/task_id"),
        ({"rating": 4, "stars": 5}, "/stars"),
    ],
)
async def test_malformed_ratings_name_the_field(
    network: TrustNetwork, body: dict[str, object], field: str
) -> None:
    _, auth, agent, task_id = await _rated_setup(network)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(task_id), **body}, headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert await records_of(network.services, agent) == []


async def test_two_decimals_and_a_full_review_are_accepted(network: TrustNetwork) -> None:
    _, auth, agent, task_id = await _rated_setup(network)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings",
        json={"task_id": str(task_id), "rating": "3.25", "review": "y" * 2000},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    assert response.json()["rating"] == 3.25


async def test_rating_needs_a_session(network: TrustNetwork) -> None:
    _, _, agent, task_id = await _rated_setup(network)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(task_id), "rating": 5}
    )
    assert response.status_code == 401
    bogus = await network.http.post(
        f"/v1/agents/{agent}/ratings",
        json={"task_id": str(task_id), "rating": 5},
        headers={"authorization": "Bearer not-a-session"},
    )
    assert bogus.status_code == 401


async def test_rating_between_agents_of_one_owner_counts_nothing_and_flags(
    network: TrustNetwork,
) -> None:
    owner = "0x52908400098527886E0F7030069857D2E4169EE7"
    rater, auth = await network.register("Buyer", owner_address=owner)
    agent, _ = await network.register("Seller", owner_address=owner)
    async with network.services.db.acquire() as conn:
        task_id, _ = await insert_task(conn, rater, agent)
    response = await network.http.post(
        f"/v1/agents/{agent}/ratings", json={"task_id": str(task_id), "rating": 5}, headers=auth
    )
    assert response.status_code == 201
    trust = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    assert trust["components"]["reputation"]["inputs"]["effective_weight"] == 0.0
    assert [f["kind"] for f in trust["fraud_flags"]] == ["SELF_DEALING"]
    assert trust["trust_score"] < 50.0
