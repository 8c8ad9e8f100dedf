//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The service is written against tonic's server machinery with a codec that
//! hands over the raw request bytes, rather than the generated
//! `TraceServiceServer`, for two reasons: a malformed body must be
//! `InvalidArgument` (tonic's prost codec says `Internal`), and the raw bytes
//! are what the fast decoder ([`super::otlp_fast`], the default) reads in
//! place. Uncompressed requests, nearly all of them, skip tonic's message
//! buffer too (see `TraceService::export_uncompressed`); gzip ones take
//! tonic's path whole.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, EnabledCompressionEncodings, Service};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

use super::{ProtobufDecoder, SpanSink};

pub const NAME: &str = "otlp_grpc";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// HTTP/2 receive windows: a whole default-sized batch fits in one.
const STREAM_WINDOW: u32 = 2 << 20;
/// The largest HTTP/2 frame the receiver takes (HTTP/2's default is 16 KiB).
/// Why: a batch of 512 spans is about 174 KB, eleven frames at the default,
/// and each frame is a trip through h2 and tonic, a copy into the request's
/// growing buffer, and often a socket read of its own. Clients send frames
/// up to what the server announces; with 256 KiB the load generator's
/// requests went from 1.90–1.99 M to 2.07–2.14 M spans/s on one core.
/// Clients that keep to 16 KiB frames are served as before.
const MAX_FRAME: u32 = 256 << 10;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// Serves OTLP/gRPC on `addr` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sink: SpanSink,
    max_message_bytes: usize,
    decoder: ProtobufDecoder,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "OTLP/gRPC receiver listening");
    // tonic sets TCP_NODELAY only on sockets it accepts itself. Without it,
    // the small frames the server sends back (window updates, the reply)
    // wait on the client's delayed ACK: 40 ms stalls that cut throughput by
    // an order of magnitude while both sides sit idle.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            conn.inspect(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            })
        },
    );
    tonic::transport::Server::builder()
        // Exporters send requests of hundreds of KiB; HTTP/2's default 64 KiB
        // windows would make each one wait for several window updates.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .add_service(TraceService {
            sink,
            max_message_bytes,
            decoder,
        })
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

#[derive(Clone)]
struct TraceService {
    sink: SpanSink,
    max_message_bytes: usize,
    decoder: ProtobufDecoder,
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for TraceService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("only TraceService/Export").into_http())
            });
        }
        // tonic's glue calls the service on the stream task's first poll,
        // so the time runs from there to the reply; the timer counts a
        // request its client abandons as well.
        let timer = self.sink.telemetry.time_request(NAME);
        let this = self.clone();
        Box::pin(async move {
            let _timer = timer;
            Ok(if is_identity(req.headers()) {
                this.export_uncompressed(req).await
            } else {
                this.export_compressed(req).await
            })
        })
    }
}

/// Whether a request's message is sent as it is: no `grpc-encoding`, or
/// `identity`. Compressed requests go through tonic's machinery.
fn is_identity(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_none_or(|v| v.as_bytes() == b"identity")
}

impl TraceService {
    /// Serves a compressed request through tonic's machinery, which
    /// inflates it within the message size limit.
    async fn export_compressed<B>(self, req: http::Request<B>) -> http::Response<Body>
    where
        B: tonic::codegen::Body + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let mut grpc = tonic::server::Grpc::new(RawCodec)
            .apply_compression_config(accept, Default::default())
            .apply_max_message_size_config(Some(self.max_message_bytes), None);
        let mut response = grpc.unary(Export(self.sink, self.decoder), req).await;
        too_large_is_resource_exhausted(&mut response);
        response
    }

    /// Serves an uncompressed request without tonic's message buffer.
    ///
    /// Why: tonic copies every data frame into a buffer of its own, and on
    /// reading the message's length reserves room for all of it on top of
    /// what the buffer already holds, so a message whose first frame
    /// carried most of it was copied twice: 5.4% of the receiver's cycles
    /// at full load, in `memmove`. Here the message is the frame's own
    /// bytes when one frame holds it (with 256 KiB frames, see
    /// [`MAX_FRAME`], a default batch does), and is copied once, into a
    /// buffer of its exact size, when it spans several. What is checked
    /// and answered is tonic's: the size limit before reading, the
    /// compression flag, a missing message, and a reply of one message
    /// followed by `grpc-status` trailers.
    async fn export_uncompressed<B>(self, req: http::Request<B>) -> http::Response<Body>
    where
        B: tonic::codegen::Body + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        let reply = match read_message(req.into_body(), self.max_message_bytes).await {
            Ok(message) => export(&self.sink, self.decoder, &message).await,
            Err(status) => Err(status),
        };
        match reply {
            Ok(reply) => reply_with(&reply),
            Err(status) => status.into_http(),
        }
    }
}

/// The one gRPC message of an uncompressed unary request body.
async fn read_message<B>(body: B, max_message_bytes: usize) -> Result<Bytes, Status>
where
    B: tonic::codegen::Body,
    B::Error: Into<tonic::codegen::StdError>,
{
    let mut body = std::pin::pin!(body);
    let mut message = Message::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::from_error(e.into()))?;
        if let Ok(mut data) = frame.into_data() {
            message.add(data.copy_to_bytes(data.remaining()), max_message_bytes)?;
        }
    }
    message.finish()
}

/// A gRPC message as its frames arrive.
#[derive(Default)]
struct Message {
    /// The 5-byte header, and how much of it has come.
    head: [u8; GRPC_HEADER],
    head_len: usize,
    /// The message's length, once the header is read.
    len: Option<usize>,
    /// The message's bytes: the frame's own when one frame holds them all.
    whole: Option<Bytes>,
    parts: bytes::BytesMut,
}

/// gRPC's message header: a compression flag and a 4-byte length (the
/// load generator frames its requests with it too).
pub const GRPC_HEADER: usize = 5;

impl Message {
    fn add(&mut self, mut data: Bytes, max: usize) -> Result<(), Status> {
        if self.len.is_none() {
            let taken = data.split_to((GRPC_HEADER - self.head_len).min(data.len()));
            self.head[self.head_len..][..taken.len()].copy_from_slice(&taken);
            self.head_len += taken.len();
            if self.head_len < GRPC_HEADER {
                return Ok(());
            }
            self.len = Some(header_length(&self.head, max)?);
        }
        self.add_body(data, self.len.unwrap_or_default())
    }

    fn add_body(&mut self, data: Bytes, len: usize) -> Result<(), Status> {
        let have = self.whole.as_ref().map_or(0, Bytes::len) + self.parts.len();
        // Bytes past the message (a second message) are read and dropped,
        // as tonic does for a unary call.
        let data = data.slice(..data.len().min(len - have));
        if data.is_empty() {
            return Ok(());
        }
        if have == 0 && self.whole.is_none() {
            self.whole = Some(data);
            return Ok(());
        }
        if let Some(first) = self.whole.take() {
            self.parts.reserve(len);
            self.parts.extend_from_slice(&first);
        }
        self.parts.extend_from_slice(&data);
        Ok(())
    }

    /// The message, once the body ended, with tonic's errors for a body
    /// that held none or ended inside one.
    fn finish(self) -> Result<Bytes, Status> {
        let Some(len) = self.len else {
            return Err(match self.head_len == 0 {
                true => Status::internal("Missing request message."),
                false => Status::internal("Unexpected EOF decoding stream."),
            });
        };
        let got = self.whole.unwrap_or_else(|| self.parts.freeze());
        match got.len() == len {
            true => Ok(got),
            false => Err(Status::internal("Unexpected EOF decoding stream.")),
        }
    }
}

/// The length from a message header, checked as tonic checks it.
fn header_length(head: &[u8], max: usize) -> Result<usize, Status> {
    match head[0] {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ))
        }
        f => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
            )))
        }
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {max} bytes"
        )));
    }
    Ok(len)
}

/// A successful reply: one uncompressed message, then `grpc-status: 0`.
fn reply_with(reply: &ExportTraceServiceResponse) -> http::Response<Body> {
    let len = prost::Message::encoded_len(reply);
    let mut frame = bytes::BytesMut::with_capacity(GRPC_HEADER + len);
    frame.put_u8(0);
    frame.put_u32(len as u32);
    prost::Message::encode(reply, &mut frame).expect("the buffer has room for the reply");
    let mut trailers = http::HeaderMap::new();
    trailers.insert(Status::GRPC_STATUS, http::HeaderValue::from_static("0"));
    let body =
        http_body_util::Full::new(frame.freeze()).with_trailers(async move { Some(Ok(trailers)) });
    let mut response = http::Response::new(Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// tonic refuses an oversized message with `OutOfRange` before reading it;
/// gRPC's own servers, and OTLP exporters' retry logic, expect
/// `RESOURCE_EXHAUSTED` for that case.
fn too_large_is_resource_exhausted(response: &mut http::Response<Body>) {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == b"11");
    // Only tonic's size check: its message is percent-encoded in the header.
    let too_large = headers
        .get(Status::GRPC_MESSAGE)
        .is_some_and(|v| String::from_utf8_lossy(v.as_bytes()).contains("too%20large"));
    if out_of_range && too_large {
        headers.insert(Status::GRPC_STATUS, (Code::ResourceExhausted as i32).into());
    }
}

struct Export(SpanSink, ProtobufDecoder);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let sink = self.0.clone();
        let decoder = self.1;
        Box::pin(async move {
            export(&sink, decoder, request.get_ref())
                .await
                .map(Response::new)
        })
    }
}

/// Decodes one request and hands its spans to the pipeline.
async fn export(
    sink: &SpanSink,
    decoder: ProtobufDecoder,
    message: &[u8],
) -> Result<ExportTraceServiceResponse, Status> {
    sink.admit(NAME)
        .map_err(|r| super::refusal::grpc_status(&r))?;
    let batch = decoder.decode(message).map_err(|e| {
        sink.telemetry.bad_request(NAME);
        Status::invalid_argument(e.to_string())
    })?;
    let batch = sink.accept(NAME, batch).await;
    let partial_success = batch
        .partial_message()
        .map(|error_message| ExportTracePartialSuccess {
            rejected_spans: batch.rejected as i64,
            error_message,
        });
    Ok(ExportTraceServiceResponse { partial_success })
}

/// Decodes nothing: hands the message bytes to the service as they came.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::Message::encode(&item, buf).map_err(|e| Status::internal(e.to_string()))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 10_000;

    fn framed(message: &[u8], flag: u8) -> Vec<u8> {
        let mut wire = vec![flag];
        wire.extend_from_slice(&(message.len() as u32).to_be_bytes());
        wire.extend_from_slice(message);
        wire
    }

    fn read(frames: &[&[u8]], max: usize) -> Result<Bytes, Status> {
        let mut message = Message::default();
        for frame in frames {
            message.add(Bytes::copy_from_slice(frame), max)?;
        }
        message.finish()
    }

    #[test]
    fn a_message_is_read_whatever_frames_carry_it() {
        let message: Vec<u8> = (0..=255u8).cycle().take(1_000).collect();
        let wire = framed(&message, 0);
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(read(&[a, b], MAX).unwrap(), message, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(read(&bytes, MAX).unwrap(), message);
        // A second message in a unary call is read past and dropped.
        let mut two = wire.clone();
        two.extend(framed(b"second", 0));
        assert_eq!(read(&[&two], MAX).unwrap(), message);
        assert_eq!(read(&[&framed(b"", 0)], MAX).unwrap(), Bytes::new());
    }

    #[test]
    fn a_message_in_one_frame_is_that_frame_s_bytes() {
        let wire = Bytes::from(framed(&[7; 300], 0));
        let mut message = Message::default();
        message.add(wire.clone(), MAX).unwrap();
        let got = message.finish().unwrap();
        assert_eq!(got.as_ptr(), wire[GRPC_HEADER..].as_ptr(), "not copied");
    }

    #[test]
    fn bad_framing_is_answered_as_tonic_answers_it() {
        let wire = framed(&[1; 100], 0);
        let status = |r: Result<Bytes, Status>| {
            let e = r.unwrap_err();
            (e.code(), e.message().to_string())
        };
        let (code, text) = status(read(&[&wire], 99));
        assert_eq!(code, Code::ResourceExhausted);
        assert!(text.contains("found 100 bytes, the limit is: 99"), "{text}");
        let (code, text) = status(read(&[&framed(b"x", 1)], MAX));
        assert_eq!(code, Code::Internal);
        assert!(
            text.contains("compressed-flag but no grpc-encoding"),
            "{text}"
        );
        let (code, text) = status(read(&[&framed(b"x", 7)], MAX));
        assert!(code == Code::Internal && text.contains("flag: 7"), "{text}");
        assert_eq!(status(read(&[], MAX)).1, "Missing request message.");
        for short in [&wire[..3], &wire[..wire.len() - 1]] {
            let (code, text) = status(read(&[short], MAX));
            assert!(
                code == Code::Internal && text.contains("Unexpected EOF"),
                "{text}"
            );
        }
    }

    #[test]
    fn only_uncompressed_requests_skip_tonic() {
        let mut headers = http::HeaderMap::new();
        assert!(is_identity(&headers));
        headers.insert("grpc-encoding", http::HeaderValue::from_static("identity"));
        assert!(is_identity(&headers));
        headers.insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        assert!(!is_identity(&headers));
    }
}
