//! `GET /api/experiments` and `POST /api/experiments`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{bad_request, ApiState};
use crate::experiments::Plan;

pub async fn list(State(state): State<ApiState>) -> Response {
    let Some(service) = &state.experiments else {
        return not_enabled();
    };
    Json(json!({
        "running": service.running(),
        "results": service.results(),
    }))
    .into_response()
}

/// Body: a plan (see `docs/experiments.md`). Answers 202 with the run.
pub async fn start(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(service) = &state.experiments else {
        return not_enabled();
    };
    let plan: Plan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("the body is not an experiment plan: {e}")),
    };
    match service.start(plan) {
        Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Err(message) => (StatusCode::CONFLICT, Json(json!({ "error": message }))).into_response(),
    }
}

fn not_enabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "experiments are not enabled: add the `experiments` extension to the pipeline"})),
    )
        .into_response()
}
