//! OTLP/HTTP receiver: `POST /v1/traces`, protobuf or JSON, optionally gzip.
//!
//! Follows the OTLP/HTTP spec for replies: a success carries an
//! `ExportTraceServiceResponse` (with `partial_success` when spans were
//! refused) in the request's encoding; a failure carries a
//! `google.rpc.Status` in the request's encoding, with 400 for a malformed
//! body, 413 for an oversized one and 415 for an unknown content type, and
//! 429 with `Retry-After` while the memory limiter refuses (see
//! [`super::refusal`]).

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use super::{otlp_json, refusal, Batch, DecodeError, ProtobufDecoder, SpanSink};
use crate::memory_limiter::Refusal;

pub const NAME: &str = "otlp_http";

#[derive(Clone)]
struct ReceiverState {
    sink: SpanSink,
    max_body_bytes: usize,
    decoder: ProtobufDecoder,
}

/// The receiver's routes, to be served on its own listener.
pub fn router(sink: SpanSink, max_body_bytes: usize, decoder: ProtobufDecoder) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(ReceiverState {
            sink,
            max_body_bytes,
            decoder,
        })
}

/// Serves the receiver on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sink: SpanSink,
    max_body_bytes: usize,
    decoder: ProtobufDecoder,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "OTLP/HTTP receiver listening");
    // As for gRPC: without TCP_NODELAY small replies wait on delayed ACKs.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(sink, max_body_bytes, decoder))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the error body OTLP/HTTP prescribes.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn export(State(state): State<ReceiverState>, headers: HeaderMap, body: Body) -> Response {
    // Counted when dropped: a request its client abandons counts too.
    let _timer = state.sink.telemetry.time_request(NAME);
    answer(state, headers, body).await
}

/// Reads, decodes and hands on one request; the reply says what came of it.
async fn answer(state: ReceiverState, headers: HeaderMap, body: Body) -> Response {
    let Some(encoding) = encoding_of(&headers) else {
        state.sink.telemetry.bad_request(NAME);
        let msg = "unsupported Content-Type: use application/x-protobuf or application/json";
        return failure(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg.into(),
        );
    };
    let body = match read_body(&headers, body, state.max_body_bytes).await {
        Ok(b) => b,
        Err((status, message)) => {
            state.sink.telemetry.bad_request(NAME);
            return failure(encoding, status, message);
        }
    };
    if let Err(refusal) = state.sink.admit(NAME) {
        return refused(encoding, &refusal);
    }
    let decoded = match encoding {
        Encoding::Protobuf => state.decoder.decode(&body),
        Encoding::Json => otlp_json::decode(&body),
    };
    match decoded {
        Ok(batch) => success(encoding, state.sink.accept(NAME, batch).await),
        Err(e) => {
            state.sink.telemetry.bad_request(NAME);
            failure(encoding, StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

fn encoding_of(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// Reads at most `limit` bytes of body, then gunzips it to at most `limit`
/// bytes too, so a small compressed bomb cannot grow past the limit.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let raw = read_limited(body, limit).await?.ok_or_else(too_large)?;
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match coding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    DecodeError::Invalid(format!("malformed gzip body: {e}")).to_string(),
                )
            })?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?}: use gzip or none"),
        )),
    }
}

/// Reads the body, keeping at most `limit` bytes. Past the limit it goes on
/// reading and discarding (up to 4× the limit) before answering, so the
/// client, still sending, gets the 413 instead of a broken pipe. `None`
/// means too large.
async fn read_limited(body: Body, limit: usize) -> Result<Option<Bytes>, (StatusCode, String)> {
    use tokio_stream::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("reading the request body failed: {e}"),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > limit.saturating_mul(4) {
            break;
        }
    }
    Ok((total <= limit).then(|| kept.freeze()))
}

fn success(encoding: Encoding, batch: Batch) -> Response {
    let partial = batch.partial_message().map(|msg| (batch.rejected, msg));
    match encoding {
        Encoding::Protobuf => {
            let reply = ExportTraceServiceResponse {
                partial_success: partial.map(|(rejected, error_message)| {
                    ExportTracePartialSuccess {
                        rejected_spans: rejected as i64,
                        error_message,
                    }
                }),
            };
            protobuf_response(StatusCode::OK, prost::Message::encode_to_vec(&reply))
        }
        Encoding::Json => {
            // Proto3 JSON: int64 as a string, fields in lowerCamelCase.
            let body = match partial {
                Some((rejected, msg)) => serde_json::json!({
                    "partialSuccess": {"rejectedSpans": rejected.to_string(), "errorMessage": msg}
                }),
                None => serde_json::json!({}),
            };
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

fn failure(encoding: Encoding, status: StatusCode, message: String) -> Response {
    tracing::debug!(%status, %message, "refused OTLP/HTTP request");
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => 8, // RESOURCE_EXHAUSTED
        _ => 3,                             // INVALID_ARGUMENT
    };
    match encoding {
        Encoding::Protobuf => protobuf_response(
            status,
            prost::Message::encode_to_vec(&RpcStatus { code, message }),
        ),
        Encoding::Json => (
            status,
            axum::Json(serde_json::json!({"code": code, "message": message})),
        )
            .into_response(),
    }
}

/// 429 with `Retry-After`: the memory limiter's "send this again later".
fn refused(encoding: Encoding, refusal: &Refusal) -> Response {
    let seconds = refusal::retry_after_seconds(refusal.retry_after);
    let mut response = match encoding {
        Encoding::Protobuf => protobuf_response(
            StatusCode::TOO_MANY_REQUESTS,
            refusal::protobuf_body(refusal),
        ),
        Encoding::Json => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(refusal::json_body(refusal)),
        )
            .into_response(),
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.into());
    response
}

fn protobuf_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}
