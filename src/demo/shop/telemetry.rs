//! The shop's instrumentation with the OpenTelemetry Rust SDK: one tracer
//! provider per service, W3C trace-context over HTTP headers, and the few
//! span helpers the services share.

use std::time::Duration;

use anyhow::Context as _;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

/// The instrumentation scope of every span the shop makes.
const SCOPE: &str = "faultline-demo";

/// A tracer provider for `service`, exporting OTLP/gRPC to `endpoint`
/// (`http://127.0.0.1:4317`) through a batch processor that exports every
/// `delay`. Must be called inside a Tokio runtime: the gRPC channel's worker
/// is spawned on it, while the batch processor exports from its own thread.
pub(crate) fn provider(
    service: &'static str,
    endpoint: &str,
    delay: Duration,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .with_context(|| format!("OTLP/gRPC span exporter for {service} to {endpoint}"))?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(delay)
                .with_max_queue_size(16_384)
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_span_processor(batch)
        .build())
}

/// One service's tracer and propagator.
#[derive(Debug)]
pub(crate) struct Instr {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl Instr {
    pub fn new(provider: &SdkTracerProvider) -> Instr {
        Instr {
            tracer: provider.tracer(SCOPE),
            propagator: TraceContextPropagator::new(),
        }
    }

    /// Starts a span under `parent` and returns the context holding it.
    pub fn start(
        &self,
        parent: &Context,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    /// The SERVER span of an incoming request, parented by the caller's
    /// `traceparent` when there is one.
    pub fn server(&self, headers: &HeaderMap, name: &'static str, route: &'static str) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", route),
        ];
        self.start(&parent, name, SpanKind::Server, attributes, Vec::new())
    }

    /// The `traceparent` (and `tracestate`) headers for a call made in `cx`.
    pub fn inject(&self, cx: &Context) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.propagator
            .inject_context(cx, &mut HeaderInjector(&mut headers));
        headers
    }
}

/// Ends the SERVER span in `cx` with the response's status.
pub(crate) fn finish_server(cx: &Context, status: StatusCode) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
    span.end();
}

/// Marks the span in `cx` failed: status ERROR and `error.type` (`timeout`
/// for timeouts, which is how faultline tells them from other failures).
pub(crate) fn fail(cx: &Context, error_type: String, message: String) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(Status::error(message));
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = HeaderName::from_bytes(key.as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn trace_context_survives_the_headers() {
        let provider = SdkTracerProvider::builder().build();
        let instr = Instr::new(&provider);
        let sc = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let headers = instr.inject(&Context::new().with_remote_span_context(sc.clone()));
        assert!(headers.contains_key("traceparent"), "{headers:?}");
        let server = instr.server(&headers, "POST /x", "/x");
        let got = server.span().span_context().clone();
        assert_eq!(got.trace_id(), sc.trace_id());
        assert_ne!(got.span_id(), sc.span_id());
    }
}
