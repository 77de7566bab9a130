"""`make run REPLICAS=payment=2`: what the launcher plans from the registry before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from paygate_common.services import SERVICES, replica_port
from paygate_devstack.services import (
    ServiceProcess,
    gateway_replica_env,
    parse_replicas,
    replica_ports,
    spec_for,
)


def test_replica_counts_parse_and_refuse_what_cannot_run() -> None:
    assert parse_replicas("payment=2,order=3") == {"payment": 2, "order": 3}
    assert parse_replicas(" payment=2  exchange-rate-service=2 ") == {
        "payment": 2,
        "exchange-rate": 2,
    }
    assert parse_replicas("") == parse_replicas(None) == {}
    for bad in ("payment", "payment=0", "payment=x", "nosuch=2", "payment=99", "gateway=2"):
        with pytest.raises(ValueError, match="replicas"):
            parse_replicas(bad)


def test_replica_ports_come_from_the_registry_and_never_collide() -> None:
    assert replica_ports("payment", 3) == [
        spec_for("payment").port,
        spec_for("payment").port + 10,
        spec_for("payment").port + 20,
    ]
    every = [replica_port(s.name, i) for s in SERVICES for i in range(8)]
    assert len(every) == len(set(every))


def test_the_gateway_is_given_every_replica_and_replicas_are_named_apart(tmp_path: Path) -> None:
    env = gateway_replica_env(
        {"payment": ["http://127.0.0.1:8002", "http://127.0.0.1:8012"], "order": ["http://x"]}
    )
    assert env == {"GATEWAY_PAYMENT_URLS": "http://127.0.0.1:8002,http://127.0.0.1:8012"}
    first = ServiceProcess(spec_for("payment"), env={}, port=1, log_dir=tmp_path)
    second = ServiceProcess(spec_for("payment"), env={}, port=2, log_dir=tmp_path, replica=1)
    assert (first.name, second.name) == ("payment", "payment-2")
    assert first.log_path != second.log_path
