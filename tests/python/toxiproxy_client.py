"""Drives a Toxiproxy-compatible API with toxiproxy-python (PyPI), a client
nobody at faultline wrote, and measures what its toxics do to real traffic.

Run by tests/faultproxy.rs against faultline's fault proxy:

    python3 tests/python/toxiproxy_client.py --api 127.0.0.1:PORT --upstream 127.0.0.1:ECHO

The upstream must be an echo server. Prints one JSON object with what was
observed; the Rust test holds the assertions.
"""

import argparse
import json
import socket
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

MESSAGE = b"ping\n"


def address(listen):
    host, port = listen.rsplit(":", 1)
    return host, int(port)


def round_trip_ms(listen, trips=4):
    """Median time of `trips` echo round trips on one connection, in ms."""
    times = []
    with socket.create_connection(address(listen), timeout=5) as s:
        for _ in range(trips):
            start = time.monotonic()
            s.sendall(MESSAGE)
            got = b""
            while len(got) < len(MESSAGE):
                chunk = s.recv(64)
                if not chunk:
                    raise RuntimeError("proxy closed the connection")
                got += chunk
            times.append((time.monotonic() - start) * 1000.0)
    times.sort()
    return times[len(times) // 2]


def reset_outcome(listen):
    """What a client sees when it talks through a reset_peer toxic."""
    with socket.create_connection(address(listen), timeout=5) as s:
        s.sendall(MESSAGE)
        try:
            data = s.recv(64)
        except ConnectionResetError:
            return "reset"
        return "eof" if data == b"" else "data"


def connect_outcome(listen):
    try:
        with socket.create_connection(address(listen), timeout=2):
            return "connected"
    except ConnectionRefusedError:
        return "refused"


def raised(call):
    try:
        call()
    except (ProxyExists, NotFound, InvalidToxic) as e:
        return type(e).__name__
    return "nothing"


def toxic_summary(proxy):
    return {
        name: {
            "type": t.type,
            "stream": t.stream,
            "toxicity": t.toxicity,
            "attributes": t.attributes,
        }
        for name, t in proxy.toxics().items()
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    host, port = address(args.api)

    server = Toxiproxy()
    server.update_api_consumer(host, port)
    out = {"running": server.running(), "version": json.loads(server.version())["version"]}

    proxy = server.create(upstream=args.upstream, name="echo")  # listen 127.0.0.1:0
    out["listen"] = proxy.listen
    out["baseline_ms"] = round_trip_ms(proxy.listen)

    proxy.add_toxic(type="latency", attributes={"latency": 200, "jitter": 0})
    out["toxics_with_latency"] = toxic_summary(proxy)
    out["latency_ms"] = round_trip_ms(proxy.listen)
    out["destroy_latency"] = proxy.destroy_toxic("latency_downstream")
    out["after_latency_ms"] = round_trip_ms(proxy.listen)

    proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 0})
    out["reset"] = reset_outcome(proxy.listen)
    out["destroy_reset"] = proxy.destroy_toxic("reset_peer_upstream")
    out["after_reset_ms"] = round_trip_ms(proxy.listen)
    out["toxics_at_end"] = toxic_summary(proxy)

    out["duplicate_proxy"] = raised(lambda: APIConsumer.post(
        "/proxies", json={"name": "echo", "listen": "127.0.0.1:0", "upstream": args.upstream}))
    out["unknown_proxy"] = raised(lambda: APIConsumer.get("/proxies/nope"))
    out["bad_toxic"] = raised(lambda: proxy.add_toxic(type="nope"))

    with proxy.down():
        out["while_down"] = connect_outcome(proxy.listen)
    out["after_down_ms"] = round_trip_ms(proxy.listen)

    proxy.add_toxic(type="latency", attributes={"latency": 10})
    out["reset_all"] = server.reset()
    out["toxics_after_reset"] = len(proxy.toxics())
    out["destroyed"] = server.destroy(proxy)
    out["proxies_at_end"] = sorted(server.proxies())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
