"""Agent registry: identities, profiles, capabilities, tags, heartbeats, sessions, rate limits.

Plain async functions over ``dukenet.store``; the API, workers and CLI all call these.
"""
