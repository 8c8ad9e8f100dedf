//! Outbound calls as the shop's services make them: an instrumented HTTP
//! call to another service (CLIENT span, `traceparent` injected) or a query
//! to a store (CLIENT span with `db.*` attributes), both over real TCP to the
//! address the caller is currently routed to.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;

use super::config::{Dependency, Routes, ShopConfig};
use super::stats::Counters;
use super::telemetry::{fail, Instr};

/// How long a service waits for its store or cache.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    #[error("{0} timed out")]
    Timeout(Dependency),
    #[error("{0} answered HTTP {1}")]
    Status(Dependency, u16),
    #[error("{0} unreachable: {1}")]
    Transport(Dependency, String),
}

impl CallError {
    fn of(dep: Dependency, e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout(dep)
        } else {
            CallError::Transport(dep, e.to_string())
        }
    }

    /// `error.type` on the span: `timeout`, the status code, or `transport`.
    fn error_type(&self) -> String {
        match self {
            CallError::Timeout(_) => "timeout".into(),
            CallError::Status(_, code) => code.to_string(),
            CallError::Transport(..) => "transport".into(),
        }
    }

    /// The status a service answers its own caller with.
    pub fn reply_status(&self) -> StatusCode {
        match self {
            CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            CallError::Status(_, 409) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A call to another service: `POST path` with a JSON body.
pub(crate) struct Call<'a> {
    pub dep: Dependency,
    /// The span name, e.g. `POST /charge`.
    pub name: &'static str,
    pub path: &'static str,
    pub body: &'a Value,
    pub timeout: Duration,
    /// `http.request.resend_count`: set on the second attempt and later.
    pub resend: Option<u32>,
}

/// A query to a store: `POST path` with a JSON body, seen as a database call.
pub(crate) struct Query<'a> {
    pub dep: Dependency,
    /// `db.system`: `redis`, `postgresql`.
    pub system: &'static str,
    /// The span name and `db.operation.name`, e.g. `GET`, `SELECT`.
    pub operation: &'static str,
    /// `db.query.text`.
    pub statement: &'static str,
    pub path: &'static str,
    pub body: &'a Value,
}

/// What every service holds: its instrumentation, an HTTP client (one
/// connection pool per service, like separate processes), the routes and
/// the shared knobs and counters.
#[derive(Clone)]
pub(crate) struct Svc {
    pub instr: Arc<Instr>,
    pub client: reqwest::Client,
    pub routes: Routes,
    pub cfg: Arc<ShopConfig>,
    pub counters: Arc<Counters>,
}

impl Svc {
    pub fn new(
        instr: Instr,
        routes: Routes,
        cfg: Arc<ShopConfig>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Svc> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Svc {
            instr: Arc::new(instr),
            client,
            routes,
            cfg,
            counters,
        })
    }

    /// An instrumented call to another service, as a child of `parent`.
    pub async fn call(&self, parent: &Context, call: Call<'_>) -> Result<Value, CallError> {
        let addr = self.routes.addr(call.dep);
        let url = format!("http://{addr}{}", call.path);
        let mut attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("peer.service", call.dep.name()),
            KeyValue::new("server.address", addr.ip().to_string()),
            KeyValue::new("server.port", i64::from(addr.port())),
            KeyValue::new("url.full", url.clone()),
        ];
        if let Some(n) = call.resend {
            attributes.push(KeyValue::new("http.request.resend_count", i64::from(n)));
        }
        let cx = self
            .instr
            .start(parent, call.name, SpanKind::Client, attributes, Vec::new());
        let headers = self.instr.inject(&cx);
        let result = self
            .send(call.dep, url, call.body, headers, call.timeout)
            .await;
        if let Err(CallError::Status(_, code)) = &result {
            let code = i64::from(*code);
            cx.span()
                .set_attribute(KeyValue::new("http.response.status_code", code));
        } else if result.is_ok() {
            cx.span()
                .set_attribute(KeyValue::new("http.response.status_code", 200));
        }
        end(&cx, &result);
        result
    }

    /// An instrumented query to a store, as a child of `parent`. The span
    /// names the store by `server.address` (its dependency name), as
    /// database clients do.
    pub async fn query(&self, parent: &Context, q: Query<'_>) -> Result<Value, CallError> {
        let addr = self.routes.addr(q.dep);
        let attributes = vec![
            KeyValue::new("db.system", q.system),
            KeyValue::new("server.address", q.dep.name()),
            KeyValue::new("server.port", i64::from(addr.port())),
            KeyValue::new("db.operation.name", q.operation),
            KeyValue::new("db.query.text", q.statement),
        ];
        let cx = self.instr.start(
            parent,
            q.operation,
            SpanKind::Client,
            attributes,
            Vec::new(),
        );
        Counters::bump(match q.dep {
            Dependency::InventoryCache => &self.counters.cache_calls,
            _ => &self.counters.db_calls,
        });
        let url = format!("http://{addr}{}", q.path);
        let result = self
            .send(q.dep, url, q.body, HeaderMap::new(), STORE_TIMEOUT)
            .await;
        end(&cx, &result);
        result
    }

    async fn send(
        &self,
        dep: Dependency,
        url: String,
        body: &Value,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let resp = self
            .client
            .post(url)
            .headers(headers)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| CallError::of(dep, e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(CallError::Status(dep, status.as_u16()));
        }
        resp.json().await.map_err(|e| CallError::of(dep, e))
    }
}

fn end(cx: &Context, result: &Result<Value, CallError>) {
    if let Err(e) = result {
        fail(cx, e.error_type(), e.to_string());
    }
    cx.span().end();
}
