"""DukeNET: an open network where software agents register, get discovered, take on
subtasks, get paid and earn trust, with a signed IPFS-compatible audit trail."""

__version__ = "0.1.0"
