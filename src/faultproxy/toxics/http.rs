//! `http` (a faultline extension): acts on each HTTP/1.x request rather than
//! on each connection. Toxiproxy's toxicity is drawn once per connection, so
//! behind a connection pool a "10 %" fault hits either every request of a
//! pooled connection or none; this toxic draws `probability` per request.
//!
//! It reads requests on the `upstream` stream (the default for this type).
//! A chosen request is held `delay_ms` ms, and with a non-zero
//! `abort_status` it never reaches the server: once it has been read whole,
//! the client gets that status (after the delay) with the header
//! `x-faultline-fault: http`, on a connection that stays open unless the
//! request asked to close it. Pipelined requests are not re-ordered: an
//! abort answer is sent when its request has been read.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ms, Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, Ev, Queue};
use crate::faultproxy::http1::{Framer, Piece, RequestInfo};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http {
    /// Milliseconds a chosen request is held.
    pub delay_ms: i64,
    /// The status a chosen request is answered with; 0 forwards it.
    pub abort_status: i64,
    /// The share of requests chosen, 0 to 1.
    pub probability: f64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            delay_ms: 0,
            abort_status: 0,
            probability: 1.0,
        }
    }
}

impl Attributes for Http {
    const FIELDS: &'static [&'static str] = &["delay_ms", "abort_status", "probability"];

    fn validate(&self) -> Result<(), String> {
        if self.abort_status != 0 && !(200..=599).contains(&self.abort_status) {
            return Err("http toxic: abort_status must be 0 or 200..599".into());
        }
        if !(0.0..=1.0).contains(&self.probability) {
            return Err("http toxic: probability must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// What was decided for the request being read.
struct Decision {
    delay: Duration,
    abort: bool,
    info: RequestInfo,
}

pub struct HttpLink {
    attrs: Http,
    framer: Framer,
    current: Option<Decision>,
}

impl HttpLink {
    pub fn new(attrs: &Http) -> Self {
        HttpLink {
            attrs: attrs.clone(),
            framer: Framer::default(),
            current: None,
        }
    }

    fn decide(&self, info: RequestInfo, rng: &mut Rng) -> Decision {
        let chosen = rng.next_f64() < self.attrs.probability;
        Decision {
            delay: if chosen {
                ms(self.attrs.delay_ms)
            } else {
                Duration::ZERO
            },
            abort: chosen && self.attrs.abort_status != 0,
            info,
        }
    }

    fn piece(&mut self, at: Instant, piece: Piece, rng: &mut Rng, out: &mut Queue) {
        match piece {
            Piece::Head { bytes, info } => {
                let d = self.decide(info, rng);
                if !d.abort {
                    out.push(at + d.delay, Ev::Data(bytes));
                }
                self.current = Some(d);
            }
            Piece::Body(bytes) => match &self.current {
                Some(d) if d.abort => {}
                Some(d) => out.push(at + d.delay, Ev::Data(bytes)),
                None => out.push(at, Ev::Data(bytes)),
            },
            Piece::End => {
                if let Some(d) = self.current.take().filter(|d| d.abort) {
                    let bytes = abort_response(self.attrs.abort_status, &d.info);
                    let close = d.info.close;
                    out.push(at + d.delay, Ev::Reply { bytes, close });
                }
            }
            Piece::Opaque(bytes) => out.push(at, Ev::Data(bytes)),
        }
    }
}

/// The answer to an aborted request (no body for HEAD).
fn abort_response(status: i64, info: &RequestInfo) -> Bytes {
    let code = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let reason = code.canonical_reason().unwrap_or("Injected");
    let body = format!("faultline fault proxy: injected {}\n", code.as_u16());
    let connection = if info.close { "close" } else { "keep-alive" };
    let mut text = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nx-faultline-fault: http\r\nconnection: {connection}\r\n\r\n",
        code.as_u16(),
        body.len()
    );
    if info.method != "HEAD" {
        text.push_str(&body);
    }
    Bytes::from(text)
}

impl Behaviour for HttpLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::Http(a) = kind {
            self.attrs = a.clone();
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, rng: &mut Rng, out: &mut Queue) {
        let Ev::Data(data) = ev else {
            return out.push(at, ev);
        };
        for piece in self.framer.feed(&data) {
            self.piece(at, piece, rng, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_answers_with_the_status_and_keeps_the_connection() {
        let info = RequestInfo {
            method: "GET".into(),
            close: false,
        };
        let text = String::from_utf8(abort_response(503, &info).to_vec()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: keep-alive") && text.ends_with("injected 503\n"));
        let head = RequestInfo {
            method: "HEAD".into(),
            close: true,
        };
        let text = String::from_utf8(abort_response(500, &head).to_vec()).unwrap();
        assert!(text.ends_with("\r\n\r\n") && text.contains("connection: close"));
        assert!(Http {
            abort_status: 42,
            ..Http::default()
        }
        .validate()
        .is_err());
    }
}
