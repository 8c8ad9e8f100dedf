#!/usr/bin/env python3
"""Sends a small multi-service "shop" trace to an OTLP endpoint with the real
OpenTelemetry Python SDK, for tests/python_sdk.rs.

Each trace, per service (one TracerProvider each, as separate processes would):

    gateway   SERVER  GET /checkout                 (root: edge user -> gateway)
    gateway   CLIENT  POST /orders
    orders    SERVER  POST /orders
    orders    CLIENT  GET /stock                    -> inventory
    inventory SERVER  GET /stock
    inventory CLIENT  GET                           db.system=redis (database edge)
    orders    CLIENT  POST /charge                  -> payments (ERROR in trace 0)
    payments  SERVER  POST /charge                  (ERROR in trace 0)
    orders    PRODUCER order-events publish         kafka
    notifier  CONSUMER order-events process         child of the producer span
    notifier  CLIENT  POST /send                    peer.service=email-provider
                                                    (no server span: virtual node)

Times are explicit (nanoseconds), so the script does not sleep. On success it
prints one line, `spans=N`, the number of spans the exporters sent and the
endpoint accepted; on any export failure it says so on stderr and exits 1.
"""

import argparse
import sys
import time

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = ["gateway", "orders", "inventory", "payments", "notifier"]
MS = 1_000_000  # nanoseconds


class CheckingExporter(SpanExporter):
    """Wraps the OTLP exporter to count what was sent and notice failures."""

    def __init__(self, inner):
        self.inner = inner
        self.sent = 0
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            self.sent += len(spans)
        else:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def make_exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=5)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=5)


def span(tracer, name, kind, parent, start, end, attributes=None, error=False):
    """Starts and ends one span; `parent` is a span (or None for a root)."""
    ctx = trace.set_span_in_context(parent) if parent is not None else Context()
    s = tracer.start_span(
        name, context=ctx, kind=kind, attributes=attributes or {}, start_time=start
    )
    if error:
        s.set_status(Status(StatusCode.ERROR, "card declined"))
    return s, end


def send_trace(tracers, t0, failed):
    """One checkout trace starting at t0 (ns); spans end in the order they
    would in real services (callees before callers)."""
    gw, orders, inv, pay, notif = (tracers[s] for s in SERVICES)
    done = []  # (span, end_time), ended at the end in this order

    def open_(tracer, name, kind, parent, start, end, **kw):
        s, e = span(tracer, name, kind, parent, start, end, **kw)
        done.append((s, e))
        return s

    http = lambda method, route, code: {  # noqa: E731
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": code,
    }
    pay_code = 500 if failed else 200

    # A failed payment fails only the payments boundary: orders answers 200
    # (the order is kept, payment to be retried), so no other edge errs.
    root = open_(gw, "GET /checkout", SpanKind.SERVER, None, t0, t0 + 60 * MS,
                 attributes=http("GET", "/checkout", 200))
    gw_out = open_(gw, "POST /orders", SpanKind.CLIENT, root, t0 + 2 * MS, t0 + 57 * MS,
                   attributes={"http.request.method": "POST",
                               "http.response.status_code": 200})
    o_in = open_(orders, "POST /orders", SpanKind.SERVER, gw_out, t0 + 3 * MS, t0 + 56 * MS,
                 attributes=http("POST", "/orders", 200))
    o_inv = open_(orders, "GET /stock", SpanKind.CLIENT, o_in, t0 + 4 * MS, t0 + 20 * MS,
                  attributes={"http.request.method": "GET",
                              "http.response.status_code": 200})
    i_in = open_(inv, "GET /stock", SpanKind.SERVER, o_inv, t0 + 5 * MS, t0 + 19 * MS,
                 attributes=http("GET", "/stock", 200))
    # A cache call: no server.address / peer.service, so Tempo naming falls
    # through to db.system and the node is "redis".
    open_(inv, "GET", SpanKind.CLIENT, i_in, t0 + 6 * MS, t0 + 9 * MS,
          attributes={"db.system": "redis", "db.operation.name": "GET"})
    o_pay = open_(orders, "POST /charge", SpanKind.CLIENT, o_in, t0 + 21 * MS, t0 + 50 * MS,
                  attributes={"http.request.method": "POST",
                              "http.response.status_code": pay_code},
                  error=failed)
    open_(pay, "POST /charge", SpanKind.SERVER, o_pay, t0 + 22 * MS, t0 + 49 * MS,
          attributes=http("POST", "/charge", pay_code), error=failed)
    producer = open_(orders, "order-events publish", SpanKind.PRODUCER, o_in,
                     t0 + 51 * MS, t0 + 54 * MS,
                     attributes={"messaging.system": "kafka",
                                 "messaging.destination.name": "order-events",
                                 "messaging.operation.type": "publish"})
    consumer = open_(notif, "order-events process", SpanKind.CONSUMER, producer,
                     t0 + 70 * MS, t0 + 95 * MS,
                     attributes={"messaging.system": "kafka",
                                 "messaging.destination.name": "order-events",
                                 "messaging.operation.type": "process"})
    open_(notif, "POST /send", SpanKind.CLIENT, consumer, t0 + 72 * MS, t0 + 93 * MS,
          attributes={"peer.service": "email-provider",
                      "http.request.method": "POST",
                      "http.response.status_code": 202})

    for s, end in reversed(done):
        s.end(end_time=end)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--endpoint", required=True,
                   help="gRPC: http://HOST:PORT; HTTP: http://HOST:PORT/v1/traces")
    p.add_argument("--traces", type=int, default=5)
    args = p.parse_args()
    if args.traces < 1:
        p.error("--traces must be at least 1")

    providers, exporters, tracers = [], [], {}
    for service in SERVICES:
        exporter = CheckingExporter(make_exporter(args.protocol, args.endpoint))
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        providers.append(provider)
        exporters.append(exporter)
        tracers[service] = provider.get_tracer("faultline.tests.shop")

    # Recent, distinct start times; the first trace is the failed one.
    base = time.time_ns() - args.traces * 200 * MS
    for i in range(args.traces):
        send_trace(tracers, base + i * 200 * MS, failed=(i == 0))

    flushed = all(p.force_flush(timeout_millis=15000) for p in providers)
    for provider in providers:
        provider.shutdown()

    failures = sum(e.failures for e in exporters)
    sent = sum(e.sent for e in exporters)
    expected = 11 * args.traces
    if not flushed or failures or sent != expected:
        print(
            f"send_shop_trace: export to {args.endpoint} over {args.protocol} failed: "
            f"{failures} failed export(s), {sent} of {expected} spans sent, "
            f"flush {'completed' if flushed else 'timed out'}",
            file=sys.stderr,
        )
        return 1
    print(f"spans={sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
