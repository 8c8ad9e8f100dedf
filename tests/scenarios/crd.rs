//! A small OpenAPI v3 validator for CustomResourceDefinition schemas: what
//! the API server checks on create (types, required fields, enums,
//! patterns, bounds, int-or-string) plus unknown fields, which the server
//! would silently prune and which here are errors, so a misspelt field is
//! caught instead of vanishing.

use std::path::PathBuf;

use serde_json::Value;

/// `../shared/schemas/<rel>` beside the crate (the worktree or the clone).
pub fn schema_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/schemas")
        .join(rel)
}

/// A CRD file's kind, group and the `v1alpha1` openAPIV3Schema.
pub struct Crd {
    pub kind: String,
    pub group: String,
    pub schema: Value,
}

pub fn load(rel: &str) -> Crd {
    let path = schema_path(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (shared/ must sit beside the crate)",
            path.display()
        )
    });
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("a v1alpha1 version");
    Crd {
        kind: crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
        group: crd["spec"]["group"].as_str().unwrap().to_owned(),
        schema: version["schema"]["openAPIV3Schema"].clone(),
    }
}

impl Crd {
    /// Every violation in `doc`, as `path: what`.
    pub fn validate(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        if doc["kind"] != self.kind.as_str() {
            errors.push(format!("kind {} is not {}", doc["kind"], self.kind));
        }
        if doc["apiVersion"] != format!("{}/v1alpha1", self.group).as_str() {
            errors.push(format!(
                "apiVersion {} is not {}/v1alpha1",
                doc["apiVersion"], self.group
            ));
        }
        walk(doc, &self.schema, "$", &mut errors);
        errors
    }
}

fn type_ok(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    }
}

/// Checks `value` against `schema` at `path`.
pub fn walk(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!(
                "{path}: {value} is neither an integer nor a string"
            ));
        }
        return;
    }
    if let Some(branches) = schema["anyOf"].as_array() {
        let ok = branches.iter().any(|b| {
            let mut e = Vec::new();
            walk(value, b, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: {value} matches no anyOf branch"));
        }
    }
    if let Some(ty) = schema["type"].as_str() {
        if !type_ok(value, ty) {
            errors.push(format!("{path}: {value} is not of type {ty}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    match value {
        Value::String(s) => string(s, schema, path, errors),
        Value::Number(n) => number(n.as_f64().unwrap_or(0.0), schema, path, errors),
        Value::Array(items) => array(items, schema, path, errors),
        Value::Object(map) => object(map, schema, path, errors),
        _ => {}
    }
}

fn string(s: &str, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(p) = schema["pattern"].as_str() {
        if !regex::Regex::new(p).unwrap().is_match(s) {
            errors.push(format!("{path}: {s:?} does not match {p}"));
        }
    }
    let len = s.chars().count() as u64;
    if schema["minLength"].as_u64().is_some_and(|m| len < m) {
        errors.push(format!(
            "{path}: {s:?} is shorter than {}",
            schema["minLength"]
        ));
    }
    if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
        errors.push(format!(
            "{path}: {s:?} is longer than {}",
            schema["maxLength"]
        ));
    }
}

fn number(n: f64, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["minimum"].as_f64().is_some_and(|m| n < m) {
        errors.push(format!("{path}: {n} is below {}", schema["minimum"]));
    }
    if schema["maximum"].as_f64().is_some_and(|m| n > m) {
        errors.push(format!("{path}: {n} is above {}", schema["maximum"]));
    }
    if schema["format"] == "int32" && (n < i32::MIN as f64 || n > i32::MAX as f64) {
        errors.push(format!("{path}: {n} does not fit int32"));
    }
}

fn array(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["minItems"]
        .as_u64()
        .is_some_and(|m| (items.len() as u64) < m)
    {
        errors.push(format!("{path}: fewer than {} items", schema["minItems"]));
    }
    if schema["maxItems"]
        .as_u64()
        .is_some_and(|m| (items.len() as u64) > m)
    {
        errors.push(format!("{path}: more than {} items", schema["maxItems"]));
    }
    if schema.get("items").is_some() {
        for (i, item) in items.iter().enumerate() {
            walk(item, &schema["items"], &format!("{path}[{i}]"), errors);
        }
    }
}

fn object(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        if !map.contains_key(r) {
            errors.push(format!("{path}: missing required field {r}"));
        }
    }
    let n = map.len() as u64;
    if schema["minProperties"].as_u64().is_some_and(|m| n < m) {
        errors.push(format!(
            "{path}: fewer than {} fields",
            schema["minProperties"]
        ));
    }
    let props = schema["properties"].as_object();
    let extra = &schema["additionalProperties"];
    let open = schema["x-kubernetes-preserve-unknown-fields"] == true || *extra == true;
    for (key, value) in map {
        let at = format!("{path}.{key}");
        match props.and_then(|p| p.get(key)) {
            Some(s) => walk(value, s, &at, errors),
            None if extra.is_object() => walk(value, extra, &at, errors),
            None if open || props.is_none() => {}
            None => errors.push(format!("{at}: unknown field")),
        }
    }
}
