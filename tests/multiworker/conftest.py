"""The bank app on several gunicorn workers over PostgreSQL, Redis and Redis Cluster
(issue 16, items 4 and 5): fixtures in tests/plugins/bank_workers.py."""

from __future__ import annotations

import os

try:  # the `app` extra: Flask, Flask-WTF, gunicorn
    import flask_wtf  # noqa: F401
    import gunicorn  # noqa: F401
except ImportError:
    if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
        raise ImportError(
            "the multi-worker tests need the `app` extra (gunicorn): pip install -e '.[app]'"
        ) from None
    collect_ignore_glob = ["test_*.py"]
else:
    from plugins.bank_workers import deploy  # noqa: F401
    from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401
    from plugins.redis_cluster import redis_cluster, redis_cluster_url  # noqa: F401
    from plugins.redis_server import redis_url  # noqa: F401
