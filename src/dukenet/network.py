"""The network's own identity: its Ed25519 key (generated on first start) and public info."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet import crypto
from dukenet.config import Settings

NETWORK_KEY_FILE = "network_key.pem"


def load_network_key(settings: Settings) -> Ed25519PrivateKey:
    """``DUKENET_NETWORK_KEY`` if set, else the key file in the data dir (created, mode 0600)."""
    if settings.network_key:
        return crypto.parse_private_key(settings.network_key)
    return crypto.load_or_create_private_key(settings.data_dir / NETWORK_KEY_FILE)


def network_id_for(key: Ed25519PrivateKey) -> str:
    """The network id: sha256 of the network's raw public key, as for agents."""
    return crypto.agent_id_for(key.public_key())
