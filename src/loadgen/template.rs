//! [`Template`]: an encoded request that can be sent again and again as
//! new traffic, with fresh trace ids and current times.
//!
//! Generating and encoding a 512-span request costs the load generator
//! about as much CPU as decoding it costs the collector, so a load generator
//! that encoded every request would measure itself. A template is encoded
//! once; each [`Template::render`] copies the bytes and patches the trace
//! ids (XOR with a per-request salt, so every request's traces are new and
//! still consistent within the request) and the span times (shifted to
//! now) in place.

/// Where a request's trace ids and times sit in its encoding.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    trace_ids: Vec<usize>,
    times: Vec<usize>,
    base_ns: u64,
    spans: usize,
}

/// Why a template could not be made: the bytes are not the protobuf
/// encoding of an `ExportTraceServiceRequest` (a bug in the generator).
#[derive(Debug, thiserror::Error)]
#[error("cannot index the generated request at byte {at}: {what}")]
pub struct TemplateError {
    at: usize,
    what: &'static str,
}

impl Template {
    /// Indexes `bytes`, an encoded request whose span times start at `base_ns`.
    pub fn new(bytes: Vec<u8>, base_ns: u64) -> Result<Template, TemplateError> {
        let mut t = Template {
            bytes,
            trace_ids: Vec::new(),
            times: Vec::new(),
            base_ns,
            spans: 0,
        };
        let len = t.bytes.len();
        t.walk(0, len, 0)?;
        Ok(t)
    }

    /// Spans in one rendering.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the request to `out` with trace ids salted by `salt` and
    /// times moved so the template's base time becomes `now_ns`. Appends,
    /// so a caller can render behind a frame header of its own.
    pub fn render(&self, salt: u64, now_ns: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let out = &mut out[start..];
        let mix = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(31);
        let halves = [mix.to_le_bytes(), (!mix).rotate_left(17).to_le_bytes()];
        for &at in &self.trace_ids {
            for (i, half) in halves.iter().enumerate() {
                for (b, m) in out[at + 8 * i..at + 8 * i + 8].iter_mut().zip(half) {
                    *b ^= m;
                }
            }
        }
        let shift = now_ns.wrapping_sub(self.base_ns);
        for &at in &self.times {
            let field = &mut out[at..at + 8];
            let mut time = [0u8; 8];
            time.copy_from_slice(field);
            let moved = u64::from_le_bytes(time).wrapping_add(shift);
            field.copy_from_slice(&moved.to_le_bytes());
        }
    }

    /// Walks the message in `[from, to)` at nesting `level` (0 = request,
    /// 1 = ResourceSpans, 2 = ScopeSpans, 3 = Span), recording span fields.
    fn walk(&mut self, from: usize, to: usize, level: u8) -> Result<(), TemplateError> {
        let mut at = from;
        while at < to {
            let key = self.varint(&mut at)?;
            let (tag, wire_type) = (key >> 3, key & 7);
            match wire_type {
                0 => {
                    self.varint(&mut at)?;
                }
                1 | 5 => {
                    let width = if wire_type == 1 { 8 } else { 4 };
                    if at + width > to {
                        return Err(TemplateError {
                            at,
                            what: "fixed-width field past the end",
                        });
                    }
                    if level == 3 && (tag == 7 || tag == 8) {
                        self.times.push(at);
                    }
                    at += width;
                }
                2 => {
                    let len = self.varint(&mut at)? as usize;
                    let end = at + len;
                    if end > to {
                        return Err(TemplateError {
                            at,
                            what: "length past the end",
                        });
                    }
                    match (level, tag) {
                        (0, 1) | (1, 2) => self.walk(at, end, level + 1)?,
                        (2, 2) => {
                            self.spans += 1;
                            self.walk(at, end, 3)?;
                        }
                        (3, 1) if len == 16 => self.trace_ids.push(at),
                        _ => {}
                    }
                    at = end;
                }
                _ => {
                    return Err(TemplateError {
                        at,
                        what: "unexpected wire type",
                    })
                }
            }
        }
        if at != to {
            return Err(TemplateError {
                at,
                what: "field past the end",
            });
        }
        Ok(())
    }

    fn varint(&self, at: &mut usize) -> Result<u64, TemplateError> {
        let mut value = 0u64;
        for shift in 0..10 {
            let Some(&b) = self.bytes.get(*at) else {
                break;
            };
            *at += 1;
            value |= u64::from(b & 0x7f) << (7 * shift);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(TemplateError {
            at: *at,
            what: "bad varint",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{Generator, SpanShape};
    use crate::receivers::otlp_fast;

    #[test]
    fn a_render_behind_a_header_is_the_same_render() {
        let base = 1_700_000_000_000_000_000;
        let mut g = Generator::new(SpanShape::default(), 9);
        let t = Template::new(prost::Message::encode_to_vec(&g.request(base)), base).unwrap();
        let (mut alone, mut framed) = (Vec::new(), vec![7u8; 5]);
        t.render(3, base + 1_000, &mut alone);
        t.render(3, base + 1_000, &mut framed);
        assert_eq!(&framed[..5], &[7u8; 5], "the header is left as it was");
        assert_eq!(&framed[5..], &alone[..]);
        assert_ne!(alone, t.bytes, "ids and times are patched");
    }

    #[test]
    fn renders_are_new_traces_at_the_new_time() {
        let base = 1_700_000_000_000_000_000;
        let mut g = Generator::new(SpanShape::default(), 5);
        let bytes = prost::Message::encode_to_vec(&g.request(base));
        let t = Template::new(bytes, base).unwrap();
        assert_eq!(t.spans(), 512);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        t.render(1, base + 5_000_000_000, &mut a);
        t.render(2, base + 5_000_000_000, &mut b);
        let a = otlp_fast::decode(&a).unwrap();
        let b = otlp_fast::decode(&b).unwrap();
        assert_eq!((a.spans.len(), a.rejected), (512, 0));
        let original = otlp_fast::decode(&t.bytes).unwrap();
        for ((x, y), o) in a.spans.iter().zip(&b.spans).zip(&original.spans) {
            assert_ne!(x.trace_id, y.trace_id);
            assert_eq!(x.span_id, o.span_id);
            assert_eq!(x.start_unix_nano, o.start_unix_nano + 5_000_000_000);
            assert_eq!(x.duration_nanos(), o.duration_nanos());
        }
        // Within a request, spans of one trace still share their trace id.
        let traces = |batch: &crate::receivers::Batch| {
            batch
                .spans
                .iter()
                .map(|s| s.trace_id)
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(traces(&a), traces(&original));
    }
}
