"""RFC 9421 HTTP Message Signatures for the network's calls to agents.

The network signs every invocation it sends to an agent with its Ed25519 key; the agent
verifies it before doing any work. Both sides use the ``http-message-signatures``
library, which also writes and checks the RFC 9530 ``Content-Digest`` (sha-256) of the
body: the signer through its ``prepare()`` (signature base, digest and parameters; the
network key signs the base), the agent through its verifier. A DukeNET signature:

- uses algorithm ``ed25519`` and the label ``dukenet``;
- covers ``@method @authority @path content-digest content-type``;
- carries ``created``, ``expires``, ``nonce``, ``keyid`` and ``tag="dukenet/v1"``.

Verification rejects a bad signature, a missing covered component, another tag, a
``created`` too old or in the future, an ``expires`` in the past, a body that does not
match its digest, and a nonce that was seen before (replay). The nonce store is the
caller's: ``nonce_seen(nonce, remember_until)`` returns True when the nonce was already
recorded, and records it otherwise (e.g. Redis ``SET key 1 NX EXAT remember_until``).
"""

from __future__ import annotations

import base64
import datetime
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures import InvalidSignature as _LibraryInvalidSignature

from dukenet.errors import InvalidSignature

TAG = "dukenet/v1"
LABEL = "dukenet"
COVERED_COMPONENTS = ("@method", "@authority", "@path", "content-digest", "content-type")
# Tolerated difference between the signer's and the verifier's clocks, in seconds.
CLOCK_SKEW = 5

NonceSeen = Callable[[str, int], bool]
# Prepares signature bases (``prepare()`` resolves no key; the caller's key signs).
_SIGNER = HTTPMessageSigner(
    signature_algorithm=algorithms.ED25519,
    key_resolver=MappingKeyResolver(public_keys={}, private_keys={}),
)


class _Headers:
    """A header view the library can read and write: ordered field lines, case-insensitive."""

    def __init__(self, lines: Iterable[tuple[str, str]] = ()) -> None:
        self._lines = list(lines)

    def items(self) -> list[tuple[str, str]]:
        return list(self._lines)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._lines)

    def __getitem__(self, name: str) -> str:
        values = [v for n, v in self._lines if n.lower() == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        self.__delitem__(name)
        self._lines.append((name, value))

    def __delitem__(self, name: str) -> None:
        self._lines = [(n, v) for n, v in self._lines if n.lower() != name.lower()]


class _Request:
    """The request as the library sees it: method, absolute URL and header lines."""

    def __init__(self, method: str, url: str, headers: _Headers) -> None:
        self.method = method.upper()
        self.url = url
        self.headers = headers


class _SingleKey(HTTPSignatureKeyResolver):
    """Resolves every key id to one trusted public key (or only ``key_id`` when given)."""

    def __init__(self, public_key: Ed25519PublicKey, key_id: str | None) -> None:
        self.public_key = public_key
        self.key_id = key_id

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        if self.key_id is not None and key_id != self.key_id:
            return None
        return self.public_key

    def resolve_private_key(self, key_id: str) -> Any:
        raise NotImplementedError("verification only")


def _header_lines(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every field line of ``headers``, keeping repeated lines (Starlette ``Headers``)."""
    items = headers.items()
    multi = getattr(headers, "multi_items", None)
    if callable(multi):
        items = multi()
    return [(str(name), str(value)) for name, value in items]


def sign_request(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    private_key: Ed25519PrivateKey,
    key_id: str,
    expires_in: int = 60,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign a request; return the headers to add: Content-Digest, Signature-Input, Signature.

    ``headers`` must hold the ``Content-Type`` that will be sent (it is covered).
    ``created`` (epoch seconds, default now) and ``nonce`` (default 128 random bits)
    exist for tests and replays of a stored request; leave them unset otherwise.
    """
    if not any(name.lower() == "content-type" for name in headers):
        raise ValueError("sign_request needs the request's Content-Type header (it is signed)")
    if expires_in < 1:
        raise ValueError("expires_in must be at least one second")
    created_at = int(time.time()) if created is None else created
    message = _Request(method, url, _Headers(headers.items()))
    try:
        prepared = _SIGNER.prepare(
            message,
            key_id=key_id,
            created=datetime.datetime.fromtimestamp(created_at, datetime.UTC),
            expires=datetime.datetime.fromtimestamp(created_at + expires_in, datetime.UTC),
            nonce=nonce or secrets.token_urlsafe(16),
            label=LABEL,
            tag=TAG,
            covered_component_ids=COVERED_COMPONENTS,
            body=body,
            use_existing_digest=True,
        )
    except HTTPMessageSignaturesException as exc:
        raise ValueError(f"cannot sign request: {exc}") from exc
    signature = private_key.sign(prepared.signature_base)  # the ed25519 algorithm: RFC 8032
    # What ``apply()`` writes for a new label. ``sign()`` would also call ``apply()``,
    # which derives the signature base a second time to catch a message that changed
    # between ``prepare()`` and the signer (a remote one): this message is ours and
    # unchanged, so that second derivation (half the cost of signing) is skipped.
    # tests/unit/test_httpsig.py checks the headers equal ``sign()``'s byte for byte.
    return {
        "Content-Digest": message.headers["Content-Digest"],
        "Signature-Input": f"{prepared.label}={prepared.signature_params}",
        "Signature": f"{prepared.label}=:{base64.b64encode(signature).decode()}:",
    }


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: Ed25519PublicKey,
    nonce_seen: NonceSeen,
    max_age: int = 300,
    key_id: str | None = None,
) -> None:
    """Raise ``InvalidSignature`` unless the request carries a valid, fresh DukeNET signature.

    ``url`` is the absolute URL the request was addressed to (its authority and path
    are covered). ``key_id``, when given, must equal the signature's ``keyid``.
    The nonce is checked last, only once everything else verified, so forged requests
    cannot fill the nonce store; ``nonce_seen`` gets the epoch second after which the
    signature can no longer be accepted anyway (the nonce can be forgotten then).
    """
    message = _Request(method, url, _Headers(_header_lines(headers)))
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519, key_resolver=_SingleKey(public_key, key_id)
    )
    verifier.max_clock_skew = datetime.timedelta(seconds=CLOCK_SKEW)
    try:
        results = verifier.verify(
            message,
            max_age=datetime.timedelta(seconds=max_age),
            expect_tag=TAG,
            require_components=COVERED_COMPONENTS,
            body=body,
        )
    except (_LibraryInvalidSignature, HTTPMessageSignaturesException) as exc:
        raise InvalidSignature(f"request signature rejected: {exc}") from exc
    if len(results) != 1:
        raise InvalidSignature(f"expected one {TAG} signature, found {len(results)}")
    params = results[0].parameters
    created, expires, nonce = params.get("created"), params.get("expires"), params.get("nonce")
    if not isinstance(expires, int):
        raise InvalidSignature('request signature has no "expires" parameter')
    if not isinstance(created, int) or expires <= created:
        raise InvalidSignature('request signature "expires" is not after "created"')
    if not isinstance(nonce, str) or not nonce:
        raise InvalidSignature('request signature has no "nonce" parameter')
    remember_until = min(expires, created + max_age) + CLOCK_SKEW
    if nonce_seen(nonce, remember_until):
        raise InvalidSignature("request signature nonce was already used (replay)")
