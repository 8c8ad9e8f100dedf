//! [`Batch`]: what every receiver hands to the graph, with its refusals counted.

use crate::model::{RejectReason, Span};

/// Decoded spans plus the ones refused, so a receiver can answer with an
/// OTLP `partial_success` (`rejected_spans` and a message) instead of
/// failing a whole request for one bad span.
#[derive(Debug, Default)]
pub struct Batch {
    pub spans: Vec<Span>,
    pub rejected: u64,
    /// The first refusal, worded for the client.
    pub first_error: Option<String>,
}

impl Batch {
    /// Keeps `span` if it is valid, otherwise counts it as rejected.
    pub fn push(&mut self, span: Span) {
        match span.validate() {
            Ok(()) => self.spans.push(span),
            Err(reason) => self.reject(reason, &span.name),
        }
    }

    /// Counts one refused span; `what` names it in the message.
    pub fn reject(&mut self, reason: RejectReason, what: &str) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("span {what:?}: {reason}"));
        }
    }

    /// Appends another batch (e.g. the next line of a file).
    pub fn extend(&mut self, other: Batch) {
        self.spans.extend(other.spans);
        self.rejected += other.rejected;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The `partial_success.error_message` for this batch, if anything was refused.
    pub fn partial_message(&self) -> Option<String> {
        self.first_error
            .as_ref()
            .map(|first| format!("{} span(s) rejected; first: {first}", self.rejected))
    }
}

/// Parses an id written as hex (OTLP spec JSON, Jaeger, Zipkin) or base64
/// (protobuf-JSON as Go's jsonpb writes it). Hex is tried first when the
/// length fits, since a 32-character hex string is also valid base64.
/// Zipkin and Jaeger may drop leading zeros, so shorter hex is left-padded.
pub fn parse_id<const N: usize>(text: &str) -> Result<[u8; N], RejectReason> {
    use base64::Engine;
    let text = text.trim();
    if text.is_empty() {
        return Ok([0; N]);
    }
    let is_hex = text.len() <= 2 * N && text.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let padded = format!("{text:0>width$}", width = 2 * N);
        let mut out = [0u8; N];
        hex::decode_to_slice(&padded, &mut out).map_err(|_| RejectReason::BadIdLength)?;
        return Ok(out);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| RejectReason::BadIdLength)?;
    bytes.try_into().map_err(|_| RejectReason::BadIdLength)
}

/// Copies a protobuf id field, which must be exactly `N` bytes (or empty).
pub fn id_from_bytes<const N: usize>(bytes: &[u8]) -> Result<[u8; N], RejectReason> {
    if bytes.is_empty() {
        return Ok([0; N]);
    }
    bytes.try_into().map_err(|_| RejectReason::BadIdLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_hex_and_base64_agree() {
        let hex_id: [u8; 8] = parse_id("d606579e57787587").unwrap();
        let b64_id: [u8; 8] = parse_id("1gZXnld4dYc=").unwrap();
        assert_eq!(hex_id, b64_id);
        let short: [u8; 8] = parse_id("abc").unwrap();
        assert_eq!(short, [0, 0, 0, 0, 0, 0, 0x0a, 0xbc]);
        assert!(parse_id::<8>("not an id!").is_err());
    }
}

/// Why a whole request or file could not be decoded. Receivers turn this into
/// `InvalidArgument` / HTTP 400 with the text as the message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The fast decoder's refusal of the same malformed bytes.
    #[error("malformed protobuf: {0}")]
    Wire(#[from] super::otlp_fast::WireError),
    #[error("{0}")]
    Invalid(String),
}
