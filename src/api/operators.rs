//! `GET /api/signals`, `/api/hotspots`, `/api/anomalies`, `/api/paths`:
//! the operators' latest results (schemas in `docs/records.md`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{bad_request, ApiState};
use crate::graph::WindowSelect;
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
    /// Also the window in progress, unjudged, as `open_window` (see
    /// [`crate::operators::signals::provisional`]).
    #[serde(default)]
    open: bool,
}

const KINDS: [&str; 4] = ["edge", "path", "destination", "cluster"];

pub async fn signals(State(state): State<ApiState>, Query(p): Query<SignalsParam>) -> Response {
    if let Some(kind) = p.kind.as_deref().filter(|k| !KINDS.contains(k)) {
        return bad_request(format!(
            "kind must be one of edge, path, destination, cluster; got {kind:?}"
        ));
    }
    let open = if p.open {
        Some(open_window(&state, &p).await)
    } else {
        None
    };
    let latest = state.latest.read();
    let recent;
    let pool: &[SignalRecord] = match p.since {
        Some(since) => {
            recent = latest.signals_since(since, p.target.as_deref());
            &recent
        }
        // The latest window's records, read in place (tens of thousands
        // at 10^5 edges; only the selected ones are serialized).
        None => &latest.signals,
    };
    let window = latest.signals.first();
    let mut body = json!({
        "window_start_ms": window.map(|r| r.window_start_ms),
        "window_end_ms": window.map(|r| r.window_end_ms),
        "windows_evaluated": latest.windows_evaluated,
        "records": selected(pool, &p),
    });
    if let Some(open) = open {
        body["open_window"] = open;
    }
    Json(body).into_response()
}

/// The window in progress: its bounds and its unjudged records.
async fn open_window(state: &ApiState, p: &SignalsParam) -> serde_json::Value {
    let view = state.graph.view(WindowSelect::Current).await;
    let records = crate::operators::signals::provisional(&view);
    json!({
        "window_start_ms": view.window.start_ms,
        "window_end_ms": view.window.end_ms,
        "records": selected(&records, p),
    })
}

/// The records of the asked target and kind.
fn selected<'a>(records: &'a [SignalRecord], p: &SignalsParam) -> Vec<&'a SignalRecord> {
    records
        .iter()
        .filter(|r| p.target.as_deref().is_none_or(|t| r.key == t))
        .filter(|r| {
            p.kind.as_deref().is_none_or(|k| {
                r.key
                    .strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
        })
        .collect()
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
