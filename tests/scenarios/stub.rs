//! Small local HTTP servers on 127.0.0.1:0: one that answers like the
//! OpenAI chat-completions API, one that serves a faultline API's graph
//! and hotspots.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// How the fake model answers.
#[derive(Clone)]
pub enum Answer {
    /// A chat completion whose message content is this text.
    Content(String),
    /// Never answers (well, not for a minute).
    Hang,
    /// HTTP 500.
    Fail,
}

/// What the fake model was sent: (authorization header, request body).
pub type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn complete(
    State((answer, seen)): State<(Answer, Seen)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().unwrap().push((auth, body));
    match answer {
        Answer::Content(text) => Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
        }))
        .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "too late".into_response()
        }
        Answer::Fail => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "model overloaded",
        )
            .into_response(),
    }
}

/// Starts the fake model; its base URL is `http://<addr>`.
pub async fn openai(answer: Answer) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let router = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state((answer, seen.clone()));
    (serve(router).await, seen)
}

/// Serves `graph` on /api/graph and, when given, `hotspots` on
/// /api/hotspots (absent: 404, as an older faultline).
pub async fn faultline_api(graph: Value, hotspots: Option<Value>) -> SocketAddr {
    let graph = Arc::new(graph);
    let mut router = Router::new().route(
        "/api/graph",
        get(move || async move { Json((*graph).clone()) }),
    );
    if let Some(h) = hotspots {
        let doc = Arc::new(json!({"at_ms": 1, "hotspots": h}));
        router = router.route(
            "/api/hotspots",
            get(move || async move { Json((*doc).clone()) }),
        );
    }
    serve(router).await
}
