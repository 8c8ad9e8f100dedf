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

mod schema;
mod wire;

pub use wire::{WireError, WireType};

use self::schema::{
    ANY_VALUE, EVENT, KEY_VALUE, LINK, REQUEST, RESOURCE, RESOURCE_SPANS, SCOPE_SPANS, SPAN, STATUS,
};
use self::wire::{utf8, validate, Reader};
use super::batch::{id_from_bytes, Batch};
use super::DecodeError;
use crate::model::attributes::Value;
use crate::model::span::check_span;
use crate::model::{semconv, Attributes, Link, Resource, Span, SpanKind, StatusCode};

/// Decodes a protobuf body straight into a [`Batch`]; the same result as
/// `otlp_proto::to_batch(otlp_proto::decode_request(body)?)`.
pub fn decode(body: &[u8]) -> Result<Batch, DecodeError> {
    Ok(decode_wire(body)?)
}

/// [`decode`], with the wire error unwrapped (for tests and benchmarks).
pub fn decode_wire(body: &[u8]) -> Result<Batch, WireError> {
    // Room for as many spans as this thread's last request had: SDKs send
    // requests of one size, so it nearly always suffices, and counting
    // first (a pass over every span's key and length, about 2% of the
    // server's cycles) is left to a request that outgrows it.
    let batch = Batch {
        spans: crate::model::buffers::take(LAST_SPANS.get()),
        ..Batch::default()
    };
    let mut decoder = FastDecoder {
        body,
        counted: false,
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
    LAST_SPANS.set(decoder.batch.spans.len());
    Ok(decoder.batch)
}

thread_local! {
    /// Spans in the last request this thread decoded (see [`decode_wire`]).
    static LAST_SPANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts the spans in a request by their keys and lengths alone, so the
/// batch grows once: growing it by doubling copied each 500-byte
/// span twice on average (the largest share of the decoder's memory
/// traffic). Errors and groups end the count, which is then short: the
/// decoding pass reports the errors and skips the groups, and grows the
/// batch as it goes (see [`FastDecoder::make_room`]).
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
    /// The whole request, counted if the batch runs out of room.
    body: &'a [u8],
    /// Whether it was: a count cut short (by a group) is not repeated.
    counted: bool,
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
    /// Room for the rest of the request's spans, counted the first time
    /// the vector is full: one exact growth instead of doublings. Past a
    /// count that fell short, the vector doubles as usual; counting again
    /// for each span would make such a request cost its square.
    #[cold]
    fn make_room(&mut self) {
        let spans = &mut self.batch.spans;
        if self.counted {
            spans.reserve(1);
            return;
        }
        self.counted = true;
        let rest = count_spans(self.body, 0).saturating_sub(spans.len());
        spans.reserve_exact(rest.max(1));
    }

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
        // Asked once per resource, not per span: most resources carry none.
        let fill = (!res_attrs.is_empty()).then_some(&res_attrs);
        let mut r = Reader::new(body);
        while let Some((tag, wt)) = r.key()? {
            if tag == 2 {
                let ss = r.message(&RESOURCE_SPANS, tag, wt, ctx)?;
                self.scope_spans(ss, ctx - 1, &resource, fill)?;
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
        res_attrs: Option<&Attributes>,
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
        res_attrs: Option<&Attributes>,
    ) -> Result<(), WireError> {
        let mut p = SpanParts::default();
        let mut r = Reader::new(body);
        // The usual fields in their usual order, then any field out of it
        // by the general path, and the usual order again from there: every
        // field is read once, in wire order.
        loop {
            usual_fields(&mut r, &mut p, ctx)?;
            let Some((tag, wt)) = r.key()? else { break };
            span_field(&mut r, &mut p, tag, wt, ctx)?;
        }
        let ids = (|| {
            Ok((
                id_from_bytes::<16>(p.trace_id)?,
                id_from_bytes::<8>(p.span_id)?,
                id_from_bytes::<8>(p.parent)?,
            ))
        })();
        // Checked before the span is built, as `Batch::push` would: a span
        // built and then moved into the batch was copied twice (288 bytes).
        let checked = ids.and_then(|(trace_id, span_id, parent)| {
            check_span(&trace_id, &span_id, p.start, p.end).map(|()| (trace_id, span_id, parent))
        });
        let (trace_id, span_id, parent) = match checked {
            Ok(ids) => ids,
            Err(reason) => {
                self.batch.reject(reason, p.name);
                return Ok(());
            }
        };
        if let Some(res_attrs) = res_attrs {
            p.attributes.fill_from(res_attrs);
        }
        if let Some((2, message)) = p.status {
            // Only failed spans pay for the timeout scan, as in the prost path.
            p.attributes.note_error_text(message);
            if p.has_events {
                exception_texts(body, ctx, &mut p.attributes)?;
            }
        }
        let name = self.name(p.name);
        if self.batch.spans.len() == self.batch.spans.capacity() {
            self.make_room();
        }
        self.batch.spans.push(Span {
            trace_id,
            span_id,
            parent_span_id: (parent != [0; 8]).then_some(parent),
            resource: resource.clone(),
            name,
            kind: SpanKind::from_otlp(p.kind),
            start_unix_nano: p.start,
            end_unix_nano: p.end,
            status: StatusCode::from_otlp(p.status.map_or(0, |s| s.0)),
            attributes: p.attributes,
            links: p.links,
        });
        Ok(())
    }
}

/// A span's usual fields, as far as they come in the order every SDK writes
/// them (by field number, attributes last). Each is read when its one-byte
/// key comes next, so a usual span costs one well-predicted branch per
/// field. The loop this replaced jumped through a table on every field's
/// key, and that indirect jump, mispredicted as the keys changed, was the
/// largest single cost of decoding a span. It stops at the first field out
/// of this order, which [`FastDecoder::span`] reads by the general path
/// before calling this again, so fields are read in wire order and what is
/// accepted, refused and kept is the same.
#[inline(always)]
fn usual_fields<'a>(r: &mut Reader<'a>, p: &mut SpanParts<'a>, ctx: u32) -> Result<(), WireError> {
    if r.next_is(KEY_TRACE_ID) {
        p.trace_id = r.length_delimited()?;
    }
    if r.next_is(KEY_SPAN_ID) {
        p.span_id = r.length_delimited()?;
    }
    if r.next_is(KEY_PARENT) {
        p.parent = r.length_delimited()?;
    }
    if r.next_is(KEY_NAME) {
        p.name = r.string(&SPAN, 5, WireType::LengthDelimited)?;
    }
    if r.next_is(KEY_KIND) {
        p.kind = r.varint()? as i32;
    }
    if r.next_is(KEY_START) {
        p.start = r.fixed64(&SPAN, 7, WireType::SixtyFourBit)?;
    }
    if r.next_is(KEY_END) {
        p.end = r.fixed64(&SPAN, 8, WireType::SixtyFourBit)?;
    }
    while r.next_is(KEY_ATTRIBUTE) {
        let kv = r.message(&SPAN, 9, WireType::LengthDelimited, ctx)?;
        attribute(kv, ctx - 1, &mut p.attributes)?;
    }
    Ok(())
}

/// A span field off the fast path of [`FastDecoder::span`].
fn span_field<'a>(
    r: &mut Reader<'a>,
    p: &mut SpanParts<'a>,
    tag: u32,
    wt: WireType,
    ctx: u32,
) -> Result<(), WireError> {
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
            attribute(kv, ctx - 1, &mut p.attributes)?;
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
    Ok(())
}

/// One-byte keys of the span fields [`usual_fields`] reads:
/// `field << 3 | wire type`.
const KEY_TRACE_ID: u8 = 1 << 3 | 2;
const KEY_SPAN_ID: u8 = 2 << 3 | 2;
const KEY_PARENT: u8 = 4 << 3 | 2;
const KEY_NAME: u8 = 5 << 3 | 2;
const KEY_KIND: u8 = 6 << 3;
const KEY_START: u8 = 7 << 3 | 1;
const KEY_END: u8 = 8 << 3 | 1;
const KEY_ATTRIBUTE: u8 = 9 << 3 | 2;

/// A span attribute, kept in `into` when the graph reads it.
#[inline(always)]
fn attribute(kv: &[u8], ctx: u32, into: &mut Attributes) -> Result<(), WireError> {
    // Read here, not through `key_value`: that call was not inlined, and
    // its frame cost a third of the common attribute's instructions.
    if let Some((key, value)) = short_key_value(kv, ctx) {
        if Attributes::may_keep(key) {
            into.set(key, value);
        }
        return Ok(());
    }
    // Not `or_else` above: that call was not inlined, and it took both
    // shortcuts out of the span's loop (12% of the server's cycles).
    if let Some((key, value)) = short_key_int(kv, ctx) {
        if Attributes::may_keep(key) {
            into.set(key, value);
        }
        return Ok(());
    }
    if let (key, Some(value)) = key_value(kv, ctx)? {
        if Attributes::may_keep(key) {
            into.set(key, value);
        }
    }
    Ok(())
}

/// A `KeyValue`: its key, and its value when it is a string or an integer
/// (the only types [`Attributes::set`] keeps).
#[inline(always)]
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
    if let Some((key, value)) = short_key_value(body, ctx) {
        return Some((key, Some(value)));
    }
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

/// The start both shortcuts share: the key (field 1) with a one-byte
/// length, then at least the four bytes of the shortest value, whose field
/// (from its key on) comes second. `None` past the nesting limit.
#[inline(always)]
fn short_key(body: &[u8], ctx: u32) -> Option<(&[u8], &[u8])> {
    let [0x0a, key_len, rest @ ..] = body else {
        return None;
    };
    let key_len = usize::from(*key_len);
    if key_len >= 0x80 || ctx == 0 || rest.len() < key_len + 4 {
        return None;
    }
    Some(rest.split_at(key_len))
}

/// The canonical shape again, for the commonest case of all: a key and a
/// string value each shorter than 128 bytes, so every length is one byte and
/// the whole attribute is read by indexing. This is most attributes of most
/// spans, and the general reader's per-field bookkeeping was the largest
/// single cost of decoding. Anything else returns `None`.
#[inline(always)]
fn short_key_value(body: &[u8], ctx: u32) -> Option<(&str, Value<'_>)> {
    // key (field 1, bytes) | key_len | key | value (field 2) | any_len |
    // string_value (field 1, bytes) | str_len | str
    let (key, value) = short_key(body, ctx)?;
    let [0x12, any_len, 0x0a, str_len, text @ ..] = value else {
        return None;
    };
    let (any_len, str_len) = (usize::from(*any_len), usize::from(*str_len));
    if any_len >= 0x80 || str_len >= 0x80 || any_len != str_len + 2 || text.len() != str_len {
        return None;
    }
    // Every framing byte read above is below 0x80, so one ASCII check of the
    // whole attribute covers its key and value; only non-ASCII text pays for
    // two full UTF-8 checks.
    if wire::is_ascii(body) {
        // SAFETY: ASCII bytes are valid UTF-8.
        let (key, text) = unsafe {
            (
                std::str::from_utf8_unchecked(key),
                std::str::from_utf8_unchecked(text),
            )
        };
        return Some((key, Value::Str(text)));
    }
    Some((utf8(key)?, Value::Str(utf8(text)?)))
}

/// [`short_key_value`] for an integer value of up to nine varint bytes
/// (0 to 2^63 - 1: status codes, counts, ports), such as the
/// `http.response.status_code` of every HTTP span. Read by the general
/// path (`canonical_key_value`), that one attribute of the benchmarks' ten
/// cost 2.2–2.5% of the server's cycles.
/// A negative value (ten bytes) or anything else returns `None`.
#[inline(always)]
fn short_key_int(body: &[u8], ctx: u32) -> Option<(&str, Value<'_>)> {
    // key (field 1, bytes) | key_len | key | value (field 2) | any_len |
    // int_value (field 3, varint) | varint
    let (key, value) = short_key(body, ctx)?;
    let [0x12, any_len, 0x18, varint @ ..] = value else {
        return None;
    };
    if usize::from(*any_len) != varint.len() + 1 || varint.len() > 9 {
        return None;
    }
    let (&last, more) = varint.split_last()?;
    if last >= 0x80 || more.iter().any(|&b| b < 0x80) {
        return None;
    }
    let n = varint
        .iter()
        .rev()
        .fold(0u64, |n, &b| n << 7 | u64::from(b & 0x7f));
    Some((utf8(key)?, Value::Int(n as i64)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_request_whose_count_falls_short_is_decoded_whole() {
        // Two resources of spans with a group between them: the count
        // stops at the group, so it finds 3 spans of 43.
        let resource = |first: u8, spans: u8| {
            let mut scope = Vec::new();
            for id in first..first + spans {
                let mut span = wrap(0x0a, &[7; 16]);
                span.extend_from_slice(&wrap(0x12, &[id; 8]));
                span.push(KEY_START);
                span.extend_from_slice(&5u64.to_le_bytes());
                span.push(KEY_END);
                span.extend_from_slice(&9u64.to_le_bytes());
                scope.extend_from_slice(&wrap(0x12, &span));
            }
            wrap(0x0a, &wrap(0x12, &scope))
        };
        let mut body = resource(1, 3);
        body.extend_from_slice(&[0x4b, 0x08, 0x01, 0x4c]);
        body.extend_from_slice(&resource(4, 6));
        body.extend_from_slice(&resource(10, 6));
        body.extend_from_slice(&resource(16, 6));
        body.extend_from_slice(&resource(22, 6));
        body.extend_from_slice(&resource(28, 6));
        body.extend_from_slice(&resource(34, 6));
        body.extend_from_slice(&resource(40, 4));
        assert_eq!(count_spans(&body, 0), 3);
        let fast = decode_wire(&body).expect("valid");
        let reference = reference(&body).expect("valid");
        assert_eq!(fast.spans.len(), 43);
        assert_eq!(fast.spans, reference.spans);
    }

    #[test]
    fn fields_after_the_usual_order_are_read_in_wire_order() {
        // trace id, span id, then the name, an attribute, a second span id
        // (out of order: the last one wins) and a second attribute.
        let attr = |key: &str, value: &str| {
            let mut any = vec![0x0a, value.len() as u8];
            any.extend_from_slice(value.as_bytes());
            let mut kv = vec![0x0a, key.len() as u8];
            kv.extend_from_slice(key.as_bytes());
            kv.extend_from_slice(&[0x12, any.len() as u8]);
            kv.extend_from_slice(&any);
            kv
        };
        let mut span = vec![0x0a, 16];
        span.extend_from_slice(&[7; 16]);
        span.extend_from_slice(&[0x12, 8, 1, 1, 1, 1, 1, 1, 1, 1]);
        span.extend_from_slice(&[0x2a, 1, b'x', KEY_START]);
        span.extend_from_slice(&5u64.to_le_bytes());
        span.push(KEY_END);
        span.extend_from_slice(&9u64.to_le_bytes());
        let kv = attr("peer.service", "a");
        span.extend_from_slice(&[KEY_ATTRIBUTE, kv.len() as u8]);
        span.extend_from_slice(&kv);
        span.extend_from_slice(&[0x12, 8, 2, 2, 2, 2, 2, 2, 2, 2]);
        let kv = attr("peer.service", "b");
        span.extend_from_slice(&[KEY_ATTRIBUTE, kv.len() as u8]);
        span.extend_from_slice(&kv);
        let body = wrap(0x0a, &wrap(0x12, &wrap(0x12, &span)));
        let fast = decode_wire(&body).expect("valid");
        let reference = reference(&body).expect("valid");
        assert_eq!(fast.spans, reference.spans);
        assert_eq!(fast.spans[0].span_id, [2; 8]);
        assert_eq!(fast.spans[0].attributes.peer_service(), Some("b"));
    }

    /// A field of `tag` (a key byte) holding `body`, length first.
    fn wrap(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&varint(body.len() as u64));
        out.extend_from_slice(body);
        out
    }

    /// What the prost reference decodes from `body`.
    fn reference(body: &[u8]) -> Result<Batch, super::super::DecodeError> {
        super::super::otlp_proto::decode_request(body).map(super::super::otlp_proto::to_batch)
    }

    /// A request of one span whose one attribute's `AnyValue` is `any`.
    fn one_attribute(key: &str, any: &[u8]) -> Vec<u8> {
        let mut kv = wrap(0x0a, key.as_bytes());
        kv.extend_from_slice(&wrap(0x12, any));
        let mut span = wrap(0x0a, &[7; 16]);
        span.extend_from_slice(&wrap(0x12, &[1; 8]));
        span.push(KEY_START);
        span.extend_from_slice(&5u64.to_le_bytes());
        span.push(KEY_END);
        span.extend_from_slice(&9u64.to_le_bytes());
        span.extend_from_slice(&wrap(KEY_ATTRIBUTE, &kv));
        wrap(0x0a, &wrap(0x12, &wrap(0x12, &span)))
    }

    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    }

    #[test]
    fn integer_attributes_read_as_the_reference_reads_them() {
        for n in [0, 5, 200, 503, 1 << 40, i64::MAX, -1, i64::MIN] {
            let mut any = vec![0x18];
            any.extend_from_slice(&varint(n as u64));
            let body = one_attribute("http.response.status_code", &any);
            let fast = decode_wire(&body).expect("valid");
            let reference = reference(&body).expect("valid");
            assert_eq!(fast.spans, reference.spans, "{n}");
            assert_eq!(fast.spans[0].attributes.http_status_code, Some(n), "{n}");
        }
        // Shapes at the edges, each read as prost reads it: an over-long
        // zero (by the shortcut), a ten-byte value and two integers, the
        // last of which wins (by the general path).
        for (any, n) in [
            (&[0x18, 0x80, 0x00][..], 0),
            (
                &[
                    0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
                ][..],
                i64::MAX,
            ),
            (&[0x18, 0x05, 0x18, 0x07][..], 7),
        ] {
            let body = one_attribute("http.response.status_code", any);
            let fast = decode_wire(&body).expect("valid");
            let reference = reference(&body).expect("valid");
            assert_eq!(fast.spans, reference.spans, "{any:?}");
            assert_eq!(
                fast.spans[0].attributes.http_status_code,
                Some(n),
                "{any:?}"
            );
        }
        // Two varints cut short inside their value and one followed by a
        // stray byte (field 0): refused by both decoders, not read by the
        // shortcut. A key that is not UTF-8 follows.
        for (key, any) in [
            ("http.response.status_code", &[0x18, 0x80][..]),
            ("http.response.status_code", &[0x18, 0xc8, 0x81][..]),
            ("http.response.status_code", &[0x18, 0x05, 0x05][..]),
        ] {
            let body = one_attribute(key, any);
            assert!(decode_wire(&body).is_err(), "{any:?}");
            assert!(reference(&body).is_err());
        }
        let mut body = one_attribute("http.response.status_code", &[0x18, 0xc8, 0x01]);
        let key_at = body.len() - 3 - 2 - "http.response.status_code".len();
        body[key_at] = 0xff;
        assert!(decode_wire(&body).is_err());
        assert!(reference(&body).is_err());
    }

    #[test]
    fn a_known_field_with_the_wrong_wire_type_is_refused() {
        // resource_spans (field 1) sent as a varint.
        let err = decode_wire(&[0x08, 0x01]).unwrap_err();
        assert!(err.to_string().contains("resource_spans"), "{err}");
    }
}
