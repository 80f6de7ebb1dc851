"""The trustless gateway: raw blocks and CAR files that hash back to the CID asked for."""

from __future__ import annotations

import hashlib

import httpx
import libipld
import pytest

from dukenet.audit import car, codec, trail
from dukenet.runtime import Services
from tests.integration.audit_helpers import signed_registration


async def _record_with_history(services: Services) -> tuple[str, str, str]:
    """A task execution record (linking a large output) that replaced an earlier one."""
    task = {"task_id": "7d0c1a52-58a4-4c1e-9d7e-3f2b6a1c9e00", "name": "t"}
    async with services.db.transaction() as conn:
        first = await trail.record_task_execution(
            conn, services.network_key, task=task, subtasks=[], log=[]
        )
    big = {"text": "y" * 4000}
    async with services.db.transaction() as conn:
        second = await trail.record_task_execution(
            conn, services.network_key, task={**task, "actual_output": big}, subtasks=[], log=[]
        )
    return first, second, codec.make_block(big).cid


async def test_raw_block(services: Services, client: httpx.AsyncClient) -> None:
    agent_id, payload = signed_registration()
    async with services.db.transaction() as conn:
        cid = await trail.record_registration(
            conn, services.network_key, agent_id=agent_id, registration=payload
        )
    for kwargs in (
        {"headers": {"Accept": "application/vnd.ipld.raw"}},
        {"params": {"format": "raw"}},
        {},
    ):
        response = await client.get(f"/ipfs/{cid}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.ipld.raw"
        assert response.headers["x-ipfs-path"] == f"/ipfs/{cid}"
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["etag"] == f'"{cid}.raw"'
        assert response.headers["x-content-type-options"] == "nosniff"
        assert int(response.headers["content-length"]) == len(response.content)
        info = libipld.decode_cid(cid)
        assert hashlib.sha256(response.content).digest() == info["hash"]["digest"]
        assert libipld.decode_dag_cbor(response.content)["agent_id"] == agent_id

    # Any multibase of the CID names the same block.
    base58 = libipld.encode_multibase("z", codec.cid_bytes(cid))
    same = await client.get(f"/ipfs/{base58}", params={"format": "raw"})
    assert codec.cid_for(same.content) == cid

    revalidated = await client.get(
        f"/ipfs/{cid}", params={"format": "raw"}, headers={"If-None-Match": f'"{cid}.raw"'}
    )
    assert revalidated.status_code == 304
    head = await client.head(f"/ipfs/{cid}", params={"format": "raw"})
    assert head.status_code == 200
    assert head.content == b""


async def test_car_holds_the_record_and_what_it_links_to(
    services: Services, client: httpx.AsyncClient
) -> None:
    first, second, output = await _record_with_history(services)
    response = await client.get(f"/ipfs/{second}", headers={"Accept": "application/vnd.ipld.car"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.ipld.car")
    assert "version=1" in response.headers["content-type"]
    assert response.headers["x-ipfs-roots"] == second

    header, blocks = libipld.decode_car(response.content)
    assert [libipld.encode_cid(r) for r in header["roots"]] == [second]
    assert {libipld.encode_cid(c) for c in blocks} == {second, first, output}
    parsed = car.read(response.content)
    assert parsed.blocks[0][0] == second  # depth first from the root
    for cid, raw in parsed.blocks:
        assert codec.cid_for(raw) == cid  # every block hashes back to its CID
        assert codec.encode(blocks[codec.cid_bytes(cid)]) == raw

    only_root = await client.get(f"/ipfs/{second}", params={"format": "car", "dag-scope": "block"})
    assert [cid for cid, _ in car.read(only_root.content).blocks] == [second]


@pytest.mark.parametrize(
    ("url", "headers", "status", "code"),
    [
        ("/ipfs/not-a-cid", {}, 400, "INVALID_CID"),
        (
            "/ipfs/bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae",
            {},
            404,
            "BLOCK_NOT_FOUND",
        ),
        (
            "/ipfs/bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae?format=html",
            {},
            400,
            "BAD_REQUEST",
        ),
        (
            "/ipfs/bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae",
            {"Accept": "text/html"},
            406,
            "NOT_ACCEPTABLE",
        ),
    ],
)
async def test_gateway_errors_are_problem_json(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.get(url, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
