"""The store suites run on every backend: memory, SQLite, Redis and PostgreSQL."""

from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401
from plugins.redis_server import redis_url  # noqa: F401
from plugins.store_backends import every_store_backend as store_backend  # noqa: F401
