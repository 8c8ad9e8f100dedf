//! Finds where each HTTP/1.x request starts and ends in a byte stream, so
//! the `http` toxic can act per request. Bytes are never rewritten: the
//! framer only labels them. Anything it cannot follow (a head over 64 KiB,
//! a malformed head, an upgrade or CONNECT) turns it into a pass-through for
//! the rest of the connection.

use bytes::{Bytes, BytesMut};

/// Longest request head the framer will wait for.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// A labelled run of bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// A complete request head (request line and headers).
    Head {
        bytes: Bytes,
        info: RequestInfo,
    },
    Body(Bytes),
    /// The request whose head came last is complete.
    End,
    /// Bytes the framer no longer interprets.
    Opaque(Bytes),
}

/// What the toxic needs to know about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    pub method: String,
    /// The client asked to close the connection after the response.
    pub close: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    Trailer,
    Opaque,
}

#[derive(Debug)]
pub struct Framer {
    state: State,
    buf: BytesMut,
    /// The current request switches protocols once it ends.
    upgrade: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: State::Head,
            buf: BytesMut::new(),
            upgrade: false,
        }
    }
}

impl Framer {
    /// Labels `data`, holding back an incomplete head or chunk-size line.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Piece> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while !self.buf.is_empty() && self.step(&mut out) {}
        out
    }

    /// One parsing step; false when more bytes are needed.
    fn step(&mut self, out: &mut Vec<Piece>) -> bool {
        match self.state {
            State::Head => self.head(out),
            State::Fixed(n) => {
                let body = self.buf.split_to((n as usize).min(self.buf.len())).freeze();
                let left = n - body.len() as u64;
                out.push(Piece::Body(body));
                if left == 0 {
                    self.end(out);
                } else {
                    self.state = State::Fixed(left);
                }
                true
            }
            State::ChunkSize => self.chunk_size(out),
            State::ChunkData(n) => {
                let body = self.buf.split_to((n as usize).min(self.buf.len())).freeze();
                let left = n - body.len() as u64;
                out.push(Piece::Body(body));
                self.state = if left == 0 {
                    State::ChunkSize
                } else {
                    State::ChunkData(left)
                };
                true
            }
            State::Trailer => self.trailer(out),
            State::Opaque => {
                out.push(Piece::Opaque(self.buf.split().freeze()));
                true
            }
        }
    }

    fn head(&mut self, out: &mut Vec<Piece>) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => {
                let (info, body, upgrade) = describe(&req);
                self.upgrade = upgrade;
                let bytes = self.buf.split_to(n).freeze();
                out.push(Piece::Head { bytes, info });
                match body {
                    Body::None => self.end(out),
                    Body::Fixed(n) => self.state = State::Fixed(n),
                    Body::Chunked => self.state = State::ChunkSize,
                }
                true
            }
            Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEAD => false,
            _ => {
                tracing::debug!("faultproxy: not HTTP/1 any more, passing bytes through");
                self.state = State::Opaque;
                true
            }
        }
    }

    fn chunk_size(&mut self, out: &mut Vec<Piece>) -> bool {
        let Some(line) = self.take_line(out) else {
            return false;
        };
        let text = String::from_utf8_lossy(&line);
        let hex = text.split(';').next().unwrap_or("").trim();
        match u64::from_str_radix(hex, 16) {
            Ok(0) => self.state = State::Trailer,
            Ok(n) => self.state = State::ChunkData(n.saturating_add(2)),
            Err(_) => self.state = State::Opaque,
        }
        true
    }

    fn trailer(&mut self, out: &mut Vec<Piece>) -> bool {
        let Some(line) = self.take_line(out) else {
            return false;
        };
        if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
            self.end(out);
        }
        true
    }

    /// Takes one line (with its newline) as body bytes.
    fn take_line(&mut self, out: &mut Vec<Piece>) -> Option<Bytes> {
        let at = self.buf.iter().position(|b| *b == b'\n')?;
        let line = self.buf.split_to(at + 1).freeze();
        out.push(Piece::Body(line.clone()));
        Some(line)
    }

    fn end(&mut self, out: &mut Vec<Piece>) {
        out.push(Piece::End);
        self.state = if self.upgrade {
            State::Opaque
        } else {
            State::Head
        };
    }
}

enum Body {
    None,
    Fixed(u64),
    Chunked,
}

/// The request's method, whether it closes, how its body is framed and
/// whether it switches protocols.
fn describe(req: &httparse::Request) -> (RequestInfo, Body, bool) {
    let method = req.method.unwrap_or("").to_string();
    let header = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    let connection = header("connection");
    let has = |list: &str, token: &str| list.split(',').any(|t| t.trim() == token);
    let close = if req.version == Some(0) {
        !has(&connection, "keep-alive")
    } else {
        has(&connection, "close")
    };
    let upgrade = method == "CONNECT" || has(&connection, "upgrade");
    let body = if has(&header("transfer-encoding"), "chunked") {
        Body::Chunked
    } else {
        match header("content-length").trim().parse::<u64>() {
            Ok(n) if n > 0 => Body::Fixed(n),
            _ => Body::None,
        }
    };
    (RequestInfo { method, close }, body, upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Head { info, .. } => format!("head {}", info.method),
                Piece::Body(b) => format!("body {}", b.len()),
                Piece::End => "end".into(),
                Piece::Opaque(b) => format!("opaque {}", b.len()),
            })
            .collect()
    }

    #[test]
    fn frames_lengths_chunks_and_split_heads() {
        let mut f = Framer::default();
        let req = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let (one, two) = req.split_at(20);
        assert!(f.feed(one).is_empty());
        assert_eq!(labels(&f.feed(two)), ["head POST", "body 5", "end"]);
        let chunked = b"PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let pieces = f.feed(chunked);
        let l = labels(&pieces);
        assert_eq!(l.first().unwrap(), "head PUT");
        assert_eq!(&l[l.len() - 3..], ["end", "head GET", "end"]);
        let body: usize = pieces
            .iter()
            .map(|p| if let Piece::Body(b) = p { b.len() } else { 0 })
            .sum();
        assert_eq!(body, "3\r\nabc\r\n0\r\n\r\n".len());
        assert!(matches!(&pieces[pieces.len() - 2], Piece::Head { info, .. } if info.close));
    }

    #[test]
    fn gives_up_on_non_http_and_upgrades() {
        let mut f = Framer::default();
        assert_eq!(labels(&f.feed(b"\x00\x01garbage\r\n\r\n")), ["opaque 13"]);
        let mut f = Framer::default();
        let l = labels(&f.feed(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\nframes"));
        assert_eq!(l, ["head GET", "end", "opaque 6"]);
        let mut f = Framer::default();
        let http10 = f.feed(b"GET / HTTP/1.0\r\n\r\n");
        assert!(matches!(&http10[0], Piece::Head { info, .. } if info.close));
    }
}
