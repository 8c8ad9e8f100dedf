//! OTLP protobuf (`ExportTraceServiceRequest` bytes) → [`Batch`], without
//! building the prost object tree.
//!
//! prost allocates a `Vec` or `String` for every id, name, key and value of
//! every span (about 40 allocations for a span with 10 attributes) only for
//! the converter to read a dozen of them and drop the rest. This decoder
//! walks the wire format once, borrows every string from the request buffer,
//! and allocates only what the [`Span`] keeps.
//!
//! It must accept and refuse exactly what [`super::otlp_proto`] (the
//! reference) does, so the wire format is checked as prost checks it, not
//! just where the graph looks: every field of every message in the tree is
//! read (wire type, length, UTF-8 of strings, prost's nesting limit of 100),
//! unknown fields of every wire type are skipped (groups included), and
//! repeated singular fields follow protobuf's rules (last scalar wins, a
//! repeated sub-message merges). `tests/fast_decoder.rs` holds it to that
//! with a property test against the prost path.

use std::sync::Arc;

use super::batch::{id_from_bytes, Batch};
use super::DecodeError;
use crate::model::attributes::Value;
use crate::model::{semconv, Attributes, Link, Resource, Span, SpanKind, StatusCode};

/// Why the bytes are not a well-formed `ExportTraceServiceRequest`.
/// The receivers answer it with `InvalidArgument` / HTTP 400, as they do
/// prost's errors; the wording follows prost's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid varint")]
    InvalidVarint,
    #[error("invalid key value: {0}")]
    InvalidKey(u64),
    #[error("invalid wire type value: {0}")]
    InvalidWireType(u64),
    #[error("invalid tag value: 0")]
    InvalidTag,
    #[error("buffer underflow")]
    BufferUnderflow,
    #[error("unexpected end group tag")]
    UnexpectedEndGroup,
    #[error("{message}.{field}: invalid wire type: {got:?} (expected {expected:?})")]
    WrongWireType {
        message: &'static str,
        field: &'static str,
        got: WireType,
        expected: WireType,
    },
    #[error("{message}.{field}: invalid string value: data is not UTF-8 encoded")]
    NotUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("recursion limit reached")]
    RecursionLimit,
}

/// Decodes a protobuf body straight into a [`Batch`]; the same result as
/// `otlp_proto::to_batch(otlp_proto::decode_request(body)?)`.
pub fn decode(body: &[u8]) -> Result<Batch, DecodeError> {
    Ok(decode_wire(body)?)
}

/// [`decode`], with the wire error unwrapped (for tests and benchmarks).
pub fn decode_wire(body: &[u8]) -> Result<Batch, WireError> {
    let mut batch = Batch::default();
    batch.spans.reserve_exact(count_spans(body, 0));
    let mut decoder = FastDecoder {
        batch,
        resource_attrs: Vec::new(),
        names: Vec::new(),
    };
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        if tag == 1 {
            let rs = r.message(&REQUEST, tag, wt, TOP)?;
            decoder.resource_spans(rs, TOP - 1)?;
        } else {
            r.field(&REQUEST, tag, wt, TOP)?;
        }
    }
    Ok(decoder.batch)
}

/// Counts the spans in a request by their keys and lengths alone, so the
/// batch is allocated once: growing it by doubling copied each 500-byte
/// span twice on average (the largest share of the decoder's memory
/// traffic). Errors end the count; the decoding pass reports them.
fn count_spans(body: &[u8], level: u8) -> usize {
    let mut r = Reader::new(body);
    let mut count = 0;
    while let Ok(Some((tag, wt))) = r.key() {
        let skipped = match wt {
            WireType::LengthDelimited => r.length_delimited().map(|inner| {
                count += match (level, tag) {
                    (0, 1) => count_spans(inner, 1),
                    (1, 2) => count_spans(inner, 2),
                    (2, 2) => 1,
                    _ => 0,
                }
            }),
            WireType::Varint => r.varint().map(drop),
            WireType::SixtyFourBit => r.take(8).map(drop),
            WireType::ThirtyTwoBit => r.take(4).map(drop),
            WireType::StartGroup | WireType::EndGroup => break,
        };
        if skipped.is_err() {
            break;
        }
    }
    count
}

/// prost's `RECURSION_LIMIT`: the top message's fields are read with this
/// budget, and each nested message (or group) takes one from it.
const TOP: u32 = 100;

struct FastDecoder<'a> {
    batch: Batch,
    /// The current resource's attributes, in wire order (reused per resource).
    resource_attrs: Vec<(&'a str, Value<'a>)>,
    /// Operation names seen in this request, so each is allocated once.
    names: Vec<(&'a str, Arc<str>)>,
}

/// Distinct operation names interned per request. A request holds a few
/// (one per endpoint); past this, names are allocated per span, so a
/// request of all-distinct names costs no quadratic search.
const MAX_INTERNED_NAMES: usize = 32;

impl<'a> FastDecoder<'a> {
    fn name(&mut self, name: &'a str) -> Arc<str> {
        if let Some((_, shared)) = self.names.iter().find(|(n, _)| *n == name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        if self.names.len() < MAX_INTERNED_NAMES {
            self.names.push((name, shared.clone()));
        }
        shared
    }
}

/// A span's fields as they are read; protobuf lets them come in any order.
#[derive(Default)]
struct SpanParts<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent: &'a [u8],
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    /// `(code, message)` once a `status` field was seen.
    status: Option<(i32, &'a str)>,
    has_events: bool,
    links: Vec<Link>,
    attributes: Attributes,
}

impl<'a> FastDecoder<'a> {
    /// A `ResourceSpans`: the resource may come after its spans on the wire,
    /// so a first pass reads the resource and a second the spans.
    fn resource_spans(&mut self, body: &'a [u8], ctx: u32) -> Result<(), WireError> {
        self.resource_attrs.clear();
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            match tag {
                1 => {
                    let res = r.message(&RESOURCE_SPANS, tag, wt, ctx)?;
                    self.resource(res, ctx - 1)?;
                }
                2 => {
                    r.message(&RESOURCE_SPANS, tag, wt, ctx)?;
                }
                _ => r.field(&RESOURCE_SPANS, tag, wt, ctx)?,
            }
        }
        let (resource, res_attrs) = Resource::from_attributes(self.resource_attrs.iter().copied());
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            if tag == 2 {
                let ss = r.message(&RESOURCE_SPANS, tag, wt, ctx)?;
                self.scope_spans(ss, ctx - 1, &resource, &res_attrs)?;
            } else {
                r.field(&RESOURCE_SPANS, tag, wt, ctx)?;
            }
        }
        Ok(())
    }

    /// A `Resource`; repeated occurrences merge, so attributes accumulate.
    fn resource(&mut self, body: &'a [u8], ctx: u32) -> Result<(), WireError> {
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            if tag == 1 {
                let kv = r.message(&RESOURCE, tag, wt, ctx)?;
                if let (key, Some(value)) = key_value(kv, ctx - 1)? {
                    self.resource_attrs.push((key, value));
                }
            } else {
                r.field(&RESOURCE, tag, wt, ctx)?;
            }
        }
        Ok(())
    }

    fn scope_spans(
        &mut self,
        body: &'a [u8],
        ctx: u32,
        resource: &Arc<Resource>,
        res_attrs: &Attributes,
    ) -> Result<(), WireError> {
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            if tag == 2 {
                let span = r.message(&SCOPE_SPANS, tag, wt, ctx)?;
                self.span(span, ctx - 1, resource, res_attrs)?;
            } else {
                r.field(&SCOPE_SPANS, tag, wt, ctx)?;
            }
        }
        Ok(())
    }

    /// One span: read, then converted exactly as `otlp_proto::build_span` does.
    fn span(
        &mut self,
        body: &'a [u8],
        ctx: u32,
        resource: &Arc<Resource>,
        res_attrs: &Attributes,
    ) -> Result<(), WireError> {
        let mut p = SpanParts::default();
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            match tag {
                1 => p.trace_id = r.bytes(&SPAN, tag, wt)?,
                2 => p.span_id = r.bytes(&SPAN, tag, wt)?,
                4 => p.parent = r.bytes(&SPAN, tag, wt)?,
                5 => p.name = r.string(&SPAN, tag, wt)?,
                6 => p.kind = r.varint_field(&SPAN, tag, wt)? as i32,
                7 => p.start = r.fixed64(&SPAN, tag, wt)?,
                8 => p.end = r.fixed64(&SPAN, tag, wt)?,
                9 => {
                    let kv = r.message(&SPAN, tag, wt, ctx)?;
                    if let (key, Some(value)) = key_value(kv, ctx - 1)? {
                        p.attributes.set(key, value);
                    }
                }
                11 => {
                    let event = r.message(&SPAN, tag, wt, ctx)?;
                    validate(&EVENT, event, ctx - 1)?;
                    p.has_events = true;
                }
                13 => {
                    let link_body = r.message(&SPAN, tag, wt, ctx)?;
                    if let Some(link) = link(link_body, ctx - 1)? {
                        p.links.push(link);
                    }
                }
                15 => {
                    let status_body = r.message(&SPAN, tag, wt, ctx)?;
                    status(status_body, ctx - 1, p.status.get_or_insert((0, "")))?;
                }
                _ => r.field(&SPAN, tag, wt, ctx)?,
            }
        }
        let ids = (|| {
            Ok((
                id_from_bytes::<16>(p.trace_id)?,
                id_from_bytes::<8>(p.span_id)?,
                id_from_bytes::<8>(p.parent)?,
            ))
        })();
        let (trace_id, span_id, parent) = match ids {
            Ok(ids) => ids,
            Err(reason) => {
                self.batch.reject(reason, p.name);
                return Ok(());
            }
        };
        let mut attributes = p.attributes;
        if !res_attrs.is_empty() {
            attributes.fill_from(res_attrs);
        }
        if let Some((2, message)) = p.status {
            // Only failed spans pay for the timeout scan, as in the prost path.
            attributes.note_error_text(message);
            if p.has_events {
                exception_texts(body, ctx, &mut attributes)?;
            }
        }
        let name = self.name(p.name);
        self.batch.push(Span {
            trace_id,
            span_id,
            parent_span_id: (parent != [0; 8]).then_some(parent),
            resource: resource.clone(),
            name,
            kind: SpanKind::from_otlp(p.kind),
            start_unix_nano: p.start,
            end_unix_nano: p.end,
            status: StatusCode::from_otlp(p.status.map_or(0, |s| s.0)),
            attributes,
            links: p.links,
        });
        Ok(())
    }
}

/// A `KeyValue`: its key, and its value when it is a string or an integer
/// (the only types [`Attributes::set`] keeps).
fn key_value(body: &[u8], ctx: u32) -> Result<(&str, Option<Value<'_>>), WireError> {
    if let Some(kv) = canonical_key_value(body, ctx) {
        return Ok(kv);
    }
    let mut key = "";
    let mut value = None;
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        match tag {
            1 => key = r.string(&KEY_VALUE, tag, wt)?,
            2 => {
                // A repeated `value` merges into the first: the last oneof
                // field seen across all of them wins.
                let any = r.message(&KEY_VALUE, tag, wt, ctx)?;
                any_value(any, ctx - 1, &mut value)?;
            }
            _ => r.field(&KEY_VALUE, tag, wt, ctx)?,
        }
    }
    Ok((key, value))
}

/// The shortcut for what every SDK sends: `key`, then `value` holding one
/// string or integer, each once and in field order. Anything else (or any
/// doubt, including errors) returns `None` for the general loop to read, so
/// the shortcut never decides what the general loop would not.
#[inline]
fn canonical_key_value(body: &[u8], ctx: u32) -> Option<(&str, Option<Value<'_>>)> {
    const KEY: u8 = 1 << 3 | 2;
    const VALUE: u8 = 2 << 3 | 2;
    const STRING: u8 = 1 << 3 | 2;
    const INT: u8 = 3 << 3;
    let mut r = Reader::new(body.strip_prefix(&[KEY])?);
    let key = utf8(r.length_delimited().ok()?)?;
    if ctx == 0 {
        return None;
    }
    let mut r = Reader::new(r.buf.strip_prefix(&[VALUE])?);
    let any = r.length_delimited().ok()?;
    if !r.buf.is_empty() {
        return None;
    }
    let Some((&first, rest)) = any.split_first() else {
        return Some((key, None));
    };
    let mut a = Reader::new(rest);
    let value = match first {
        STRING => Value::Str(utf8(a.length_delimited().ok()?)?),
        INT => Value::Int(a.varint().ok()? as i64),
        _ => return None,
    };
    a.buf.is_empty().then_some((key, Some(value)))
}

fn any_value<'a>(body: &'a [u8], ctx: u32, value: &mut Option<Value<'a>>) -> Result<(), WireError> {
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        match tag {
            1 => *value = Some(Value::Str(r.string(&ANY_VALUE, tag, wt)?)),
            3 => *value = Some(Value::Int(r.varint_field(&ANY_VALUE, tag, wt)? as i64)),
            2 | 4..=8 => {
                r.field(&ANY_VALUE, tag, wt, ctx)?;
                *value = None;
            }
            _ => r.field(&ANY_VALUE, tag, wt, ctx)?,
        }
    }
    Ok(())
}

/// A `Link`, kept when both its ids have valid lengths.
fn link(body: &[u8], ctx: u32) -> Result<Option<Link>, WireError> {
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        match tag {
            1 => trace_id = r.bytes(&LINK, tag, wt)?,
            2 => span_id = r.bytes(&LINK, tag, wt)?,
            _ => r.field(&LINK, tag, wt, ctx)?,
        }
    }
    Ok(
        match (id_from_bytes::<16>(trace_id), id_from_bytes::<8>(span_id)) {
            (Ok(trace_id), Ok(span_id)) => Some(Link { trace_id, span_id }),
            _ => None,
        },
    )
}

/// A `Status`, merged into `into` (`(code, message)`).
fn status<'a>(body: &'a [u8], ctx: u32, into: &mut (i32, &'a str)) -> Result<(), WireError> {
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        match tag {
            2 => into.1 = r.string(&STATUS, tag, wt)?,
            3 => into.0 = r.varint_field(&STATUS, tag, wt)? as i32,
            _ => r.field(&STATUS, tag, wt, ctx)?,
        }
    }
    Ok(())
}

/// Second look at a failed span (already validated): the `exception`
/// events' type and message may name a timeout.
fn exception_texts(span: &[u8], ctx: u32, attributes: &mut Attributes) -> Result<(), WireError> {
    let mut r = Reader::new(span);
    while let Some((tag, wt)) = r.key()? {
        if tag != 11 {
            r.field(&SPAN, tag, wt, ctx)?;
            continue;
        }
        let event = r.message(&SPAN, tag, wt, ctx)?;
        let mut name = "";
        let mut e = Reader::new(event);
        while let Some((tag, wt)) = e.key()? {
            match tag {
                2 => name = e.string(&EVENT, tag, wt)?,
                _ => e.field(&EVENT, tag, wt, ctx - 1)?,
            }
        }
        if name != semconv::EXCEPTION_EVENT {
            continue;
        }
        let mut e = Reader::new(event);
        while let Some((tag, wt)) = e.key()? {
            if tag != 3 {
                e.field(&EVENT, tag, wt, ctx - 1)?;
                continue;
            }
            let kv = e.message(&EVENT, tag, wt, ctx - 1)?;
            if let (semconv::EXCEPTION_TYPE | semconv::EXCEPTION_MESSAGE, Some(Value::Str(text))) =
                key_value(kv, ctx - 2)?
            {
                attributes.note_error_text(text);
            }
        }
    }
    Ok(())
}

/// UTF-8 validation, as prost does for every string field. Keys and values
/// are short and nearly always ASCII, where `str::from_utf8`'s general
/// state machine costs about a hundred instructions a call (a third of the
/// whole decode); the ASCII check is a few.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

#[cold]
fn wrong_wire_type(s: &'static Schema, tag: u32, got: WireType, expected: WireType) -> WireError {
    WireError::WrongWireType {
        message: s.name,
        field: s.name_of(tag),
        got,
        expected,
    }
}

#[cold]
fn not_utf8(s: &'static Schema, tag: u32) -> WireError {
    WireError::NotUtf8 {
        message: s.name,
        field: s.name_of(tag),
    }
}

/// Checks a message the graph does not read as prost would decode it.
fn validate(message: &'static Schema, body: &[u8], ctx: u32) -> Result<(), WireError> {
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        r.field(message, tag, wt, ctx)?;
    }
    Ok(())
}

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    SixtyFourBit,
    LengthDelimited,
    StartGroup,
    EndGroup,
    ThirtyTwoBit,
}

/// What a known field holds, which fixes its wire type and how it is checked.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Message(&'static Schema),
}

impl Kind {
    fn wire_type(self) -> WireType {
        match self {
            Kind::Varint => WireType::Varint,
            Kind::Fixed64 => WireType::SixtyFourBit,
            Kind::Fixed32 => WireType::ThirtyTwoBit,
            Kind::Bytes | Kind::Str | Kind::Message(_) => WireType::LengthDelimited,
        }
    }
}

/// The fields of one message of the OTLP trace schema (opentelemetry-proto 1.x).
struct Schema {
    name: &'static str,
    fields: &'static [(u32, &'static str, Kind)],
}

impl Schema {
    fn field(&self, tag: u32) -> Option<(&'static str, Kind)> {
        self.fields
            .iter()
            .find(|f| f.0 == tag)
            .map(|&(_, name, kind)| (name, kind))
    }

    fn name_of(&self, tag: u32) -> &'static str {
        self.field(tag).map_or("?", |f| f.0)
    }
}

static REQUEST: Schema = Schema {
    name: "ExportTraceServiceRequest",
    fields: &[(1, "resource_spans", Kind::Message(&RESOURCE_SPANS))],
};
static RESOURCE_SPANS: Schema = Schema {
    name: "ResourceSpans",
    fields: &[
        (1, "resource", Kind::Message(&RESOURCE)),
        (2, "scope_spans", Kind::Message(&SCOPE_SPANS)),
        (3, "schema_url", Kind::Str),
    ],
};
static RESOURCE: Schema = Schema {
    name: "Resource",
    fields: &[
        (1, "attributes", Kind::Message(&KEY_VALUE)),
        (2, "dropped_attributes_count", Kind::Varint),
        (3, "entity_refs", Kind::Message(&ENTITY_REF)),
    ],
};
static ENTITY_REF: Schema = Schema {
    name: "EntityRef",
    fields: &[
        (1, "schema_url", Kind::Str),
        (2, "type", Kind::Str),
        (3, "id_keys", Kind::Str),
        (4, "description_keys", Kind::Str),
    ],
};
static SCOPE_SPANS: Schema = Schema {
    name: "ScopeSpans",
    fields: &[
        (1, "scope", Kind::Message(&SCOPE)),
        (2, "spans", Kind::Message(&SPAN)),
        (3, "schema_url", Kind::Str),
    ],
};
static SCOPE: Schema = Schema {
    name: "InstrumentationScope",
    fields: &[
        (1, "name", Kind::Str),
        (2, "version", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
static SPAN: Schema = Schema {
    name: "Span",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "parent_span_id", Kind::Bytes),
        (5, "name", Kind::Str),
        (6, "kind", Kind::Varint),
        (7, "start_time_unix_nano", Kind::Fixed64),
        (8, "end_time_unix_nano", Kind::Fixed64),
        (9, "attributes", Kind::Message(&KEY_VALUE)),
        (10, "dropped_attributes_count", Kind::Varint),
        (11, "events", Kind::Message(&EVENT)),
        (12, "dropped_events_count", Kind::Varint),
        (13, "links", Kind::Message(&LINK)),
        (14, "dropped_links_count", Kind::Varint),
        (15, "status", Kind::Message(&STATUS)),
        (16, "flags", Kind::Fixed32),
    ],
};
static EVENT: Schema = Schema {
    name: "Span.Event",
    fields: &[
        (1, "time_unix_nano", Kind::Fixed64),
        (2, "name", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
static LINK: Schema = Schema {
    name: "Span.Link",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "attributes", Kind::Message(&KEY_VALUE)),
        (5, "dropped_attributes_count", Kind::Varint),
        (6, "flags", Kind::Fixed32),
    ],
};
static STATUS: Schema = Schema {
    name: "Status",
    fields: &[(2, "message", Kind::Str), (3, "code", Kind::Varint)],
};
static KEY_VALUE: Schema = Schema {
    name: "KeyValue",
    fields: &[
        (1, "key", Kind::Str),
        (2, "value", Kind::Message(&ANY_VALUE)),
        (3, "key_strindex", Kind::Varint),
    ],
};
static ANY_VALUE: Schema = Schema {
    name: "AnyValue",
    fields: &[
        (1, "string_value", Kind::Str),
        (2, "bool_value", Kind::Varint),
        (3, "int_value", Kind::Varint),
        (4, "double_value", Kind::Fixed64),
        (5, "array_value", Kind::Message(&ARRAY_VALUE)),
        (6, "kvlist_value", Kind::Message(&KEY_VALUE_LIST)),
        (7, "bytes_value", Kind::Bytes),
        (8, "string_value_strindex", Kind::Varint),
    ],
};
static ARRAY_VALUE: Schema = Schema {
    name: "ArrayValue",
    fields: &[(1, "values", Kind::Message(&ANY_VALUE))],
};
static KEY_VALUE_LIST: Schema = Schema {
    name: "KeyValueList",
    fields: &[(1, "values", Kind::Message(&KEY_VALUE))],
};

/// A bounds-checked cursor over one message's bytes. Every read returns an
/// error rather than index past the end, so no input can make it panic.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::BufferUnderflow);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// LEB128, at most 10 bytes, rejecting values past `u64::MAX` as prost does.
    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.first() {
            Some(&b) if b < 0x80 => {
                self.buf = &self.buf[1..];
                Ok(u64::from(b))
            }
            Some(_) => self.varint_long(),
            None => Err(WireError::InvalidVarint),
        }
    }

    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b >= 0x02 {
                    return Err(WireError::InvalidVarint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::InvalidVarint)
    }

    /// The next field's key, or `None` at the end of the message.
    #[inline]
    fn key(&mut self) -> Result<Option<(u32, WireType)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError::InvalidKey(key));
        }
        let wt = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::SixtyFourBit,
            2 => WireType::LengthDelimited,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::ThirtyTwoBit,
            other => return Err(WireError::InvalidWireType(other)),
        };
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(WireError::InvalidTag);
        }
        Ok(Some((tag, wt)))
    }

    #[inline]
    fn expect(
        &self,
        schema: &'static Schema,
        tag: u32,
        got: WireType,
        expected: WireType,
    ) -> Result<(), WireError> {
        if got == expected {
            Ok(())
        } else {
            Err(wrong_wire_type(schema, tag, got, expected))
        }
    }

    #[inline]
    fn length_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(WireError::BufferUnderflow);
        }
        self.take(len as usize)
    }

    #[inline]
    fn bytes(&mut self, s: &'static Schema, tag: u32, wt: WireType) -> Result<&'a [u8], WireError> {
        self.expect(s, tag, wt, WireType::LengthDelimited)?;
        self.length_delimited()
    }

    #[inline]
    fn string(&mut self, s: &'static Schema, tag: u32, wt: WireType) -> Result<&'a str, WireError> {
        let bytes = self.bytes(s, tag, wt)?;
        match utf8(bytes) {
            Some(text) => Ok(text),
            None => Err(not_utf8(s, tag)),
        }
    }

    #[inline]
    fn varint_field(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
    ) -> Result<u64, WireError> {
        self.expect(s, tag, wt, WireType::Varint)?;
        self.varint()
    }

    #[inline]
    fn fixed64(&mut self, s: &'static Schema, tag: u32, wt: WireType) -> Result<u64, WireError> {
        self.expect(s, tag, wt, WireType::SixtyFourBit)?;
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// A nested message's bytes. `ctx` is the budget of the enclosing
    /// message's fields; the nested one's fields get `ctx - 1`.
    #[inline]
    fn message(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
        ctx: u32,
    ) -> Result<&'a [u8], WireError> {
        self.expect(s, tag, wt, WireType::LengthDelimited)?;
        if ctx == 0 {
            return Err(WireError::RecursionLimit);
        }
        self.length_delimited()
    }

    /// Reads a field the caller does not use: checked against `schema` when
    /// known, skipped when not.
    fn field(
        &mut self,
        schema: &'static Schema,
        tag: u32,
        wt: WireType,
        ctx: u32,
    ) -> Result<(), WireError> {
        let Some((_, kind)) = schema.field(tag) else {
            return self.skip(wt, tag, ctx);
        };
        self.expect(schema, tag, wt, kind.wire_type())?;
        match kind {
            Kind::Varint => self.varint().map(drop),
            Kind::Fixed64 => self.take(8).map(drop),
            Kind::Fixed32 => self.take(4).map(drop),
            Kind::Bytes => self.length_delimited().map(drop),
            Kind::Str => self.string(schema, tag, wt).map(drop),
            Kind::Message(inner) => {
                let body = self.message(schema, tag, wt, ctx)?;
                validate(inner, body, ctx - 1)
            }
        }
    }

    /// Skips an unknown field of any wire type, groups included (prost's
    /// `skip_field`, with its nesting budget).
    fn skip(&mut self, wt: WireType, tag: u32, ctx: u32) -> Result<(), WireError> {
        if ctx == 0 {
            return Err(WireError::RecursionLimit);
        }
        match wt {
            WireType::Varint => self.varint().map(drop),
            WireType::SixtyFourBit => self.take(8).map(drop),
            WireType::ThirtyTwoBit => self.take(4).map(drop),
            WireType::LengthDelimited => self.length_delimited().map(drop),
            WireType::StartGroup => loop {
                match self.key()? {
                    None => return Err(WireError::InvalidVarint),
                    Some((inner, WireType::EndGroup)) => {
                        return if inner == tag {
                            Ok(())
                        } else {
                            Err(WireError::UnexpectedEndGroup)
                        };
                    }
                    Some((inner, inner_wt)) => self.skip(inner_wt, inner, ctx - 1)?,
                }
            },
            WireType::EndGroup => Err(WireError::UnexpectedEndGroup),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_prost_at_the_edges() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.varint(), Ok(u64::MAX));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
        let mut r = Reader::new(&[0x80, 0x80]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
        let mut r = Reader::new(&[0x96, 0x01, 0x07]);
        assert_eq!(r.varint(), Ok(150));
        assert_eq!(r.buf, &[0x07]);
    }

    #[test]
    fn groups_are_skipped_and_mismatched_ends_refused() {
        // field 9 (unknown in the request) as a group holding a varint field.
        let ok = [0x4b, 0x08, 0x01, 0x4c];
        assert!(decode_wire(&ok).is_ok_and(|b| b.spans.is_empty()));
        let bad_end = [0x4b, 0x08, 0x01, 0x54];
        assert_eq!(
            decode_wire(&bad_end).err(),
            Some(WireError::UnexpectedEndGroup)
        );
        let unterminated = [0x4b, 0x08, 0x01];
        assert!(decode_wire(&unterminated).is_err());
    }

    #[test]
    fn a_known_field_with_the_wrong_wire_type_is_refused() {
        // resource_spans (field 1) sent as a varint.
        let err = decode_wire(&[0x08, 0x01]).unwrap_err();
        assert!(err.to_string().contains("resource_spans"), "{err}");
    }
}
