//! The proxies and their toxics, and every operation the API offers on
//! them, with Toxiproxy's checks in Toxiproxy's order (so when a request is
//! wrong in two ways, the same error wins).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{watch, Mutex};

use super::error::ApiError;
use super::json::{first_value, Fields, ProxyInput, ToxicInput};
use super::listener::{resolve, Listening, ProxyContext};
use super::toxics::{Direction, ToxicDef, ToxicKind};

/// The toxics of a proxy split by direction, as links read them.
#[derive(Debug, Default)]
pub struct Chains {
    pub upstream: Vec<Arc<ToxicDef>>,
    pub downstream: Vec<Arc<ToxicDef>>,
}

impl Chains {
    pub fn get(&self, direction: Direction) -> &[Arc<ToxicDef>] {
        match direction {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }
}

/// A proxy as the API shows it, in Toxiproxy's field order.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyJson {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub toxics: Vec<ToxicDef>,
}

struct ProxyEntry {
    name: String,
    /// The bound address while enabled; as configured otherwise.
    listen: String,
    upstream: String,
    seed: Option<u64>,
    /// The seed links use: `seed`, else the server's.
    live_seed: Arc<AtomicU64>,
    /// In insertion order, both directions.
    toxics: Vec<Arc<ToxicDef>>,
    chains: watch::Sender<Arc<Chains>>,
    listening: Option<Listening>,
    connections: Arc<AtomicU64>,
}

impl ProxyEntry {
    fn new(name: String, listen: String, upstream: String, seed: Option<u64>) -> ProxyEntry {
        ProxyEntry {
            name,
            listen,
            upstream,
            seed,
            live_seed: Arc::new(AtomicU64::new(seed.unwrap_or(0))),
            toxics: Vec::new(),
            chains: watch::Sender::new(Arc::new(Chains::default())),
            listening: None,
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    fn enabled(&self) -> bool {
        self.listening.is_some()
    }

    /// Toxics as Toxiproxy lists them: the upstream chain, then downstream.
    fn ordered_toxics(&self) -> Vec<ToxicDef> {
        let chains = self.chains.borrow();
        chains
            .upstream
            .iter()
            .chain(&chains.downstream)
            .map(|t| (**t).clone())
            .collect()
    }

    fn json(&self) -> ProxyJson {
        ProxyJson {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.enabled(),
            seed: self.seed,
            toxics: self.ordered_toxics(),
        }
    }

    async fn start(&mut self, server_seed: u64) -> Result<(), ApiError> {
        if self.enabled() {
            return Ok(());
        }
        self.live_seed
            .store(self.seed.unwrap_or(server_seed), Ordering::Relaxed);
        let ctx = ProxyContext {
            name: self.name.as_str().into(),
            upstream: self.upstream.clone(),
            seed: self.live_seed.clone(),
            chains: self.chains.subscribe(),
            connections: self.connections.clone(),
        };
        let listening = Listening::bind(&self.listen, ctx).await?;
        self.listen = listening.addr.to_string();
        self.listening = Some(listening);
        tracing::info!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream,
            "faultproxy: proxy started");
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(listening) = self.listening.take() {
            listening.stop().await;
            tracing::info!(proxy = %self.name, "faultproxy: proxy stopped");
        }
    }

    /// Hands the toxics to the live links.
    fn publish(&self) {
        let (upstream, downstream) = self
            .toxics
            .iter()
            .cloned()
            .partition(|t| t.direction == Direction::Upstream);
        self.chains.send_replace(Arc::new(Chains {
            upstream,
            downstream,
        }));
    }

    fn toxic(&self, name: &str) -> Result<&Arc<ToxicDef>, ApiError> {
        self.toxics
            .iter()
            .find(|t| t.name == name)
            .ok_or(ApiError::ToxicNotFound)
    }
}

#[derive(Default)]
struct Inner {
    proxies: BTreeMap<String, ProxyEntry>,
    next_toxic_id: u64,
}

impl Inner {
    fn proxy(&mut self, name: &str) -> Result<&mut ProxyEntry, ApiError> {
        self.proxies.get_mut(name).ok_or(ApiError::ProxyNotFound)
    }
}

/// All proxies of one fault proxy server. Operations are serialised: each
/// takes the lock for its whole length, starts and stops included.
pub struct Registry {
    inner: Mutex<Inner>,
    seed: u64,
}

/// `name` and `upstream` must be present and non-empty.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::MissingField(field.to_string()))
}

impl Registry {
    pub fn new(seed: u64) -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            seed,
        }
    }

    /// The seed proxies use unless they set their own.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub async fn list(&self) -> BTreeMap<String, ProxyJson> {
        let inner = self.inner.lock().await;
        inner
            .proxies
            .iter()
            .map(|(name, p)| (name.clone(), p.json()))
            .collect()
    }

    pub async fn create(&self, body: &[u8]) -> Result<ProxyJson, ApiError> {
        let input = ProxyInput::parse(first_value(body)?)?;
        let name = required(input.name, "name")?;
        let upstream = required(input.upstream, "upstream")?;
        let mut inner = self.inner.lock().await;
        if inner.proxies.contains_key(&name) {
            return Err(ApiError::ProxyAlreadyExists);
        }
        let listen = input.listen.unwrap_or_default();
        let mut entry = ProxyEntry::new(name.clone(), listen, upstream, input.seed);
        if input.enabled.unwrap_or(true) {
            entry.start(self.seed).await?;
        }
        let json = entry.json();
        inner.proxies.insert(name, entry);
        Ok(json)
    }

    pub async fn get(&self, name: &str) -> Result<ProxyJson, ApiError> {
        let mut inner = self.inner.lock().await;
        Ok(inner.proxy(name)?.json())
    }

    /// Missing fields keep their values. A new listen or upstream address
    /// restarts the proxy (dropping its connections); `enabled` starts or
    /// stops it.
    pub async fn update(&self, name: &str, body: &[u8]) -> Result<ProxyJson, ApiError> {
        let mut inner = self.inner.lock().await;
        let entry = inner.proxy(name)?;
        let input = ProxyInput::parse(first_value(body)?)?;
        let listen = input.listen.unwrap_or_else(|| entry.listen.clone());
        let upstream = input.upstream.unwrap_or_else(|| entry.upstream.clone());
        let enabled = input.enabled.unwrap_or(entry.enabled());
        let differs = resolve(&listen).await? != entry.listen || upstream != entry.upstream;
        if let Some(seed) = input.seed {
            entry.seed = Some(seed);
            entry.live_seed.store(seed, Ordering::Relaxed); // for connections opened from now on
        }
        if differs {
            entry.stop().await;
            entry.listen = listen;
            entry.upstream = upstream;
        }
        if enabled && !entry.enabled() {
            entry.start(self.seed).await?;
        } else if !enabled {
            entry.stop().await;
        }
        Ok(entry.json())
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let mut entry = inner.proxies.remove(name).ok_or(ApiError::ProxyNotFound)?;
        entry.stop().await;
        tracing::info!(proxy = %name, "faultproxy: proxy deleted");
        Ok(())
    }

    /// Creates or replaces proxies from an array. All entries are checked
    /// before any is created; an existing proxy with the same listen and
    /// upstream is left as it is (toxics included). On an error part-way,
    /// the proxies handled so far come back with it.
    pub async fn populate(&self, body: &[u8]) -> (Option<Vec<ProxyJson>>, Option<ApiError>) {
        let inputs = match first_value(body).and_then(ProxyInput::parse_list) {
            Ok(inputs) => inputs,
            Err(e) => return (None, Some(e)),
        };
        let mut checked = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            let at = |f: &str| format!("{f} at proxy {}", i + 1);
            match (required(input.name.clone(), &at("name")), &input.upstream) {
                (Err(e), _) => return (None, Some(e)),
                (Ok(_), u) if u.as_deref().unwrap_or("").is_empty() => {
                    return (None, Some(ApiError::MissingField(at("upstream"))))
                }
                (Ok(name), _) => checked.push((name, input)),
            }
        }
        let mut inner = self.inner.lock().await;
        let mut done = Vec::with_capacity(checked.len());
        for (name, input) in checked {
            match self.add_or_replace(&mut inner, name, input).await {
                Ok(json) => done.push(json),
                Err(e) => return (Some(done), Some(e)),
            }
        }
        (Some(done), None)
    }

    async fn add_or_replace(
        &self,
        inner: &mut Inner,
        name: String,
        input: ProxyInput,
    ) -> Result<ProxyJson, ApiError> {
        let listen = input.listen.unwrap_or_default();
        let upstream = input.upstream.unwrap_or_default();
        if let Some(existing) = inner.proxies.get_mut(&name) {
            if resolve(&listen).await? == existing.listen && upstream == existing.upstream {
                return Ok(existing.json());
            }
            existing.stop().await;
        }
        let mut entry = ProxyEntry::new(name.clone(), listen, upstream, input.seed);
        if input.enabled.unwrap_or(true) {
            entry.start(self.seed).await?;
        }
        let json = entry.json();
        inner.proxies.insert(name, entry);
        Ok(json)
    }

    /// Re-enables every proxy and removes every toxic; proxies stay.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        for entry in inner.proxies.values_mut() {
            entry.start(self.seed).await?;
            entry.toxics.clear();
            entry.publish();
        }
        tracing::info!("faultproxy: reset: every proxy enabled, every toxic removed");
        Ok(())
    }

    /// Stops every proxy (the server is shutting down).
    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        for entry in inner.proxies.values_mut() {
            entry.stop().await;
        }
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicDef>, ApiError> {
        let mut inner = self.inner.lock().await;
        Ok(inner.proxy(proxy)?.ordered_toxics())
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicDef, ApiError> {
        let mut inner = self.inner.lock().await;
        Ok((**inner.proxy(proxy)?.toxic(toxic)?).clone())
    }

    pub async fn add_toxic(&self, proxy: &str, body: &[u8]) -> Result<ToxicDef, ApiError> {
        let mut inner = self.inner.lock().await;
        let id = inner.next_toxic_id;
        let entry = inner.proxy(proxy)?;
        let def = new_toxic(id, body, |name| entry.toxic(name).is_ok())?;
        tracing::info!(proxy = %proxy, toxic = %def.name, kind = def.kind.type_name(),
            stream = %def.stream, "faultproxy: toxic added");
        entry.toxics.push(Arc::new(def.clone()));
        entry.publish();
        inner.next_toxic_id += 1;
        Ok(def)
    }

    /// Attributes are decoded over the current ones and `toxicity` keeps its
    /// value when absent; name, type and stream cannot change.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        body: &[u8],
    ) -> Result<ToxicDef, ApiError> {
        let mut inner = self.inner.lock().await;
        let entry = inner.proxy(proxy)?;
        let current = entry.toxic(toxic)?.clone();
        let fields = Fields::new(
            first_value(body)?,
            &["attributes", "toxicity"],
            "struct { Attributes interface {}; Toxicity float32 }",
        )?;
        let kind = current
            .kind
            .merged(fields.raw("attributes").unwrap_or(&Value::Null))?;
        let toxicity = fields.f32("toxicity")?.unwrap_or(current.toxicity);
        let def = ToxicDef {
            kind,
            toxicity,
            ..(*current).clone()
        };
        for t in entry.toxics.iter_mut().filter(|t| t.id == def.id) {
            *t = Arc::new(def.clone());
        }
        entry.publish();
        tracing::info!(proxy = %proxy, toxic = %toxic, "faultproxy: toxic updated");
        Ok(def)
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let entry = inner.proxy(proxy)?;
        let id = entry.toxic(toxic)?.id;
        entry.toxics.retain(|t| t.id != id);
        entry.publish();
        tracing::info!(proxy = %proxy, toxic = %toxic, "faultproxy: toxic removed");
        Ok(())
    }
}

/// A toxic from a create body, checked in Toxiproxy's order: body, stream,
/// type, duplicate name, attributes.
fn new_toxic(id: u64, body: &[u8], exists: impl Fn(&str) -> bool) -> Result<ToxicDef, ApiError> {
    let input = ToxicInput::parse(first_value(body)?)?;
    let type_name = input.type_name.unwrap_or_default();
    // The http toxic reads requests, so its own default stream is upstream.
    let default_stream = if type_name == "http" {
        "upstream"
    } else {
        "downstream"
    };
    let stream = input.stream.unwrap_or_else(|| default_stream.to_string());
    let direction = Direction::parse(&stream).ok_or(ApiError::InvalidStream)?;
    let name = input
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{type_name}_{stream}"));
    let zero = ToxicKind::zero(&type_name).ok_or(ApiError::InvalidToxicType)?;
    if exists(&name) {
        return Err(ApiError::ToxicAlreadyExists);
    }
    let kind = zero.merged(input.attributes.as_ref().unwrap_or(&Value::Null))?;
    if matches!(kind, ToxicKind::Http(_)) && direction == Direction::Downstream {
        return Err(ApiError::BadRequestBody(
            "the http toxic reads requests: give it stream upstream".into(),
        ));
    }
    Ok(ToxicDef {
        id,
        name,
        stream,
        direction,
        toxicity: input.toxicity.unwrap_or(1.0),
        kind,
    })
}
