//! Inventory and the two stores behind it: a cache (a tiny redis-like key
//! value service) in front of the stock store (a tiny postgres-like table
//! service). The stores are uninstrumented — faultline sees them only
//! through inventory's database spans.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use opentelemetry::Context;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{CallError, Query, Svc};
use super::config::Dependency;
use super::telemetry::finish_server;

#[derive(Debug, Deserialize)]
struct Reservation {
    sku: String,
    qty: u64,
}

pub(crate) fn inventory(svc: Svc) -> Router {
    Router::new()
        .route("/reserve", post(reserve))
        .with_state(svc)
}

async fn reserve(
    State(svc): State<Svc>,
    headers: HeaderMap,
    Json(item): Json<Reservation>,
) -> (StatusCode, Json<Value>) {
    let cx = svc.instr.server(&headers, "POST /reserve", "/reserve");
    let reply = match reserve_stock(&svc, &cx, &item).await {
        Ok(left) => (StatusCode::OK, Json(json!({ "left": left }))),
        Err(e) => (e.reply_status(), Json(json!({ "error": e.to_string() }))),
    };
    finish_server(&cx, reply.0);
    reply
}

/// Stock from the cache (the store on a miss), then the store's decrement,
/// then the new level written back to the cache: two cache calls and one
/// store call per reservation when the cache is warm.
async fn reserve_stock(svc: &Svc, cx: &Context, item: &Reservation) -> Result<u64, CallError> {
    let key = format!("stock:{}", item.sku);
    let stock = match cache_get(svc, cx, &key).await? {
        Some(stock) => stock,
        None => {
            let row = store(
                svc,
                cx,
                "SELECT",
                SELECT,
                "/select",
                json!({ "sku": item.sku }),
            )
            .await?;
            let stock = row["stock"].as_u64().unwrap_or(0);
            cache_set(svc, cx, &key, stock).await?;
            stock
        }
    };
    if stock < item.qty {
        return Err(CallError::Status(Dependency::InventoryDb, 409));
    }
    let body = json!({ "sku": item.sku, "qty": item.qty });
    let row = store(svc, cx, "UPDATE", UPDATE, "/update", body).await?;
    let left = row["stock"].as_u64().unwrap_or(0);
    cache_set(svc, cx, &key, left).await?;
    Ok(left)
}

const SELECT: &str = "SELECT stock FROM items WHERE sku = $1";
const UPDATE: &str =
    "UPDATE items SET stock = stock - $2 WHERE sku = $1 AND stock >= $2 RETURNING stock";

async fn cache_get(svc: &Svc, cx: &Context, key: &str) -> Result<Option<u64>, CallError> {
    let body = json!({ "key": key });
    let q = Query {
        dep: Dependency::InventoryCache,
        system: "redis",
        operation: "GET",
        statement: "GET stock:<sku>",
        path: "/get",
        body: &body,
    };
    Ok(svc.query(cx, q).await?["value"].as_u64())
}

async fn cache_set(svc: &Svc, cx: &Context, key: &str, value: u64) -> Result<(), CallError> {
    let body = json!({ "key": key, "value": value });
    let q = Query {
        dep: Dependency::InventoryCache,
        system: "redis",
        operation: "SET",
        statement: "SET stock:<sku> <n>",
        path: "/set",
        body: &body,
    };
    svc.query(cx, q).await.map(drop)
}

async fn store(
    svc: &Svc,
    cx: &Context,
    operation: &'static str,
    statement: &'static str,
    path: &'static str,
    body: Value,
) -> Result<Value, CallError> {
    let q = Query {
        dep: Dependency::InventoryDb,
        system: "postgresql",
        operation,
        statement,
        path,
        body: &body,
    };
    svc.query(cx, q).await
}

type Table = Arc<Mutex<HashMap<String, u64>>>;

/// The cache: `POST /get {key}` → `{value}` (null on a miss), `POST /set
/// {key, value}`.
pub(crate) fn cache() -> Router {
    Router::new()
        .route("/get", post(cache_read))
        .route("/set", post(cache_write))
        .with_state(Table::default())
}

#[derive(Debug, Deserialize)]
struct CacheEntry {
    key: String,
    value: Option<u64>,
}

async fn cache_read(State(table): State<Table>, Json(e): Json<CacheEntry>) -> Json<Value> {
    Json(json!({ "value": table.lock().get(&e.key) }))
}

async fn cache_write(State(table): State<Table>, Json(e): Json<CacheEntry>) -> Json<Value> {
    if let Some(v) = e.value {
        table.lock().insert(e.key, v);
    }
    Json(json!({}))
}

#[derive(Clone)]
struct Stock {
    table: Table,
    initial: u64,
}

/// The store: `POST /select {sku}` → `{stock}`, `POST /update {sku, qty}` →
/// `{stock}` left, or 409 when there is not enough.
pub(crate) fn store_service(initial: u64) -> Router {
    Router::new()
        .route("/select", post(store_select))
        .route("/update", post(store_update))
        .with_state(Stock {
            table: Table::default(),
            initial,
        })
}

async fn store_select(State(s): State<Stock>, Json(r): Json<Value>) -> Json<Value> {
    let sku = r["sku"].as_str().unwrap_or_default().to_owned();
    let stock = *s.table.lock().entry(sku).or_insert(s.initial);
    Json(json!({ "stock": stock }))
}

async fn store_update(
    State(s): State<Stock>,
    Json(r): Json<Reservation>,
) -> (StatusCode, Json<Value>) {
    let mut table = s.table.lock();
    let stock = table.entry(r.sku).or_insert(s.initial);
    if *stock < r.qty {
        return (StatusCode::CONFLICT, Json(json!({ "stock": *stock })));
    }
    *stock -= r.qty;
    (StatusCode::OK, Json(json!({ "stock": *stock })))
}
