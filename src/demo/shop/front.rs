//! The gateway (the shop's HTTP entry) and orders, which reserves stock,
//! charges the customer — retrying both together — and publishes a
//! confirmation per order.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{Call, CallError, Svc};
use super::config::{Dependency, RESERVE_TIMEOUT};
use super::queue::{Message, Queue};
use super::stats::Counters;
use super::telemetry::finish_server;
use super::{DESTINATION, MESSAGING_SYSTEM};

/// The body of `POST /checkout` and `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderRequest {
    pub customer: String,
    pub sku: String,
    pub qty: u64,
}

type Reply = (StatusCode, Json<Value>);

fn error_reply(e: &CallError) -> Reply {
    (e.reply_status(), Json(json!({ "error": e.to_string() })))
}

pub(crate) fn gateway(svc: Svc) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .with_state(svc)
}

async fn checkout(
    State(svc): State<Svc>,
    headers: HeaderMap,
    Json(order): Json<OrderRequest>,
) -> Reply {
    let cx = svc.instr.server(&headers, "POST /checkout", "/checkout");
    let body = json!(order);
    let call = Call {
        dep: Dependency::Orders,
        name: "POST /orders",
        path: "/orders",
        body: &body,
        timeout: svc.cfg.gateway_timeout(),
        resend: None,
    };
    let reply = match svc.call(&cx, call).await {
        Ok(created) => (StatusCode::CREATED, Json(created)),
        Err(e) => error_reply(&e),
    };
    finish_server(&cx, reply.0);
    reply
}

#[derive(Clone)]
struct Orders {
    svc: Svc,
    queue: Arc<Queue>,
}

pub(crate) fn orders(svc: Svc, queue: Arc<Queue>) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .with_state(Orders { svc, queue })
}

async fn create_order(
    State(orders): State<Orders>,
    headers: HeaderMap,
    Json(order): Json<OrderRequest>,
) -> Reply {
    let cx = orders.svc.instr.server(&headers, "POST /orders", "/orders");
    let reply = match place(&orders, &cx, &order).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "order_id": id }))),
        Err(e) => error_reply(&e),
    };
    finish_server(&cx, reply.0);
    reply
}

/// Reserve + charge, retried as one step with exponential backoff (hidden
/// failure 1: each retry reserves — and hits the cache — again); then one
/// confirmation message. Returns the order id.
async fn place(orders: &Orders, cx: &Context, order: &OrderRequest) -> Result<u64, CallError> {
    let svc = &orders.svc;
    let attempts = svc.cfg.payment_attempts.max(1);
    let mut attempt = 0;
    loop {
        Counters::bump(&svc.counters.payment_attempts);
        match reserve_and_charge(svc, cx, order, attempt).await {
            Ok(()) => return Ok(publish(orders, cx, order)),
            Err(e) if e.reply_status() == StatusCode::CONFLICT || attempt + 1 >= attempts => {
                Counters::bump(&svc.counters.orders_failed);
                return Err(e);
            }
            Err(_) => {
                tokio::time::sleep(svc.cfg.retry_backoff * 2u32.pow(attempt.min(16))).await;
                attempt += 1;
            }
        }
    }
}

async fn reserve_and_charge(
    svc: &Svc,
    cx: &Context,
    order: &OrderRequest,
    attempt: u32,
) -> Result<(), CallError> {
    let resend = (attempt > 0).then_some(attempt);
    let body = json!(order);
    let reserve = Call {
        dep: Dependency::Inventory,
        name: "POST /reserve",
        path: "/reserve",
        body: &body,
        timeout: RESERVE_TIMEOUT,
        resend,
    };
    svc.call(cx, reserve).await?;
    let charge = Call {
        dep: Dependency::Payments,
        name: "POST /charge",
        path: "/charge",
        body: &body,
        timeout: svc.cfg.payments_timeout,
        resend,
    };
    Counters::bump(&svc.counters.charges);
    if resend.is_some() {
        Counters::bump(&svc.counters.retried_charges);
    }
    svc.call(cx, charge).await?;
    Ok(())
}

/// Publishes the order's confirmation: a PRODUCER span keyed by customer,
/// whose context travels in the message. The span ends inside the queue's
/// lock, so publication order is production-time order.
fn publish(orders: &Orders, cx: &Context, order: &OrderRequest) -> u64 {
    let counters = &orders.svc.counters;
    let id = counters
        .orders_placed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let attributes = vec![
        KeyValue::new("messaging.system", MESSAGING_SYSTEM),
        KeyValue::new("messaging.destination.name", DESTINATION),
        KeyValue::new("messaging.operation.type", "send"),
        KeyValue::new("messaging.kafka.message.key", order.customer.clone()),
        KeyValue::new("messaging.message.id", id.to_string()),
    ];
    let producer = orders.svc.instr.start(
        cx,
        "send notifications",
        SpanKind::Producer,
        attributes,
        Vec::new(),
    );
    let message = Message {
        order_id: id,
        customer: order.customer.clone(),
        producer: producer.span().span_context().clone(),
        deliveries: 0,
    };
    orders.queue.publish(message, || producer.span().end());
    Counters::bump(&counters.messages_produced);
    id
}
