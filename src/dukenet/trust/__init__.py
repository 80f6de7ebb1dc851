"""Trust and reputation: ratings, trust scores, trust records, uptime."""
