//! The HTTP API: the graph as JSON, DOT and Mermaid, self-metrics, health.
//!
//! `GET /api/graph` is a public contract that later tools read; its fields
//! are documented in the README and only ever added to.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

mod experiments;
mod operators;
pub mod query;
mod web;

use crate::graph::{render, Graph, WindowSelect};
use crate::operators::SharedLatest;
use crate::telemetry::{GraphGauges, Telemetry};

#[derive(Clone)]
pub struct ApiState {
    pub graph: Graph,
    pub telemetry: Arc<Telemetry>,
    /// The operators' latest signals, anomalies, hotspots and paths.
    pub latest: SharedLatest,
    /// The experiment runner, when the `experiments` extension is on.
    pub experiments: Option<Arc<crate::experiments::service::Service>>,
    /// How scenarios become plans (`POST /api/experiments {"scenario_id"}`).
    pub scenario_settings: Arc<crate::scenarios::ScenarioSettings>,
    /// SQL over the history and the live window (`POST /api/query`).
    pub query: crate::query::QueryService,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/graph", get(graph_json))
        .route("/api/graph.dot", get(graph_dot))
        .route("/api/graph.mmd", get(graph_mermaid))
        .route("/api/signals", get(operators::signals))
        .route("/api/hotspots", get(operators::hotspots))
        .route("/api/anomalies", get(operators::anomalies))
        .route("/api/paths", get(operators::paths))
        .route("/api/scenarios", get(operators::scenarios))
        .route(
            "/api/experiments",
            get(experiments::list).post(experiments::start),
        )
        .route("/api/query", axum::routing::post(query::run))
        .merge(web::routes())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[derive(Deserialize)]
struct WindowParam {
    window: Option<String>,
}

/// `current`, `all` (the default), or a number of most recent windows.
pub fn parse_window(text: Option<&str>) -> Result<WindowSelect, String> {
    match text.map(str::trim) {
        None | Some("all") | Some("") => Ok(WindowSelect::All),
        Some("current") => Ok(WindowSelect::Current),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(WindowSelect::Last(n)),
            _ => Err(format!(
                "window must be current, all, or a number of windows >= 1; got {n:?}"
            )),
        },
    }
}

pub(crate) fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn view(state: &ApiState, param: &WindowParam) -> Result<crate::graph::GraphView, Response> {
    let select = parse_window(param.window.as_deref()).map_err(bad_request)?;
    Ok(state.graph.view(select).await)
}

async fn graph_json(State(state): State<ApiState>, Query(param): Query<WindowParam>) -> Response {
    match view(&state, &param).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn graph_dot(State(state): State<ApiState>, Query(param): Query<WindowParam>) -> Response {
    match view(&state, &param).await {
        Ok(v) => (
            [(header::CONTENT_TYPE, "text/vnd.graphviz")],
            render::dot(&v),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn graph_mermaid(
    State(state): State<ApiState>,
    Query(param): Query<WindowParam>,
) -> Response {
    match view(&state, &param).await {
        Ok(v) => (
            [(header::CONTENT_TYPE, "text/vnd.mermaid")],
            render::mermaid(&v),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.telemetry.render(&GraphGauges {
        pairing: state.graph.pairing_counters(),
        sizes: state.graph.limits().sizes(),
        traces_skipped: state.graph.traces_skipped(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parameter() {
        assert_eq!(parse_window(None), Ok(WindowSelect::All));
        assert_eq!(parse_window(Some("current")), Ok(WindowSelect::Current));
        assert_eq!(parse_window(Some("6")), Ok(WindowSelect::Last(6)));
        assert!(parse_window(Some("0")).is_err());
        assert!(parse_window(Some("yesterday")).is_err());
    }
}
