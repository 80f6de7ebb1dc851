"""``dukenet audit`` as a user runs it against a real ``dukenet serve`` process: verify
passes on a good server and fails on doctored answers; export writes a valid CARv1."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import libipld
import pytest

from dukenet import crypto
from dukenet.audit import car, codec, trail
from dukenet.audit.checkpoint import Checkpoint, origin_for, sign_checkpoint
from dukenet.config import Settings
from dukenet.network import network_id_for
from dukenet.runtime import open_services
from tests.conftest import server_env
from tests.integration.audit_helpers import signed_registration

pytestmark = pytest.mark.slow


def record_registrations(settings: Settings, count: int) -> list[tuple[str, str]]:
    """Write ``count`` registration records straight into the server's database."""

    async def write() -> list[tuple[str, str]]:
        written = []
        async with open_services(settings) as services:
            for _ in range(count):
                agent_id, payload = signed_registration()
                async with services.db.transaction() as conn:
                    cid = await trail.record_registration(
                        conn, services.network_key, agent_id=agent_id, registration=payload
                    )
                written.append((f"/dukenet/agents/{agent_id}/registration", cid))
        return written

    return asyncio.run(write())


def dukenet(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dukenet", "audit", *args],
        env=server_env(settings, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def doctoring_proxy(upstream: str, settings: Settings, mode: str) -> Iterator[str]:
    """A proxy in front of the real server that doctors one kind of answer."""
    key = crypto.parse_private_key(settings.network_key or "")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            response = httpx.get(
                upstream + self.path, headers={"Accept": self.headers.get("Accept", "*/*")}
            )
            body = response.content
            if mode == "block" and self.path.startswith("/ipfs/"):
                record = libipld.decode_dag_cbor(body)
                record["initial_metadata"]["profile"]["display_name"] = "Mallory"
                body = libipld.encode_dag_cbor(record)
            elif mode == "checkpoint" and self.path.startswith("/v1/audit/checkpoint"):
                lines = body.decode().split("\n")
                lines[2] = base64.b64encode(bytes(32)).decode()
                body = "\n".join(lines).encode()
            elif mode == "proof" and self.path.startswith("/v1/audit/proof/inclusion"):
                proof = response.json()
                proof["hashes"] = [base64.b64encode(bytes(32)).decode(), *proof["hashes"][1:]]
                body = json.dumps(proof).encode()
            elif mode == "fork" and self.path.startswith("/v1/audit/checkpoint"):
                # The network key itself signs a rewritten history (an equivocating log).
                lines = body.decode().split("\n")
                forged = Checkpoint(lines[0], int(lines[1]), bytes(range(32)))
                body = sign_checkpoint(forged, key, lines[0]).encode()
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_verify_passes_on_a_good_server_and_fails_on_doctored_answers(
    live_server: str, settings: Settings, tmp_path: Path
) -> None:
    written = record_registrations(settings, 3)
    state = tmp_path / "witness.json"
    path, _ = written[-1]

    good = dukenet(settings, "verify", path, "--server", live_server, "--state", str(state))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "inclusion" in good.stdout and "FAILED" not in good.stdout
    remembered = json.loads(state.read_text())["servers"]
    assert len(remembered) == 1

    by_cid = dukenet(
        settings, "verify", written[0][1], "--server", live_server, "--state", str(state), "--json"
    )
    assert by_cid.returncode == 0, by_cid.stdout + by_cid.stderr
    assert json.loads(by_cid.stdout)["ok"] is True

    real = next(iter(remembered.values()))
    key = crypto.parse_private_key(settings.network_key or "")
    origin = real["note"].split("\n", 1)[0]
    size = int(real["note"].split("\n")[1])

    def signed(tree_size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(origin, tree_size, root), key, origin)

    cases = [
        # (what the proxy doctors, the checkpoint the verifier remembers, the check that fails)
        ("block", real["note"], "record"),
        ("checkpoint", real["note"], "checkpoint signature"),
        ("proof", real["note"], "inclusion"),
        ("fork", real["note"], "inclusion"),
        # The server once showed a bigger log: leaves were removed since.
        ("none", signed(size + 5, bytes(32)), "consistency"),
        # The server once showed a different history for the first leaves: rewritten.
        ("none", signed(size - 1, bytes(range(32))), "consistency"),
    ]
    for mode, remembered_note, failed_check in cases:
        with doctoring_proxy(live_server, settings, mode) as proxy:
            doctored_state = tmp_path / f"{mode}-{len(remembered_note)}.json"
            entry = {"public_key": real["public_key"], "note": remembered_note}
            doctored_state.write_text(json.dumps({"servers": {proxy: entry}}))
            result = dukenet(
                settings,
                "verify",
                path,
                "--server",
                proxy,
                "--state",
                str(doctored_state),
                "--json",
                "--wait",
                "0",
            )
        assert result.returncode == 1, (mode, result.stdout, result.stderr)
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert report["checks"][-1]["name"] == failed_check, (mode, report)
        assert "verification failed" in result.stderr


def test_checkpoint_command_and_pinned_key(
    live_server: str, settings: Settings, tmp_path: Path
) -> None:
    record_registrations(settings, 1)
    state = tmp_path / "witness.json"
    key = crypto.parse_private_key(settings.network_key or "")
    pinned = crypto.public_key_b64(key)
    result = dukenet(
        settings,
        "checkpoint",
        "--server",
        live_server,
        "--state",
        str(state),
        "--trusted-key",
        pinned,
    )
    assert result.returncode == 0, result.stderr
    origin = origin_for(network_id_for(key))
    assert f"\n\u2014 {origin} " in result.stdout
    wrong = crypto.public_key_b64(crypto.generate_private_key())
    refused = dukenet(
        settings,
        "checkpoint",
        "--server",
        live_server,
        "--trusted-key",
        wrong,
        "--state",
        str(state),
    )
    assert refused.returncode == 1
    assert "network key" in refused.stdout


def test_export_writes_a_car_of_the_records(
    live_server: str, settings: Settings, tmp_path: Path
) -> None:
    written = record_registrations(settings, 2)
    out = tmp_path / "agents.car"
    result = dukenet(
        settings,
        "export",
        "--out",
        str(out),
        "--prefix",
        "/dukenet/agents/",
        "--database-url",
        settings.database_url or "",
    )
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    header, blocks = libipld.decode_car(data)
    roots = {libipld.encode_cid(r) for r in header["roots"]}
    assert {cid for _, cid in written} <= roots
    for cid, raw in car.read(data).blocks:
        assert codec.cid_for(raw) == cid
    assert len(blocks) >= len(roots)

    nothing = dukenet(
        settings,
        "export",
        "--out",
        str(tmp_path / "x.car"),
        "--prefix",
        "/dukenet/none/",
        "--database-url",
        settings.database_url or "",
    )
    assert nothing.returncode == 1
