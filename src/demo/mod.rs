//! The demo shop: a small system of real services on loopback, instrumented
//! with the OpenTelemetry Rust SDK, whose failures live *between* its
//! services — what faultline is for.
//!
//! # Architecture
//!
//! Every service is an axum HTTP server on `127.0.0.1:0` inside this process;
//! they talk over real TCP connections (reqwest). Each instrumented service
//! has its own `SdkTracerProvider` (its own `service.name`) exporting OTLP/gRPC
//! to faultline through a batch processor; trace context travels between
//! services in W3C `traceparent` headers.
//!
//! ```text
//!  traffic ──▶ gateway ──[orders]──▶ orders ──[inventory]──▶ inventory ──[inventory-cache]──▶ cache (redis-like KV)
//!  (POST /checkout)                   │  ▲                        └──────[inventory-db]─────▶ store (postgres-like)
//!                                     │  │ up to 3 attempts of
//!                                     │  │ reserve + charge
//!                                     │  └──[payments]──▶ payments
//!                                     │
//!                                     └─ PRODUCER ▶ notifications (in-process queue, key = customer)
//!                                                         │ single consumer
//!                                                         ▼
//!                                          notifier (CONSUMER) ──[email-provider]──▶ email-provider (slow)
//! ```
//!
//! Each `[name]` is a *dependency*: a connection whose address the caller is
//! given ([`ShopConfig::via`]), so it can run through a fault-proxy listener.
//! The names are stable ([`Dependency::name`]): `orders`, `inventory`,
//! `payments`, `inventory-cache`, `inventory-db`, `email-provider`. After
//! [`start`], [`RunningShop::upstream`] gives each one's real address, and
//! [`RunningShop::toxiproxy_populate`] the body of a Toxiproxy `/populate`
//! (proxy name = dependency name, upstream = real address, listen
//! `127.0.0.1:0`); [`RunningShop::reroute`] then points the caller at the
//! proxy's listener while the shop runs.
//!
//! What faultline sees: SERVER spans on every instrumented service, CLIENT
//! spans with `peer.service` on calls between them (edges `gateway->orders`,
//! `orders->inventory`, `orders->payments`, `notifier->email-provider`,
//! `rpc`), CLIENT spans with `db.system=redis` / `db.system=postgresql` and
//! `server.address=inventory-cache` / `inventory-db` (database edges from
//! `inventory`), and PRODUCER/CONSUMER spans on `notifications`
//! (`messaging.system=memq`, `messaging.kafka.message.key` = customer id;
//! a messaging edge `orders->notifier`). The cache and the store send no
//! spans: like real databases they are seen only through their callers.
//!
//! # Hidden failures
//!
//! None of these shows in a unit test of one service; each needs the right
//! fault meeting the right traffic.
//!
//! 1. **Payment retries hammer the inventory cache.** When payments is slow
//!    (past orders' per-attempt timeout, [`ShopConfig::payments_timeout`]) or
//!    failing, orders retries the *whole* reserve + charge step with backoff,
//!    up to [`ShopConfig::payment_attempts`] times. Every attempt reserves
//!    stock again (two cache calls and one store call each, and the earlier
//!    reservations are never released), so a payments fault multiplies the
//!    load on `inventory -> inventory-cache` and `inventory -> inventory-db`.
//!    *Signal:* `retries` and `retry_amplification` on `orders->payments`
//!    and `orders->inventory` (each attempt is a sibling CLIENT span,
//!    resends carry `http.request.resend_count`), the path amplification of
//!    `gateway>orders>inventory>…`, and calls per window on the cache edge.
//! 2. **The notification queue silently backs up when the email provider
//!    slows.** One consumer, no backpressure: orders keeps publishing at the
//!    traffic's rate while the notifier drains at the email provider's pace,
//!    and nothing upstream fails or slows. (Behind a backlog of 20 the
//!    notifier catches up four deliveries at a time.) *Signal:* `queue_depth`
//!    (`in_flight` of destination `notifications`) and `queue_lag_ms` grow;
//!    the p99 of `notifier->email-provider` rises.
//! 3. **Order confirmations arrive out of sequence.** When an email call
//!    fails or outlasts the notifier's timeout ([`ShopConfig::email_timeout`]),
//!    the notifier puts the message back at the *end* of the queue (up to
//!    [`ShopConfig::max_deliveries`] deliveries, then drops it), so a later
//!    confirmation for the same customer is sent first. *Signal:*
//!    `out_of_order` of destination `notifications` (per
//!    `messaging.kafka.message.key`), with errors and timeouts on
//!    `notifier->email-provider`.
//!
//! Every delivery attempt is a CONSUMER span (child of the producer's span,
//! and linked to it), so under redelivery faultline's `consumed` counts
//! deliveries and exceeds `produced`. The consumer is parented as well as
//! linked so that a whole order — including its confirmation — is one trace.
//!
//! [`traffic`] drives the gateway at a steady rate with bursts.

pub mod cycle;
mod rng;
pub mod shop;
pub mod traffic;

pub use shop::{
    start, Dependency, RunningShop, ShopConfig, ShopError, ShopStats, DESTINATION,
    MESSAGING_SYSTEM, SERVICES,
};
pub use traffic::{drive, TrafficConfig, TrafficError, TrafficReport};
