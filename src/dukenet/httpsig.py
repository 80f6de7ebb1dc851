"""RFC 9421 HTTP Message Signatures for the network's calls to agents.

The network signs every invocation it sends to an agent with its Ed25519 key; the agent
verifies it before doing any work. Both sides use the ``http-message-signatures``
library, which also writes and checks the RFC 9530 ``Content-Digest`` (sha-256) of the
body: the signer through its ``prepare()`` (signature base, digest and parameters; the
network key signs the base), the agent through its verifier. The signer's ``prepare()``
lays out the base once per target, with stand-ins for the four values that change per
request (digest, ``created``, ``expires``, nonce), which each request then fills in: the
same bytes, at a fifth of the cost. A DukeNET signature:

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
import functools
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
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
    nonce = nonce or secrets.token_urlsafe(16)
    template = _template(method, url, tuple(headers.items()), key_id)
    if template is not None and _PLAIN_NONCE.fullmatch(nonce):
        digest = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
        params = template.params.format(created_at, created_at + expires_in, nonce)
        base = template.base.format(digest, params).encode()
    else:
        digest, params, base = _prepare(
            method, url, headers, body, key_id, created_at, expires_in, nonce
        )
    signature = private_key.sign(base)  # the ed25519 algorithm: RFC 8032
    # What ``apply()`` writes for a new label. ``sign()`` would also call ``apply()``,
    # which derives the signature base a second time to catch a message that changed
    # between ``prepare()`` and the signer (a remote one): this message is ours and
    # unchanged, so that second derivation is skipped.
    # tests/unit/test_httpsig.py checks the headers equal ``sign()``'s byte for byte.
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


def _prepare(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    key_id: str,
    created_at: int,
    expires_in: int,
    nonce: str,
) -> tuple[str, str, bytes]:
    """The library's ``prepare()``: the Content-Digest, signature parameters and base."""
    message = _Request(method, url, _Headers(headers.items()))
    try:
        prepared = _SIGNER.prepare(
            message,
            key_id=key_id,
            created=datetime.datetime.fromtimestamp(created_at, datetime.UTC),
            expires=datetime.datetime.fromtimestamp(created_at + expires_in, datetime.UTC),
            nonce=nonce,
            label=LABEL,
            tag=TAG,
            covered_component_ids=COVERED_COMPONENTS,
            body=body,
            use_existing_digest=True,
        )
    except HTTPMessageSignaturesException as exc:
        raise ValueError(f"cannot sign request: {exc}") from exc
    return message.headers["Content-Digest"], prepared.signature_params, prepared.signature_base


# Stand-ins the library's prepare() lays out once per target (see ``_template``): values
# that serialize as themselves (Structured Field integers and a plain string).
_CREATED, _EXPIRES, _NONCE = 1_111_111_111, 1_999_999_999, "dukenetNonceSlot"
_PLAIN_NONCE = re.compile(r"[A-Za-z0-9_.~-]{1,128}")  # a Structured Field string as is
_EMPTY_DIGEST = f"sha-256=:{base64.b64encode(hashlib.sha256(b'').digest()).decode()}:"


@dataclass(frozen=True)
class _Template:
    """A signature base and parameters with ``str.format`` slots for the varying values:
    ``params`` takes created, expires and nonce; ``base`` the digest and the params."""

    base: str
    params: str


@functools.lru_cache(maxsize=1024)
def _template(
    method: str, url: str, header_items: tuple[tuple[str, str], ...], key_id: str
) -> _Template | None:
    """The library's signature base for one target, with slots for the values that change
    per request (the body's digest, ``created``, ``expires`` and the nonce).

    The library lays out the base once; each request then fills in its values, which
    serialize as themselves, instead of running the Structured Fields serializer and the
    component resolver again (four fifths of the cost of signing). None when a stand-in
    is not found exactly once, or the request carries its own digest: then the library
    prepares every request."""
    if any(name.lower() == "content-digest" for name, _ in header_items):
        return None
    try:
        digest, params, base = _prepare(
            method, url, dict(header_items), b"", key_id, _CREATED, _EXPIRES - _CREATED, _NONCE
        )
    except ValueError:
        return None
    text = base.decode()
    stand_ins = (str(_CREATED), str(_EXPIRES), f'"{_NONCE}"')
    if digest != _EMPTY_DIGEST or text.count(_EMPTY_DIGEST) != 1 or text.count(params) != 1:
        return None
    if any(params.count(value) != 1 for value in stand_ins) or "{" in text or "}" in text:
        return None
    slots = params
    for value, slot in zip(stand_ins, ("{0}", "{1}", '"{2}"'), strict=True):
        slots = slots.replace(value, slot)
    return _Template(text.replace(_EMPTY_DIGEST, "{0}").replace(params, "{1}"), slots)


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
