//! The two services at the edges that call nobody: payments and the email
//! provider. Their latency and failures are knobs of [`ShopConfig`](super::ShopConfig).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::client::Svc;
use super::telemetry::finish_server;
use crate::demo::rng;

pub(crate) fn payments(svc: Svc) -> Router {
    Router::new().route("/charge", post(charge)).with_state(svc)
}

/// Takes `payments_latency` (jittered); declines a share
/// `payments_failure_rate` of charges with 503.
async fn charge(State(svc): State<Svc>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let cx = svc.instr.server(&headers, "POST /charge", "/charge");
    tokio::time::sleep(rng::jitter(svc.cfg.payments_latency)).await;
    let reply = if rng::unit() < svc.cfg.payments_failure_rate {
        let body = json!({ "error": "card processor unavailable" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    } else {
        (StatusCode::OK, Json(json!({ "charged": true })))
    };
    finish_server(&cx, reply.0);
    reply
}

pub(crate) fn email_provider(svc: Svc) -> Router {
    Router::new().route("/send", post(send)).with_state(svc)
}

/// Takes `email_latency` (jittered), always succeeds — if the caller waits.
async fn send(State(svc): State<Svc>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let cx = svc.instr.server(&headers, "POST /send", "/send");
    tokio::time::sleep(rng::jitter(svc.cfg.email_latency)).await;
    finish_server(&cx, StatusCode::OK);
    (StatusCode::OK, Json(json!({ "sent": true })))
}
