//! Where the runner reads signals: a faultline server's API, or the
//! operators' latest results in the same process.

use crate::operators::{SharedLatest, SignalRecord};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read signals from {url}: {source}")]
    Api { url: String, source: reqwest::Error },
}

#[derive(Clone)]
pub enum Source {
    /// `GET {base}/api/signals?since=…` on a running faultline.
    Api { base: String, http: reqwest::Client },
    /// The operators of this process.
    Local(SharedLatest),
}

impl Source {
    pub fn api(base: &str) -> Source {
        Source::Api {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Signal records of windows that ended after `since_ms`, oldest first.
    pub async fn since(&self, since_ms: u64) -> Result<Vec<SignalRecord>, SourceError> {
        match self {
            Source::Local(latest) => Ok(latest.read().signals_since(since_ms, None)),
            Source::Api { base, http } => {
                let url = format!("{base}/api/signals?since={since_ms}");
                let fail = |source| SourceError::Api {
                    url: url.clone(),
                    source,
                };
                let doc: serde_json::Value = http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(fail)?
                    .json()
                    .await
                    .map_err(fail)?;
                Ok(serde_json::from_value(doc["records"].clone()).unwrap_or_default())
            }
        }
    }
}
