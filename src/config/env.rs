//! `${env:VAR}` and `${env:VAR:-default}` substitution, as the Collector does it.

use super::ConfigError;

/// Replaces every `${env:NAME}` / `${env:NAME:-default}` in `text`. `$$` is
/// a literal `$`. Other `${...}` forms are left alone.
pub fn substitute(
    file: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            offset += i + 2;
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("${env:") else {
            out.push('$');
            offset += i + 1;
            rest = &tail[1..];
            continue;
        };
        let end = body.find('}').ok_or(ConfigError::Unterminated {
            file: file.to_owned(),
            at: offset + i,
        })?;
        let (var, default) = match body[..end].split_once(":-") {
            Some((v, d)) => (v.trim(), Some(d)),
            None => (body[..end].trim(), None),
        };
        match lookup(var).or_else(|| default.map(str::to_owned)) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(ConfigError::MissingEnv {
                    file: file.to_owned(),
                    var: var.to_owned(),
                })
            }
        }
        let consumed = "${env:".len() + end + 1;
        offset += i + consumed;
        rest = &tail[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "PORT").then(|| "9000".to_owned())
    }

    #[test]
    fn substitutes_values_and_defaults() {
        let s = substitute("f", "a: ${env:PORT}\nb: ${env:HOST:-localhost} $$5", env).unwrap();
        assert_eq!(s, "a: 9000\nb: localhost $5");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = substitute("f.yaml", "a: ${env:NOPE}", env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOPE") && err.contains("f.yaml"), "{err}");
    }
}
