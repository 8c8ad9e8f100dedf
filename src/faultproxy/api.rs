//! The Toxiproxy 2.x HTTP API, route for route and status for status.
//!
//! Deliberate matches: toxic creation answers 200 (Toxiproxy never sets
//! 201 there), deletes and `/reset` answer 204 with no body, errors are
//! `{"error": ..., "status": N}` plus a newline with Toxiproxy's text/plain
//! content type, `/populate` wraps its list as `{"proxies": [...]}` (null
//! when empty), unknown routes get Go's `404 page not found`, and a browser
//! User-Agent (`Mozilla/...`) gets 403, Toxiproxy's guard against a web page
//! driving the API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use super::error::ApiError;
use super::state::{ProxyJson, Registry};

/// The version `/version` reports: the Toxiproxy API level this server
/// follows, with faultline's own version as semver build metadata.
pub const VERSION: &str = concat!("2.12.0+faultline.", env!("CARGO_PKG_VERSION"));

type Reg = State<Arc<Registry>>;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/proxies", get(index).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .route("/version", get(version))
        .fallback(not_found)
        .layer(middleware::from_fn(stop_browsers))
        .with_state(registry)
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(&ApiError::Internal(e.to_string())),
    }
}

/// Toxiproxy writes errors with Go's `http.Error`: text/plain, a newline.
fn error(e: &ApiError) -> Response {
    let body = format!("{}\n", e.body());
    plain(e.status(), body)
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn reply<T: Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => json(status, &value),
        Err(e) => error(&e),
    }
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(&e),
    }
}

async fn index(State(r): Reg) -> Response {
    json(StatusCode::OK, &r.list().await)
}

async fn create(State(r): Reg, body: Bytes) -> Response {
    reply(StatusCode::CREATED, r.create(&body).await)
}

/// `/populate`'s body: the error fields (when there is one) and the list.
#[derive(Serialize)]
struct PopulateBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    proxies: Option<Vec<ProxyJson>>,
}

async fn populate(State(r): Reg, body: Bytes) -> Response {
    let (proxies, err) = r.populate(&body).await;
    let status = err.as_ref().map_or(StatusCode::CREATED, ApiError::status);
    let body = PopulateBody {
        error: err.as_ref().map(ToString::to_string),
        status: err.as_ref().map(|e| e.status().as_u16()),
        proxies: proxies.filter(|p| !p.is_empty()), // Go marshals an empty slice it built by appending as null
    };
    json(status, &body)
}

async fn show(State(r): Reg, Path(proxy): Path<String>) -> Response {
    reply(StatusCode::OK, r.get(&proxy).await)
}

async fn update(State(r): Reg, Path(proxy): Path<String>, body: Bytes) -> Response {
    reply(StatusCode::OK, r.update(&proxy, &body).await)
}

async fn delete(State(r): Reg, Path(proxy): Path<String>) -> Response {
    no_content(r.delete(&proxy).await)
}

async fn toxics(State(r): Reg, Path(proxy): Path<String>) -> Response {
    reply(StatusCode::OK, r.toxics(&proxy).await)
}

async fn add_toxic(State(r): Reg, Path(proxy): Path<String>, body: Bytes) -> Response {
    reply(StatusCode::OK, r.add_toxic(&proxy, &body).await)
}

async fn toxic(State(r): Reg, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    reply(StatusCode::OK, r.toxic(&proxy, &toxic).await)
}

async fn update_toxic(
    State(r): Reg,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    reply(StatusCode::OK, r.update_toxic(&proxy, &toxic, &body).await)
}

async fn remove_toxic(State(r): Reg, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    no_content(r.remove_toxic(&proxy, &toxic).await)
}

async fn reset(State(r): Reg) -> Response {
    no_content(r.reset().await)
}

async fn version() -> Response {
    let body = format!("{{\"version\": \"{VERSION}\"}}\n");
    let content_type = [(header::CONTENT_TYPE, "application/json;charset=utf-8")];
    (content_type, body).into_response()
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

async fn stop_browsers(request: Request, next: Next) -> Response {
    let browser = request
        .headers()
        .get(header::USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/"));
    if browser {
        return plain(StatusCode::FORBIDDEN, "User agent not allowed\n".into());
    }
    next.run(request).await
}
