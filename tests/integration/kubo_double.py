"""A test double for a Kubo node's RPC API (we cannot install Kubo here).

It is a small local HTTP server implementing only the calls the publisher makes —
``block/put``, ``files/mkdir``, ``files/rm`` and ``files/cp`` — the way Kubo answers them
(POST only, ``Key``/``Size`` JSON, 500 with a ``Message`` on errors). It records every
call and the exact bytes received, and can be told to fail the first N calls, so tests
can check what was published and that failures are retried.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import libipld

DAG_CBOR_SHA256 = bytes([0x01, 0x71, 0x12, 0x20])


@dataclass
class KuboDouble:
    """What the fake node received, and its fault injection."""

    url: str = ""
    blocks: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    mfs: dict[str, str] = field(default_factory=dict)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _multipart_files(content_type: str, body: bytes) -> list[bytes]:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    files = []
    for part in body.split(b"--" + boundary)[1:-1]:
        _, _, content = part.partition(b"\r\n\r\n")
        files.append(content[:-2] if content.endswith(b"\r\n") else content)
    return files


def _handler(state: KuboDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(405, {"Message": "405 - Method Not Allowed", "Code": 0, "Type": "error"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            command = parts.path.removeprefix("/api/v0/")
            params = parse_qsl(parts.query)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.calls.append((command, params))
                if state.fail_next > 0:
                    state.fail_next -= 1
                    self._reply(500, {"Message": "injected failure", "Code": 0, "Type": "error"})
                    return
            args = [v for k, v in params if k == "arg"]
            if command == "block/put":
                options = dict(params)
                assert options.get("cid-codec") == "dag-cbor", options
                data = _multipart_files(self.headers["Content-Type"], body)[0]
                cid = libipld.encode_cid(DAG_CBOR_SHA256 + hashlib.sha256(data).digest())
                with state.lock:
                    state.blocks[cid] = data
                self._reply(200, {"Key": cid, "Size": len(data)})
            elif command == "files/mkdir":
                self._reply(200, {})
            elif command == "files/rm":
                with state.lock:
                    found = state.mfs.pop(args[0], None)
                if found is None:
                    self._reply(500, {"Message": "file does not exist", "Code": 0, "Type": "error"})
                else:
                    self._reply(200, {})
            elif command == "files/cp":
                source, destination = args
                cid = source.removeprefix("/ipfs/")
                with state.lock:
                    if cid not in state.blocks:
                        self._reply(500, {"Message": "block not found", "Code": 0, "Type": "error"})
                        return
                    if destination in state.mfs:
                        self._reply(
                            500,
                            {"Message": "directory already has entry", "Code": 0, "Type": "error"},
                        )
                        return
                    state.mfs[destination] = cid
                self._reply(200, {})
            else:
                self._reply(
                    404, {"Message": f"unknown command {command}", "Code": 0, "Type": "error"}
                )

    return Handler


@contextmanager
def kubo_double() -> Iterator[KuboDouble]:
    """Run the fake Kubo RPC server on a free loopback port."""
    state = KuboDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
