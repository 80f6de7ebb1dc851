"""HTTP layer: app factory, routers per domain, auth dependencies, problem+json errors."""
