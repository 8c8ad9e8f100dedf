//! A real Kafka-compatible broker for tests: `tansu` with in-memory storage
//! on a free loopback port, one per test, so tests run in parallel and leave
//! nothing behind.
//!
//! tansu is a single binary (`cargo install tansu --locked --features
//! dynostore`, which `.ci/run` does); a test that cannot find it fails and
//! says so rather than skipping, so a green run always means the exporter
//! met a broker.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

/// How long a broker may take to accept connections after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One tansu broker process. Killed on drop.
pub struct Tansu {
    port: u16,
    child: Option<Child>,
    logs: tempfile::TempDir,
    starts: u32,
}

/// A consumed message: its key (UTF-8) and payload.
pub type Consumed = (String, Vec<u8>);

impl Tansu {
    /// Starts a broker on a free 127.0.0.1 port and waits until it accepts
    /// connections.
    pub fn start() -> Tansu {
        let mut tansu = Tansu {
            port: free_port(),
            child: None,
            logs: tempfile::tempdir().expect("a temporary directory for tansu's log"),
            starts: 0,
        };
        tansu.spawn();
        tansu
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tcp://127.0.0.1:PORT`, for tansu's own commands.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Kills the broker; in-memory storage forgets every topic and record.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_until_closed(self.port);
    }

    /// Starts the broker again on the same port (empty: recreate topics).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `tansu topic create NAME --partitions N --broker URL`; panics with
    /// tansu's output when it fails.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(tansu_binary())
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .args(["--broker", &self.url()])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .expect("run tansu topic create");
        assert!(
            output.status.success(),
            "tansu topic create {name} failed ({}):\n{}{}\nbroker log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
    }

    /// Reads `topic` from the beginning, in a consumer group of its own,
    /// until `done` holds for everything read so far or `timeout` passes;
    /// returns what it read either way (the caller asserts).
    pub fn consume(
        &self,
        topic: &str,
        timeout: Duration,
        done: impl Fn(&[Consumed]) -> bool,
    ) -> Vec<Consumed> {
        let consumer = self.consumer();
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + timeout;
        let mut read = Vec::new();
        while !done(&read) && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => read.push((
                    String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    message.payload().unwrap_or_default().to_vec(),
                )),
                // Transient while the group forms or the broker restarts.
                Some(Err(error)) => eprintln!("consumer of {topic}: {error}"),
                None => {}
            }
        }
        read
    }

    /// The last lines tansu printed, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for n in 1..=self.starts {
            let path = self.log_path(n);
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            text.push_str(&format!("--- {} ---\n{tail}\n", path.display()));
        }
        text
    }

    fn consumer(&self) -> BaseConsumer {
        static GROUPS: AtomicU64 = AtomicU64::new(0);
        let group = format!(
            "faultline-test-{}-{}",
            std::process::id(),
            GROUPS.fetch_add(1, Ordering::Relaxed)
        );
        ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a test consumer")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.logs.path().join(format!("tansu-{start}.log"))
    }

    /// Runs `tansu broker` in memory on our port, its output in a log file,
    /// with no other listener (no OTLP export, whatever the environment says).
    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("tansu log file");
        let child = Command::new(tansu_binary())
            .arg("broker")
            .args(["--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--cluster-id", "faultline-test"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("tansu log file"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu broker");
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("tansu running");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tansu broker exited at start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu broker did not accept connections on {addr} within {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tansu` from PATH, or a failure saying how to get it.
pub fn tansu_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "the Kafka tests need the `tansu` broker on PATH: run `.ci/run`, or \
                 `cargo install tansu --locked --features dynostore` (it lands in ~/.cargo/bin)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A port nothing listens on right now (the OS's pick, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// After a kill, waits (briefly) until the port refuses connections.
fn wait_until_closed(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}
