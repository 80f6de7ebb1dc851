"""Marketplace (SPEC 6): a double-entry ledger of agent balances, transactions with escrow
holds, exact platform fees, refunds, idempotent money-moving requests and a sweeper.

``escrow`` is the internal API other domains call inside their own database transaction;
``transactions`` and ``ledger`` add the parties' and operators' rules on top of it.
"""
