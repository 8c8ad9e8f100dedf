//! The OTLP receivers on the wire: good input, bad input, and the server
//! still serving afterwards.

use crate::common;

use std::io::Write;

use bytes::{Buf, BufMut, Bytes};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;

async fn grpc_client(addr: std::net::SocketAddr) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects")
}

/// Sends arbitrary bytes as the Export request body.
async fn grpc_raw(
    addr: std::net::SocketAddr,
    body: Vec<u8>,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::new(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        .parse()
        .unwrap();
    grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[derive(Default, Clone, Copy)]
struct RawCodec;
struct RawEnc;
struct RespDec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEnc;
    type Decoder = RespDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RespDec {
        RespDec
    }
}

impl Encoder for RawEnc {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RespDec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        Ok(Some(
            ExportTraceServiceResponse::decode(bytes)
                .map_err(|e| tonic::Status::internal(e.to_string()))?,
        ))
    }
}

/// POSTs `body` gzipped as OTLP protobuf.
async fn post_gzip(
    http: &reqwest::Client,
    running: &faultline::cli::serve::Running,
    body: &[u8],
) -> reqwest::Response {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body).unwrap();
    http.post(http_url(running))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap()
}

fn http_url(running: &faultline::cli::serve::Running) -> String {
    format!("http://{}/v1/traces", running.http.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_split_over_requests_in_reverse_order_pair_the_same() {
    let running = serve().await;
    let mut client = grpc_client(running.grpc.unwrap()).await;
    // Ten traces a -> b -> c; every span in its own request, newest first.
    let mut all = Vec::new();
    for t in 1..=10u8 {
        let [ca, sb] = rpc_pair("a", "b", t, 2000);
        let mut cb = rpc_pair("b", "c", t, 1000)[0].clone();
        cb.id = 100 + t;
        cb.parent = Some(sb.id);
        let mut sc = rpc_pair("b", "c", t, 1000)[1].clone();
        sc.id = 200 + t;
        sc.parent = Some(cb.id);
        all.extend([ca, sb, cb, sc]);
    }
    for s in all.iter().rev() {
        client
            .export(request(std::slice::from_ref(s)))
            .await
            .expect("export");
    }
    let g = wait_for_graph(&running, |g| {
        edge(g, "a", "b").is_some_and(|e| e["calls"] == 10)
            && edge(g, "b", "c").is_some_and(|e| e["calls"] == 10)
    })
    .await;
    assert_eq!(
        g["edges"].as_array().unwrap().len(),
        2,
        "only a->b and b->c: {g:#}"
    );
    assert_eq!(g["unpaired"]["paired"], 20);
    assert_eq!(g["unpaired"]["pending"], 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p99_from_the_histogram_is_within_one_percent() {
    let running = serve().await;
    let mut client = grpc_client(running.grpc.unwrap()).await;
    // 2000 calls a -> db with spread-out durations from a fixed pseudo-random sequence.
    let mut durations_us = Vec::new();
    let mut x: u64 = 12345;
    let mut spans = Vec::new();
    for i in 0..2000u32 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let d = 500 + (x >> 33) % 200_000; // 0.5 ms .. 200 ms
        durations_us.push(d);
        spans.push(S {
            service: "a",
            kind: SpanKind::Client,
            trace: (i % 250) as u8 + 1,
            id: (i / 250) as u8 + 1,
            parent: Some(99),
            start_ms: u64::from(i),
            duration_us: d,
            error: false,
            attrs: vec![kv("db.system", "postgresql"), kv("db.name", "orders")],
        });
    }
    for chunk in spans.chunks(500) {
        client.export(request(chunk)).await.expect("export");
    }
    let g = wait_for_graph(&running, |g| {
        edge(g, "a", "orders").is_some_and(|e| e["calls"] == 2000)
    })
    .await;
    durations_us.sort_unstable();
    // Nearest-rank p99: the smallest value with at least 99% of values at or below it.
    let exact_ms = durations_us[(0.99f64 * 2000.0).ceil() as usize - 1] as f64 / 1000.0;
    let p99 = edge(&g, "a", "orders").unwrap()["latency_ms"]["p99"]
        .as_f64()
        .unwrap();
    let error = (p99 - exact_ms).abs() / exact_ms;
    assert!(
        error <= 0.01,
        "histogram p99 {p99} ms vs exact {exact_ms} ms: {:.3}% off",
        error * 100.0
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_invalid_argument_and_the_server_keeps_serving() {
    let running = serve().await;
    let addr = running.grpc.unwrap();
    let err = grpc_raw(addr, vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("malformed protobuf"),
        "{}",
        err.message()
    );
    // Valid data after the bad request is still accepted.
    let mut client = grpc_client(addr).await;
    client
        .export(request(&rpc_pair("a", "b", 1, 1000)))
        .await
        .expect("export after bad input");
    wait_for_graph(&running, |g| edge(g, "a", "b").is_some()).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_grpc_message_is_resource_exhausted() {
    let running = serve_with(&[("max_recv_msg_size_mib: 16", "max_recv_msg_size_mib: 1")]).await;
    let addr = running.grpc.unwrap();
    let mut big = rpc_pair("a", "b", 1, 1000);
    big[0].attrs.push(kv("padding", &"x".repeat(2 << 20)));
    let err = grpc_client(addr)
        .await
        .export(request(&big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    grpc_client(addr)
        .await
        .export(request(&rpc_pair("a", "b", 2, 1000)))
        .await
        .expect("still serving");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_with_missing_ids_are_rejected_in_partial_success() {
    let running = serve().await;
    let mut spans = rpc_pair("a", "b", 1, 1000).to_vec();
    let mut bad = request(&spans);
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    bad.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![];
    spans.truncate(0);
    let reply = grpc_client(running.grpc.unwrap())
        .await
        .export(bad)
        .await
        .unwrap()
        .into_inner();
    let partial = reply.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("span_id") || partial.error_message.contains("trace_id")
    );
    let metrics = reqwest::get(format!("http://{}/metrics", running.api.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("faultline_receiver_refused_spans_total{receiver=\"otlp_grpc\"} 2"),
        "{metrics}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_json_and_gzip_are_accepted() {
    let running = serve().await;
    let http = reqwest::Client::new();
    let body = request(&rpc_pair("a", "b", 1, 1000)).encode_to_vec();
    let r = http
        .post(http_url(&running))
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    assert!(reply.partial_success.is_none());

    let body = request(&rpc_pair("a", "b", 2, 1000)).encode_to_vec();
    let r = post_gzip(&http, &running, &body).await;
    assert_eq!(r.status(), 200);

    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
      "scopeSpans":[{"spans":[{"traceId":"03030303030303030303030303030303","spanId":"0707070707070707",
      "name":"x","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"},
      {"traceId":"03030303030303030303030303030303","spanId":"0000000000000000",
      "name":"no-id","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"}]}]},
      {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b"}}]},
      "scopeSpans":[{"spans":[{"traceId":"03030303030303030303030303030303","spanId":"0808080808080808",
      "parentSpanId":"0707070707070707","name":"y","kind":2,"startTimeUnixNano":"1700000000000000000",
      "endTimeUnixNano":"1700000000000500000"}]}]}]}"#;
    let r = http
        .post(http_url(&running))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reply: serde_json::Value = r.json().await.unwrap();
    assert_eq!(reply["partialSuccess"]["rejectedSpans"], "1", "{reply}");
    let g = wait_for_graph(&running, |g| {
        edge(g, "a", "b").is_some_and(|e| e["calls"] == 3)
    })
    .await;
    assert_eq!(node(&g, "b").unwrap()["calls"], 3);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_gets_clear_errors_and_nothing_accepted_is_lost() {
    let running = serve_with(&[(
        "max_request_body_size_mib: 16",
        "max_request_body_size_mib: 1",
    )])
    .await;
    let http = reqwest::Client::new();
    let good = request(&rpc_pair("a", "b", 1, 1000)).encode_to_vec();
    let ok = http
        .post(http_url(&running))
        .header("content-type", "application/x-protobuf")
        .body(good);
    assert_eq!(ok.send().await.unwrap().status(), 200);

    // (content type, body, content encoding, expected status, words in the message)
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "application/json",
            b"{\"resourceSpans\": [".to_vec(),
            None,
            400,
            "malformed JSON",
        ),
        (
            "application/x-protobuf",
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            None,
            400,
            "malformed protobuf",
        ),
        (
            "application/json",
            vec![b' '; 2 << 20],
            None,
            413,
            "exceeds the limit",
        ),
        (
            "application/x-protobuf",
            b"not gzip".to_vec(),
            Some("gzip"),
            400,
            "gzip",
        ),
        ("text/plain", b"hello".to_vec(), None, 415, "Content-Type"),
    ];
    for (ct, body, encoding, status, needle) in cases {
        let mut req = http
            .post(http_url(&running))
            .header("content-type", ct)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{ct} {needle}");
        let bytes = r.bytes().await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(needle),
            "{ct}: body {text:?} should mention {needle:?}"
        );
    }
    // A gzip bomb: small on the wire, over the limit once inflated.
    let r = post_gzip(&http, &running, &vec![0u8; 4 << 20]).await;
    assert_eq!(r.status(), 413);

    let g = wait_for_graph(&running, |g| {
        edge(g, "a", "b").is_some_and(|e| e["calls"] == 1)
    })
    .await;
    assert_eq!(node(&g, "a").unwrap()["kind"], "service");
    let health = reqwest::get(format!("http://{}/healthz", running.api.unwrap()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    running.stop().await.unwrap();
}
