//! Zipkin v2 JSON importer: a file of spans as `POST /api/v2/spans` takes
//! them (one array), or as `GET /api/v2/traces` returns them (an array of
//! traces, each an array of spans).
//!
//! Zipkin differs from OTLP in three ways that matter to the graph:
//!
//! - The peer of a call is the `remoteEndpoint`, not an attribute, so its
//!   service name becomes `peer.service` and its address `network.peer.*`.
//! - Errors are the mere presence of an `error` tag, whatever its text.
//! - B3 propagation lets a server report its side of an RPC under the very
//!   span id its client used (`"shared": true`). The graph needs one id per
//!   side, so the server side gets a new id and the shared one as parent,
//!   which is what the same call looks like when the server side is
//!   instrumented with OpenTelemetry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use crate::model::attributes::Value;
use crate::model::semconv as sc;
use crate::model::{
    Attributes, RejectReason, Resource, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use crate::receivers::batch::parse_id;
use crate::receivers::{Batch, DecodeError};

/// Decodes a Zipkin v2 JSON array of spans, or an array of such arrays.
pub fn decode(bytes: &[u8]) -> Result<Batch, DecodeError> {
    let spans: Vec<RawSpan> = if is_nested(bytes) {
        let traces: Vec<Vec<RawSpan>> = serde_json::from_slice(bytes)?;
        traces.into_iter().flatten().collect()
    } else {
        serde_json::from_slice(bytes)?
    };
    let shared = SharedServers::collect(&spans);
    let mut services = Services::default();
    let mut batch = Batch::default();
    for raw in &spans {
        match convert(raw, &shared, &mut services) {
            Ok(span) => batch.push(span),
            Err(reason) => batch.reject(reason, &raw.name),
        }
    }
    Ok(batch)
}

/// Whether the document opens with `[[`, i.e. is a list of traces. Peeking
/// keeps serde's error messages precise, which an untagged enum would lose.
fn is_nested(bytes: &[u8]) -> bool {
    let mut significant = bytes.iter().filter(|b| !b.is_ascii_whitespace());
    significant.next() == Some(&b'[') && significant.next() == Some(&b'[')
}

#[derive(Deserialize)]
struct RawSpan {
    #[serde(default, rename = "traceId", deserialize_with = "nullable")]
    trace_id: String,
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, rename = "parentId", deserialize_with = "nullable")]
    parent_id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default)]
    timestamp: Json,
    #[serde(default)]
    duration: Json,
    #[serde(default, rename = "localEndpoint", deserialize_with = "nullable")]
    local_endpoint: Endpoint,
    #[serde(default, rename = "remoteEndpoint")]
    remote_endpoint: Option<Endpoint>,
    /// Ordered so that a file decodes the same way every time, even when two
    /// keys (e.g. `http.status_code` and its new name) fill one attribute.
    #[serde(default, deserialize_with = "nullable")]
    tags: BTreeMap<String, Json>,
    #[serde(default, deserialize_with = "nullable")]
    shared: bool,
}

#[derive(Deserialize, Default)]
struct Endpoint {
    #[serde(default, rename = "serviceName", deserialize_with = "nullable")]
    service_name: String,
    #[serde(default, deserialize_with = "nullable")]
    ipv4: String,
    #[serde(default, deserialize_with = "nullable")]
    ipv6: String,
    #[serde(default)]
    port: Option<i64>,
}

/// Reads `null` as the field's default, as some Zipkin clients write
/// absent fields, which plain `#[serde(default)]` would refuse.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl RawSpan {
    fn service(&self) -> &str {
        match self.local_endpoint.service_name.trim() {
            "" => Resource::UNKNOWN_SERVICE,
            name => name,
        }
    }

    /// Zipkin leaves `kind` out for local (in-process) spans.
    fn span_kind(&self) -> SpanKind {
        match self.kind.trim() {
            "" => SpanKind::Internal,
            name => SpanKind::from_name(name).unwrap_or_default(),
        }
    }

    fn is_shared_server(&self) -> bool {
        self.shared && self.span_kind() == SpanKind::Server
    }

    fn ids(&self) -> Result<(TraceId, SpanId), RejectReason> {
        Ok((parse_id::<16>(&self.trace_id)?, parse_id::<8>(&self.id)?))
    }
}

/// The new ids of shared server spans, keyed by trace, shared id and the
/// server's service. The service is in the key because the server's own
/// children name the shared id as their parent too, and must be moved under
/// the server side, while the client's children stay where they are.
struct SharedServers(HashMap<(TraceId, SpanId, String), SpanId>);

impl SharedServers {
    fn collect(spans: &[RawSpan]) -> SharedServers {
        let map = spans
            .iter()
            .filter(|raw| raw.is_shared_server())
            .filter_map(|raw| {
                let (trace_id, span_id) = raw.ids().ok()?;
                let key = (trace_id, span_id, raw.service().to_owned());
                Some((key, server_side_id(&trace_id, &span_id)))
            })
            .collect();
        SharedServers(map)
    }

    /// The server side's id for a span of `service` whose parent is `parent`.
    fn get(&self, trace_id: TraceId, parent: SpanId, service: &str) -> Option<SpanId> {
        // Looked up only when some shared span exists, so plain files pay nothing.
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&(trace_id, parent, service.to_owned())).copied()
    }
}

/// A deterministic id for the server side of a shared span: FNV-1a of the
/// trace id, the shared id and `"server"`, so re-importing a file yields the
/// same ids (std's hasher may change between Rust releases). Never zero and
/// never the shared id itself.
fn server_side_id(trace_id: &TraceId, span_id: &SpanId) -> SpanId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in trace_id.iter().chain(span_id).chain(b"server") {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash == 0 || hash.to_be_bytes() == *span_id {
        hash ^= 0x5a5a_5a5a_5a5a_5a5a;
    }
    hash.to_be_bytes()
}

/// One [`Resource`] per service name; Zipkin has no other resource fields.
#[derive(Default)]
struct Services(HashMap<String, Arc<Resource>>);

impl Services {
    fn resource(&mut self, name: &str) -> Arc<Resource> {
        if let Some(resource) = self.0.get(name) {
            return Arc::clone(resource);
        }
        let resource = Arc::new(Resource {
            service_name: name.into(),
            ..Resource::default()
        });
        self.0.insert(name.to_owned(), Arc::clone(&resource));
        resource
    }
}

fn convert(
    raw: &RawSpan,
    shared: &SharedServers,
    services: &mut Services,
) -> Result<Span, RejectReason> {
    let (trace_id, id) = raw.ids()?;
    let (span_id, parent_span_id) = if raw.is_shared_server() {
        (server_side_id(&trace_id, &id), Some(id))
    } else {
        let parent = parse_id::<8>(&raw.parent_id)?;
        let parent = (parent != [0; 8]).then_some(parent);
        let moved = parent.and_then(|p| shared.get(trace_id, p, raw.service()));
        (id, moved.or(parent))
    };
    let kind = raw.span_kind();
    let start = micros(&raw.timestamp);
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        resource: services.resource(raw.service()),
        name: raw.name.as_str().into(),
        kind,
        start_unix_nano: nanos(start),
        end_unix_nano: nanos(start.saturating_add(micros(&raw.duration))),
        status: status(&raw.tags),
        attributes: attributes(raw, kind),
        links: Vec::new(),
    })
}

/// Reads a microsecond count written as an integer, a float or a string.
/// Anything unreadable is 0, which [`Span::validate`] then refuses by name.
fn micros(value: &Json) -> i64 {
    match value {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Json::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Microseconds to nanoseconds. A negative time becomes 0, so a negative
/// duration yields an end before the start and the span is refused for it.
fn nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
}

/// Zipkin marks a failure by the presence of an `error` tag (its value is
/// the message, possibly empty); OTel's exporter adds `otel.status_code`.
fn status(tags: &BTreeMap<String, Json>) -> StatusCode {
    if tags.contains_key("error") {
        return StatusCode::Error;
    }
    match tags.get("otel.status_code") {
        Some(Json::String(code)) => StatusCode::from_name(code).unwrap_or_default(),
        _ => StatusCode::Unset,
    }
}

/// The remote endpoint first, then the tags, so an explicit tag wins.
fn attributes(raw: &RawSpan, kind: SpanKind) -> Attributes {
    let mut attributes = Attributes::default();
    if let Some(remote) = &raw.remote_endpoint {
        remote_attributes(remote, kind, &mut attributes);
    }
    for (key, value) in &raw.tags {
        if let Some(value) = tag_value(value) {
            attributes.set(key, value);
        }
    }
    attributes
}

/// The remote service is the callee only on the calling side; on a server
/// it names the caller, which is not what `peer.service` means.
fn remote_attributes(remote: &Endpoint, kind: SpanKind, attributes: &mut Attributes) {
    let service = remote.service_name.trim();
    if kind.is_outbound() && !service.is_empty() {
        attributes.set(sc::PEER_SERVICE, Value::Str(service));
    }
    let address = [remote.ipv4.trim(), remote.ipv6.trim()]
        .into_iter()
        .find(|a| !a.is_empty());
    if let Some(address) = address {
        attributes.set(sc::NETWORK_PEER_ADDRESS, Value::Str(address));
    }
    if let Some(port) = remote.port.filter(|p| *p > 0) {
        attributes.set(sc::NETWORK_PEER_PORT, Value::Int(port));
    }
}

/// Tags are strings in the spec; some clients write numbers anyway.
fn tag_value(value: &Json) -> Option<Value<'_>> {
    match value {
        Json::String(s) => Some(Value::Str(s)),
        Json::Number(n) => n.as_i64().map(Value::Int),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// frontend calls checkout (distinct ids, as OTel's exporter writes them);
    /// checkout queries postgres, which only the client side reports.
    const SPANS: &str = r#"[
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a1","name":"get /cart","kind":"SERVER",
       "timestamp":1700000000000000,"duration":25000,
       "localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1"},
       "remoteEndpoint":{"serviceName":"browser","ipv4":"192.0.2.7","port":51000},
       "tags":{"http.status_code":"200","otel.status_code":"OK"}},
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a2","parentId":"00000000000000a1",
       "name":"post /checkout","kind":"CLIENT","timestamp":1700000000001000,"duration":20000,
       "localEndpoint":{"serviceName":"frontend"},
       "remoteEndpoint":{"serviceName":"checkout","ipv6":"2001:db8::1","port":8080},
       "tags":{"http.status_code":"503","error":""}},
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a3","parentId":"00000000000000a2",
       "name":"select","kind":"CLIENT","timestamp":1700000000002000,"duration":3000,
       "localEndpoint":{"serviceName":"checkout"},
       "tags":{"db.system":"postgresql","db.name":"orders","network.peer.port":"5432"}}
    ]"#;

    const TRACE: TraceId = [
        0, 0, 0, 0, 0, 0, 0, 0, 0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad,
    ];

    fn id(last: u8) -> SpanId {
        [0, 0, 0, 0, 0, 0, 0, last]
    }

    fn decoded(json: &str) -> Batch {
        let batch = decode(json.as_bytes()).expect("decodes");
        assert_eq!(batch.rejected, 0, "{:?}", batch.first_error);
        batch
    }

    #[test]
    fn reads_kinds_parents_times_and_status() {
        let batch = decoded(SPANS);
        let [server, client, db] = &batch.spans[..] else {
            panic!("three spans");
        };
        assert_eq!(server.trace_id, TRACE, "64-bit trace ids are left-padded");
        assert_eq!(
            (server.kind, server.parent_span_id),
            (SpanKind::Server, None)
        );
        assert_eq!(server.start_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(server.duration_nanos(), 25_000_000);
        assert_eq!(server.status, StatusCode::Ok);
        assert_eq!(server.attributes.http_status_code, Some(200));
        assert_eq!(
            (client.kind, client.parent_span_id),
            (SpanKind::Client, Some(id(0xa1)))
        );
        assert_eq!(client.duration_nanos(), 20_000_000);
        assert_eq!(
            client.status,
            StatusCode::Error,
            "an empty error tag still marks a failure"
        );
        assert_eq!(db.parent_span_id, Some(id(0xa2)));
        assert_eq!(db.attributes.db_system(), Some("postgresql"));
        assert_eq!(db.attributes.db_name(), Some("orders"));
        assert_eq!(db.attributes.network_peer_port(), Some("5432"));
        assert_eq!(db.status, StatusCode::Unset);
    }

    #[test]
    fn remote_endpoint_names_the_peer_of_outbound_spans_only() {
        let batch = decoded(SPANS);
        let (server, client) = (&batch.spans[0].attributes, &batch.spans[1].attributes);
        assert_eq!(client.peer_service(), Some("checkout"));
        assert_eq!(client.network_peer_address(), Some("2001:db8::1"));
        assert_eq!(client.network_peer_port(), Some("8080"));
        assert_eq!(
            server.peer_service(),
            None,
            "a server's remote is its caller"
        );
        assert_eq!(server.network_peer_address(), Some("192.0.2.7"));
    }

    #[test]
    fn one_resource_per_service() {
        let batch = decoded(SPANS);
        let s = &batch.spans;
        assert_eq!(&*s[0].resource.service_name, "frontend");
        assert!(Arc::ptr_eq(&s[0].resource, &s[1].resource));
        assert_eq!(&*s[2].resource.service_name, "checkout");
        let anonymous = decoded(r#"[{"traceId":"1","id":"2","timestamp":10,"duration":1}]"#);
        let span = &anonymous.spans[0];
        assert_eq!(&*span.resource.service_name, Resource::UNKNOWN_SERVICE);
        assert_eq!(
            span.kind,
            SpanKind::Internal,
            "Zipkin omits the kind of local spans"
        );
    }

    #[test]
    fn accepts_the_traces_api_shape() {
        let nested = format!("  [ {SPANS}, [] ]");
        assert_eq!(decoded(&nested).spans, decoded(SPANS).spans);
        assert_eq!(decoded("[]").spans.len(), 0);
        assert_eq!(decoded("[[]]").spans.len(), 0);
    }

    /// B3 shared span: checkout reports its server side under frontend's
    /// client id `a2`, and its own database call names `a2` as parent too.
    const SHARED: &str = r#"[
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a2","parentId":"00000000000000a1",
       "name":"post /checkout","kind":"CLIENT","timestamp":1000,"duration":20,
       "localEndpoint":{"serviceName":"frontend"}},
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a2","parentId":"00000000000000a1",
       "name":"post /checkout","kind":"SERVER","timestamp":1002,"duration":16,"shared":true,
       "localEndpoint":{"serviceName":"checkout"}},
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a3","parentId":"00000000000000a2",
       "name":"select","kind":"CLIENT","timestamp":1004,"duration":3,
       "localEndpoint":{"serviceName":"checkout"}},
      {"traceId":"463ac35c9f6413ad","id":"00000000000000a4","parentId":"00000000000000a2",
       "name":"retry-timer","timestamp":1001,"duration":1,
       "localEndpoint":{"serviceName":"frontend"}}
    ]"#;

    #[test]
    fn shared_server_spans_get_their_own_id() {
        let batch = decoded(SHARED);
        let [client, server, db, timer] = &batch.spans[..] else {
            panic!("four spans");
        };
        assert_eq!(
            (client.span_id, client.parent_span_id),
            (id(0xa2), Some(id(0xa1)))
        );
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(
            server.parent_span_id,
            Some(id(0xa2)),
            "the client is the server's parent"
        );
        assert_ne!(server.span_id, id(0xa2));
        assert_ne!(server.span_id, [0; 8]);
        assert_eq!(server.span_id, server_side_id(&TRACE, &id(0xa2)));
        assert_eq!(
            db.parent_span_id,
            Some(server.span_id),
            "checkout's own work moves under its server side"
        );
        assert_eq!(
            timer.parent_span_id,
            Some(id(0xa2)),
            "frontend's stays under the client"
        );
        assert_eq!(decoded(SHARED).spans, batch.spans, "ids are deterministic");
    }

    #[test]
    fn shared_flag_on_a_client_changes_nothing() {
        let json = SPANS.replace(
            r#""kind":"CLIENT","timestamp":1700000000001000"#,
            r#""kind":"CLIENT","shared":true,"timestamp":1700000000001000"#,
        );
        assert_eq!(decoded(&json).spans, decoded(SPANS).spans);
    }

    #[test]
    fn otel_status_code_tag_is_read() {
        let span = |tags: &str| {
            let json = format!(r#"[{{"traceId":"1","id":"2","timestamp":10,"tags":{tags}}}]"#);
            decoded(&json).spans[0].status
        };
        assert_eq!(span(r#"{"otel.status_code":"ERROR"}"#), StatusCode::Error);
        assert_eq!(span(r#"{"otel.status_code":"OK"}"#), StatusCode::Ok);
        assert_eq!(
            span(r#"{"otel.status_code":"OK","error":"boom"}"#),
            StatusCode::Error
        );
        assert_eq!(span("null"), StatusCode::Unset);
    }

    #[test]
    fn bad_spans_are_counted_not_fatal() {
        let json = r#"[
          {"traceId":"1","id":"0000000000000000","name":"zero id","timestamp":10},
          {"traceId":"1","id":"2","name":"no timestamp"},
          {"traceId":"1","id":"3","parentId":"xyz!","name":"bad parent","timestamp":10},
          {"traceId":"1","id":"4","name":"negative","timestamp":10,"duration":-3},
          {"traceId":"1","id":"5","name":"fine","timestamp":10,"duration":null}
        ]"#;
        let batch = decode(json.as_bytes()).expect("decodes");
        assert_eq!((batch.spans.len(), batch.rejected), (1, 4));
        assert_eq!(&*batch.spans[0].name, "fine");
        let first = batch.first_error.expect("a message");
        assert!(
            first.contains("zero id") && first.contains("span_id"),
            "{first}"
        );
    }

    #[test]
    fn what_is_not_zipkin_json_is_an_error() {
        assert!(matches!(
            decode(b"[{\"traceId\":").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(
            decode(b"{\"data\":[]}").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(
            decode(b"[[1]]").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(decode(b"").unwrap_err(), DecodeError::Json(_)));
    }

    /// The shared fixture (tests/fixtures/make_formats.py) decodes whole.
    #[test]
    fn decodes_the_shop_fixture() {
        let bytes = include_bytes!("../../tests/fixtures/formats/shop.zipkin.json");
        let batch = decoded(std::str::from_utf8(bytes).expect("utf-8"));
        assert_eq!(batch.spans.len(), 25);
        let geo: Vec<_> = batch
            .spans
            .iter()
            .filter(|s| s.attributes.peer_service().is_some())
            .collect();
        assert_eq!(geo.len(), 2);
        assert!(geo
            .iter()
            .all(|s| s.attributes.peer_service() == Some("geo-api")));
        let errors = batch
            .spans
            .iter()
            .filter(|s| s.status == StatusCode::Error)
            .count();
        assert_eq!(errors, 2, "payments' server span and checkout's call to it");
        let db = batch
            .spans
            .iter()
            .filter(|s| s.attributes.is_database())
            .count();
        assert_eq!(db, 4);
        let roots = batch.spans.iter().filter(|s| s.is_root()).count();
        assert_eq!(roots, 3);
    }
}
