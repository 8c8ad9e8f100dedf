//! OTLP JSON → [`Batch`]: the OTLP/HTTP JSON body and the file exporters' output.
//!
//! Written against the OTLP spec's JSON mapping rather than derived from the
//! prost types, because real files differ from the spec in ways a strict
//! decoder would refuse: Go's jsonpb writes ids in base64 and enums by name,
//! older SDKs write `instrumentationLibrarySpans`, and 64-bit integers come
//! as strings or numbers. Unknown fields are ignored, as the spec requires.

use std::sync::Arc;

use serde::Deserialize;

use super::batch::{parse_id, Batch, DecodeError};
use crate::model::attributes::Value;
use crate::model::{Attributes, Link, RejectReason, Resource, Span, SpanKind, StatusCode};

/// Decodes one `ExportTraceServiceRequest` in JSON.
pub fn decode(bytes: &[u8]) -> Result<Batch, DecodeError> {
    let request: Request = serde_json::from_slice(bytes)?;
    Ok(request.into_batch())
}

/// Decodes a file of requests: one per file, one per line (JSON lines), or
/// simply concatenated. `progress` hears the byte offset after each request.
pub fn decode_stream(bytes: &[u8], progress: &dyn Fn(u64)) -> Result<Batch, DecodeError> {
    let mut batch = Batch::default();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Request>();
    while let Some(request) = stream.next() {
        batch.extend(request?.into_batch());
        progress(stream.byte_offset() as u64);
    }
    Ok(batch)
}

#[derive(Deserialize)]
struct Request {
    #[serde(default, alias = "resource_spans", rename = "resourceSpans")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize)]
struct ResourceSpans {
    #[serde(default)]
    resource: Option<ResourceJson>,
    #[serde(
        default,
        rename = "scopeSpans",
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans"
    )]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Deserialize, Default)]
struct ResourceJson {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ScopeSpans {
    #[serde(default)]
    spans: Vec<SpanJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpanJson {
    #[serde(default, alias = "trace_id")]
    trace_id: String,
    #[serde(default, alias = "span_id")]
    span_id: String,
    #[serde(default, alias = "parent_span_id")]
    parent_span_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: Option<NumOrStr>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<NumOrStr>,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<NumOrStr>,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    links: Vec<LinkJson>,
    #[serde(default)]
    status: Option<StatusJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkJson {
    #[serde(default, alias = "trace_id")]
    trace_id: String,
    #[serde(default, alias = "span_id")]
    span_id: String,
}

#[derive(Deserialize)]
struct StatusJson {
    #[serde(default)]
    code: Option<NumOrStr>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: Option<AnyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    #[serde(default, alias = "string_value")]
    string_value: Option<String>,
    #[serde(default, alias = "int_value")]
    int_value: Option<NumOrStr>,
}

/// A protobuf-JSON scalar: 64-bit integers and enums arrive as numbers or strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(serde_json::Number),
    Str(String),
}

impl NumOrStr {
    fn as_u64(&self) -> Option<u64> {
        match self {
            NumOrStr::Num(n) => n.as_u64(),
            NumOrStr::Str(s) => s.trim().parse().ok(),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            NumOrStr::Num(n) => n.as_i64(),
            NumOrStr::Str(s) => s.trim().parse().ok(),
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            NumOrStr::Str(s) => Some(s),
            NumOrStr::Num(_) => None,
        }
    }
}

impl KeyValue {
    fn value(&self) -> Option<Value<'_>> {
        let v = self.value.as_ref()?;
        if let Some(s) = &v.string_value {
            return Some(Value::Str(s));
        }
        v.int_value.as_ref()?.as_i64().map(Value::Int)
    }
}

impl Request {
    fn into_batch(self) -> Batch {
        let mut batch = Batch::default();
        for rs in self.resource_spans {
            let attrs = rs.resource.unwrap_or_default().attributes;
            let (resource, res_attrs) = Resource::from_attributes(
                attrs
                    .iter()
                    .filter_map(|kv| Some((kv.key.as_str(), kv.value()?))),
            );
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                match span.into_span(&resource, &res_attrs) {
                    Ok(span) => batch.push(span),
                    Err((reason, name)) => batch.reject(reason, &name),
                }
            }
        }
        batch
    }
}

impl SpanJson {
    fn into_span(
        self,
        resource: &Arc<Resource>,
        res_attrs: &Attributes,
    ) -> Result<Span, (RejectReason, String)> {
        let fail = |r| (r, self.name.clone());
        let trace_id = parse_id::<16>(&self.trace_id).map_err(fail)?;
        let span_id = parse_id::<8>(&self.span_id).map_err(fail)?;
        let parent = parse_id::<8>(&self.parent_span_id).map_err(fail)?;
        let mut attributes = Attributes::default();
        for kv in &self.attributes {
            if let Some(v) = kv.value() {
                attributes.set(&kv.key, v);
            }
        }
        attributes.fill_from(res_attrs);
        let status = status_of(self.status.as_ref());
        if let Some(s) = self.status.as_ref().filter(|_| status == StatusCode::Error) {
            attributes.note_error_text(&s.message);
        }
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id: (parent != [0; 8]).then_some(parent),
            resource: resource.clone(),
            kind: kind_of(self.kind.as_ref()),
            start_unix_nano: time_of(self.start_time_unix_nano.as_ref()),
            end_unix_nano: time_of(self.end_time_unix_nano.as_ref()),
            status,
            links: links_of(&self.links),
            attributes,
            name: self.name.into(),
        })
    }
}

fn kind_of(kind: Option<&NumOrStr>) -> SpanKind {
    match kind {
        Some(k) => match k.name() {
            Some(name) => SpanKind::from_name(name).unwrap_or_default(),
            None => SpanKind::from_otlp(k.as_i64().unwrap_or(0) as i32),
        },
        None => SpanKind::Unspecified,
    }
}

fn status_of(status: Option<&StatusJson>) -> StatusCode {
    match status.and_then(|s| s.code.as_ref()) {
        Some(code) => match code.name() {
            Some(name) => StatusCode::from_name(name).unwrap_or_default(),
            None => StatusCode::from_otlp(code.as_i64().unwrap_or(0) as i32),
        },
        None => StatusCode::Unset,
    }
}

fn time_of(t: Option<&NumOrStr>) -> u64 {
    t.and_then(NumOrStr::as_u64).unwrap_or(0)
}

fn links_of(links: &[LinkJson]) -> Vec<Link> {
    links
        .iter()
        .filter_map(|l| {
            Some(Link {
                trace_id: parse_id::<16>(&l.trace_id).ok()?,
                span_id: parse_id::<8>(&l.span_id).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spec_json_with_hex_ids() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"api"}}]},
          "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"GET",
            "kind":3,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"http.response.status_code","value":{"intValue":"503"}}],
            "status":{"code":2}}]}]}]}"#;
        let batch = decode(body).unwrap();
        assert_eq!(batch.rejected, 0);
        let s = &batch.spans[0];
        assert_eq!(&**s.service(), "api");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.duration_nanos(), 1_000_000_000);
        assert_eq!(s.attributes.http_status_code, Some(503));
        assert_eq!(s.status, StatusCode::Error);
        assert_eq!(s.parent_span_id.unwrap()[7], 0x73);
    }

    #[test]
    fn reads_jsonpb_with_base64_ids_and_enum_names() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[]},
          "scopeSpans":[{"spans":[{"traceId":"QpC1h3qZMN55u0KDZTmOzA==","spanId":"1gZXnld4dYc=",
            "name":"r","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"10","endTimeUnixNano":"20",
            "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
        let batch = decode(body).unwrap();
        let s = &batch.spans[0];
        assert_eq!(&**s.service(), Resource::UNKNOWN_SERVICE);
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status, StatusCode::Error);
        assert!(s.is_root());
    }

    #[test]
    fn bad_spans_are_counted_not_fatal() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"","spanId":"eee19b7ec3c1b174","name":"no-trace","startTimeUnixNano":"1","endTimeUnixNano":"2"},
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let batch = decode(body).unwrap();
        assert_eq!(batch.spans.len(), 1);
        assert_eq!(batch.rejected, 1);
        assert!(batch.partial_message().unwrap().contains("trace_id"));
        assert!(decode(b"{\"resourceSpans\": [").is_err());
    }

    #[test]
    fn a_stream_of_requests_is_one_batch() {
        let one = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let file = format!("{one}\n{one}\n\n{one}");
        let batch = decode_stream(file.as_bytes(), &|_| {}).unwrap();
        assert_eq!(batch.spans.len(), 3);
    }
}
