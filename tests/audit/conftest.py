"""Fixtures for the audit tests: real SQLite files, a real redis-server and, for the
group-commit tests, a private PostgreSQL cluster."""

from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401
from plugins.redis_server import redis_url  # noqa: F401
from plugins.store_backends import store_backend  # noqa: F401
