//! How the OTLP receivers say "not now, retry later" when the memory
//! limiter refuses a request.
//!
//! The OTLP spec makes RESOURCE_EXHAUSTED retryable only when the status
//! carries a `google.rpc.RetryInfo` detail (otherwise it means "this request
//! can never fit"), so the gRPC refusal always carries one; over HTTP, 429
//! with a `Retry-After` header is the retryable answer, and the body is the
//! same `google.rpc.Status`.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::memory_limiter::Refusal;

/// `RESOURCE_EXHAUSTED` with `RetryInfo { retry_delay }`.
pub fn grpc_status(refusal: &Refusal) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        refusal.message(),
        ErrorDetails::with_retry_info(Some(refusal.retry_after)),
    )
}

/// The encoded `google.rpc.Status` (code, message, `RetryInfo`): the
/// protobuf body of an HTTP refusal.
pub fn protobuf_body(refusal: &Refusal) -> Vec<u8> {
    grpc_status(refusal).details().to_vec()
}

/// The same status in proto3 JSON, for JSON requests.
pub fn json_body(refusal: &Refusal) -> serde_json::Value {
    let d = refusal.retry_after;
    serde_json::json!({
        "code": Code::ResourceExhausted as i32,
        "message": refusal.message(),
        "details": [{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}.{:09}s", d.as_secs(), d.subsec_nanos()),
        }],
    })
}

/// `Retry-After` in whole seconds (the header has no fractions), rounded
/// up so an exporter never comes back before the delay is over.
pub fn retry_after_seconds(delay: Duration) -> u64 {
    let whole = delay.as_secs();
    (whole + u64::from(delay.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ms: u64) -> Refusal {
        Refusal {
            retry_after: Duration::from_millis(ms),
            used_bytes: 90 << 20,
            soft_limit_bytes: 80 << 20,
        }
    }

    #[test]
    fn the_grpc_status_carries_the_retry_delay() {
        let status = grpc_status(&refusal(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let info = status.get_details_retry_info().expect("RetryInfo detail");
        assert_eq!(info.retry_delay, Some(Duration::from_millis(1500)));
        let decoded: tonic_types::Status =
            prost::Message::decode(&protobuf_body(&refusal(1500))[..]).unwrap();
        assert_eq!(decoded.code, 8);
        assert_eq!(decoded.details.len(), 1);
        assert_eq!(
            json_body(&refusal(1500))["details"][0]["retryDelay"],
            "1.500000000s"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
