"""Client-side verification of a DukeNET server's audit trail, trusting nothing it says.

Given a path or CID, ``verify_record_on_server`` fetches the raw block from the trustless
gateway and checks that it hashes to its CID, that the network (and, for registrations,
the agent) signed it, that it is included in the tree of a checkpoint signed by the
network key, and that this checkpoint is consistent with the last one the caller saw
(so nothing was removed or rewritten in between). The HTTP client is injected.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dukenet import crypto
from dukenet.audit import merkle
from dukenet.audit.checkpoint import Checkpoint, origin_for, verify_checkpoint
from dukenet.audit.codec import canonical_cid, cid_bytes
from dukenet.audit.errors import VerificationFailed
from dukenet.audit.records import verify_record
from dukenet.errors import DukenetError

RAW = "application/vnd.ipld.raw"


@dataclass
class Check:
    """One verification step and its outcome."""

    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """Every check made, the record CID and the checkpoint it was verified against."""

    target: str
    cid: str | None = None
    checks: list[Check] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    note: str | None = None
    public_key: str | None = None
    record: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def passed(self, name: str, detail: str) -> None:
        """Record a passed check."""
        self.checks.append(Check(name, True, detail))

    def fail(self, name: str, detail: str) -> VerificationFailed:
        """Record a failed check and return the error that stops verification."""
        self.checks.append(Check(name, False, detail))
        return VerificationFailed(f"{name}: {detail}")


@dataclass
class WitnessState:
    """What a verifier remembers per server: the network key and the last checkpoint seen."""

    path: Path
    servers: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WitnessState:
        """Read the state file (empty when it does not exist yet)."""
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path, dict(data.get("servers", {})))

    def save(self) -> None:
        """Write the state file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"servers": self.servers}, indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def recall(self, server: str) -> tuple[str | None, str | None]:
        """The network key and last checkpoint note remembered for ``server``."""
        entry = self.servers.get(server, {})
        return entry.get("public_key"), entry.get("note")

    def remember(self, server: str, public_key: str, note: str) -> None:
        """Keep ``note`` as the last checkpoint seen on ``server``."""
        self.servers[server] = {"public_key": public_key, "note": note}


def _b64list(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise ValueError("hashes must be a list")
    return [base64.b64decode(v, validate=True) for v in values]


async def _get(http: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await http.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise VerificationFailed(f"cannot reach the server: {exc}") from exc


async def network_key(
    http: httpx.AsyncClient, report: Report, trusted_key: str | None, remembered: str | None
) -> tuple[Ed25519PublicKey, str]:
    """The network's key (checked against a pinned or remembered one) and the log origin."""
    response = await _get(http, "/v1/network")
    if response.status_code != 200:
        raise report.fail("network key", f"GET /v1/network answered {response.status_code}")
    announced = str(response.json().get("public_key", ""))
    expected = trusted_key or remembered
    if expected is not None and announced != expected:
        raise report.fail("network key", f"server announces {announced}, expected {expected}")
    try:
        key = crypto.load_public_key(announced)
    except DukenetError as exc:
        raise report.fail("network key", exc.detail) from exc
    origin = origin_for(crypto.agent_id_for(key))
    how = "pinned" if trusted_key else ("as remembered" if remembered else "first use")
    report.passed("network key", f"{announced} ({how})")
    report.public_key = announced
    return key, origin


async def current_checkpoint(
    http: httpx.AsyncClient, report: Report, key: Ed25519PublicKey, origin: str
) -> tuple[Checkpoint, str]:
    """The server's newest checkpoint, verified against the network key."""
    response = await _get(http, "/v1/audit/checkpoint", params={"format": "note"})
    if response.status_code != 200:
        raise report.fail("checkpoint", f"GET /v1/audit/checkpoint answered {response.status_code}")
    note = response.text
    try:
        checkpoint = verify_checkpoint(note, origin, key)
    except DukenetError as exc:
        raise report.fail("checkpoint signature", exc.detail) from exc
    report.passed("checkpoint signature", f"tree size {checkpoint.tree_size} signed by {origin}")
    report.checkpoint, report.note = checkpoint, note
    return checkpoint, note


async def check_consistency(
    http: httpx.AsyncClient,
    report: Report,
    key: Ed25519PublicKey,
    origin: str,
    previous_note: str | None,
    current: Checkpoint,
) -> None:
    """Prove that ``current`` extends the checkpoint the caller saw before."""
    if previous_note is None:
        report.passed("consistency", "no earlier checkpoint remembered (first use)")
        return
    try:
        earlier = verify_checkpoint(previous_note, origin, key)
    except DukenetError as exc:
        raise report.fail("consistency", f"remembered checkpoint invalid: {exc.detail}") from exc
    if earlier.tree_size > current.tree_size:
        raise report.fail(
            "consistency",
            f"log shrank from {earlier.tree_size} to {current.tree_size} leaves",
        )
    proof: list[bytes] = []
    if 0 < earlier.tree_size < current.tree_size:
        response = await _get(
            http,
            "/v1/audit/proof/consistency",
            params={"first": earlier.tree_size, "second": current.tree_size},
        )
        if response.status_code != 200:
            raise report.fail("consistency", f"proof request answered {response.status_code}")
        try:
            proof = _b64list(response.json().get("hashes"))
        except ValueError as exc:
            raise report.fail("consistency", f"malformed proof: {exc}") from exc
    if not merkle.verify_consistency(
        earlier.tree_size, current.tree_size, earlier.root_hash, current.root_hash, proof
    ):
        raise report.fail(
            "consistency",
            f"tree {current.tree_size} does not extend tree {earlier.tree_size}",
        )
    report.passed("consistency", f"tree {current.tree_size} extends tree {earlier.tree_size}")


async def _inclusion(http: httpx.AsyncClient, cid: str, checkpoint: Checkpoint) -> httpx.Response:
    return await _get(
        http,
        "/v1/audit/proof/inclusion",
        params={"cid": cid, "tree_size": checkpoint.tree_size},
    )


async def verify_record_on_server(
    http: httpx.AsyncClient,
    target: str,
    *,
    trusted_key: str | None = None,
    state: WitnessState | None = None,
    wait: float = 10.0,
) -> Report:
    """Verify the record at ``target`` (a ``/dukenet/...`` path or a CID) on the server
    ``http`` talks to. Raises ``VerificationFailed`` at the first failed check (the report
    lists every check made); on success remembers the checkpoint in ``state``."""
    report = Report(target)
    try:
        return await _verify(http, target, report, trusted_key, state, wait)
    except VerificationFailed as exc:
        exc.report = report
        raise


async def _verify(
    http: httpx.AsyncClient,
    target: str,
    report: Report,
    trusted_key: str | None,
    state: WitnessState | None,
    wait: float,
) -> Report:
    server = str(http.base_url)
    remembered, previous_note = state.recall(server) if state else (None, None)
    key, origin = await network_key(http, report, trusted_key, remembered)

    path = target if target.startswith("/") else None
    if path is not None:
        response = await _get(http, "/v1/audit/resolve", params={"path": path})
        if response.status_code != 200:
            raise report.fail("resolve", f"{path} answered {response.status_code}")
        cid = str(response.json().get("cid", ""))
        report.passed("resolve", f"{path} -> {cid}")
    else:
        cid = target
    try:
        cid = canonical_cid(cid)
    except DukenetError as exc:
        raise report.fail("cid", exc.detail) from exc
    report.cid = cid

    response = await _get(http, f"/ipfs/{cid}", headers={"Accept": RAW})
    if response.status_code != 200:
        raise report.fail("block", f"gateway answered {response.status_code}")
    try:
        verified = verify_record(response.content, expected_cid=cid, network_key=key)
    except DukenetError as exc:
        raise report.fail("record", exc.detail) from exc
    report.passed("content address", f"block hashes to {cid}")
    signed_by = "network and agent" if verified.type.endswith("registration") else "network"
    report.passed("signatures", f"{verified.type} signed by the {signed_by}")
    if path is not None and verified.record.get("path") != path:
        raise report.fail("path", f"record names {verified.record.get('path')!r}, not {path}")
    report.record = verified.record

    deadline = time.monotonic() + wait
    while True:
        checkpoint, note = await current_checkpoint(http, report, key, origin)
        answer = await _inclusion(http, cid, checkpoint) if checkpoint.tree_size else None
        if (answer is not None and answer.status_code != 404) or time.monotonic() >= deadline:
            break
        report.checks.pop()  # not checkpointed yet: repeat with a newer checkpoint
        await asyncio.sleep(0.25)
    if answer is None:
        raise report.fail("inclusion", "the log is still empty")
    if answer.status_code != 200:
        raise report.fail("inclusion", f"proof request answered {answer.status_code}")
    try:
        body = answer.json()
        proof = _b64list(body.get("hashes"))
        index = int(body["leaf_index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise report.fail("inclusion", f"malformed proof: {exc}") from exc
    leaf = merkle.leaf_hash(cid_bytes(cid))
    if not merkle.verify_inclusion(index, checkpoint.tree_size, leaf, proof, checkpoint.root_hash):
        raise report.fail("inclusion", f"proof does not place {cid} under the signed root")
    report.passed("inclusion", f"leaf {index} of {checkpoint.tree_size}")

    await check_consistency(http, report, key, origin, previous_note, checkpoint)
    if state is not None and report.public_key is not None:
        state.remember(server, report.public_key, note)
        state.save()
    return report


async def witness_checkpoint(
    http: httpx.AsyncClient, *, trusted_key: str | None = None, state: WitnessState | None = None
) -> Report:
    """Fetch and verify the server's newest checkpoint and its consistency with the last one
    remembered in ``state``; remember it on success."""
    report = Report("checkpoint")
    server = str(http.base_url)
    remembered, previous_note = state.recall(server) if state else (None, None)
    try:
        key, origin = await network_key(http, report, trusted_key, remembered)
        checkpoint, note = await current_checkpoint(http, report, key, origin)
        await check_consistency(http, report, key, origin, previous_note, checkpoint)
    except VerificationFailed as exc:
        exc.report = report
        raise
    if state is not None and report.public_key is not None:
        state.remember(server, report.public_key, note)
        state.save()
    return report
