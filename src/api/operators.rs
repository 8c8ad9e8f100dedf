//! `GET /api/signals`, `/api/hotspots`, `/api/anomalies`, `/api/paths`:
//! the operators' latest results (schemas in `docs/records.md`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{bad_request, ApiState};
use crate::operators::SignalRecord;

#[derive(Deserialize)]
pub struct SignalsParam {
    /// A target key (`edge:a->b`); all targets when absent.
    target: Option<String>,
    /// `edge`, `path`, `destination` or `cluster`.
    kind: Option<String>,
    /// Records of recent windows ending after this time (ms since the
    /// epoch), instead of only the latest window's.
    since: Option<u64>,
}

const KINDS: [&str; 4] = ["edge", "path", "destination", "cluster"];

pub async fn signals(State(state): State<ApiState>, Query(p): Query<SignalsParam>) -> Response {
    if let Some(kind) = p.kind.as_deref().filter(|k| !KINDS.contains(k)) {
        return bad_request(format!(
            "kind must be one of edge, path, destination, cluster; got {kind:?}"
        ));
    }
    let latest = state.latest.read();
    let pool: Vec<SignalRecord> = match p.since {
        Some(since) => latest.signals_since(since, p.target.as_deref()),
        None => latest.signals.to_vec(),
    };
    let records: Vec<_> = pool
        .iter()
        .filter(|r| p.target.as_deref().is_none_or(|t| r.key == t))
        .filter(|r| {
            p.kind
                .as_deref()
                .is_none_or(|k| r.key.starts_with(&format!("{k}:")))
        })
        .collect();
    let window = latest.signals.first();
    Json(json!({
        "window_start_ms": window.map(|r| r.window_start_ms),
        "window_end_ms": window.map(|r| r.window_end_ms),
        "windows_evaluated": latest.windows_evaluated,
        "records": records,
    }))
    .into_response()
}

pub async fn hotspots(State(state): State<ApiState>) -> Response {
    let latest = state.latest.read();
    Json(json!({
        "at_ms": latest.last_window_end_ms,
        "hotspots": latest.hotspots,
    }))
    .into_response()
}

pub async fn anomalies(State(state): State<ApiState>) -> Response {
    let latest = state.latest.read();
    Json(json!({
        "active": latest.active,
        "recent": latest.events,
    }))
    .into_response()
}

pub async fn paths(State(state): State<ApiState>) -> Response {
    let latest = state.latest.read();
    Json(&latest.paths).into_response()
}

pub async fn scenarios(State(state): State<ApiState>) -> Response {
    let latest = state.latest.read();
    Json(json!({
        "at_ms": latest.last_window_end_ms,
        "scenarios": latest.scenarios,
    }))
    .into_response()
}
