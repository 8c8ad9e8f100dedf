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

/// Body: a plan (see `docs/experiments.md`), or `{"scenario_id": "…"}`
/// naming one of `GET /api/scenarios`. Answers 202 with the run.
pub async fn start(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(service) = &state.experiments else {
        return not_enabled();
    };
    let plan = match plan_of(&state, &body) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    match service.start(plan) {
        Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Err(message) => (StatusCode::CONFLICT, Json(json!({ "error": message }))).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ByScenario {
    scenario_id: String,
}

fn plan_of(state: &ApiState, body: &[u8]) -> Result<Plan, String> {
    if let Ok(by) = serde_json::from_slice::<ByScenario>(body) {
        let latest = state.latest.read();
        let scenario = latest
            .scenarios
            .iter()
            .find(|s| s.id == by.scenario_id)
            .ok_or_else(|| format!("no scenario {} in GET /api/scenarios", by.scenario_id))?;
        return crate::experiments::from_scenario::plan(scenario, &state.scenario_settings)
            .map_err(|why| {
                format!(
                    "scenario {} cannot run through Toxiproxy: {why}",
                    by.scenario_id
                )
            });
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is not an experiment plan: {e}"))
}

fn not_enabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "experiments are not enabled: add the `experiments` extension to the pipeline"})),
    )
        .into_response()
}
