"""Counting nginx's requests in flight on a backend container from its
``/proc/net/tcp`` (the rolling deploy's drain): pure parsing."""

from __future__ import annotations

from console.core.ops.steps.drain import addresses_of, connections_from

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
)


def _line(local: str, remote: str, state: str) -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000 10001 0 1 1\n"


# 172.17.0.6:8000 (the backend) <- 172.17.0.3:56808 (nginx), as the kernel writes them
BACKEND = "060011AC:1F40"
NGINX = "030011AC:DDE8"
PROMETHEUS = "090011AC:A000"


def test_counts_established_connections_from_nginx_to_the_port() -> None:
    text = HEADER + _line(BACKEND, NGINX, "01") + _line(BACKEND, "030011AC:DDE9", "01")
    assert connections_from(text, {"172.17.0.3"}) == 2


def test_ignores_other_peers_states_and_ports() -> None:
    text = (
        HEADER
        + _line(BACKEND, PROMETHEUS, "01")  # Prometheus keeps its scrape connection open
        + _line(BACKEND, NGINX, "06")  # TIME_WAIT: the request is over
        + _line("00000000:1F40", "00000000:0000", "0A")  # the listening socket
        + _line("060011AC:A52C", NGINX, "01")  # the backend's own client connection
        + _line(BACKEND, "0100007F:9C40", "01")  # the health check, on loopback
    )
    assert connections_from(text, {"172.17.0.3"}) == 0
    assert connections_from(text, {"172.17.0.9"}) == 1


def test_reads_ipv4_mapped_tcp6_lines() -> None:
    mapped = "0000000000000000FFFF0000030011AC:DDE8"
    text = HEADER + _line("0000000000000000FFFF0000060011AC:1F40", mapped, "01")
    assert connections_from(text, {"172.17.0.3"}) == 1
    assert connections_from("garbage\n\n" + text, {"172.17.0.4"}) == 0


def test_addresses_of_a_container_on_several_networks() -> None:
    info = {
        "NetworkSettings": {
            "Networks": {"sd_default": {"IPAddress": "172.18.0.3"}, "sd_data": {"IPAddress": ""}}
        }
    }
    assert addresses_of(info) == {"172.18.0.3"}
    assert addresses_of(None) == set()
