//! A client for the Toxiproxy HTTP API: faultline's own fault proxy or a
//! real Toxiproxy server, the runner does not care which.

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("the Toxiproxy API at {url} did not answer: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the Toxiproxy API refused {what} ({status}): {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
}

#[derive(Clone)]
pub struct Toxiproxy {
    base: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    pub fn new(base: &str) -> Toxiproxy {
        Toxiproxy {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `POST /proxies/{proxy}/toxics`; returns the toxic's name.
    pub async fn add_toxic(&self, proxy: &str, toxic: &Value) -> Result<String, ToxiproxyError> {
        let url = format!("{}/proxies/{proxy}/toxics", self.base);
        let created = self
            .send(
                self.http.post(&url).json(toxic),
                &format!("toxic on {proxy}"),
            )
            .await?;
        Ok(created["name"].as_str().unwrap_or_default().to_owned())
    }

    /// `DELETE /proxies/{proxy}/toxics/{name}`; a toxic already gone is fine.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ToxiproxyError> {
        let url = format!("{}/proxies/{proxy}/toxics/{name}", self.base);
        let reply = self
            .http
            .delete(&url)
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        match reply.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => Err(ToxiproxyError::Refused {
                what: format!("removing {name} from {proxy}"),
                status,
                body: reply.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Enables or disables a proxy (`POST /proxies/{proxy}`).
    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<(), ToxiproxyError> {
        let url = format!("{}/proxies/{proxy}", self.base);
        let body = json!({ "enabled": enabled });
        self.send(
            self.http.post(&url).json(&body),
            &format!("enabling {proxy}"),
        )
        .await?;
        Ok(())
    }

    /// `GET /proxies/{proxy}`.
    pub async fn proxy(&self, proxy: &str) -> Result<Value, ToxiproxyError> {
        let url = format!("{}/proxies/{proxy}", self.base);
        self.send(self.http.get(&url), &format!("proxy {proxy}"))
            .await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Value, ToxiproxyError> {
        let reply = request
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = reply.status().as_u16();
        let body = reply.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(ToxiproxyError::Refused {
                what: what.to_owned(),
                status,
                body,
            });
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn unreachable(&self, source: reqwest::Error) -> ToxiproxyError {
        ToxiproxyError::Unreachable {
            url: self.base.clone(),
            source,
        }
    }
}
