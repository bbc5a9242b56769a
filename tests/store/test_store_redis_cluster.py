"""Redis Cluster beyond the shared contract: hash tags (one slot per script, services
spread over the masters), MOVED/ASK during a live slot migration, a master lost and
back (fail closed, then recover), the durability check on every node, URLs.  Against
the real 3-master cluster of :mod:`plugins.redis_cluster`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ebank_auth.errors import ConfigurationError, StoreUnavailable
from ebank_auth.store import open_store, store_key
from ebank_auth.store.redis import RedisStore
from plugins.redis_cluster import RedisCluster

NAMESPACES = ("otp", "authenticator", "pw", "sk", "lockout", "devices", "txid", "cred", "audit")


@pytest.fixture
def cluster_store(redis_cluster_url: str) -> Iterator[RedisStore]:
    store = open_store(f"{redis_cluster_url}?prefix=c{uuid.uuid4().hex[:10]}:")
    assert isinstance(store, RedisStore) and store.cluster
    yield store
    store.close()


def _node_of(client: Any, key: str) -> str:
    return str(client.get_node_from_key(key).name)


def test_each_script_touches_one_slot_and_services_spread(cluster_store: RedisStore) -> None:
    """Every Redis key carries its namespace as hash tag: the value and counter keys of
    one service share a slot (get_and_incr is one script), the services of the
    default key scheme land on more than one master."""
    client = cluster_store._client
    nodes = set()
    for ns in NAMESPACES:
        value_key, counter_key = store_key(ns, "code", "alice"), store_key(ns, "att", "alice")
        assert cluster_store.put_if_absent(value_key, b"v", ttl=60)
        value, tries = cluster_store.get_and_incr(value_key, counter_key, 3, ttl=60)
        assert value == b"v" and tries.allowed and tries.value == 1
        redis_keys = [cluster_store._key("v", value_key), cluster_store._key("c", counter_key)]
        assert all(f"{{{ns}}}" in k for k in redis_keys)
        slots = {client.keyslot(k) for k in redis_keys}
        assert len(slots) == 1
        assert client.exists(*redis_keys) == 2  # really stored where the tag says
        nodes.add(_node_of(client, redis_keys[0]))
    assert len(nodes) >= 2  # not everything on one master


def test_get_and_incr_across_namespaces_is_refused_on_a_cluster(
    cluster_store: RedisStore,
) -> None:
    with pytest.raises(ConfigurationError, match="one namespace"):
        cluster_store.get_and_incr("otp:code:alice", "pw:fail:alice", 3)
    assert cluster_store.get_counter("pw:fail:alice") == 0


def test_braces_in_keys_cannot_choose_the_slot(cluster_store: RedisStore) -> None:
    """A user-chosen part with braces does not move the key out of its service's slot."""
    key = store_key("otp", "code", "}{evil}")
    assert cluster_store.put_if_absent(key, b"v")
    redis_key = cluster_store._key("v", key)
    client = cluster_store._client
    assert client.keyslot(redis_key) == client.keyslot("{otp}")
    assert cluster_store.get(key) == b"v"


def _node_ids(client: Any) -> dict[str, str]:
    """node name (host:port) -> cluster node id, for the primaries."""
    ids = {}
    for node in client.get_primaries():
        ids[node.name] = client.cluster_myid(target_node=node)
        if isinstance(ids[node.name], bytes):
            ids[node.name] = ids[node.name].decode()
    return ids


def test_live_slot_migration_moved_and_ask_are_followed(
    redis_cluster: RedisCluster, cluster_store: RedisStore
) -> None:
    """A slot moves to another master while the store uses it (resharding, as an
    operator would with redis-cli --cluster reshard): during the migration a new key
    is answered with ASK, afterwards every key with MOVED; the client follows both and
    no primitive fails or loses state."""
    from redis import Redis

    admin = cluster_store._client
    ns = f"mig{uuid.uuid4().hex[:6]}"
    keys = [store_key(ns, "code", str(i)) for i in range(20)]
    for k in keys[:10]:
        assert cluster_store.put_if_absent(k, b"old", ttl=600)
    cluster_store.incr_bounded(store_key(ns, "n"), 100)
    log = store_key(ns, "log")
    assert cluster_store.append(log, b"a") == 1
    slot = admin.keyslot(cluster_store._key("v", keys[0]))
    source = admin.get_node_from_key(cluster_store._key("v", keys[0]))
    target = next(n for n in admin.get_primaries() if n.name != source.name)
    ids = _node_ids(admin)
    src = Redis(host=source.host, port=source.port)
    dst = Redis(host=target.host, port=target.port)
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.name])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.name])
        # mid-migration: the source answers ASK for keys it no longer (or never) held
        for k in keys[10:15]:
            assert cluster_store.put_if_absent(k, b"new", ttl=600)
        # the new keys went to the importing master (ASK), the old ones are still here
        assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 12  # + counter, log
        assert dst.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 5
        while True:
            batch = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not batch:
                break
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *batch)
        for node in (src, dst, *(Redis(host=n.host, port=n.port) for n in admin.get_primaries())):
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.name])
    finally:
        src.close()
        dst.close()
    # after: the store's client still routes to the source and gets MOVED
    for k in keys[15:]:
        assert cluster_store.put_if_absent(k, b"late", ttl=600)
    assert [cluster_store.get(k) for k in keys] == [b"old"] * 10 + [b"new"] * 5 + [b"late"] * 5
    assert cluster_store.incr_bounded(store_key(ns, "n"), 100).value == 2
    assert cluster_store.append(log, b"b") == 2
    assert cluster_store.consume(keys[0]) == b"old"
    assert _node_of(cluster_store._client, cluster_store._key("v", keys[0])) == target.name


def test_master_lost_fails_closed_then_recovers(
    redis_cluster: RedisCluster, cluster_store: RedisStore
) -> None:
    """Attack: a master dies (no replica to fail over to).  Keys of its slots are refused
    with StoreUnavailable, never answered as 'missing' (which would read as 'no lockout',
    'no replay'); after it restarts from its append-only file the same store recovers
    the state."""
    client = cluster_store._client
    victim_port = redis_cluster.ports[1]
    key = next(
        k
        for k in (store_key(f"ns{i}", "lock", "alice") for i in range(500))
        if client.get_node_from_key(cluster_store._key("c", k)).port == victim_port
    )
    for _ in range(3):
        cluster_store.incr_bounded(key, 5, ttl=3600)
    i = redis_cluster.ports.index(victim_port)
    redis_cluster.procs[i].terminate()  # clean shutdown: the AOF is flushed
    redis_cluster.procs[i].wait(timeout=10)
    try:
        with pytest.raises(StoreUnavailable):
            cluster_store.incr_bounded(key, 5, ttl=3600)
        with pytest.raises(StoreUnavailable):
            cluster_store.get_counter(key)
    finally:
        redis_cluster.restart(i)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert cluster_store.get_counter(key) == 3  # nothing lost, nothing counted twice
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the store did not recover"
            time.sleep(0.1)
    assert cluster_store.incr_bounded(key, 5, ttl=3600).value == 4


def test_durability_is_checked_on_every_node(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    """One node without persistence is enough to lose counters: refused, naming it."""
    from redis import Redis

    port = redis_cluster.ports[2]
    node = Redis(host="127.0.0.1", port=port)
    node.config_set("appendonly", "no")
    try:
        store = open_store(f"{redis_cluster_url}?prefix=d{uuid.uuid4().hex[:8]}:")
        with pytest.raises(ConfigurationError, match=f"appendonly.*no on 127.0.0.1:{port}"):
            store.get("k")
        store.close()
    finally:
        node.config_set("appendonly", "yes")
        node.close()


def test_cluster_urls(redis_cluster: RedisCluster) -> None:
    seeds = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports)
    store = open_store(f"redis+cluster://{seeds}?prefix=u{uuid.uuid4().hex[:8]}:")
    assert isinstance(store, RedisStore) and store.cluster
    assert store.put_if_absent("otp:x", b"1")
    assert "redis+cluster://" in repr(store)
    store.close()
    with pytest.raises(ConfigurationError, match="database 0"):
        open_store(f"redis+cluster://127.0.0.1:{redis_cluster.ports[0]}/3")
    with pytest.raises(ConfigurationError, match="unknown redis\\+cluster store option"):
        open_store(f"redis+cluster://127.0.0.1:{redis_cluster.ports[0]}?db=1")


def test_unreachable_cluster_fails_closed_without_the_password() -> None:
    from plugins.redis_server import _free_port

    with pytest.raises(StoreUnavailable) as info:
        store = open_store(f"redis+cluster://:hunter2secret@127.0.0.1:{_free_port()}")
        store.get("k")
    assert "hunter2secret" not in str(info.value)
