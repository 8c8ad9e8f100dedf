//! Feedback weights: a per-target multiplier on hotspot scores that
//! experiment results raise, stored as JSON so it survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("cannot read feedback weights from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("feedback weights in {path} are not valid JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write feedback weights to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file's shape: `{"weights": {"edge:a->b": 2.0, …}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Feedback {
    pub weights: BTreeMap<String, f64>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl Feedback {
    /// Loads weights from `path` (a missing file means no weights yet).
    pub fn load(path: Option<&Path>) -> Result<Feedback, FeedbackError> {
        let Some(path) = path else {
            return Ok(Feedback::default());
        };
        let mut feedback = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Feedback>(&bytes).map_err(|source| {
                FeedbackError::Parse {
                    path: path.to_owned(),
                    source,
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Feedback::default(),
            Err(source) => {
                return Err(FeedbackError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        feedback.path = Some(path.to_owned());
        Ok(feedback)
    }

    pub fn weight(&self, key: &str) -> f64 {
        self.weights.get(key).copied().unwrap_or(1.0)
    }

    /// Multiplies a target's weight and saves the file (atomically: write
    /// a temporary file, then rename).
    pub fn raise(&mut self, key: &str, factor: f64) -> Result<f64, FeedbackError> {
        let w = self.weight(key) * factor;
        self.weights.insert(key.to_owned(), w);
        self.save()?;
        Ok(w)
    }

    pub fn as_map(&self) -> HashMap<String, f64> {
        self.weights.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn save(&self) -> Result<(), FeedbackError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| FeedbackError::Write {
            path: path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_weights_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/feedback.json");
        let mut f = Feedback::load(Some(&path)).unwrap();
        assert_eq!(f.weight("edge:a->b"), 1.0);
        assert_eq!(f.raise("edge:a->b", 1.5).unwrap(), 1.5);
        assert_eq!(f.raise("edge:a->b", 2.0).unwrap(), 3.0);
        let again = Feedback::load(Some(&path)).unwrap();
        assert_eq!(again.weight("edge:a->b"), 3.0);
        std::fs::write(&path, "{not json").unwrap();
        let err = Feedback::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("feedback.json"), "{err}");
    }
}
