//! [`Span`]: one finished operation, as every stage after the receivers sees it.

use std::sync::Arc;

use super::attributes::Value;
use super::{semconv, Attributes};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// Span kind, as in OTLP. `Unspecified` and `Internal` never form edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number (0..=5); anything else is `Unspecified`.
    pub fn from_otlp(n: i32) -> SpanKind {
        match n {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// From a case-insensitive name as JSON formats write it: `SPAN_KIND_CLIENT`
    /// (OTLP JSON), `client` (Jaeger's `span.kind` tag), `CLIENT` (Zipkin).
    pub fn from_name(name: &str) -> Option<SpanKind> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_prefix("span_kind_").unwrap_or(&n);
        Some(match n {
            "unspecified" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }

    /// Whether the span is the callee side of a boundary.
    pub fn is_inbound(self) -> bool {
        matches!(self, SpanKind::Server | SpanKind::Consumer)
    }

    /// Whether the span is the caller side of a boundary.
    pub fn is_outbound(self) -> bool {
        matches!(self, SpanKind::Client | SpanKind::Producer)
    }
}

/// Span status code, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(n: i32) -> StatusCode {
        match n {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn from_name(name: &str) -> Option<StatusCode> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_prefix("status_code_").unwrap_or(&n);
        Some(match n {
            "unset" => StatusCode::Unset,
            "ok" => StatusCode::Ok,
            "error" => StatusCode::Error,
            _ => return None,
        })
    }
}

/// What a span inherits from the resource that emitted it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub service_name: Arc<str>,
    pub k8s_namespace: Option<String>,
    pub k8s_deployment: Option<String>,
}

impl Resource {
    /// The OpenTelemetry SDKs' name for a resource with no `service.name`.
    pub const UNKNOWN_SERVICE: &'static str = "unknown_service";

    /// Reads the service name and Kubernetes identity from resource
    /// attributes, and keeps the graph-relevant rest (some SDKs put
    /// `peer.service` or `db.system` on the resource of a sidecar-instrumented
    /// dependency) for [`Attributes::fill_from`].
    pub fn from_attributes<'a>(
        attrs: impl IntoIterator<Item = (&'a str, Value<'a>)>,
    ) -> (Arc<Resource>, Attributes) {
        let mut resource = Resource {
            service_name: Resource::UNKNOWN_SERVICE.into(),
            ..Resource::default()
        };
        let mut kept = Attributes::default();
        for (key, value) in attrs {
            match (key, value) {
                (semconv::SERVICE_NAME, Value::Str(s)) if !s.is_empty() => {
                    resource.service_name = s.into()
                }
                (semconv::K8S_NAMESPACE, Value::Str(s)) => resource.k8s_namespace = Some(s.into()),
                (semconv::K8S_DEPLOYMENT, Value::Str(s)) => {
                    resource.k8s_deployment = Some(s.into())
                }
                (key, value) => {
                    kept.set(key, value);
                }
            }
        }
        (Arc::new(resource), kept)
    }
}

/// A link to another span; consumers link to the producers of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// One finished span, reduced to what the graph uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub resource: Arc<Resource>,
    /// The operation. Shared, because a request repeats a handful of names
    /// over hundreds of spans: receivers intern them per request, so a span
    /// costs no allocation for its name.
    pub name: Arc<str>,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status: StatusCode,
    pub attributes: Attributes,
    pub links: Vec<Link>,
}

/// Why a receiver refused a span. Its text is what the client reads in
/// `partial_success.error_message`, so it says what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("trace_id is missing or all zero")]
    MissingTraceId,
    #[error("span_id is missing or all zero")]
    MissingSpanId,
    #[error("trace_id must be 16 bytes and span ids 8 bytes")]
    BadIdLength,
    #[error("start_time_unix_nano is zero")]
    MissingStartTime,
    #[error("end_time_unix_nano is before start_time_unix_nano")]
    EndBeforeStart,
    #[error("span lasts longer than 24 hours")]
    AbsurdDuration,
}

/// Spans longer than this are refused: no request between services lasts a
/// day, and such a value is nearly always a unit error (seconds sent as ns).
const MAX_DURATION_NANOS: u64 = 24 * 3600 * 1_000_000_000;

/// [`Span::validate`] on the fields it reads, for a decoder that checks a
/// span before building it (so a valid one is built once, in place).
#[inline]
pub fn check_span(
    trace_id: &TraceId,
    span_id: &SpanId,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<(), RejectReason> {
    if *trace_id == [0; 16] {
        return Err(RejectReason::MissingTraceId);
    }
    if *span_id == [0; 8] {
        return Err(RejectReason::MissingSpanId);
    }
    if start_unix_nano == 0 {
        return Err(RejectReason::MissingStartTime);
    }
    if end_unix_nano < start_unix_nano {
        return Err(RejectReason::EndBeforeStart);
    }
    if end_unix_nano - start_unix_nano > MAX_DURATION_NANOS {
        return Err(RejectReason::AbsurdDuration);
    }
    Ok(())
}

impl Span {
    pub fn service(&self) -> &Arc<str> {
        &self.resource.service_name
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }

    /// Checks what the graph relies on: ids present, times in order.
    pub fn validate(&self) -> Result<(), RejectReason> {
        check_span(
            &self.trace_id,
            &self.span_id,
            self.start_unix_nano,
            self.end_unix_nano,
        )
    }

    /// Whether the call failed, per the semantic conventions: an explicit
    /// ERROR status; otherwise, with status unset, an HTTP status of 5xx
    /// (4xx too on the client side) or a gRPC code that the side reports as
    /// an error. An explicit OK overrides the codes, as the spec says.
    pub fn is_error(&self) -> bool {
        match self.status {
            StatusCode::Error => true,
            StatusCode::Ok => false,
            StatusCode::Unset => self.http_failed() || self.grpc_failed(),
        }
    }

    /// Whether the call failed by timing out: gRPC DEADLINE_EXCEEDED, HTTP
    /// 408 or 504, or an error type, exception or status message naming a
    /// timeout (see [`Attributes::note_error_text`]).
    pub fn is_timeout(&self) -> bool {
        if self.attributes.timed_out {
            return true;
        }
        self.attributes.rpc_grpc_status_code == Some(4)
            || matches!(self.attributes.http_status_code, Some(408 | 504))
    }

    fn http_failed(&self) -> bool {
        match self.attributes.http_status_code {
            Some(code) if self.kind == SpanKind::Server => code >= 500,
            Some(code) => code >= 400,
            None => false,
        }
    }

    fn grpc_failed(&self) -> bool {
        // Server side: only codes that mean the server failed (UNKNOWN,
        // DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
        match self.attributes.rpc_grpc_status_code {
            Some(code) if self.kind == SpanKind::Server => {
                matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
            }
            Some(code) => code != 0,
            None => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn span(kind: SpanKind) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            resource: Arc::new(Resource {
                service_name: "svc".into(),
                ..Resource::default()
            }),
            name: "op".into(),
            kind,
            start_unix_nano: 1_000,
            end_unix_nano: 2_000,
            status: StatusCode::Unset,
            attributes: Attributes::default(),
            links: vec![],
        }
    }

    #[test]
    fn http_errors_depend_on_the_side() {
        let mut s = span(SpanKind::Server);
        s.attributes.http_status_code = Some(404);
        assert!(!s.is_error());
        s.attributes.http_status_code = Some(503);
        assert!(s.is_error());
        let mut c = span(SpanKind::Client);
        c.attributes.http_status_code = Some(404);
        assert!(c.is_error());
        c.status = StatusCode::Ok;
        assert!(!c.is_error());
    }

    #[test]
    fn grpc_not_found_is_a_client_error_only() {
        let mut s = span(SpanKind::Server);
        s.attributes.rpc_grpc_status_code = Some(5);
        assert!(!s.is_error());
        s.kind = SpanKind::Client;
        assert!(s.is_error());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = span(SpanKind::Client);
        assert_eq!(s.validate(), Ok(()));
        s.end_unix_nano = 10;
        assert_eq!(s.validate(), Err(RejectReason::EndBeforeStart));
        s.span_id = [0; 8];
        assert_eq!(s.validate(), Err(RejectReason::MissingSpanId));
    }

    #[test]
    fn kind_names_from_every_format() {
        assert_eq!(
            SpanKind::from_name("SPAN_KIND_CLIENT"),
            Some(SpanKind::Client)
        );
        assert_eq!(SpanKind::from_name("consumer"), Some(SpanKind::Consumer));
        assert_eq!(SpanKind::from_name("bogus"), None);
    }
}
