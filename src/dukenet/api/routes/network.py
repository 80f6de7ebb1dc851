"""Public facts about this network."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from dukenet import __version__, crypto
from dukenet.api.deps import ServicesDep

router = APIRouter(prefix="/v1", tags=["network"])


class NetworkInfo(BaseModel):
    """The network's identity and terms."""

    network_id: str
    public_key: str
    version: str
    platform_fee_rate: str


@router.get("/network", response_model=NetworkInfo)
async def get_network(services: ServicesDep) -> NetworkInfo:
    """The network id, its Ed25519 public key (base64), version and platform fee rate."""
    return NetworkInfo(
        network_id=services.network_id,
        public_key=crypto.public_key_b64(services.network_key),
        version=__version__,
        platform_fee_rate=str(services.settings.platform_fee_rate),
    )
