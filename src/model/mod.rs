//! The span view shared by every stage.
//!
//! Every receiver (OTLP/gRPC, OTLP/HTTP, the file importers) turns its wire
//! format into [`Span`]; everything downstream (pairing, the graph, the
//! operators) reads only this type. Keeping one model means a new receiver is
//! one converter, and the graph never learns about protobuf or JSON.

pub mod attributes;
pub mod buffers;
pub mod semconv;
pub mod span;

pub use attributes::Attributes;
pub use span::{Link, RejectReason, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
