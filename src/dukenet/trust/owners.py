"""Proving an agent's ``owner_address`` with an EIP-191 signature (``eth-account``).

The owner signs, with the Ethereum key of ``owner_address`` and ``personal_sign`` (EIP-191
version 0x45), the text returned by ``owner_message``; it names the agent and the address,
so a proof cannot be moved to another agent. A verified proof makes the agent's owner
address count in its verified-signer component while ``owner_address`` stays the same.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from dukenet.store.cache import Cache
from dukenet.store.postgres import Database, Record, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import events
from dukenet.trust.errors import AgentNotFound, OwnerAddressMissing, OwnerProofInvalid
from dukenet.trust.models import OwnerProof, OwnerProofChallenge
from dukenet.trust.parameters import TrustParameters

QUERIES = load_queries("dukenet.trust", "queries.sql")


def owner_message(agent_id: str, owner_address: str) -> str:
    """The exact text the owner address signs for this agent."""
    return (
        "DukeNET owner proof\n"
        f"agent_id: {agent_id}\n"
        f"owner_address: {to_checksum_address(owner_address)}"
    )


def recover_signer(message: str, signature: str) -> str:
    """The address whose EIP-191 signature of ``message`` this is (422 when malformed)."""
    from eth_account import Account  # heavy import: only when a proof is checked
    from eth_account.messages import encode_defunct

    try:
        address: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise OwnerProofInvalid(
            f"not a valid EIP-191 signature: {exc}", field="/signature"
        ) from exc
    return address


def _proof_from_row(row: Record) -> OwnerProof:
    return OwnerProof(
        agent_id=row["agent_id"],
        owner_address=row["owner_address"],
        message=row["message"],
        signature=row["signature"],
        proven_at=row["proven_at"],
        current=row.get("current", True),
    )


async def owner_challenge(db: Database, agent_id: str) -> OwnerProofChallenge:
    """What the agent's owner address must sign, and the current proof if any."""
    async with db.read() as conn:
        with translate_errors():
            owner = await conn.fetchrow(
                "SELECT owner_address FROM agents WHERE agent_id = $1 AND deregistered_at IS NULL",
                agent_id,
            )
            if owner is None:
                raise AgentNotFound(f"no registered agent {agent_id}")
            proof = await conn.fetchrow(QUERIES["get_owner_proof"], agent_id)
    address = owner["owner_address"]
    return OwnerProofChallenge(
        agent_id=agent_id,
        owner_address=address,
        message=owner_message(agent_id, address) if address else None,
        proof=_proof_from_row(proof) if proof is not None else None,
    )


async def prove_owner(
    db: Database, cache: Cache, agent_id: str, signature: str, params: TrustParameters
) -> OwnerProof:
    """Verify and store an owner proof, then recompute the agent's trust."""
    async with db.transaction() as conn:
        with translate_errors():
            owner = await conn.fetchrow(QUERIES["owner_of"], agent_id)
        if owner is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        address = owner["owner_address"]
        if address is None:
            raise OwnerAddressMissing("set owner_address on the agent before proving it")
        message = owner_message(agent_id, address)
        signer = recover_signer(message, signature)
        if signer.lower() != address.lower():
            raise OwnerProofInvalid(
                f"the signature was made by {signer}, not by {to_checksum_address(address)}",
                field="/signature",
            )
        with translate_errors():
            row = await conn.fetchrow(
                QUERIES["upsert_owner_proof"], agent_id, address, message, signature
            )
        assert row is not None
        await events.recompute_trust(conn, cache, agent_id, reason="owner_proof", params=params)
    await events.after_commit_invalidate(cache, [agent_id])
    return _proof_from_row(row)
