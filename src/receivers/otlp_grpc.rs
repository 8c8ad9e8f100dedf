//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The service is written against tonic's server machinery with a codec that
//! hands over the raw request bytes, rather than the generated
//! `TraceServiceServer`, for two reasons: a malformed body must be
//! `InvalidArgument` (tonic's prost codec says `Internal`), and the raw bytes
//! are what the fast decoder ([`super::otlp_fast`], the default) reads in
//! place.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
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
        let this = self.clone();
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(accept, Default::default())
                .apply_max_message_size_config(Some(this.max_message_bytes), None);
            let sink = this.sink.clone();
            let mut response = grpc.unary(Export(sink, this.decoder), req).await;
            too_large_is_resource_exhausted(&mut response);
            Ok(response)
        })
    }
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
            sink.admit(NAME)
                .map_err(|r| super::refusal::grpc_status(&r))?;
            let batch = decoder.decode(request.get_ref()).map_err(|e| {
                sink.telemetry.bad_request(NAME);
                Status::invalid_argument(e.to_string())
            })?;
            let batch = sink.accept(NAME, batch).await;
            let partial_success =
                batch
                    .partial_message()
                    .map(|error_message| ExportTracePartialSuccess {
                        rejected_spans: batch.rejected as i64,
                        error_message,
                    });
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success,
            }))
        })
    }
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
