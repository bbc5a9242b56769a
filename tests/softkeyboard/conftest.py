from plugins.browser import _chromium_session, browser, pytest_runtest_makereport  # noqa: F401
from plugins.redis_server import redis_url  # noqa: F401
from plugins.store_backends import store_backend  # noqa: F401
