"""RFC 9421 signatures on the network's calls to agents: what an agent accepts and refuses."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from dukenet import crypto
from dukenet.errors import InvalidSignature
from dukenet.httpsig import (
    COVERED_COMPONENTS,
    TAG,
    _Headers,
    _Request,
    _template,
    sign_request,
    verify_request,
)

URL = "http://127.0.0.1:9100/invoke"
BODY = json.dumps({"subtask_id": "s1", "input": {"text": "hello"}}).encode()
CONTENT_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return crypto.generate_private_key()


def nonce_store() -> tuple[Callable[[str, int], bool], dict[str, int]]:
    """An in-memory nonce store with the ``nonce_seen`` contract (first use records it)."""
    seen: dict[str, int] = {}

    def nonce_seen(nonce: str, remember_until: int) -> bool:
        if nonce in seen:
            return True
        seen[nonce] = remember_until
        return False

    return nonce_seen, seen


def signed(key: Ed25519PrivateKey, **overrides: object) -> dict[str, str]:
    args: dict[str, object] = dict(
        method="POST",
        url=URL,
        headers=dict(CONTENT_TYPE),
        body=BODY,
        private_key=key,
        key_id="network-1",
    )
    args.update(overrides)
    return {**CONTENT_TYPE, **sign_request(**args)}  # type: ignore[arg-type]


def verify(
    key: Ed25519PrivateKey,
    headers: dict[str, str],
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    nonce_seen: Callable[[str, int], bool] | None = None,
    **extra: object,
) -> None:
    verify_request(
        method=method,
        url=url,
        headers=headers,
        body=body,
        public_key=key.public_key(),
        nonce_seen=nonce_seen or nonce_store()[0],
        **extra,  # type: ignore[arg-type]
    )


def test_signed_request_verifies_and_carries_the_dukenet_parameters(
    key: Ed25519PrivateKey,
) -> None:
    headers = signed(key)
    assert headers["Content-Digest"].startswith("sha-256=:")
    signature_input = headers["Signature-Input"]
    components = " ".join(f'"{c}"' for c in COVERED_COMPONENTS)
    assert signature_input.startswith(f"dukenet=({components})")
    for parameter in ("created=", "expires=", "nonce=", 'keyid="network-1"', f'tag="{TAG}"'):
        assert parameter in signature_input
    assert 'alg="ed25519"' in signature_input
    verify(key, headers)


def test_header_names_are_case_insensitive(key: Ed25519PrivateKey) -> None:
    headers = {name.lower(): value for name, value in signed(key).items()}
    verify(key, headers)


def test_signature_from_another_key_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(crypto.generate_private_key())
    with pytest.raises(InvalidSignature):
        verify(key, headers)


def test_tampered_body_is_rejected_by_its_digest(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    with pytest.raises(InvalidSignature, match="Content-Digest"):
        verify(key, headers, body=BODY.replace(b"hello", b"HELLO"))


def test_replaced_digest_no_longer_matches_the_signature(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    other = signed(key, body=b"{}")
    headers["Content-Digest"] = other["Content-Digest"]
    with pytest.raises(InvalidSignature):
        verify(key, headers, body=b"{}")


@pytest.mark.parametrize(
    ("field", "value"),
    [("method", "PUT"), ("url", "http://127.0.0.1:9100/other"), ("url", "http://evil:9100/invoke")],
)
def test_request_sent_elsewhere_is_rejected(key: Ed25519PrivateKey, field: str, value: str) -> None:
    headers = signed(key)
    with pytest.raises(InvalidSignature):
        verify(key, headers, **{field: value})  # type: ignore[arg-type]


def test_changed_content_type_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    headers["Content-Type"] = "text/plain"
    with pytest.raises(InvalidSignature):
        verify(key, headers)


def test_query_string_is_not_covered_but_the_path_is(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    verify(key, headers, url=URL + "?trace=1")


def test_missing_signature_headers_are_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    for name in ("Signature", "Signature-Input", "Content-Digest"):
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(InvalidSignature):
            verify(key, partial)


def test_signature_missing_a_required_component_is_rejected(key: Ed25519PrivateKey) -> None:
    # A valid signature by the right key that leaves content-type uncovered.
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

    class Message:
        method = "POST"
        url = URL
        headers: dict[str, str] = dict(CONTENT_TYPE)

    message = Message()
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={"k": key}),
    ).sign(
        message,
        key_id="k",
        expires=None,
        nonce="n1",
        tag=TAG,
        covered_component_ids=("@method", "@authority", "@path", "content-digest"),
        body=BODY,
    )
    with pytest.raises(InvalidSignature, match="content-type"):
        verify(key, message.headers)


def test_signature_with_another_tag_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    forged = headers["Signature-Input"].replace(f'tag="{TAG}"', 'tag="other/v1"')
    with pytest.raises(InvalidSignature):
        verify(key, {**headers, "Signature-Input": forged})


def test_stale_created_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key, created=int(time.time()) - 600, expires_in=3600)
    with pytest.raises(InvalidSignature, match="age"):
        verify(key, headers, max_age=300)


def test_created_in_the_future_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key, created=int(time.time()) + 120)
    with pytest.raises(InvalidSignature, match="future"):
        verify(key, headers)


def test_expired_signature_is_rejected(key: Ed25519PrivateKey) -> None:
    headers = signed(key, created=int(time.time()) - 30, expires_in=10)
    with pytest.raises(InvalidSignature, match="expires"):
        verify(key, headers)


def test_reused_nonce_is_rejected_and_fresh_nonces_pass(key: Ed25519PrivateKey) -> None:
    nonce_seen, seen = nonce_store()
    first = signed(key)
    verify(key, first, nonce_seen=nonce_seen)
    with pytest.raises(InvalidSignature, match="replay"):
        verify(key, first, nonce_seen=nonce_seen)
    verify(key, signed(key), nonce_seen=nonce_seen)
    assert len(seen) == 2
    # The store is told how long the nonce matters: no longer than the signature lives.
    assert all(until <= time.time() + 60 + 5 for until in seen.values())


def test_forged_request_does_not_consume_a_nonce(key: Ed25519PrivateKey) -> None:
    nonce_seen, seen = nonce_store()
    with pytest.raises(InvalidSignature):
        verify(key, signed(crypto.generate_private_key()), nonce_seen=nonce_seen)
    assert seen == {}


def test_expected_key_id_must_match(key: Ed25519PrivateKey) -> None:
    headers = signed(key)
    verify(key, headers, key_id="network-1")
    with pytest.raises(InvalidSignature):
        verify(key, signed(key), key_id="another-network")


def test_signing_needs_the_content_type(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="Content-Type"):
        sign_request(
            method="POST", url=URL, headers={}, body=BODY, private_key=key, key_id="network-1"
        )


def library_headers(
    key: Ed25519PrivateKey,
    url: str,
    body: bytes,
    created: int,
    expires_in: int,
    nonce: str,
    key_id: str = "network",
) -> dict[str, str]:
    """The headers the library's own ``sign()`` writes for the same request."""
    message = _Request("POST", url, _Headers(CONTENT_TYPE.items()))
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key}),
    ).sign(
        message,
        key_id=key_id,
        created=datetime.datetime.fromtimestamp(created, datetime.UTC),
        expires=datetime.datetime.fromtimestamp(created + expires_in, datetime.UTC),
        nonce=nonce,
        label="dukenet",
        tag=TAG,
        covered_component_ids=COVERED_COMPONENTS,
        body=body,
        use_existing_digest=True,
    )
    return {
        name: message.headers[name] for name in ("Content-Digest", "Signature-Input", "Signature")
    }


@pytest.mark.parametrize(
    ("url", "body", "created", "nonce"),
    [
        (URL, BODY, 1_700_000_000, "fixed-nonce"),
        # the same target again: its laid-out base is reused with other values
        (URL, b'{"other": "body"}', 1_800_000_123, "Zm9vYmFy_-9"),
        (URL, b"", 1_111_111_111, "dukenetNonceSlot"),  # the stand-in values themselves
        ("http://[::1]:8443/agents/a1/invoke", BODY, 1_700_000_001, "n0nce"),
        ("https://agent.example/invoke/1111111111", BODY, 1_700_000_002, "n"),
        ("http://127.0.0.1:9100/a%20b/invoke?q=1", BODY, 1_700_000_003, "n"),
        (URL, BODY, 1_700_000_004, "a nonce with spaces"),  # not a plain string: library
    ],
)
@pytest.mark.parametrize("key_id", ["network", 'key "quoted" \\ 1111111111', "{x}"])
def test_headers_equal_the_library_signers_byte_for_byte(
    key: Ed25519PrivateKey, url: str, body: bytes, created: int, nonce: str, key_id: str
) -> None:
    # sign_request fills per-request values into a base the library laid out once per
    # target, and skips apply()'s second derivation; the headers must still be exactly
    # what the library's own sign() writes (Ed25519 is deterministic).
    ours = sign_request(
        method="POST",
        url=url,
        headers=dict(CONTENT_TYPE),
        body=body,
        private_key=key,
        key_id=key_id,
        created=created,
        nonce=nonce,
        expires_in=90,
    )
    assert ours == library_headers(key, url, body, created, 90, nonce, key_id)


def test_a_plain_target_is_laid_out_once_and_odd_ones_fall_back_to_the_library() -> None:
    headers = tuple(CONTENT_TYPE.items())
    assert _template("POST", URL, headers, "network") is not None
    # A stand-in value or a format brace inside the base: the library prepares each request.
    assert _template("POST", URL, headers, "key 1111111111") is None
    assert _template("POST", URL, headers, "{x}") is None
    assert _template("POST", URL, (*headers, ("Content-Digest", "sha-256=:x:")), "n") is None
