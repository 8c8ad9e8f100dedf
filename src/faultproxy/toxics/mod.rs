//! The toxic types, one file each: attributes as Toxiproxy names them, and
//! what the toxic does to a link.
//!
//! Attributes decode the way Go decodes JSON into an existing struct (which
//! is what Toxiproxy does): keys match case-insensitively, unknown keys and
//! `null` values are ignored, missing keys keep their current value (zero
//! on creation), and a value of the wrong type is a 400.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::chain::Behaviour;
use super::error::ApiError;
use super::json::{fold_key, json_kind};

pub mod bandwidth;
pub mod http;
pub mod latency;
pub mod limit_data;
pub mod noop;
pub mod reset_peer;
pub mod slicer;
pub mod slow_close;
pub mod timeout;

/// Which way the bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl Direction {
    /// Toxiproxy's `stream.ParseDirection`: case-insensitive.
    pub fn parse(s: &str) -> Option<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// A toxic as the API holds it. Updates replace the whole value (same `id`),
/// so links notice a change by pointer.
#[derive(Debug, Clone)]
pub struct ToxicDef {
    /// Unique for the server's lifetime; names can be reused after a delete.
    pub id: u64,
    pub name: String,
    /// The `stream` string as the client sent it (Toxiproxy echoes it).
    pub stream: String,
    pub direction: Direction,
    pub toxicity: f32,
    pub kind: ToxicKind,
}

/// The toxic's JSON, in Toxiproxy's field order.
impl Serialize for ToxicDef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Toxic", 5)?;
        st.serialize_field("attributes", &self.kind)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("type", self.kind.type_name())?;
        st.serialize_field("stream", &self.stream)?;
        st.serialize_field("toxicity", &self.toxicity)?;
        st.end()
    }
}

/// A toxic type and its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    Noop(noop::Noop),
    Latency(latency::Latency),
    Bandwidth(bandwidth::Bandwidth),
    SlowClose(slow_close::SlowClose),
    Timeout(timeout::Timeout),
    ResetPeer(reset_peer::ResetPeer),
    Slicer(slicer::Slicer),
    LimitData(limit_data::LimitData),
    Http(http::Http),
}

/// The attributes, each type's fields in its declared (Toxiproxy's) order.
impl Serialize for ToxicKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToxicKind::Noop(a) => a.serialize(s),
            ToxicKind::Latency(a) => a.serialize(s),
            ToxicKind::Bandwidth(a) => a.serialize(s),
            ToxicKind::SlowClose(a) => a.serialize(s),
            ToxicKind::Timeout(a) => a.serialize(s),
            ToxicKind::ResetPeer(a) => a.serialize(s),
            ToxicKind::Slicer(a) => a.serialize(s),
            ToxicKind::LimitData(a) => a.serialize(s),
            ToxicKind::Http(a) => a.serialize(s),
        }
    }
}

/// A toxic's attributes: serde for the JSON, plus the key names so keys can
/// be matched case-insensitively as Go does.
pub trait Attributes: Serialize + DeserializeOwned + Clone + Default {
    const FIELDS: &'static [&'static str];
    /// Checks of faultline's own attributes (Toxiproxy checks none).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

impl ToxicKind {
    /// A toxic of the named type with zero attributes; `None` for a type
    /// Toxiproxy would call invalid. Names match exactly, as Toxiproxy's
    /// registry does.
    pub fn zero(type_name: &str) -> Option<ToxicKind> {
        Some(match type_name {
            "noop" => ToxicKind::Noop(Default::default()),
            "latency" => ToxicKind::Latency(Default::default()),
            "bandwidth" => ToxicKind::Bandwidth(Default::default()),
            "slow_close" => ToxicKind::SlowClose(Default::default()),
            "timeout" => ToxicKind::Timeout(Default::default()),
            "reset_peer" => ToxicKind::ResetPeer(Default::default()),
            "slicer" => ToxicKind::Slicer(Default::default()),
            "limit_data" => ToxicKind::LimitData(Default::default()),
            "http" => ToxicKind::Http(Default::default()),
            _ => return None,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Noop(_) => "noop",
            ToxicKind::Latency(_) => "latency",
            ToxicKind::Bandwidth(_) => "bandwidth",
            ToxicKind::SlowClose(_) => "slow_close",
            ToxicKind::Timeout(_) => "timeout",
            ToxicKind::ResetPeer(_) => "reset_peer",
            ToxicKind::Slicer(_) => "slicer",
            ToxicKind::LimitData(_) => "limit_data",
            ToxicKind::Http(_) => "http",
        }
    }

    /// These attributes with `update` decoded over them.
    pub fn merged(&self, update: &Value) -> Result<ToxicKind, ApiError> {
        Ok(match self {
            ToxicKind::Noop(a) => ToxicKind::Noop(merge(a, update)?),
            ToxicKind::Latency(a) => ToxicKind::Latency(merge(a, update)?),
            ToxicKind::Bandwidth(a) => ToxicKind::Bandwidth(merge(a, update)?),
            ToxicKind::SlowClose(a) => ToxicKind::SlowClose(merge(a, update)?),
            ToxicKind::Timeout(a) => ToxicKind::Timeout(merge(a, update)?),
            ToxicKind::ResetPeer(a) => ToxicKind::ResetPeer(merge(a, update)?),
            ToxicKind::Slicer(a) => ToxicKind::Slicer(merge(a, update)?),
            ToxicKind::LimitData(a) => ToxicKind::LimitData(merge(a, update)?),
            ToxicKind::Http(a) => ToxicKind::Http(merge(a, update)?),
        })
    }

    /// The attributes object of the toxic's JSON.
    pub fn attributes(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// A fresh per-link instance of the toxic.
    pub fn behaviour(&self) -> Box<dyn Behaviour> {
        match self {
            ToxicKind::Noop(_) => Box::new(noop::NoopLink),
            ToxicKind::Latency(a) => Box::new(latency::LatencyLink::new(a)),
            ToxicKind::Bandwidth(a) => Box::new(bandwidth::BandwidthLink::new(a)),
            ToxicKind::SlowClose(a) => Box::new(slow_close::SlowCloseLink::new(a)),
            ToxicKind::Timeout(a) => Box::new(timeout::TimeoutLink::new(a)),
            ToxicKind::ResetPeer(a) => Box::new(reset_peer::ResetPeerLink::new(a)),
            ToxicKind::Slicer(a) => Box::new(slicer::SlicerLink::new(a)),
            ToxicKind::LimitData(a) => Box::new(limit_data::LimitDataLink::new(a)),
            ToxicKind::Http(a) => Box::new(http::HttpLink::new(a)),
        }
    }
}

/// Decodes `update` over `current` as Go's decoder would.
fn merge<A: Attributes>(current: &A, update: &Value) -> Result<A, ApiError> {
    let fields = match update {
        Value::Null => return Ok(current.clone()),
        Value::Object(m) => m,
        other => {
            return Err(ApiError::BadRequestBody(format!(
                "json: cannot unmarshal {} into Go struct field ToxicWrapper.attributes",
                json_kind(other)
            )))
        }
    };
    let mut base = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (key, value) in fields {
        if let (Some(field), false) = (fold_key(key, A::FIELDS), value.is_null()) {
            base.insert(field.to_string(), value.clone());
        }
    }
    let merged: A = serde_json::from_value(Value::Object(base))
        .map_err(|e| ApiError::BadRequestBody(format!("attributes: {e}")))?;
    merged.validate().map_err(ApiError::BadRequestBody)?;
    Ok(merged)
}

/// Milliseconds as a duration; negative values are zero (Go sleeps no time).
pub fn ms(v: i64) -> std::time::Duration {
    std::time::Duration::from_millis(v.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_merge_like_go() {
        let zero = ToxicKind::zero("latency").unwrap();
        let a = zero
            .merged(&json!({"LATENCY": 100, "jitter": 5, "x": 1}))
            .unwrap();
        assert_eq!(a.attributes(), json!({"latency": 100, "jitter": 5}));
        let b = a.merged(&json!({"latency": 200, "jitter": null})).unwrap();
        assert_eq!(b.attributes(), json!({"latency": 200, "jitter": 5}));
        assert!(a.merged(&json!({"latency": "1"})).is_err());
        assert!(a.merged(&json!({"latency": 1.5})).is_err());
        assert!(a.merged(&json!(5)).is_err());
        assert_eq!(a.merged(&Value::Null).unwrap(), a);
        assert!(ToxicKind::zero("Latency").is_none());
    }
}
