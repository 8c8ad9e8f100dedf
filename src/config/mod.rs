//! The pipeline file: OpenTelemetry Collector-style YAML, validated up front.
//!
//! Errors name the file and the key path (`processors.graph.pairing.ttl`),
//! because a config error is only useful if the user can find the line.

mod env;
pub mod model;

use std::path::{Path, PathBuf};

pub use model::PipelineConfig;

/// The embedded default pipeline (`pipelines/default.yaml`).
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: ${{env:{var}}} is not set and has no default (write ${{env:{var}:-value}} to give one)")]
    MissingEnv { file: String, var: String },
    #[error("{file}: unterminated ${{...}} at byte {at}")]
    Unterminated { file: String, at: usize },
    #[error("{file}: at `{path}`: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

/// Loads a pipeline file, or the embedded default when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<PipelineConfig, ConfigError> {
    let (file, text) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                file: p.display().to_string(),
                source,
            })?;
            (p.display().to_string(), text)
        }
        None => (
            "<embedded default pipeline>".to_owned(),
            DEFAULT_PIPELINE.to_owned(),
        ),
    };
    parse(&file, &text)
}

/// Parses pipeline YAML; `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<PipelineConfig, ConfigError> {
    let text = env::substitute(file, text, |var| std::env::var(var).ok())?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let config: PipelineConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::Invalid {
            file: file.to_owned(),
            path: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })?;
    config
        .validate()
        .map_err(|(path, message)| ConfigError::Invalid {
            file: file.to_owned(),
            path,
            message,
        })?;
    Ok(config)
}

/// Where the data directory defaults to when the pipeline names none.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// `text` (a pipeline) with every listener on a free loopback port and its
/// data in `data_dir`: what tests and `faultline demo` run, so they never
/// collide with a collector on the default ports.
pub fn on_free_ports(text: &str, data_dir: &str) -> String {
    let mut out = text.to_owned();
    for var in [
        "FAULTLINE_GRPC_ENDPOINT",
        "FAULTLINE_HTTP_ENDPOINT",
        "FAULTLINE_API_ENDPOINT",
        "FAULTLINE_PROXY_ENDPOINT",
    ] {
        for host in ["127.0.0.1", "0.0.0.0"] {
            for port in ["4317", "4318", "8080", "8474"] {
                let from = format!("${{env:{var}:-{host}:{port}}}");
                out = out.replace(&from, "127.0.0.1:0");
            }
        }
    }
    out.replace("${env:FAULTLINE_DATA_DIR:-./faultline-data}", data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_loads() {
        let c = load(None).unwrap();
        assert_eq!(c.grpc_endpoint().unwrap().port(), 4317);
        assert_eq!(c.processors.graph.window.as_secs(), 1);
        assert!(c.jsonl_exporter().is_some());
        assert!(c.kafka_exporter().is_none());
        let history = c.parquet_exporter().expect("the default keeps history");
        assert_eq!(history.flush.as_secs(), 60);
        assert_eq!(history.max_age.as_secs(), 7 * 24 * 3600);
    }

    #[test]
    fn free_ports_leave_no_default_listener() {
        for text in [DEFAULT_PIPELINE, include_str!("../../pipelines/kafka.yaml")] {
            let c = parse("p.yaml", &on_free_ports(text, "/tmp/d")).unwrap();
            assert_eq!(c.grpc_endpoint().unwrap().port(), 0);
            assert_eq!(c.http_endpoint().unwrap().port(), 0);
            assert_eq!(c.api_endpoint().unwrap().port(), 0);
            assert_eq!(c.faultproxy().unwrap().endpoint.port(), 0);
        }
    }

    #[test]
    fn the_kafka_pipeline_loads() {
        let text = include_str!("../../pipelines/kafka.yaml");
        let c = parse("kafka.yaml", text).unwrap();
        let k = c.kafka_exporter().expect("kafka exporter used");
        assert_eq!(k.topics.signals, "faultline.signals");
        assert!(c.jsonl_exporter().is_none());
    }

    #[test]
    fn an_undeclared_exporter_is_named() {
        let text = DEFAULT_PIPELINE.replace(
            "exporters: [jsonl, parquet]",
            "exporters: [jsonl, parquet, kafka]",
        );
        assert_ne!(text, DEFAULT_PIPELINE);
        let err = parse("p.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("service.pipelines.traces.exporters"), "{err}");
        assert!(err.contains("kafka"), "{err}");
    }

    #[test]
    fn an_unknown_key_names_the_key_and_file() {
        let text =
            DEFAULT_PIPELINE.replace("windows_kept: 120", "windows_kept: 120\n    colour: blue");
        let err = parse("my.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("my.yaml"), "{err}");
        assert!(err.contains("processors.graph"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_bad_duration_names_its_path() {
        let text = DEFAULT_PIPELINE.replace("ttl: 10s", "ttl: soon");
        let err = parse("p.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("processors.graph.pairing.ttl"), "{err}");
    }

    #[test]
    fn pipelines_must_name_declared_components() {
        let text = DEFAULT_PIPELINE.replace("receivers: [otlp]", "receivers: [otlp, zipkin]");
        let err = parse("p.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("service.pipelines.traces.receivers"), "{err}");
        assert!(err.contains("zipkin"), "{err}");
    }

    #[test]
    fn the_memory_limiter_is_declared_checked_and_optional() {
        let c = load(None).unwrap();
        let m = c.memory_limiter().expect("on in the default pipeline");
        assert_eq!((m.limit_mib, m.spike_limit_mib), (Some(1024), Some(256)));
        let off = DEFAULT_PIPELINE.replace("[memory_limiter, graph", "[graph");
        assert!(parse("p.yaml", &off).unwrap().memory_limiter().is_none());
        let bad = DEFAULT_PIPELINE.replace("spike_limit_mib: 256", "spike_limit_mib: 2048");
        let err = parse("p.yaml", &bad).unwrap_err().to_string();
        assert!(err.contains("processors.memory_limiter"), "{err}");
        assert!(err.contains("spike_limit_mib"), "{err}");
        let start = DEFAULT_PIPELINE.find("  memory_limiter:").unwrap();
        let end = DEFAULT_PIPELINE.find("  graph:").unwrap();
        let undeclared = format!("{}{}", &DEFAULT_PIPELINE[..start], &DEFAULT_PIPELINE[end..]);
        let err = parse("p.yaml", &undeclared).unwrap_err().to_string();
        assert!(err.contains("service.pipelines.traces.processors"), "{err}");
        assert!(err.contains("memory_limiter"), "{err}");
    }
}
