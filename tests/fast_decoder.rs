//! The fast protobuf decoder against the prost reference: same batches,
//! same refusals, same graph, on generated and on broken input.
//!
//! The generated requests are written with a small wire encoder of their
//! own rather than with prost, so they can hold what real senders produce
//! and prost never writes: unknown fields of every wire type (groups too),
//! fields out of order, singular fields repeated, a resource after its spans.

use crate::common;

use faultline::graph::{GraphSettings, OfflineGraph};
use faultline::loadgen::{Generator, SpanShape};
use faultline::receivers::{otlp_fast, otlp_proto, Batch};
use proptest::prelude::*;

/// Both paths on the same bytes: equal batches, or both refused.
fn assert_same(bytes: &[u8]) -> Option<Batch> {
    let fast = otlp_fast::decode(bytes);
    let prost = otlp_proto::decode_request(bytes).map(otlp_proto::to_batch);
    match (fast, prost) {
        (Ok(f), Ok(p)) => {
            assert_eq!(f.spans, p.spans, "spans differ");
            assert_eq!(f.rejected, p.rejected, "rejected counts differ");
            assert_eq!(f.partial_message(), p.partial_message());
            Some(f)
        }
        (Err(f), Err(p)) => {
            // Same kind of error, so the receivers answer the same status.
            assert!(f.to_string().starts_with("malformed protobuf: "), "{f}");
            assert!(p.to_string().starts_with("malformed protobuf: "), "{p}");
            None
        }
        (f, p) => panic!(
            "fast and prost disagree on {} bytes:\nfast:  {:?}\nprost: {:?}",
            bytes.len(),
            f.map(|b| b.spans.len()),
            p.map(|b| b.spans.len())
        ),
    }
}

// ---- a wire encoder for the test's own requests ----

#[derive(Clone, Debug)]
enum W {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(Vec<u8>),
    Group(Vec<(u32, W)>),
}

type Fields = Vec<(u32, W)>;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(fields: &[(u32, W)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, w) in fields {
        encode_field(&mut out, *tag, w);
    }
    out
}

fn encode_field(out: &mut Vec<u8>, tag: u32, w: &W) {
    let key = |wt: u64| (u64::from(tag) << 3) | wt;
    match w {
        W::Varint(v) => {
            put_varint(out, key(0));
            put_varint(out, *v);
        }
        W::Fixed64(v) => {
            put_varint(out, key(1));
            out.extend_from_slice(&v.to_le_bytes());
        }
        W::Len(b) => {
            put_varint(out, key(2));
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        W::Group(inner) => {
            put_varint(out, key(3));
            for (t, w) in inner {
                encode_field(out, *t, w);
            }
            put_varint(out, key(4));
        }
        W::Fixed32(v) => {
            put_varint(out, key(5));
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn msg(fields: Fields) -> W {
    W::Len(encode(&fields))
}

fn text(s: &str) -> W {
    W::Len(s.as_bytes().to_vec())
}

// ---- strategies ----

/// Unknown fields of every wire type, groups nesting once.
fn unknown_fields() -> impl Strategy<Value = Fields> {
    let scalar = prop_oneof![
        any::<u64>().prop_map(W::Varint),
        any::<u64>().prop_map(W::Fixed64),
        any::<u32>().prop_map(W::Fixed32),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(W::Len),
    ];
    let field = (100u32..2000, scalar);
    let group = (100u32..2000, prop::collection::vec(field.clone(), 0..3))
        .prop_map(|(t, inner)| (t, W::Group(inner)));
    prop::collection::vec(prop_oneof![4 => field, 1 => group], 0..2)
}

/// Mixes unknown fields in and shuffles, as any encoder may order fields.
fn with_noise(known: Fields) -> impl Strategy<Value = Fields> {
    unknown_fields().prop_flat_map(move |unknown| {
        let mut all = known.clone();
        all.extend(unknown);
        Just(all).prop_shuffle()
    })
}

const KEYS: &[&str] = &[
    "service.name",
    "peer.service",
    "server.address",
    "network.peer.address",
    "network.peer.port",
    "db.system",
    "db.system.name",
    "db.name",
    "db.namespace",
    "messaging.system",
    "messaging.destination.name",
    "messaging.destination",
    "messaging.message.id",
    "messaging.kafka.message.key",
    "messaging.destination.partition.id",
    "http.response.status_code",
    "http.status_code",
    "rpc.grpc.status_code",
    "http.request.resend_count",
    "error.type",
    "exception.type",
    "exception.message",
    "k8s.namespace.name",
    "k8s.deployment.name",
    "attr.0",
];

fn a_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("503".to_owned()),
        Just(" 404 ".to_owned()),
        Just("context deadline exceeded".to_owned()),
        Just("java.net.SocketTimeoutException".to_owned()),
        "[a-z0-9.:-]{1,10}",
        "\\PC{0,6}",
    ]
}

fn any_value(depth: u32) -> BoxedStrategy<Fields> {
    let leaf = prop_oneof![
        a_string().prop_map(|s| vec![(1, text(&s))]),
        any::<bool>().prop_map(|b| vec![(2, W::Varint(b as u64))]),
        any::<i64>().prop_map(|i| vec![(3, W::Varint(i as u64))]),
        (0i64..600).prop_map(|i| vec![(3, W::Varint(i as u64))]),
        any::<f64>().prop_map(|d| vec![(4, W::Fixed64(d.to_bits()))]),
        prop::collection::vec(any::<u8>(), 0..5).prop_map(|b| vec![(7, W::Len(b))]),
        any::<i32>().prop_map(|i| vec![(8, W::Varint(i as i64 as u64))]),
        Just(vec![]),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let array = prop::collection::vec(any_value(depth - 1), 0..3)
        .prop_map(|vs| vec![(5, msg(vs.into_iter().map(|v| (1, msg(v))).collect()))]);
    let kvlist = prop::collection::vec(key_value(depth - 1), 0..3)
        .prop_map(|kvs| vec![(6, msg(kvs.into_iter().map(|kv| (1, msg(kv))).collect()))]);
    // A oneof set twice: the last one wins.
    let twice = (leaf.clone(), leaf.clone()).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    });
    prop_oneof![6 => leaf, 1 => array, 1 => kvlist, 1 => twice].boxed()
}

fn key_value(depth: u32) -> BoxedStrategy<Fields> {
    let key = prop_oneof![
        prop::sample::select(KEYS).prop_map(str::to_owned),
        "[a-z.]{0,8}"
    ];
    (
        key,
        prop::option::weighted(0.9, any_value(depth)),
        prop::option::weighted(0.1, any_value(0)),
    )
        .prop_flat_map(|(key, value, second)| {
            let mut f = vec![(1, text(&key))];
            if let Some(v) = value {
                f.push((2, msg(v)));
            }
            // A repeated `value` merges into the first.
            if let Some(v) = second {
                f.push((2, msg(v)));
            }
            with_noise(f)
        })
        .boxed()
}

fn attributes(tag: u32, max: usize) -> impl Strategy<Value = Fields> {
    prop::collection::vec(key_value(1), 0..max)
        .prop_map(move |kvs| kvs.into_iter().map(|kv| (tag, msg(kv))).collect())
}

fn id(len: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), len).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(vec![0; len])),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Some),
    ]
}

fn times() -> impl Strategy<Value = (u64, u64)> {
    let base = 1_700_000_000_000_000_000u64;
    prop_oneof![
        6 => (0u64..1_000_000_000, 0u64..2_000_000_000).prop_map(move |(s, d)| (base + s, base + s + d)),
        1 => (0u64..1_000_000).prop_map(move |d| (base + d, base)),
        1 => Just((0, 5)),
        1 => Just((base, base + 25 * 3600 * 1_000_000_000)),
        1 => (any::<u64>(), any::<u64>()),
    ]
}

fn event() -> impl Strategy<Value = Fields> {
    let name = prop_oneof![Just("exception".to_owned()), "[a-z]{0,6}"];
    let exc_attr = (
        prop::sample::select(&["exception.type", "exception.message", "other"][..]),
        a_string(),
    )
        .prop_map(|(k, v)| vec![(1, text(k)), (2, msg(vec![(1, text(&v))]))]);
    (
        name,
        prop::collection::vec(exc_attr, 0..3),
        any::<u64>(),
        attributes(3, 2),
    )
        .prop_flat_map(|(name, exc, time, attrs)| {
            let mut f: Fields = vec![(2, text(&name)), (1, W::Fixed64(time))];
            f.extend(exc.into_iter().map(|kv| (3, msg(kv))));
            f.extend(attrs);
            with_noise(f)
        })
}

fn link() -> impl Strategy<Value = Fields> {
    (id(16), id(8), attributes(4, 2), any::<u32>()).prop_flat_map(|(t, s, attrs, flags)| {
        let mut f: Fields = vec![(6, W::Fixed32(flags)), (3, text("k=v"))];
        f.extend(t.map(|t| (1, W::Len(t))));
        f.extend(s.map(|s| (2, W::Len(s))));
        f.extend(attrs);
        with_noise(f)
    })
}

fn status() -> impl Strategy<Value = Option<Fields>> {
    prop::option::weighted(
        0.6,
        (0u64..4, a_string(), any::<bool>()).prop_map(|(code, message, split)| {
            if split {
                // Two status fields merge: code from one, message from the other.
                vec![
                    (15, msg(vec![(3, W::Varint(code))])),
                    (15, msg(vec![(2, text(&message))])),
                ]
            } else {
                vec![(15, msg(vec![(2, text(&message)), (3, W::Varint(code))]))]
            }
        }),
    )
}

fn span() -> impl Strategy<Value = Fields> {
    let ids = (id(16), id(8), prop::option::weighted(0.7, id(8)));
    let kind = prop_oneof![0u64..6, any::<u64>()];
    let name = prop_oneof!["[A-Z]{3} /[a-z]{1,6}", Just(String::new())];
    (
        ids,
        (kind, name, times()),
        attributes(9, 12),
        prop::collection::vec(event(), 0..3),
        prop::collection::vec(link(), 0..3),
        status(),
        any::<u32>(),
    )
        .prop_flat_map(
            |((t, s, parent), (kind, name, (start, end)), attrs, events, links, status, flags)| {
                let mut f: Fields = vec![
                    (5, text(&name)),
                    (6, W::Varint(kind)),
                    (7, W::Fixed64(start)),
                    (8, W::Fixed64(end)),
                    (3, text("rojo=00f067aa0ba902b7")),
                    (10, W::Varint(1)),
                    (16, W::Fixed32(flags)),
                ];
                f.extend(t.map(|t| (1, W::Len(t))));
                f.extend(s.map(|s| (2, W::Len(s))));
                f.extend(parent.flatten().map(|p| (4, W::Len(p))));
                f.extend(attrs);
                f.extend(events.into_iter().map(|e| (11, msg(e))));
                f.extend(links.into_iter().map(|l| (13, msg(l))));
                f.extend(status.into_iter().flatten());
                with_noise(f)
            },
        )
}

fn resource() -> impl Strategy<Value = Fields> {
    let service = prop::option::weighted(
        0.9,
        prop_oneof![Just(String::new()), "svc-[0-9]"]
            .prop_map(|s| vec![(1, text("service.name")), (2, msg(vec![(1, text(&s))]))]),
    );
    (service, attributes(1, 4)).prop_flat_map(|(service, attrs)| {
        let mut f: Fields = vec![(2, W::Varint(0))];
        f.extend(service.map(|kv| (1, msg(kv))));
        f.extend(attrs);
        with_noise(f)
    })
}

fn scope_spans() -> impl Strategy<Value = Fields> {
    let scope = attributes(3, 2).prop_map(|mut a| {
        a.extend([(1, text("io.opentelemetry")), (2, text("1.0"))]);
        a
    });
    (scope, prop::collection::vec(span(), 0..6)).prop_flat_map(|(scope, spans)| {
        let mut f: Fields = vec![(1, msg(scope)), (3, text("https://x"))];
        f.extend(spans.into_iter().map(|s| (2, msg(s))));
        with_noise(f)
    })
}

fn resource_spans() -> impl Strategy<Value = Fields> {
    (
        prop::collection::vec(resource(), 0..3),
        prop::collection::vec(scope_spans(), 0..3),
    )
        .prop_flat_map(|(resources, scopes)| {
            // More than one `resource` merges; either may come after the spans.
            let mut f: Fields = resources.into_iter().map(|r| (1, msg(r))).collect();
            f.extend(scopes.into_iter().map(|s| (2, msg(s))));
            f.push((3, text("https://schema")));
            with_noise(f)
        })
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(resource_spans(), 0..3)
        .prop_flat_map(|rs| with_noise(rs.into_iter().map(|r| (1, msg(r))).collect()))
        .prop_map(|f| encode(&f))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fast_and_prost_give_identical_batches(bytes in request()) {
        prop_assert!(assert_same(&bytes).is_some(), "a well-formed request was refused");
    }

    #[test]
    fn broken_requests_are_refused_alike(
        bytes in request(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut garbled = bytes.clone();
        if !garbled.is_empty() {
            for (at, byte) in flips {
                let i = at.index(garbled.len());
                garbled[i] = byte;
            }
        }
        assert_same(&garbled);
        let cut = cut.index(bytes.len() + 1);
        assert_same(&bytes[..cut]);
    }
}

fn loadgen_request(shape: SpanShape, seed: u64) -> Vec<u8> {
    let mut generator = Generator::new(shape, seed);
    prost::Message::encode_to_vec(&generator.request(1_700_000_000_000_000_000))
}

fn standard_request(seed: u64) -> Vec<u8> {
    loadgen_request(SpanShape::default(), seed)
}

#[test]
fn every_truncation_of_a_real_request_is_handled_alike() {
    // A small batch: every cut decodes the rest twice (quadratic).
    let shape = SpanShape {
        batch: 24,
        ..SpanShape::default()
    };
    let bytes = loadgen_request(shape, 3);
    let whole = (0..bytes.len())
        .filter(|&cut| assert_same(&bytes[..cut]).is_some())
        .count();
    // Only cuts between the five ResourceSpans (one per service) leave a
    // well-formed request: the empty one and after each of the first four.
    assert_eq!(whole, 5);
}

#[test]
fn known_fields_with_the_wrong_wire_type_are_refused_alike() {
    // Span.name (5) as a varint, Span.start (7) as fixed32, Status.code (3) as bytes.
    let broken_spans: [Fields; 3] = [
        vec![(5, W::Varint(1))],
        vec![(7, W::Fixed32(1))],
        vec![(15, msg(vec![(3, W::Len(vec![2]))]))],
    ];
    for span in broken_spans {
        let rs = vec![(2, msg(vec![(2, msg(span))]))];
        let bytes = encode(&[(1, msg(rs))]);
        assert!(assert_same(&bytes).is_none());
        let err = otlp_fast::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("invalid wire type"), "{err}");
    }
}

#[test]
fn invalid_utf8_anywhere_is_refused_alike() {
    // An unread string: the scope's version.
    let scope = vec![(2, W::Len(vec![0xff, 0xfe]))];
    let rs = vec![(2, msg(vec![(1, msg(scope))]))];
    let bytes = encode(&[(1, msg(rs))]);
    assert!(assert_same(&bytes).is_none());
}

#[test]
fn nesting_past_prosts_limit_is_refused_alike() {
    // An attribute value of nested arrays: fine at 40 levels, refused at 60
    // (the request, resource spans, scope spans, span, key value and any
    // value already take six of prost's hundred).
    let nested = |levels: usize| {
        let mut any: Fields = vec![(3, W::Varint(1))];
        for _ in 0..levels {
            any = vec![(5, msg(vec![(1, msg(any))]))];
        }
        let span = vec![
            (1, W::Len(vec![1; 16])),
            (2, W::Len(vec![2; 8])),
            (7, W::Fixed64(1)),
            (8, W::Fixed64(2)),
            (9, msg(vec![(1, text("deep")), (2, msg(any))])),
        ];
        let rs = vec![(2, msg(vec![(2, msg(span))]))];
        encode(&[(1, msg(rs))])
    };
    let shallow = assert_same(&nested(40)).expect("40 levels decode");
    assert_eq!(shallow.spans.len(), 1);
    assert!(assert_same(&nested(60)).is_none());
    // The exact edge, both sides of it.
    let edge = (30..60)
        .find(|&n| assert_same(&nested(n)).is_none())
        .expect("some depth is refused");
    assert!(assert_same(&nested(edge - 1)).is_some());
}

#[test]
fn loadgen_requests_build_identical_graphs() {
    let mut fast_graph = OfflineGraph::new(GraphSettings::default());
    let mut prost_graph = OfflineGraph::new(GraphSettings::default());
    for seed in 1..=8 {
        let bytes = standard_request(seed);
        let batch = assert_same(&bytes).expect("loadgen requests are valid");
        assert_eq!(batch.spans.len(), 512);
        fast_graph.ingest(&batch.spans);
        let reference = otlp_proto::to_batch(otlp_proto::decode_request(&bytes).unwrap());
        prost_graph.ingest(&reference.spans);
    }
    let fast = serde_json::to_value(fast_graph.finish()).unwrap();
    let prost = serde_json::to_value(prost_graph.finish()).unwrap();
    for key in ["nodes", "edges", "unpaired", "paths", "clusters"] {
        assert_eq!(fast[key], prost[key], "{key} differ");
    }
    assert_eq!(fast["edges"].as_array().map(Vec::len), Some(4));
}

/// The generator reaches the cases that matter: accepted and refused spans,
/// links, failed spans with timeouts, kept attributes, resources' services.
#[test]
fn generated_requests_cover_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = request();
    let (mut accepted, mut rejected, mut linked, mut timed_out, mut peers, mut named) =
        (0, 0, 0, 0, 0, 0);
    for _ in 0..300 {
        let bytes = strategy.new_tree(&mut runner).unwrap().current();
        let batch = assert_same(&bytes).expect("well-formed");
        accepted += batch.spans.len();
        rejected += batch.rejected;
        for s in &batch.spans {
            linked += usize::from(!s.links.is_empty());
            timed_out += usize::from(s.attributes.timed_out);
            peers += usize::from(s.attributes.peer_service().is_some());
            named += usize::from(s.service().starts_with("svc-"));
        }
    }
    for (what, n) in [
        ("accepted", accepted),
        ("rejected", rejected as usize),
        ("linked", linked),
        ("timed out", timed_out),
        ("with peer.service", peers),
        ("with a service name", named),
    ] {
        assert!(n > 0, "no span {what} in 300 generated requests");
    }
}

/// The receivers answer alike with either decoder (`decoder: fast|prost`):
/// the same partial success for a refused span, the same status for bytes
/// that are not protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_decoders_answer_alike_on_the_wire() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    let mut bad = common::rpc_pair("a", "b", 7, 1_000).to_vec();
    bad[1].duration_us = 0;
    let mut request = common::request(&bad);
    let server = &mut request.resource_spans[1].scope_spans[0].spans[0];
    server.end_time_unix_nano = server.start_time_unix_nano - 1;
    server.kind = SpanKind::Server as i32;
    let body = prost::Message::encode_to_vec(&request);

    let mut answers = Vec::new();
    for decoder in ["fast", "prost"] {
        let grpc_line = format!("max_recv_msg_size_mib: 16\n        decoder: {decoder}");
        let http_line = format!("max_request_body_size_mib: 16\n        decoder: {decoder}");
        let running = common::serve_with(&[
            ("max_recv_msg_size_mib: 16", &grpc_line),
            ("max_request_body_size_mib: 16", &http_line),
        ])
        .await;
        let mut client = TraceServiceClient::connect(format!("http://{}", running.grpc.unwrap()))
            .await
            .unwrap();
        let grpc = client.export(request.clone()).await.unwrap().into_inner();
        let http = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", running.http.unwrap()))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(http.status(), 200);
        let http: ExportTraceServiceResponse =
            prost::Message::decode(http.bytes().await.unwrap()).unwrap();
        let garbage = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", running.http.unwrap()))
            .header("content-type", "application/x-protobuf")
            .body(vec![0x0a, 0xff, 0x01])
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.status(), 400, "{decoder}");
        assert_eq!(
            running.telemetry.accepted_total("otlp_grpc"),
            1,
            "{decoder}"
        );
        answers.push((grpc.partial_success, http.partial_success));
        running.stop().await.unwrap();
    }
    let (grpc, http) = &answers[0];
    let partial = grpc.as_ref().expect("one span refused");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("end_time_unix_nano is before"),
        "{}",
        partial.error_message
    );
    assert_eq!(grpc, http);
    assert_eq!(answers[0], answers[1], "fast and prost receivers differ");
}

#[test]
fn an_unknown_decoder_is_a_config_error_naming_the_key() {
    let text = faultline::config::DEFAULT_PIPELINE.replace(
        "max_recv_msg_size_mib: 16",
        "max_recv_msg_size_mib: 16\n        decoder: turbo",
    );
    let err = faultline::config::parse("p.yaml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("receivers.otlp.protocols.grpc.decoder"),
        "{err}"
    );
}
