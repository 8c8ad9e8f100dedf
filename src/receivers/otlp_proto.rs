//! OTLP protobuf (`ExportTraceServiceRequest`, prost types) → [`Batch`].
//!
//! This is the reference decoder: it builds the full prost object tree and
//! then keeps what the graph needs. Both network receivers use it.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1 as otlp;

use super::batch::{id_from_bytes, Batch};
use crate::model::attributes::Value;
use crate::model::{semconv, Attributes, Link, RejectReason, Resource, Span, SpanKind, StatusCode};

/// Decodes a protobuf body into an [`ExportTraceServiceRequest`].
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, super::DecodeError> {
    Ok(prost::Message::decode(body)?)
}

/// Converts a decoded request, validating every span.
pub fn to_batch(request: ExportTraceServiceRequest) -> Batch {
    let mut batch = Batch::default();
    for rs in request.resource_spans {
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let (resource, resource_attrs) = Resource::from_attributes(
            attrs
                .iter()
                .filter_map(|kv| Some((kv.key.as_str(), value_of(kv)?))),
        );
        for ss in rs.scope_spans {
            for span in ss.spans {
                convert_span(span, &resource, &resource_attrs, &mut batch);
            }
        }
    }
    batch
}

fn convert_span(
    span: otlp::Span,
    resource: &Arc<Resource>,
    res_attrs: &Attributes,
    batch: &mut Batch,
) {
    match build_span(span, resource, res_attrs) {
        Ok(span) => batch.push(span),
        Err((reason, name)) => batch.reject(reason, &name),
    }
}

fn build_span(
    span: otlp::Span,
    resource: &Arc<Resource>,
    res_attrs: &Attributes,
) -> Result<Span, (RejectReason, String)> {
    let ids = (|| {
        let trace_id = id_from_bytes::<16>(&span.trace_id)?;
        let span_id = id_from_bytes::<8>(&span.span_id)?;
        let parent = id_from_bytes::<8>(&span.parent_span_id)?;
        Ok((trace_id, span_id, parent))
    })();
    let (trace_id, span_id, parent) = ids.map_err(|r| (r, span.name.clone()))?;
    let mut attributes = Attributes::default();
    for kv in &span.attributes {
        if let Some(v) = value_of(kv) {
            attributes.set(&kv.key, v);
        }
    }
    if !res_attrs.is_empty() {
        attributes.fill_from(res_attrs);
    }
    note_failure_texts(&span, &mut attributes);
    let links = span
        .links
        .iter()
        .filter_map(|l| {
            Some(Link {
                trace_id: id_from_bytes::<16>(&l.trace_id).ok()?,
                span_id: id_from_bytes::<8>(&l.span_id).ok()?,
            })
        })
        .collect();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id: (parent != [0; 8]).then_some(parent),
        resource: resource.clone(),
        name: span.name.into(),
        kind: SpanKind::from_otlp(span.kind),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        status: StatusCode::from_otlp(span.status.map(|s| s.code).unwrap_or(0)),
        attributes,
        links,
    })
}

/// Reads timeouts from the status message and `exception` events, which
/// only matter for failed spans (so OK spans skip the scan).
fn note_failure_texts(span: &otlp::Span, attributes: &mut Attributes) {
    let Some(status) = span.status.as_ref() else {
        return;
    };
    if status.code != 2 {
        return;
    }
    attributes.note_error_text(&status.message);
    for event in span
        .events
        .iter()
        .filter(|e| e.name == semconv::EXCEPTION_EVENT)
    {
        for kv in &event.attributes {
            if let (semconv::EXCEPTION_TYPE | semconv::EXCEPTION_MESSAGE, Some(Value::Str(t))) =
                (kv.key.as_str(), value_of(kv))
            {
                attributes.note_error_text(t);
            }
        }
    }
}

fn value_of(kv: &KeyValue) -> Option<Value<'_>> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(Value::Str(s)),
        any_value::Value::IntValue(i) => Some(Value::Int(*i)),
        _ => None,
    }
}
