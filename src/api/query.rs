//! `POST /api/query`: SQL over the history and the live window.
//!
//! The body is `{"sql": "..."}` or the SQL as plain text. The answer is
//! `{"columns", "rows"}` as JSON, or the Arrow IPC stream when the client
//! sends `Accept: application/vnd.apache.arrow.stream`. A query DataFusion
//! rejects (or that runs out of time or memory) is a 400 with
//! `{"error": "<DataFusion's message>"}`: the user's mistake, not ours.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{bad_request, ApiState};
use crate::query::output;

/// The Arrow IPC stream media type.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
}

/// The SQL of a request: a JSON body's `sql`, or the whole body as text.
fn sql_of(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let sql = if text.trim_start().starts_with('{') {
        serde_json::from_str::<QueryBody>(text)
            .map_err(|e| format!("expected {{\"sql\": \"...\"}}: {e}"))?
            .sql
    } else {
        text.to_owned()
    };
    if sql.trim().is_empty() {
        return Err("no SQL: send {\"sql\": \"SELECT ...\"} or the query as text".into());
    }
    Ok(sql)
}

pub async fn run(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let sql = match sql_of(&body) {
        Ok(sql) => sql,
        Err(message) => return bad_request(message),
    };
    let answer = match state.query.run(&sql).await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, "query refused");
            return bad_request(e.to_string());
        }
    };
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    let encoded = if wants_arrow {
        output::arrow_ipc(&answer)
            .map(|bytes| ([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response())
    } else {
        output::json(&answer).map(|doc| Json(doc).into_response())
    };
    encoded.unwrap_or_else(|e| {
        tracing::error!(error = %e, "query answer does not encode");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_comes_as_json_or_text() {
        assert_eq!(sql_of(br#"{"sql": "SELECT 1"}"#).unwrap(), "SELECT 1");
        assert_eq!(sql_of(b"SELECT 2").unwrap(), "SELECT 2");
        assert!(sql_of(b"  ").is_err());
        assert!(sql_of(br#"{"query": "SELECT 1"}"#).is_err());
    }
}
