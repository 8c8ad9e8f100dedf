//! The API's errors, one variant per error Toxiproxy can answer, so a client
//! written against Toxiproxy sees the same status and the same message.

use axum::http::StatusCode;

/// An error the HTTP API answers with `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the route expects (400).
    #[error("bad request body: {0}")]
    BadRequestBody(String),
    /// `name` or `upstream` is missing or empty (400).
    #[error("missing required field: {0}")]
    MissingField(String),
    #[error("proxy not found")]
    ProxyNotFound,
    #[error("proxy already exists")]
    ProxyAlreadyExists,
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream,
    #[error("invalid toxic type")]
    InvalidToxicType,
    #[error("toxic already exists")]
    ToxicAlreadyExists,
    #[error("toxic not found")]
    ToxicNotFound,
    /// Anything Toxiproxy reports as a plain Go error: a listen address in
    /// use or unresolvable (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The status Toxiproxy uses for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequestBody(_)
            | ApiError::MissingField(_)
            | ApiError::InvalidStream
            | ApiError::InvalidToxicType => StatusCode::BAD_REQUEST,
            ApiError::ProxyNotFound | ApiError::ToxicNotFound => StatusCode::NOT_FOUND,
            ApiError::ProxyAlreadyExists | ApiError::ToxicAlreadyExists => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error body, in Toxiproxy's field order.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.to_string(), "status": self.status().as_u16()})
    }
}

/// Why the fault proxy could not start or load its proxies.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr} for the fault proxy API (is another process using it?): {source}"
    )]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the proxies file {path}: {source}")]
    ReadConfig {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Populate {
        path: std::path::PathBuf,
        source: ApiError,
    },
}
