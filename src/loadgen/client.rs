//! One connection to the collector under load: sends encoded OTLP requests
//! over gRPC or HTTP, plain or gzip, and reads back what the collector
//! refused.
//!
//! A gRPC request is framed by hand (compressed flag, length, message) and
//! sent through tonic's channel as a plain HTTP/2 request; the reply is read
//! back with tonic's own status parsing. Why not tonic's client codec:
//! - gzip: tonic compresses at level 6 with no way to choose, which took the
//!   load generator 8.6 s of CPU in a 10 s run and made it, not the
//!   collector, the bottleneck (271 k spans/s). Gzip is done here, at level
//!   1 (`Compression::fast()`), for both transports;
//! - uncompressed: tonic's encoder copies the message into a buffer of its
//!   own; the frame built here is the request body as it is. The load
//!   generator shares its one core between rendering requests and reading
//!   replies, and every copy it saves is time a reply does not wait.

use std::future::poll_fn;
use std::io::Write;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codegen::{http, Service};
use tonic::transport::Channel;

use super::run::{LoadConfig, LoadError, Protocol};
use super::template::Template;
use crate::receivers::otlp_grpc::GRPC_HEADER;

pub(super) const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One connection to the collector. Clones share the connection.
#[derive(Clone)]
pub(super) enum Client {
    /// gRPC, each message framed here (see the module docs); `gzip`: this
    /// side compresses it.
    Grpc {
        channel: Channel,
        uri: http::Uri,
        gzip: bool,
    },
    Http {
        http: reqwest::Client,
        url: String,
        gzip: bool,
    },
}

impl Client {
    pub(super) async fn connect(
        config: &LoadConfig,
        http: &reqwest::Client,
    ) -> Result<Client, LoadError> {
        let fail = |message: String| LoadError::Connect {
            endpoint: config.endpoint.clone(),
            message,
        };
        match config.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::new(config.endpoint.clone())
                    .map_err(|e| fail(e.to_string()))?
                    .connect()
                    .await
                    .map_err(|e| fail(format!("{e}: {}", source_of(&e))))?;
                let uri = format!("{}{EXPORT_PATH}", config.endpoint.trim_end_matches('/'))
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
                Ok(Client::Grpc {
                    channel,
                    uri,
                    gzip: config.gzip,
                })
            }
            Protocol::Http => Ok(Client::Http {
                http: http.clone(),
                url: config.endpoint.clone(),
                gzip: config.gzip,
            }),
        }
    }

    /// One rendering of `template` as the request body to send;
    /// `scratch` is reused between calls.
    pub(super) fn render(
        &self,
        template: &Template,
        salt: u64,
        now_ns: u64,
        scratch: &mut Vec<u8>,
    ) -> Bytes {
        if let Client::Grpc { gzip: false, .. } = self {
            // Rendered straight behind the frame header: the body as sent,
            // with no copy of it (copies were a third of this side's time).
            let mut frame = plain_frame_header(template.len());
            template.render(salt, now_ns, &mut frame);
            return frame.into();
        }
        scratch.clear();
        template.render(salt, now_ns, scratch);
        self.body(scratch)
    }

    /// What [`Client::export`] sends for one encoded
    /// `ExportTraceServiceRequest`: the message, gzipped if this client
    /// sends gzip (for gRPC, framed as well).
    pub(super) fn body(&self, message: &[u8]) -> Bytes {
        match self {
            Client::Grpc { gzip: true, .. } => gzip_grpc_frame(message),
            Client::Grpc { gzip: false, .. } => grpc_frame(message),
            Client::Http { gzip: true, .. } => gzip_to(Vec::new(), message).into(),
            _ => Bytes::copy_from_slice(message),
        }
    }

    /// Sends one [`Client::body`]; the spans the collector refused, or why
    /// the call failed.
    pub(super) async fn export(&mut self, body: Bytes) -> Result<u64, String> {
        match self {
            Client::Grpc { channel, uri, gzip } => {
                export_grpc(channel, uri.clone(), body, *gzip).await
            }
            Client::Http { http, url, gzip } => {
                let mut request = http
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf");
                if *gzip {
                    request = request.header("content-encoding", "gzip");
                }
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                let reply: ExportTraceServiceResponse =
                    prost::Message::decode(bytes).map_err(|e| e.to_string())?;
                Ok(rejected(&reply))
            }
        }
    }
}

/// `message` gzipped at level 1 after what `out` already holds.
fn gzip_to(out: Vec<u8>, message: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(message);
    encoder.finish().unwrap_or_default()
}

/// An uncompressed gRPC message: flag 0, length, the message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = plain_frame_header(message.len());
    frame.extend_from_slice(message);
    frame.into()
}

/// The header of an uncompressed gRPC message of `len` bytes (flag 0,
/// length), with room behind it for the message.
fn plain_frame_header(len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(GRPC_HEADER + len);
    frame.push(0);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame
}

/// One length-prefixed gRPC message, gzipped, with the compressed flag set.
fn gzip_grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = gzip_to(vec![0; GRPC_HEADER], message);
    let len = (frame.len() - GRPC_HEADER) as u32;
    frame[0] = 1;
    frame[1..GRPC_HEADER].copy_from_slice(&len.to_be_bytes());
    frame.into()
}

/// A unary gRPC call with an already framed request, gzipped when `gzip`.
async fn export_grpc(
    channel: &mut Channel,
    uri: http::Uri,
    frame: Bytes,
    gzip: bool,
) -> Result<u64, String> {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .version(http::Version::HTTP_2)
        .header("te", "trailers")
        .header("content-type", "application/grpc");
    if gzip {
        request = request.header("grpc-encoding", "gzip");
    }
    let request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(frame)))
        .map_err(|e| e.to_string())?;
    poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| format!("{e}: {}", source_of(&e)))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| format!("{e}: {}", source_of(&e)))?;
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(format!("HTTP {}", parts.status));
    }
    let body = body
        .collect()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    // The status is in the trailers, or in the headers of a trailers-only reply.
    let status = body
        .trailers()
        .and_then(tonic::Status::from_header_map)
        .or_else(|| tonic::Status::from_header_map(&parts.headers));
    match status {
        Some(s) if s.code() == tonic::Code::Ok => {}
        Some(s) => return Err(format!("{:?}: {}", s.code(), s.message())),
        None => return Err("the reply carries no grpc-status".into()),
    }
    let mut bytes = body.to_bytes();
    if bytes.len() < GRPC_HEADER || bytes[0] != 0 {
        return Err("the reply is not one uncompressed gRPC message".into());
    }
    bytes.advance(1);
    let len = bytes.get_u32() as usize;
    let reply: ExportTraceServiceResponse =
        prost::Message::decode(bytes.slice(..len.min(bytes.len()))).map_err(|e| e.to_string())?;
    Ok(rejected(&reply))
}

fn rejected(reply: &ExportTraceServiceResponse) -> u64 {
    reply
        .partial_success
        .as_ref()
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

pub(super) fn source_of(e: &dyn std::error::Error) -> String {
    e.source().map(ToString::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_plain_grpc_frame_is_the_message_behind_its_length() {
        let message = b"a request".repeat(3);
        let frame = grpc_frame(&message);
        assert_eq!(frame[0], 0, "not compressed");
        let len = u32::from_be_bytes(frame[1..GRPC_HEADER].try_into().unwrap()) as usize;
        assert_eq!(len, message.len());
        assert_eq!(&frame[GRPC_HEADER..], &message[..]);
    }

    #[test]
    fn a_gzip_grpc_frame_is_flagged_and_length_prefixed() {
        let message = b"spans spans spans spans spans spans".repeat(20);
        let frame = gzip_grpc_frame(&message);
        assert_eq!(frame[0], 1, "compressed flag");
        let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - GRPC_HEADER);
        assert!(len < message.len() / 4, "{len} bytes for {}", message.len());
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&frame[GRPC_HEADER..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, message);
    }
}
