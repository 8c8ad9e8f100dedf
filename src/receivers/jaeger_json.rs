//! Jaeger JSON importer: the UI's "Download JSON" and the query service's
//! `/api/traces` (and `/api/traces/{id}`) responses.
//!
//! Jaeger predates OpenTelemetry, so the notions the graph needs travel as
//! tags: the span kind is the `span.kind` tag, the status is `error` or
//! `otel.status_code`, and a parent is a `CHILD_OF` reference. The resource
//! lives apart from the spans, in a per-trace `processes` map that spans
//! point into by `processID`, which is why every process is resolved once
//! and its `Arc<Resource>` shared by all of its spans.
//!
//! Exports are read leniently: Go writes absent lists as `null`, tag values
//! may be typed by their `type` or only by their JSON type, and int64 tags
//! may be strings (JavaScript cannot hold them as numbers). A span that
//! cannot be used is counted in [`Batch::rejected`], never fatal; only a file
//! that is not Jaeger JSON at all is a [`DecodeError`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use crate::model::attributes::Value;
use crate::model::semconv as sc;
use crate::model::{
    Attributes, Link, RejectReason, Resource, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use crate::receivers::batch::parse_id;
use crate::receivers::{Batch, DecodeError};

/// Decodes a Jaeger JSON document: `{"data": [trace, ...]}` as the query
/// service and the UI write it, or a single trace object without the wrapper.
pub fn decode(bytes: &[u8]) -> Result<Batch, DecodeError> {
    let document: Document = serde_json::from_slice(bytes)?;
    let mut batch = Batch::default();
    let mut resources = Resources::default();
    for trace in document.into_traces()? {
        decode_trace(&trace, &mut resources, &mut batch);
    }
    Ok(batch)
}

/// The top level: either the query API's envelope or one bare trace, so both
/// shapes are read with one struct instead of an untagged enum, whose error
/// ("did not match any variant") would not say what is wrong.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    data: Option<Vec<Trace>>,
    #[serde(default)]
    errors: Option<Vec<QueryError>>,
    #[serde(default, rename = "traceID", deserialize_with = "nullable")]
    trace_id: String,
    #[serde(default)]
    spans: Option<Vec<RawSpan>>,
    #[serde(default, deserialize_with = "nullable")]
    processes: HashMap<String, RawProcess>,
}

/// An entry of the query API's `errors` list, e.g. "trace not found".
#[derive(Deserialize)]
struct QueryError {
    #[serde(default, deserialize_with = "nullable")]
    msg: String,
}

#[derive(Deserialize)]
struct Trace {
    #[serde(default, rename = "traceID", deserialize_with = "nullable")]
    trace_id: String,
    #[serde(default, deserialize_with = "nullable")]
    spans: Vec<RawSpan>,
    #[serde(default, deserialize_with = "nullable")]
    processes: HashMap<String, RawProcess>,
}

#[derive(Deserialize)]
struct RawSpan {
    #[serde(default, rename = "traceID", deserialize_with = "nullable")]
    trace_id: String,
    #[serde(default, rename = "spanID", deserialize_with = "nullable")]
    span_id: String,
    #[serde(default, rename = "operationName", deserialize_with = "nullable")]
    operation_name: String,
    #[serde(default, deserialize_with = "nullable")]
    references: Vec<Reference>,
    #[serde(default, rename = "startTime")]
    start_time: Json,
    #[serde(default)]
    duration: Json,
    #[serde(default, deserialize_with = "nullable")]
    tags: Vec<Tag>,
    #[serde(default, rename = "processID", deserialize_with = "nullable")]
    process_id: String,
    /// Jaeger's internal model embeds the process in each span instead.
    #[serde(default)]
    process: Option<RawProcess>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(default, rename = "refType", deserialize_with = "nullable")]
    ref_type: String,
    #[serde(default, rename = "traceID", deserialize_with = "nullable")]
    trace_id: String,
    #[serde(default, rename = "spanID", deserialize_with = "nullable")]
    span_id: String,
}

#[derive(Deserialize, Default)]
struct RawProcess {
    #[serde(default, rename = "serviceName", deserialize_with = "nullable")]
    service_name: String,
    #[serde(default, deserialize_with = "nullable")]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    #[serde(default, deserialize_with = "nullable")]
    key: String,
    #[serde(default, rename = "type", deserialize_with = "nullable")]
    kind: String,
    #[serde(default)]
    value: Json,
}

/// Reads `null` as the field's default: Go's encoder writes empty slices and
/// maps as `null`, which plain `#[serde(default)]` would refuse.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Document {
    fn into_traces(self) -> Result<Vec<Trace>, DecodeError> {
        if let Some(traces) = self.data {
            return Ok(traces);
        }
        if let Some(spans) = self.spans {
            let trace_id = self.trace_id;
            let processes = self.processes;
            return Ok(vec![Trace {
                trace_id,
                spans,
                processes,
            }]);
        }
        let messages: Vec<String> = self.errors.into_iter().flatten().map(|e| e.msg).collect();
        Err(DecodeError::Invalid(if messages.is_empty() {
            "not Jaeger JSON: expected a \"data\" array of traces or a \"spans\" array".into()
        } else {
            format!("Jaeger query returned errors: {}", messages.join("; "))
        }))
    }
}

/// What a span inherits from its process.
#[derive(Clone)]
struct Origin {
    resource: Arc<Resource>,
    attributes: Attributes,
}

/// Interns resources across the whole file: each trace repeats its
/// processes under fresh keys (`p1`, `p2`, ...), and a download of many
/// traces would otherwise hold one copy of the same service per trace.
/// Bucketed by service name; a service rarely has more than a few variants.
#[derive(Default)]
struct Resources {
    known: HashMap<Arc<str>, Vec<Arc<Resource>>>,
}

impl Resources {
    /// Reads a process as the OTLP receivers read a resource, with
    /// `serviceName` standing for `service.name` (last, so it wins over a
    /// stray tag of that name).
    fn origin(&mut self, process: &RawProcess) -> Origin {
        let tags = process
            .tags
            .iter()
            .filter_map(|tag| Some((tag.key.as_str(), TagValue::of(tag).as_attribute()?)));
        let service = (sc::SERVICE_NAME, Value::Str(&process.service_name));
        let (resource, attributes) = Resource::from_attributes(tags.chain([service]));
        Origin {
            resource: self.intern(resource),
            attributes,
        }
    }

    fn intern(&mut self, resource: Arc<Resource>) -> Arc<Resource> {
        let variants = self
            .known
            .entry(Arc::clone(&resource.service_name))
            .or_default();
        if let Some(known) = variants.iter().find(|known| **known == resource) {
            return Arc::clone(known);
        }
        variants.push(Arc::clone(&resource));
        resource
    }
}

fn decode_trace(trace: &Trace, resources: &mut Resources, batch: &mut Batch) {
    let processes: HashMap<&str, Origin> = trace
        .processes
        .iter()
        .map(|(id, process)| (id.as_str(), resources.origin(process)))
        .collect();
    // A span whose processID is missing from the map still counts; it just
    // has no known service, as an OTel SDK without `service.name` would say.
    let unknown = resources.origin(&RawProcess::default());
    for raw in &trace.spans {
        let inline = raw.process.as_ref().map(|p| resources.origin(p));
        let origin = inline
            .as_ref()
            .or_else(|| processes.get(raw.process_id.as_str()))
            .unwrap_or(&unknown);
        match convert(raw, &trace.trace_id, origin) {
            Ok(span) => batch.push(span),
            Err(reason) => batch.reject(reason, &raw.operation_name),
        }
    }
}

/// Turns one Jaeger span into a [`Span`]; `trace_hint` is the trace's own
/// `traceID`, used when a span leaves its own out.
fn convert(raw: &RawSpan, trace_hint: &str, origin: &Origin) -> Result<Span, RejectReason> {
    let trace_text = match raw.trace_id.trim() {
        "" => trace_hint,
        own => own,
    };
    let trace_id = parse_id::<16>(trace_text)?;
    let span_id = parse_id::<8>(&raw.span_id)?;
    let tags = SpanTags::read(&raw.tags);
    let (kind, status) = (tags.kind, tags.status());
    let (parent_span_id, links) = references(&raw.references, trace_id, kind);
    let mut attributes = tags.attributes;
    attributes.fill_from(&origin.attributes);
    let start = micros(&raw.start_time);
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        resource: Arc::clone(&origin.resource),
        name: raw.operation_name.as_str().into(),
        kind,
        start_unix_nano: nanos(start),
        end_unix_nano: nanos(start.saturating_add(micros(&raw.duration))),
        status,
        attributes,
        links,
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

/// The parent and the links a span's references describe.
///
/// The parent is the first `CHILD_OF` reference within the span's trace, or
/// failing that its first reference of any type there, as Jaeger's own model
/// picks it. A consumer's other `FOLLOWS_FROM` references are the producers
/// it read from, which is what [`Link`] carries in OTLP; for other kinds they
/// say nothing the graph uses and are dropped.
fn references(
    refs: &[Reference],
    trace_id: TraceId,
    kind: SpanKind,
) -> (Option<SpanId>, Vec<Link>) {
    let resolved: Vec<Resolved> = refs.iter().filter_map(|r| resolve(r, trace_id)).collect();
    let in_trace = |r: &&Resolved| r.link.trace_id == trace_id;
    let parent = resolved
        .iter()
        .filter(in_trace)
        .find(|r| !r.follows_from)
        .or_else(|| resolved.iter().find(|r| in_trace(r)))
        .map(|r| r.link);
    let links = match kind {
        SpanKind::Consumer => resolved
            .iter()
            .filter(|r| r.follows_from && Some(r.link) != parent)
            .map(|r| r.link)
            .collect(),
        _ => Vec::new(),
    };
    (parent.map(|p| p.span_id), links)
}

struct Resolved {
    follows_from: bool,
    link: Link,
}

/// Parses one reference; one that names no usable span is skipped rather
/// than refusing the whole span, since the span itself is still good.
fn resolve(reference: &Reference, trace_id: TraceId) -> Option<Resolved> {
    let span_id = parse_id::<8>(&reference.span_id).ok()?;
    if span_id == [0; 8] {
        return None;
    }
    let own = parse_id::<16>(&reference.trace_id).ok()?;
    Some(Resolved {
        follows_from: reference.ref_type.eq_ignore_ascii_case("FOLLOWS_FROM"),
        link: Link {
            trace_id: if own == [0; 16] { trace_id } else { own },
            span_id,
        },
    })
}

/// What a span's own tags say.
#[derive(Default)]
struct SpanTags {
    kind: SpanKind,
    otel_status: Option<StatusCode>,
    error: bool,
    attributes: Attributes,
}

impl SpanTags {
    fn read(tags: &[Tag]) -> SpanTags {
        let mut out = SpanTags::default();
        for tag in tags {
            let value = TagValue::of(tag);
            match (tag.key.as_str(), value) {
                ("span.kind", TagValue::Str(name)) => {
                    out.kind = SpanKind::from_name(name).unwrap_or_default();
                }
                ("otel.status_code", TagValue::Str(name)) => {
                    out.otel_status = StatusCode::from_name(name);
                }
                ("error", value) => out.error = value.is_true(),
                (key, value) => {
                    if let Some(value) = value.as_attribute() {
                        out.attributes.set(key, value);
                    }
                }
            }
        }
        out
    }

    /// ERROR if either tag says so: OTel's Jaeger exporter writes both, older
    /// Jaeger clients only `error=true`. Only an explicit OK is OK.
    fn status(&self) -> StatusCode {
        match self.otel_status {
            _ if self.error => StatusCode::Error,
            Some(code) => code,
            None => StatusCode::Unset,
        }
    }
}

/// A tag value, typed by the tag's `type` where the JSON type is a string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TagValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Float(f64),
    Other,
}

impl<'a> TagValue<'a> {
    fn of(tag: &'a Tag) -> TagValue<'a> {
        match &tag.value {
            Json::String(s) => TagValue::typed(&tag.kind, s),
            Json::Number(n) => n
                .as_i64()
                .map(TagValue::Int)
                .or_else(|| n.as_f64().map(TagValue::Float))
                .unwrap_or(TagValue::Other),
            Json::Bool(b) => TagValue::Bool(*b),
            _ => TagValue::Other,
        }
    }

    /// A string whose declared type is not string (int64 past 2^53, or an
    /// exporter that quotes everything); kept as text if it does not parse.
    fn typed(kind: &str, s: &'a str) -> TagValue<'a> {
        let t = s.trim();
        let parsed = match kind.to_ascii_lowercase().as_str() {
            "int64" => t.parse().ok().map(TagValue::Int),
            "float64" => t.parse().ok().map(TagValue::Float),
            "bool" => t.to_ascii_lowercase().parse().ok().map(TagValue::Bool),
            _ => None,
        };
        parsed.unwrap_or(TagValue::Str(s))
    }

    fn is_true(self) -> bool {
        match self {
            TagValue::Bool(b) => b,
            TagValue::Str(s) => s.trim().eq_ignore_ascii_case("true"),
            _ => false,
        }
    }

    /// Only strings and integers matter to the graph (see [`Value`]).
    fn as_attribute(self) -> Option<Value<'a>> {
        match self {
            TagValue::Str(s) => Some(Value::Str(s)),
            TagValue::Int(i) => Some(Value::Int(i)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

    /// A download as the Jaeger UI writes it: frontend serves a request and
    /// calls checkout, which fails.
    fn download() -> String {
        format!(
            r#"{{"data":[{{"traceID":"{TRACE}","spans":[
              {{"traceID":"{TRACE}","spanID":"00000000000000a1","operationName":"GET /cart",
                "references":[],"startTime":1700000000000000,"duration":25000,
                "tags":[{{"key":"span.kind","type":"string","value":"server"}},
                        {{"key":"http.status_code","type":"int64","value":200}},
                        {{"key":"otel.status_code","type":"string","value":"OK"}}],
                "logs":[],"processID":"p1","warnings":null}},
              {{"traceID":"{TRACE}","spanID":"00000000000000a2","operationName":"POST /checkout",
                "references":[{{"refType":"CHILD_OF","traceID":"{TRACE}","spanID":"00000000000000a1"}}],
                "startTime":1700000000001000,"duration":20000,
                "tags":[{{"key":"span.kind","type":"string","value":"client"}},
                        {{"key":"peer.service","type":"string","value":"checkout"}},
                        {{"key":"http.status_code","type":"int64","value":"503"}},
                        {{"key":"error","type":"bool","value":true}}],
                "processID":"p1"}},
              {{"traceID":"{TRACE}","spanID":"00000000000000a3","operationName":"render",
                "references":null,"startTime":1700000000002000,"duration":1000,
                "tags":null,"processID":"p1"}}],
             "processes":{{"p1":{{"serviceName":"frontend","tags":[
                {{"key":"k8s.namespace.name","type":"string","value":"shop"}},
                {{"key":"k8s.deployment.name","type":"string","value":"frontend-v2"}},
                {{"key":"db.system","type":"string","value":"postgresql"}}]}}}},
             "warnings":null}}],"total":0,"limit":0,"offset":0,"errors":null}}"#
        )
    }

    fn one(json: &str) -> Span {
        let batch = decode(json.as_bytes()).expect("decodes");
        assert_eq!(batch.rejected, 0, "{:?}", batch.first_error);
        assert_eq!(batch.spans.len(), 1);
        batch.spans.into_iter().next().expect("one span")
    }

    /// A bare trace with one span whose tags and references are given.
    fn bare(kind: &str, tags: &str, references: &str) -> String {
        format!(
            r#"{{"traceID":"{TRACE}","spans":[{{"spanID":"00000000000000b1","operationName":"op",
              "references":[{references}],"startTime":1700000000000000,"duration":1,
              "tags":[{{"key":"span.kind","type":"string","value":"{kind}"}}{tags}],"processID":"p1"}}],
              "processes":{{"p1":{{"serviceName":"svc","tags":[]}}}}}}"#
        )
    }

    #[test]
    fn reads_a_ui_download() {
        let batch = decode(download().as_bytes()).expect("decodes");
        assert_eq!((batch.spans.len(), batch.rejected), (3, 0));
        let [server, client, local] = &batch.spans[..] else {
            panic!("three spans");
        };
        assert_eq!(server.trace_id, parse_id::<16>(TRACE).expect("hex"));
        assert_eq!(server.span_id, [0, 0, 0, 0, 0, 0, 0, 0xa1]);
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.parent_span_id, None);
        assert_eq!(server.start_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(server.duration_nanos(), 25_000_000);
        assert_eq!(server.status, StatusCode::Ok);
        assert_eq!(server.attributes.http_status_code, Some(200));
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.parent_span_id, Some(server.span_id));
        assert_eq!(client.duration_nanos(), 20_000_000);
        assert_eq!(client.status, StatusCode::Error);
        assert_eq!(client.attributes.peer_service(), Some("checkout"));
        assert_eq!(client.attributes.http_status_code, Some(503));
        assert_eq!(local.kind, SpanKind::Unspecified);
        assert_eq!(local.status, StatusCode::Unset);
        assert!(local.links.is_empty());
    }

    #[test]
    fn process_becomes_one_shared_resource() {
        let batch = decode(download().as_bytes()).expect("decodes");
        let resource = &batch.spans[0].resource;
        assert_eq!(&*resource.service_name, "frontend");
        assert_eq!(resource.k8s_namespace.as_deref(), Some("shop"));
        assert_eq!(resource.k8s_deployment.as_deref(), Some("frontend-v2"));
        assert!(batch
            .spans
            .iter()
            .all(|s| Arc::ptr_eq(&s.resource, resource)));
        // Process tags fill what the span leaves unset.
        assert_eq!(batch.spans[2].attributes.db_system(), Some("postgresql"));
    }

    #[test]
    fn accepts_a_bare_trace_and_an_inline_process() {
        let span = one(&bare("producer", "", ""));
        assert_eq!(span.kind, SpanKind::Producer);
        assert_eq!(&**span.service(), "svc");
        let inline = format!(
            r#"{{"spans":[{{"traceID":"{TRACE}","spanID":"1","operationName":"op","startTime":5,"duration":2,
              "process":{{"serviceName":"inline","tags":[{{"key":"k8s.namespace.name","value":"ns"}}]}}}}]}}"#
        );
        let span = one(&inline);
        assert_eq!(&**span.service(), "inline");
        assert_eq!(span.resource.k8s_namespace.as_deref(), Some("ns"));
        assert_eq!(span.span_id, [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!((span.start_unix_nano, span.end_unix_nano), (5_000, 7_000));
    }

    #[test]
    fn unknown_process_is_the_unknown_service() {
        let json = bare("server", "", "").replace(r#""processID":"p1""#, r#""processID":"p9""#);
        assert_eq!(&**one(&json).service(), Resource::UNKNOWN_SERVICE);
    }

    #[test]
    fn consumer_follows_from_another_trace_is_a_link() {
        let other = "11111111111111111111111111111111";
        let refs = format!(
            r#"{{"refType":"FOLLOWS_FROM","traceID":"{other}","spanID":"00000000000000c1"}}"#
        );
        let span = one(&bare("consumer", "", &refs));
        assert_eq!(span.parent_span_id, None);
        assert_eq!(
            span.links,
            vec![Link {
                trace_id: [0x11; 16],
                span_id: [0, 0, 0, 0, 0, 0, 0, 0xc1]
            }]
        );
    }

    #[test]
    fn child_of_wins_the_parent_and_other_follows_from_are_links() {
        let refs = format!(
            r#"{{"refType":"FOLLOWS_FROM","traceID":"{TRACE}","spanID":"00000000000000c1"}},
               {{"refType":"CHILD_OF","traceID":"{TRACE}","spanID":"00000000000000c2"}}"#
        );
        let consumer = one(&bare("consumer", "", &refs));
        assert_eq!(consumer.parent_span_id, Some([0, 0, 0, 0, 0, 0, 0, 0xc2]));
        assert_eq!(consumer.links.len(), 1);
        assert_eq!(consumer.links[0].span_id, [0, 0, 0, 0, 0, 0, 0, 0xc1]);
        // Not a consumer: the same references give the parent and no link.
        let server = one(&bare("server", "", &refs));
        assert_eq!(server.parent_span_id, consumer.parent_span_id);
        assert!(server.links.is_empty());
    }

    #[test]
    fn lone_follows_from_in_the_trace_is_the_parent_not_also_a_link() {
        let refs = format!(
            r#"{{"refType":"FOLLOWS_FROM","traceID":"{TRACE}","spanID":"00000000000000c1"}}"#
        );
        let span = one(&bare("consumer", "", &refs));
        assert_eq!(span.parent_span_id, Some([0, 0, 0, 0, 0, 0, 0, 0xc1]));
        assert!(span.links.is_empty());
    }

    #[test]
    fn error_and_status_tags_in_every_spelling() {
        let status = |tags: &str| one(&bare("client", tags, "")).status;
        let tag = |key: &str, ty: &str, value: &str| {
            format!(r#",{{"key":"{key}","type":"{ty}","value":{value}}}"#)
        };
        assert_eq!(status(&tag("error", "bool", "true")), StatusCode::Error);
        assert_eq!(
            status(&tag("error", "bool", r#""true""#)),
            StatusCode::Error
        );
        assert_eq!(
            status(&tag("error", "string", r#""TRUE""#)),
            StatusCode::Error
        );
        assert_eq!(status(&tag("error", "bool", "false")), StatusCode::Unset);
        assert_eq!(
            status(&tag("otel.status_code", "string", r#""ERROR""#)),
            StatusCode::Error
        );
        assert_eq!(
            status(&tag("otel.status_code", "string", r#""OK""#)),
            StatusCode::Ok
        );
        let both = tag("otel.status_code", "string", r#""OK""#) + &tag("error", "bool", "true");
        assert_eq!(status(&both), StatusCode::Error);
    }

    #[test]
    fn tag_types_feed_attributes() {
        let tags = [
            r#",{"key":"network.peer.port","type":"int64","value":5432}"#,
            r#",{"key":"rpc.grpc.status_code","type":"int64","value":"14"}"#,
            r#",{"key":"db.name","type":"string","value":"orders"}"#,
            r#",{"key":"db.system","type":"bool","value":true}"#,
            r#",{"key":"http.status_code","type":"float64","value":500.0}"#,
        ]
        .concat();
        let attributes = one(&bare("client", &tags, "")).attributes;
        assert_eq!(attributes.network_peer_port(), Some("5432"));
        assert_eq!(attributes.rpc_grpc_status_code, Some(14));
        assert_eq!(attributes.db_name(), Some("orders"));
        assert_eq!(attributes.db_system(), None);
        assert_eq!(attributes.http_status_code, None);
    }

    #[test]
    fn bad_spans_are_counted_not_fatal() {
        let json = download()
            .replace(
                "00000000000000a1\",\"operationName",
                "0000000000000000\",\"operationName",
            )
            .replace("00000000000000a3", "not-an-id!");
        let batch = decode(json.as_bytes()).expect("decodes");
        assert_eq!((batch.spans.len(), batch.rejected), (1, 2));
        let first = batch.first_error.expect("a message");
        assert!(
            first.contains("GET /cart") && first.contains("span_id"),
            "{first}"
        );
        let negative = bare("client", "", "").replace(r#""duration":1"#, r#""duration":-5"#);
        assert_eq!(decode(negative.as_bytes()).expect("decodes").rejected, 1);
    }

    #[test]
    fn what_is_not_jaeger_json_is_an_error() {
        assert!(matches!(
            decode(b"{\"data\": [").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(
            decode(b"[1, 2]").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(
            decode(b"{\"resourceSpans\":[]}").unwrap_err(),
            DecodeError::Invalid(_)
        ));
        let not_found = br#"{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}"#;
        let err = decode(not_found).unwrap_err().to_string();
        assert!(err.contains("trace not found"), "{err}");
        let empty = decode(br#"{"data":[]}"#).expect("an empty result is fine");
        assert_eq!((empty.spans.len(), empty.rejected), (0, 0));
    }

    /// The shared fixture (tests/fixtures/make_formats.py) decodes whole.
    #[test]
    fn decodes_the_shop_fixture() {
        let bytes = include_bytes!("../../tests/fixtures/formats/shop.jaeger.json");
        let batch = decode(bytes).expect("decodes");
        assert_eq!((batch.spans.len(), batch.rejected), (25, 0));
        let count = |service: &str, kind: SpanKind| {
            let of = |s: &&Span| &**s.service() == service && s.kind == kind;
            batch.spans.iter().filter(of).count()
        };
        assert_eq!(count("frontend", SpanKind::Server), 3);
        assert_eq!(count("checkout", SpanKind::Producer), 2);
        assert_eq!(count("notifier", SpanKind::Consumer), 2);
        let errors: Vec<_> = batch
            .spans
            .iter()
            .filter(|s| s.status == StatusCode::Error)
            .collect();
        assert_eq!(
            errors.len(),
            2,
            "payments' server span and checkout's call to it"
        );
        let consumer = batch
            .spans
            .iter()
            .find(|s| s.kind == SpanKind::Consumer)
            .expect("a consumer");
        let producer = batch
            .spans
            .iter()
            .find(|s| s.kind == SpanKind::Producer)
            .expect("a producer");
        assert_eq!(consumer.parent_span_id, Some(producer.span_id));
        assert_eq!(consumer.attributes.messaging_destination(), Some("orders"));
        assert_eq!(consumer.resource.k8s_namespace.as_deref(), Some("shop"));
        // Each trace names its processes anew; the services are still 4.
        let mut resources: Vec<_> = batch
            .spans
            .iter()
            .map(|s| Arc::as_ptr(&s.resource))
            .collect();
        resources.sort();
        resources.dedup();
        assert_eq!(resources.len(), 4);
    }
}
