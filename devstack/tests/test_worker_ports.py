"""Parallel test workers take their ports from disjoint ranges below the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from paygate_devstack import process
from paygate_devstack.process import free_port, use_port_range
from paygate_devstack.pytest_plugin import WORKER_PORT_SLOTS, worker_ports


def test_each_worker_has_a_range_of_its_own_below_the_ephemeral_ports() -> None:
    ranges = [worker_ports(f"gw{n}") for n in range(WORKER_PORT_SLOTS)]
    ports = [p for r in ranges for p in r]
    assert len(ports) == len(set(ports)), "two workers share ports"
    ephemeral_first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert max(ports) < ephemeral_first
    assert min(ports) > 1024


def test_free_port_hands_out_the_ranges_free_ports_in_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # this process's own range stays as it was once the test ends
    monkeypatch.setattr(process, "_port_range", None)
    monkeypatch.setattr(process, "_port_turn", 0)
    ports = range(worker_ports("gw8").start, worker_ports("gw8").start + 4)
    use_port_range(ports)
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports[0]))
        held.listen()
        handed = [free_port() for _ in range(6)]
    assert set(handed) <= set(ports[1:]), handed  # never the bound one, never outside
    assert len(set(handed[:3])) == 3, handed  # in turn: no port again before the others

    listening = [socket.socket() for _ in ports]
    try:
        for sock, port in zip(listening, ports, strict=True):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        with pytest.raises(process.ComponentError, match="no free port"):
            free_port()
    finally:
        for sock in listening:
            sock.close()
