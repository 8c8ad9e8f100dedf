//! The protobuf wire format as prost reads it: a bounds-checked [`Reader`]
//! (varints, lengths, fixed widths, UTF-8), skipping unknown fields of every
//! wire type with prost's nesting budget, and checking known fields against
//! [`super::schema`].

use super::schema::{Kind, Schema};

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

/// UTF-8 validation, as prost does for every string field. Keys and values
/// are short and nearly always ASCII, where `str::from_utf8`'s general
/// state machine costs about a hundred instructions a call (a third of the
/// whole decode); the ASCII check is a few.
#[inline]
pub(super) fn utf8(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// `bytes.is_ascii()` for the short strings of spans: eight bytes at a time,
/// the last eight (or four) read overlapping the rest instead of one by one.
/// The standard library's version aligns its reads first, which for
/// 10–40 byte keys and values cost more than the check itself, and it was
/// called twice per attribute (about a tenth of all decoding).
#[inline(always)]
pub(super) fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0xff; 8]));
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0xff; 4]));
    if n >= 8 {
        let mut seen = word(n - 8);
        let mut at = 0;
        while at + 8 < n {
            seen |= word(at);
            at += 8;
        }
        seen & HIGH == 0
    } else if n >= 4 {
        (half(0) | half(n - 4)) & 0x8080_8080 == 0
    } else {
        bytes.iter().all(|&b| b < 0x80)
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
pub(super) fn validate(message: &'static Schema, body: &[u8], ctx: u32) -> Result<(), WireError> {
    let mut r = Reader::new(body);
    while let Some((tag, wt)) = r.key()? {
        r.field(message, tag, wt, ctx)?;
    }
    Ok(())
}

/// A bounds-checked cursor over one message's bytes. Every read returns an
/// error rather than index past the end, so no input can make it panic.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Whether the next byte is `key` (a one-byte field key), consuming it if so.
    #[inline(always)]
    pub(super) fn next_is(&mut self, key: u8) -> bool {
        match self.buf {
            [first, rest @ ..] if *first == key => {
                self.buf = rest;
                true
            }
            _ => false,
        }
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::BufferUnderflow);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// LEB128, at most 10 bytes, rejecting values past `u64::MAX` as prost does.
    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        match *self.buf {
            [b, ..] if b < 0x80 => {
                self.buf = &self.buf[1..];
                Ok(u64::from(b))
            }
            // Two bytes: the length of every span and of most requests'
            // larger messages, and HTTP status codes; the loop below cost
            // about 80 instructions for them.
            [b0, b1, ..] if b1 < 0x80 => {
                self.buf = &self.buf[2..];
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            [_, ..] => self.varint_long(),
            [] => Err(WireError::InvalidVarint),
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
    pub(super) fn key(&mut self) -> Result<Option<(u32, WireType)>, WireError> {
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
    pub(super) fn length_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(WireError::BufferUnderflow);
        }
        self.take(len as usize)
    }

    #[inline]
    pub(super) fn bytes(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
    ) -> Result<&'a [u8], WireError> {
        self.expect(s, tag, wt, WireType::LengthDelimited)?;
        self.length_delimited()
    }

    #[inline]
    pub(super) fn string(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
    ) -> Result<&'a str, WireError> {
        let bytes = self.bytes(s, tag, wt)?;
        match utf8(bytes) {
            Some(text) => Ok(text),
            None => Err(not_utf8(s, tag)),
        }
    }

    #[inline]
    pub(super) fn varint_field(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
    ) -> Result<u64, WireError> {
        self.expect(s, tag, wt, WireType::Varint)?;
        self.varint()
    }

    #[inline]
    pub(super) fn fixed64(
        &mut self,
        s: &'static Schema,
        tag: u32,
        wt: WireType,
    ) -> Result<u64, WireError> {
        self.expect(s, tag, wt, WireType::SixtyFourBit)?;
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// A nested message's bytes. `ctx` is the budget of the enclosing
    /// message's fields; the nested one's fields get `ctx - 1`.
    #[inline]
    pub(super) fn message(
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
    pub(super) fn field(
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
        // The two-byte shortcut: the largest two-byte value, a padded zero
        // (prost accepts it), and a three-byte value it must leave alone.
        let mut r = Reader::new(&[0xff, 0x7f, 0x07]);
        assert_eq!(r.varint(), Ok(16_383));
        assert_eq!(r.buf, &[0x07]);
        let mut r = Reader::new(&[0x80, 0x00]);
        assert_eq!(r.varint(), Ok(0));
        assert!(r.buf.is_empty());
        let mut r = Reader::new(&[0x80, 0x80, 0x01]);
        assert_eq!(r.varint(), Ok(16_384));
        let mut r = Reader::new(&[0x96]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
    }

    #[test]
    fn the_ascii_check_agrees_with_the_standard_library() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..text.len() {
            for at in 0..len {
                let mut bytes = text[..len].to_vec();
                assert!(is_ascii(&bytes), "{len}");
                bytes[at] = 0xc3;
                assert!(!is_ascii(&bytes), "byte {at} of {len}");
                assert_eq!(is_ascii(&bytes), bytes.is_ascii());
            }
        }
    }
}
