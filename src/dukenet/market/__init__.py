"""Marketplace: transactions, fees, escrow settlement and the double-entry ledger."""
