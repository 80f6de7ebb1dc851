"""Store layer: PostgreSQL pools and migrations, the Redis cache, embedded servers.

Driver exceptions are translated into ``dukenet.errors`` here and nowhere else.
"""
