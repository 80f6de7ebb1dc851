"""The audit trail: signed DAG-CBOR records addressed by CIDs, a PostgreSQL blockstore with a
path index, an RFC 9162 Merkle log with signed C2SP checkpoints, CAR export and publishing
to IPFS. Other domains call ``dukenet.audit.trail``.
"""
