//! The fault proxy, checked against Toxiproxy 2.x: two clients nobody here
//! wrote (`toxiproxy-python` from PyPI and the `noxious-client` crate) drive
//! it and measure their toxics on real traffic; the API's statuses and
//! bodies are compared with Toxiproxy's; each toxic is checked on real
//! bytes; and faultline's extensions (seeds, latency distributions, the
//! `http` toxic) are checked for what they promise.
//!
//! Every server runs on a free 127.0.0.1 port and stops with its test. The
//! Python test needs `python3` with `tests/python/requirements.txt`
//! installed; it fails (never skips) without them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::faultproxy::{self, RunningProxy};
use noxious_client::error::{ApiErrorResponse, ClientError};
use noxious_client::{Client, StreamDirection, Toxic, ToxicKind};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------- helpers

async fn server(seed: u64) -> RunningProxy {
    faultproxy::start("127.0.0.1:0".parse().unwrap(), Some(seed))
        .await
        .expect("the fault proxy starts")
}

/// An answer from the API.
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

/// A plain HTTP client for the API (no proxy: everything is on loopback).
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &RunningProxy) -> Api {
        Api {
            base: server.url(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .await
            .expect("API request");
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Reply {
            status: response.status().as_u16(),
            content_type,
            text: response.text().await.unwrap(),
        }
    }

    /// Sends JSON and expects `status` back; returns the JSON body.
    async fn expect(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let reply = self.send(method, path, &body.to_string()).await;
        assert_eq!(
            reply.status, status,
            "{method} {path} {body}: {}",
            reply.text
        );
        if reply.text.is_empty() {
            Value::Null
        } else {
            reply.json()
        }
    }

    /// Creates a proxy on a free port; returns its listen address.
    async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
        let created = self.expect("POST", "/proxies", body, 201).await;
        created["listen"].as_str().unwrap().parse().unwrap()
    }

    async fn toxic(&self, proxy: &str, body: Value) -> Value {
        self.expect("POST", &format!("/proxies/{proxy}/toxics"), body, 200)
            .await
    }
}

/// An echo server: every byte comes back.
async fn echo_server() -> SocketAddr {
    serve_each(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// Sends `payload` to each client in one write, then closes.
async fn sending_server(payload: Vec<u8>) -> SocketAddr {
    let payload = Arc::new(payload);
    serve_each(move |mut s| {
        let payload = payload.clone();
        async move {
            let _ = s.write_all(&payload).await;
        }
    })
    .await
}

async fn serve_each<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(handle(s));
        }
    });
    addr
}

/// An HTTP server counting the requests that reach it.
async fn http_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::any(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                format!("ok {}", body.len())
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

const PING: &[u8] = b"ping\n";
/// A round trip without toxics takes well under this, even on a busy machine.
const FAST: Duration = Duration::from_millis(100);

/// One echo round trip on an open connection.
async fn round_trip(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    s.write_all(PING).await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo within 5 s")
        .expect("echo read");
    assert_eq!(&buf, PING);
    start.elapsed()
}

/// Reads until EOF or an error; returns the bytes, the number of reads and
/// when each of the first byte and the end came (from `start`).
struct Received {
    bytes: Vec<u8>,
    reads: usize,
    /// Read sizes, sorted.
    sizes: Vec<usize>,
    first_at: Option<Duration>,
    end_at: Duration,
}

async fn receive_all(s: &mut TcpStream, start: Instant) -> Received {
    let mut got = Received {
        bytes: Vec::new(),
        reads: 0,
        sizes: Vec::new(),
        first_at: None,
        end_at: Duration::ZERO,
    };
    let mut buf = vec![0u8; 65536];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the connection ends within 10 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.first_at.get_or_insert(start.elapsed());
                got.reads += 1;
                got.sizes.push(n);
                got.bytes.extend_from_slice(&buf[..n]);
            }
        }
    }
    got.end_at = start.elapsed();
    got.sizes.sort_unstable();
    got
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------- clients nobody here wrote

const PY_HINT: &str = "install the test packages with \
     `pip install -r tests/python/requirements.txt` (from the faultline directory)";

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

#[tokio::test]
async fn toxiproxy_python_client_measures_latency_reset_and_removal() {
    let server = server(1).await;
    let echo = echo_server().await;
    let api = server.addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        python()
            .args(["tests/python/toxiproxy_client.py", "--api", &api])
            .args(["--upstream", &echo.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {PY_HINT}"))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed ({PY_HINT}):\n{stderr}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");

    assert_eq!(r["running"], true);
    assert!(r["version"].as_str().unwrap().starts_with("2."), "{r}");
    let listen: SocketAddr = r["listen"].as_str().unwrap().parse().unwrap();
    assert_ne!(listen.port(), 0, "listen port 0 reports the real port");
    let latency = json!({"latency_downstream": {"type": "latency", "stream": "downstream",
        "toxicity": 1.0, "attributes": {"latency": 200, "jitter": 0}}});
    assert_eq!(r["toxics_with_latency"], latency);
    let at = |k: &str| r[k].as_f64().unwrap();
    let fast = ms(FAST);
    assert!(at("baseline_ms") < fast, "{r}");
    assert!((195.0..450.0).contains(&at("latency_ms")), "{r}");
    assert!(
        at("after_latency_ms") < fast,
        "removing the toxic restores speed: {r}"
    );
    assert_eq!(
        r["reset"], "reset",
        "reset_peer makes the client see ECONNRESET"
    );
    assert!(
        at("after_reset_ms") < fast && at("after_down_ms") < fast,
        "{r}"
    );
    assert_eq!(r["toxics_at_end"], json!({}));
    assert_eq!(r["destroy_latency"], true);
    assert_eq!(r["destroy_reset"], true);
    assert_eq!(r["duplicate_proxy"], "ProxyExists");
    assert_eq!(r["unknown_proxy"], "NotFound");
    assert_eq!(r["bad_toxic"], "InvalidToxic");
    assert_eq!(
        r["while_down"], "refused",
        "a disabled proxy refuses connections"
    );
    assert_eq!(r["toxics_after_reset"], 0);
    assert_eq!(r["destroyed"], true);
    assert_eq!(r["proxies_at_end"], json!([]));
    server.stop().await.unwrap();
}

fn api_error(status_code: u16, message: &str) -> ClientError {
    ClientError::ApiError(ApiErrorResponse {
        message: message.into(),
        status_code,
    })
}

#[tokio::test]
async fn noxious_client_measures_latency_reset_and_removal() {
    let server = server(2).await;
    let echo = echo_server().await;
    let client = Client::new(&server.url());
    client
        .create_proxy("echo", "127.0.0.1:0", &echo.to_string())
        .await
        .unwrap();
    let mut proxy = client.proxy("echo").await.unwrap();
    let listen: SocketAddr = proxy.config.listen.parse().unwrap();
    assert_ne!(listen.port(), 0);
    let mut conn = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut conn).await < FAST);

    let lag = |latency| Toxic {
        kind: ToxicKind::Latency { latency, jitter: 0 },
        name: "lag".into(),
        toxicity: 1.0,
        direction: StreamDirection::Downstream,
    };
    let added = proxy.add_toxic(&lag(150)).await.unwrap();
    assert_eq!(added.kind, lag(150).kind);
    let t = ms(round_trip(&mut conn).await);
    assert!(
        (145.0..400.0).contains(&t),
        "an open connection gets the new toxic: {t}"
    );
    let kind = ToxicKind::Latency {
        latency: 300,
        jitter: 0,
    };
    proxy
        .update_toxic("lag", 1.0, kind, StreamDirection::Downstream)
        .await
        .unwrap();
    let t = ms(round_trip(&mut conn).await);
    assert!((295.0..600.0).contains(&t), "updated latency: {t}");
    assert_eq!(proxy.toxics().await.unwrap()[0].kind, kind);
    proxy.remove_toxic("lag").await.unwrap();
    assert!(round_trip(&mut conn).await < FAST);

    // noxious-client has no kind for reset_peer: create it with a plain POST.
    let api = Api::new(&server);
    let body = json!({"type": "reset_peer", "attributes": {"timeout": 100}});
    api.toxic("echo", body).await;
    let mut victim = TcpStream::connect(listen).await.unwrap();
    let start = Instant::now();
    victim.write_all(PING).await.unwrap();
    let err = victim.read(&mut [0u8; 16]).await.expect_err("a reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "after the timeout"
    );
    proxy.remove_toxic("reset_peer_downstream").await.unwrap();

    // noxious sends `direction`, a field Toxiproxy does not read (it reads
    // `stream`), so the toxic lands downstream there, and here.
    let mut upstream = lag(1);
    upstream.direction = StreamDirection::Upstream;
    let landed = proxy.add_toxic(&upstream).await.unwrap();
    assert_eq!(landed.direction, StreamDirection::Downstream);

    proxy.disable().await.unwrap();
    assert!(TcpStream::connect(listen).await.is_err(), "down refuses");
    proxy.enable().await.unwrap();
    let mut again = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut again).await < FAST);
    client.reset_state().await.unwrap();
    assert!(proxy.toxics().await.unwrap().is_empty());

    let duplicate = client.create_proxy("echo", "127.0.0.1:0", "127.0.0.1:1");
    assert_eq!(
        duplicate.await.unwrap_err(),
        api_error(409, "proxy already exists")
    );
    assert_eq!(
        client.proxy("nope").await.unwrap_err(),
        api_error(404, "proxy not found")
    );
    let missing = proxy.remove_toxic("nope").await.unwrap_err();
    assert_eq!(missing, api_error(404, "toxic not found"));
    server.stop().await.unwrap();
}

// ------------------------------------------------------ the API's edges

#[tokio::test]
async fn api_errors_match_toxiproxy_status_for_status() {
    let server = server(3).await;
    let api = Api::new(&server);
    api.proxy("p", echo_server().await).await;
    api.toxic("p", json!({"type": "latency"})).await;
    let dup = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}).to_string();
    let toxics = "/proxies/p/toxics";
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/proxies", &dup, 409, "proxy already exists"),
        ("POST", "/proxies", r#"{"upstream":"x"}"#, 400, "missing required field: name"),
        ("POST", "/proxies", r#"{"name":"x","upstream":""}"#, 400, "missing required field: upstream"),
        ("POST", "/proxies", r#"{"name":"x""#, 400, "bad request body: "),
        ("POST", "/proxies", "", 400, "bad request body: EOF"),
        ("POST", "/proxies", r#"{"name":5,"upstream":"x"}"#, 400, "bad request body: "),
        ("GET", "/proxies/nope", "", 404, "proxy not found"),
        // the proxy is looked up before the body is read, as in Toxiproxy
        ("PATCH", "/proxies/nope", "{", 404, "proxy not found"),
        ("POST", "/proxies/nope", "{}", 404, "proxy not found"),
        ("DELETE", "/proxies/nope", "", 404, "proxy not found"),
        ("GET", "/proxies/nope/toxics", "", 404, "proxy not found"),
        ("POST", "/proxies/nope/toxics", "{", 404, "proxy not found"),
        ("PATCH", "/proxies/p", r#"{"enabled":"yes"}"#, 400, "bad request body: "),
        ("GET", "/proxies/p/toxics/nope", "", 404, "toxic not found"),
        ("PATCH", "/proxies/p/toxics/nope", "{", 404, "toxic not found"),
        ("DELETE", "/proxies/p/toxics/nope", "", 404, "toxic not found"),
        ("POST", toxics, "{", 400, "bad request body: "),
        ("POST", toxics, r#"{"type":"nope"}"#, 400, "invalid toxic type"),
        ("POST", toxics, r#"{"type":"Latency"}"#, 400, "invalid toxic type"),
        ("POST", toxics, r#"{"type":"latency","stream":"sideways"}"#, 400,
            "stream was invalid, can be either upstream or downstream"),
        ("POST", toxics, r#"{"type":"slicer","attributes":{"delay":"x"}}"#, 400, "bad request body: "),
        ("POST", toxics, r#"{"type":"latency","toxicity":"1"}"#, 400, "bad request body: "),
        ("POST", toxics, r#"{"type":"latency"}"#, 409, "toxic already exists"),
        // names are unique across both streams
        ("POST", toxics, r#"{"type":"timeout","name":"latency_downstream","stream":"upstream"}"#, 409,
            "toxic already exists"),
        // the order of Toxiproxy's checks: stream, then type, then name, then attributes
        ("POST", toxics, r#"{"type":"nope","stream":"x"}"#, 400, "stream was invalid"),
        ("POST", toxics, r#"{"type":"nope","name":"latency_downstream"}"#, 400, "invalid toxic type"),
        ("POST", toxics, r#"{"type":"latency","attributes":{"latency":"x"}}"#, 409, "toxic already exists"),
        ("PATCH", "/proxies/p/toxics/latency_downstream", r#"{"attributes":{"latency":"x"}}"#, 400,
            "bad request body: "),
        ("POST", "/populate", r#"{"name":"x"}"#, 400, "bad request body: "),
    ];
    for (method, path, body, status, message) in cases {
        let reply = api.send(method, path, body).await;
        let what = format!("{method} {path} {body}: {}", reply.text);
        assert_eq!(reply.status, *status, "{what}");
        let error = reply.json();
        assert_eq!(error["status"], *status, "{what}");
        let text = error["error"].as_str().unwrap();
        assert!(text.starts_with(message), "{what}");
        if *path != "/populate" {
            // written with Go's http.Error: text/plain and a newline
            assert!(reply.text.ends_with("}\n"), "{what}");
            assert_eq!(reply.content_type, "text/plain; charset=utf-8", "{what}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn api_bodies_defaults_and_routes_match_toxiproxy() {
    let server = server(4).await;
    let api = Api::new(&server);
    let echo = echo_server().await;
    let up = echo.to_string();
    let body = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": up});
    let p = api.expect("POST", "/proxies", body, 201).await;
    let listen = p["listen"].as_str().unwrap().to_string();
    assert_ne!(listen, "127.0.0.1:0", "the real port is reported");
    let expected =
        json!({"name": "p", "listen": listen, "upstream": up, "enabled": true, "toxics": []});
    assert_eq!(p, expected);

    // Defaults: stream downstream, toxicity 1, name <type>_<stream>, zero attributes.
    let t = api.toxic("p", json!({"type": "latency"})).await;
    let default = json!({"attributes": {"latency": 0, "jitter": 0}, "name": "latency_downstream",
        "type": "latency", "stream": "downstream", "toxicity": 1.0});
    assert_eq!(t, default);
    let body = json!({"type": "slicer", "name": "", "stream": "upstream", "toxicity": 0.5,
        "attributes": {"average_size": 10, "unknown": true}});
    let t = api.toxic("p", body).await;
    assert_eq!(t["name"], "slicer_upstream");
    let attrs = json!({"average_size": 10, "size_variation": 0, "delay": 0});
    assert_eq!(t["attributes"], attrs);
    let list = api
        .expect("GET", "/proxies/p/toxics", Value::Null, 200)
        .await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["slicer_upstream", "latency_downstream"],
        "upstream chain first"
    );

    // Updates decode over the current values; POST is the deprecated spelling.
    let path = "/proxies/p/toxics/latency_downstream";
    let t = api
        .expect("PATCH", path, json!({"attributes": {"jitter": 7}}), 200)
        .await;
    assert_eq!(t["attributes"], json!({"latency": 0, "jitter": 7}));
    let t = api
        .expect(
            "POST",
            path,
            json!({"toxicity": 0.25, "name": "ignored"}),
            200,
        )
        .await;
    assert_eq!(
        (t["toxicity"].clone(), t["name"].clone()),
        (json!(0.25), json!("latency_downstream"))
    );
    assert_eq!(t["attributes"]["jitter"], 7);
    assert_eq!(api.expect("GET", path, Value::Null, 200).await, t);

    // Down, then /reset: every proxy up again on its address, every toxic gone.
    let down = api
        .expect("PATCH", "/proxies/p", json!({"enabled": false}), 200)
        .await;
    assert_eq!(
        (down["enabled"].clone(), down["listen"].clone()),
        (json!(false), json!(listen))
    );
    assert!(TcpStream::connect(&listen).await.is_err());
    let reset = api.send("POST", "/reset", "").await;
    assert_eq!((reset.status, reset.text.as_str()), (204, ""));
    let p = api.expect("GET", "/proxies/p", Value::Null, 200).await;
    assert_eq!(p, expected, "reset re-enables and removes toxics");
    assert!(TcpStream::connect(&listen).await.is_ok());

    // A proxy created disabled keeps its listen as given until it starts.
    let body = json!({"name": "q", "listen": "127.0.0.1:0", "upstream": up, "enabled": false});
    let q = api.expect("POST", "/proxies", body, 201).await;
    assert_eq!(
        (q["enabled"].clone(), q["listen"].clone()),
        (json!(false), json!("127.0.0.1:0"))
    );
    let q = api
        .expect("POST", "/proxies/q", json!({"enabled": true}), 200)
        .await;
    assert_ne!(q["listen"], "127.0.0.1:0");
    let index = api.expect("GET", "/proxies", Value::Null, 200).await;
    let keys: Vec<&String> = index.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["p", "q"], "an object keyed by name");

    api.toxic("p", json!({"type": "noop"})).await;
    let deleted = api
        .send("DELETE", "/proxies/p/toxics/noop_downstream", "")
        .await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    assert_eq!(api.send("DELETE", "/proxies/q", "").await.status, 204);
    assert_eq!(api.send("GET", "/proxies/q", "").await.status, 404);

    let version = api.send("GET", "/version", "").await;
    assert_eq!(version.content_type, "application/json;charset=utf-8");
    assert!(version.text.ends_with("\"}\n") && version.json()["version"].is_string());
    let unknown = api.send("GET", "/nothing", "").await;
    assert_eq!(
        (unknown.status, unknown.text.as_str()),
        (404, "404 page not found\n")
    );
    assert_eq!(api.send("PUT", "/proxies", "").await.status, 405);
    let browser = api
        .http
        .get(format!("{}/proxies", api.base))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status().as_u16(), 403, "Toxiproxy refuses browsers");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces_like_toxiproxy() {
    let server = server(5).await;
    let api = Api::new(&server);
    let up = echo_server().await.to_string();
    let two = json!([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": up},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": up, "enabled": false},
    ]);
    let created = api.expect("POST", "/populate", two, 201).await;
    let proxies = created["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!(
        (proxies[0]["enabled"].clone(), proxies[1]["enabled"].clone()),
        (json!(true), json!(false))
    );
    let a_listen = proxies[0]["listen"].as_str().unwrap().to_string();
    api.toxic("a", json!({"type": "latency"})).await;

    // Same listen and upstream: left untouched, toxics included.
    let same = json!([{"name": "a", "listen": a_listen, "upstream": up}]);
    let kept = api.expect("POST", "/populate", same, 201).await;
    assert_eq!(kept["proxies"][0]["toxics"].as_array().unwrap().len(), 1);
    // A different address: replaced by a new proxy without toxics.
    let moved = json!([{"name": "a", "listen": "127.0.0.1:0", "upstream": up}]);
    let replaced = api.expect("POST", "/populate", moved, 201).await;
    assert_eq!(replaced["proxies"][0]["toxics"], json!([]));
    assert_ne!(replaced["proxies"][0]["listen"], json!(a_listen));

    // Every entry is checked before any is created.
    let bad = json!([{"name": "c", "upstream": up}, {"name": "d"}]);
    let reply = api.expect("POST", "/populate", bad, 400).await;
    let expected = json!({"error": "missing required field: upstream at proxy 2", "status": 400, "proxies": null});
    assert_eq!(reply, expected);
    assert_eq!(api.send("GET", "/proxies/c", "").await.status, 404);
    // An empty list: 201 and, as Go marshals an empty appended slice, null.
    assert_eq!(
        api.expect("POST", "/populate", json!([]), 201).await,
        json!({"proxies": null})
    );
    // A failure part-way returns what was done before it.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy = json!([
        {"name": "e", "listen": "127.0.0.1:0", "upstream": up},
        {"name": "f", "listen": taken.local_addr().unwrap().to_string(), "upstream": up},
    ]);
    let partial = api.expect("POST", "/populate", busy, 500).await;
    assert_eq!(partial["proxies"][0]["name"], "e");
    assert_eq!(partial["proxies"].as_array().unwrap().len(), 1);
    assert!(partial["error"].as_str().unwrap().starts_with("listen tcp"));
    server.stop().await.unwrap();
}

// -------------------------------------------------- toxics on real bytes

#[tokio::test]
async fn toxicity_is_drawn_once_per_connection() {
    let server = server(6).await;
    let api = Api::new(&server);
    let listen = api.proxy("p", echo_server().await).await;
    let body = json!({"type": "latency", "stream": "upstream", "toxicity": 0.5,
        "attributes": {"latency": 100}});
    api.toxic("p", body).await;
    let mut slow = 0;
    for _ in 0..16 {
        let mut conn = TcpStream::connect(listen).await.unwrap();
        let first = round_trip(&mut conn).await >= Duration::from_millis(90);
        let second = round_trip(&mut conn).await >= Duration::from_millis(90);
        assert_eq!(
            first, second,
            "a connection is toxic for all its bytes, or for none"
        );
        slow += usize::from(first);
    }
    assert!(
        (3..=13).contains(&slow),
        "about half the connections: {slow} of 16"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let server = server(7).await;
    let api = Api::new(&server);
    let payload = pattern(50_000);
    let listen = api.proxy("p", sending_server(payload.clone()).await).await;
    let start = Instant::now();
    let fast = receive_all(&mut TcpStream::connect(listen).await.unwrap(), start).await;
    assert_eq!(fast.bytes, payload);
    assert!(
        fast.end_at < Duration::from_millis(300),
        "{:?}",
        fast.end_at
    );

    api.toxic(
        "p",
        json!({"type": "bandwidth", "attributes": {"rate": 100}}),
    )
    .await;
    let start = Instant::now();
    let slow = receive_all(&mut TcpStream::connect(listen).await.unwrap(), start).await;
    assert_eq!(slow.bytes, payload, "every byte arrives, in order");
    // 50 000 bytes at 100 KB/s (1 KB = 1000 B) take 0.5 s.
    let took = ms(slow.end_at);
    assert!((450.0..1500.0).contains(&took), "{took} ms");
    assert!(
        slow.reads >= 4,
        "it flows in slices, not one burst: {} reads",
        slow.reads
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn slicer_cuts_chunks_into_small_spaced_pieces() {
    let server = server(8).await;
    let api = Api::new(&server);
    let payload = pattern(2_000);
    let listen = api.proxy("p", sending_server(payload.clone()).await).await;
    let attrs = json!({"average_size": 100, "size_variation": 20, "delay": 10_000});
    api.toxic("p", json!({"type": "slicer", "attributes": attrs}))
        .await;
    let start = Instant::now();
    let got = receive_all(&mut TcpStream::connect(listen).await.unwrap(), start).await;
    assert_eq!(got.bytes, payload);
    // Pieces of 80 to 120 bytes, 10 ms apart; a busy reader may merge a few.
    assert!(got.reads >= 8, "{} reads", got.reads);
    let median = got.sizes[got.sizes.len() / 2];
    assert!(median <= 250, "median read {median} bytes: {:?}", got.sizes);
    assert!(got.end_at >= Duration::from_millis(100), "{:?}", got.end_at);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let server = server(9).await;
    let api = Api::new(&server);
    let payload = pattern(1_000);
    let listen = api.proxy("p", sending_server(payload.clone()).await).await;
    api.toxic(
        "p",
        json!({"type": "limit_data", "attributes": {"bytes": 100}}),
    )
    .await;
    let got = receive_all(
        &mut TcpStream::connect(listen).await.unwrap(),
        Instant::now(),
    )
    .await;
    assert_eq!(
        got.bytes,
        &payload[..100],
        "exactly the first 100 bytes, then the close"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn timeout_drops_data_then_closes_or_holds_until_removed() {
    let server = server(10).await;
    let api = Api::new(&server);
    let listen = api.proxy("p", echo_server().await).await;
    api.toxic(
        "p",
        json!({"type": "timeout", "attributes": {"timeout": 300}}),
    )
    .await;
    let start = Instant::now();
    let mut conn = TcpStream::connect(listen).await.unwrap();
    conn.write_all(PING).await.unwrap();
    let got = receive_all(&mut conn, start).await;
    assert!(got.bytes.is_empty(), "data is dropped");
    let closed = ms(got.end_at);
    assert!(
        (250.0..2000.0).contains(&closed),
        "closed after the timeout: {closed} ms"
    );

    api.send("DELETE", "/proxies/p/toxics/timeout_downstream", "")
        .await;
    let body = json!({"type": "timeout", "name": "hold", "attributes": {"timeout": 0}});
    api.toxic("p", body).await;
    let mut held = TcpStream::connect(listen).await.unwrap();
    held.write_all(PING).await.unwrap();
    let mut buf = [0u8; 16];
    let wait = tokio::time::timeout(Duration::from_millis(500), held.read(&mut buf)).await;
    assert!(wait.is_err(), "timeout 0 holds the connection open, silent");
    let removed = Instant::now();
    api.send("DELETE", "/proxies/p/toxics/hold", "").await;
    let got = receive_all(&mut held, removed).await;
    assert!(got.bytes.is_empty());
    assert!(
        got.end_at < Duration::from_secs(2),
        "removing it closes, as Toxiproxy's cleanup"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn slow_close_delays_only_the_close() {
    let server = server(11).await;
    let api = Api::new(&server);
    let listen = api.proxy("p", sending_server(b"bye".to_vec()).await).await;
    api.toxic(
        "p",
        json!({"type": "slow_close", "attributes": {"delay": 400}}),
    )
    .await;
    let start = Instant::now();
    let got = receive_all(&mut TcpStream::connect(listen).await.unwrap(), start).await;
    assert_eq!(got.bytes, b"bye");
    assert!(
        got.first_at.unwrap() < Duration::from_millis(200),
        "data is not delayed"
    );
    assert!(
        got.end_at >= Duration::from_millis(380),
        "the close is: {:?}",
        got.end_at
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_disabled_proxy_closes_connections_and_refuses_new_ones() {
    let server = server(12).await;
    let api = Api::new(&server);
    let listen = api.proxy("p", echo_server().await).await;
    let mut open = TcpStream::connect(listen).await.unwrap();
    round_trip(&mut open).await;
    api.expect("PATCH", "/proxies/p", json!({"enabled": false}), 200)
        .await;
    let got = receive_all(&mut open, Instant::now()).await;
    assert!(got.bytes.is_empty() && got.end_at < Duration::from_secs(2));
    assert!(TcpStream::connect(listen).await.is_err());
    api.expect("PATCH", "/proxies/p", json!({"enabled": true}), 200)
        .await;
    let mut back = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut back).await < FAST);
    server.stop().await.unwrap();
}

// ------------------------------------------------------ the extensions

/// Round-trip times through a lognormal latency toxic on one connection.
async fn lognormal_delays(server_seed: u64, proxy_seed: Option<u64>) -> Vec<f64> {
    let server = server(server_seed).await;
    let api = Api::new(&server);
    let mut body = json!({"name": "p", "listen": "127.0.0.1:0",
        "upstream": echo_server().await.to_string()});
    if let Some(seed) = proxy_seed {
        body["seed"] = json!(seed);
    }
    let created = api.expect("POST", "/proxies", body, 201).await;
    assert_eq!(
        created["seed"],
        json!(proxy_seed),
        "the seed shows only when set"
    );
    let attrs = json!({"latency": 80, "jitter": 50, "distribution": "lognormal"});
    api.toxic("p", json!({"type": "latency", "attributes": attrs}))
        .await;
    let mut conn = TcpStream::connect(created["listen"].as_str().unwrap())
        .await
        .unwrap();
    let mut delays = Vec::new();
    for _ in 0..12 {
        delays.push(ms(round_trip(&mut conn).await));
    }
    server.stop().await.unwrap();
    delays
}

#[tokio::test]
async fn a_seed_reproduces_the_latency_distribution() {
    let first = lognormal_delays(11, None).await;
    let again = lognormal_delays(99, Some(11)).await; // the proxy's seed wins
    let other = lognormal_delays(12, None).await;
    // Scheduling noise only adds time, and only now and then: allow two
    // samples of twelve to stray.
    let close = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| (*x - *y).abs() < 25.0)
            .count()
    };
    assert!(
        close(&first, &again) >= 10,
        "same seed, same delays:\n{first:?}\n{again:?}"
    );
    assert!(
        close(&first, &other) <= 7,
        "another seed, other delays:\n{first:?}\n{other:?}"
    );
    let mean = first.iter().sum::<f64>() / first.len() as f64;
    assert!(
        (30.0..200.0).contains(&mean),
        "around the 80 ms asked for: {mean}"
    );
}

#[tokio::test]
async fn the_http_toxic_aborts_the_requested_share_of_requests() {
    let server = server(13).await;
    let api = Api::new(&server);
    let (upstream, hits) = http_server().await;
    let listen = api.proxy("web", upstream).await;
    let attrs = json!({"abort_status": 503, "probability": 0.3});
    let t = api
        .toxic("web", json!({"type": "http", "attributes": attrs}))
        .await;
    assert_eq!(
        (t["name"].clone(), t["stream"].clone()),
        (json!("http_upstream"), json!("upstream"))
    );
    // One pooled keep-alive connection: connection-level toxicity could not
    // do this.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let url = format!("http://{listen}/");
    let (total, mut aborted) = (200, 0);
    for i in 0..total {
        let request = if i % 2 == 0 {
            client.get(&url)
        } else {
            client.post(&url).body(vec![b'x'; 2048])
        };
        let response = request.send().await.expect("an answer, injected or real");
        if response.status().as_u16() == 503 {
            assert_eq!(response.headers()["x-faultline-fault"], "http");
            aborted += 1;
        } else {
            assert_eq!(response.status().as_u16(), 200);
            let expected = if i % 2 == 0 { "ok 0" } else { "ok 2048" };
            assert_eq!(response.text().await.unwrap(), expected);
        }
    }
    let share = aborted as f64 / total as f64;
    assert!((0.2..=0.4).contains(&share), "asked 30 %, got {share}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        total - aborted,
        "aborted requests never reach the server"
    );

    let delay = json!({"attributes": {"abort_status": 0, "delay_ms": 150, "probability": 1.0}});
    api.expect("PATCH", "/proxies/web/toxics/http_upstream", delay, 200)
        .await;
    for _ in 0..3 {
        let start = Instant::now();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            start.elapsed() >= Duration::from_millis(145),
            "{:?}",
            start.elapsed()
        );
    }
    let downstream = json!({"type": "http", "name": "h2", "stream": "downstream"});
    let refused = api
        .send("POST", "/proxies/web/toxics", &downstream.to_string())
        .await;
    assert_eq!(
        refused.status, 400,
        "the http toxic reads requests: upstream only"
    );
    server.stop().await.unwrap();
}

// ------------------------------------------------------------- the CLI

/// Kills the child when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

#[tokio::test]
async fn proxy_subcommand_loads_proxies_and_prints_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("proxies.json");
    let proxies = json!([{"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]);
    std::fs::write(&config, proxies.to_string()).unwrap();
    let child = faultline()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "5",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .expect("the address is printed")
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("faultline: faultproxy listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let index: Value = http
        .get(format!("http://{addr}/proxies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["db"]["enabled"], true, "{index}");
    drop(child);

    let help = faultline().args(["proxy", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for word in [
        "Toxiproxy",
        "--seed",
        "--config",
        "8474",
        "distribution",
        "http",
    ] {
        assert!(help.contains(word), "--help mentions {word}:\n{help}");
    }
    std::fs::write(&config, "{not json").unwrap();
    let bad = faultline()
        .args(["proxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!bad.status.success(), "a bad config file stops the start");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("proxies.json"),
        "the error names the file: {stderr}"
    );
}
