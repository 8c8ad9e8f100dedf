//! Request bodies decoded as Toxiproxy's Go decoder does: only the first
//! JSON value counts, field names match case-insensitively, unknown fields
//! and `null` are ignored, and a value of the wrong type is a 400.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The first JSON value of a body (an empty body is Go's `EOF`).
pub fn first_value(body: &[u8]) -> Result<Value, ApiError> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match values.next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) if e.is_eof() => Err(bad("unexpected EOF".into())),
        Some(Err(e)) => Err(bad(e.to_string())),
        None => Err(bad("EOF".into())),
    }
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequestBody(msg)
}

/// The known field `key` stands for: an exact match first, then any case.
pub fn fold_key<'a>(key: &str, fields: &[&'a str]) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

/// How Go names a JSON value's type in its decoding errors.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The known, non-null fields of a JSON object.
pub struct Fields {
    map: Map<String, Value>,
    what: &'static str,
}

impl Fields {
    /// `what` names the Go type in errors, e.g. `toxiproxy.Proxy`.
    pub fn new(v: Value, known: &[&str], what: &'static str) -> Result<Fields, ApiError> {
        let Value::Object(obj) = v else {
            return Err(bad(format!(
                "json: cannot unmarshal {} into Go value of type {what}",
                json_kind(&v)
            )));
        };
        let mut map = Map::new();
        for (key, value) in obj {
            if let (Some(field), false) = (fold_key(&key, known), value.is_null()) {
                map.insert(field.to_string(), value);
            }
        }
        Ok(Fields { map, what })
    }

    fn mismatch(&self, field: &str, v: &Value, go_type: &str) -> ApiError {
        bad(format!(
            "json: cannot unmarshal {} into Go struct field {}.{field} of type {go_type}",
            json_kind(v),
            self.what
        ))
    }

    pub fn str(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.mismatch(field, v, "string")),
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.mismatch(field, v, "bool")),
        }
    }

    pub fn f32(&self, field: &str) -> Result<Option<f32>, ApiError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| self.mismatch(field, v, "float32")),
            Some(v) => Err(self.mismatch(field, v, "float32")),
        }
    }

    pub fn u64(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.mismatch(field, v, "uint64")),
        }
    }

    pub fn raw(&self, field: &str) -> Option<&Value> {
        self.map.get(field)
    }
}

/// A proxy as the API receives it (create, update, populate, config file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyInput {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
    /// faultline's extension: the seed of this proxy's random draws.
    pub seed: Option<u64>,
}

const PROXY_FIELDS: &[&str] = &["name", "listen", "upstream", "enabled", "seed"];

impl ProxyInput {
    pub fn parse(v: Value) -> Result<ProxyInput, ApiError> {
        let f = Fields::new(v, PROXY_FIELDS, "toxiproxy.Proxy")?;
        Ok(ProxyInput {
            name: f.str("name")?,
            listen: f.str("listen")?,
            upstream: f.str("upstream")?,
            enabled: f.bool("enabled")?,
            seed: f.u64("seed")?,
        })
    }

    /// A `/populate` body (or a `--config` file): an array of proxies.
    pub fn parse_list(v: Value) -> Result<Vec<ProxyInput>, ApiError> {
        let Value::Array(items) = v else {
            return Err(bad(format!(
                "json: cannot unmarshal {} into Go value of type []toxiproxy.Proxy",
                json_kind(&v)
            )));
        };
        items.into_iter().map(ProxyInput::parse).collect()
    }
}

/// A toxic as `POST /proxies/{p}/toxics` and its update receive it.
#[derive(Debug, Clone, Default)]
pub struct ToxicInput {
    pub name: Option<String>,
    pub type_name: Option<String>,
    pub stream: Option<String>,
    pub toxicity: Option<f32>,
    pub attributes: Option<Value>,
}

const TOXIC_FIELDS: &[&str] = &["name", "type", "stream", "toxicity", "attributes"];

impl ToxicInput {
    pub fn parse(v: Value) -> Result<ToxicInput, ApiError> {
        let f = Fields::new(v, TOXIC_FIELDS, "toxics.ToxicWrapper")?;
        let attributes = f.raw("attributes").cloned();
        if let Some(a) = attributes.as_ref().filter(|a| !a.is_object()) {
            return Err(f.mismatch("attributes", a, "toxics.Toxic"));
        }
        Ok(ToxicInput {
            name: f.str("name")?,
            type_name: f.str("type")?,
            stream: f.str("stream")?,
            toxicity: f.f32("toxicity")?,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_like_go() {
        assert!(matches!(first_value(b""), Err(ApiError::BadRequestBody(m)) if m == "EOF"));
        assert_eq!(first_value(b"{\"a\":1} trailing").unwrap(), json!({"a": 1}));
        assert!(first_value(b"{\"a\":").is_err());
        let p =
            ProxyInput::parse(json!({"NAME": "x", "Upstream": "u", "enabled": null, "other": 1}))
                .unwrap();
        assert_eq!(p.name.as_deref(), Some("x"));
        assert_eq!(p.upstream.as_deref(), Some("u"));
        assert_eq!(p.enabled, None);
        assert!(ProxyInput::parse(json!({"name": 5})).is_err());
        assert!(ProxyInput::parse(json!([])).is_err());
        assert!(ProxyInput::parse_list(json!({})).is_err());
        assert!(ToxicInput::parse(json!({"type": "latency", "attributes": 3})).is_err());
        assert!(ToxicInput::parse(json!({"toxicity": "1"})).is_err());
    }
}
