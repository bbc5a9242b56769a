"""The store suites run on every backend: memory, SQLite, Redis, Redis Cluster and
PostgreSQL."""

from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401
from plugins.redis_cluster import redis_cluster, redis_cluster_url  # noqa: F401
from plugins.redis_server import redis_url  # noqa: F401
from plugins.store_backends import every_store_backend as store_backend  # noqa: F401
