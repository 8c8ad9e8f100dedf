//! Headless Chromium for the web page tests, driven from its command line:
//! `--dump-dom` once the page's script has had time to poll, and
//! `--screenshot`. It uses the browser the system has (Debian's `chromium`
//! package; `.ci/run` installs it) and never downloads one, and it needs no
//! DevTools client: the page carries stable ids and `data-` attributes, so
//! reading the serialized DOM is enough.
//!
//! Declared by the tests that use it (`#[path = "common/browser.rs"]`), so
//! other test binaries do not compile it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A Chromium executable and a throwaway profile directory.
pub struct Browser {
    exe: PathBuf,
    profile: tempfile::TempDir,
}

/// Where to look, in order: `$FAULTLINE_CHROMIUM`, then these names on PATH.
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

impl Browser {
    /// The system's Chromium; panics with what to install when there is none.
    pub fn find() -> Browser {
        let from_env = std::env::var_os("FAULTLINE_CHROMIUM").map(PathBuf::from);
        let on_path = || {
            let path = std::env::var_os("PATH").unwrap_or_default();
            NAMES.iter().find_map(|name| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        };
        let exe = from_env.or_else(on_path).unwrap_or_else(|| {
            panic!(
                "the web page tests need headless Chromium: `apt-get install chromium` \
                 (.ci/run does this), or set FAULTLINE_CHROMIUM to a Chrome or Chromium binary"
            )
        });
        let profile = tempfile::Builder::new()
            .prefix("faultline-chromium-")
            .tempdir()
            .expect("profile dir");
        Browser { exe, profile }
    }

    /// Flags for a quiet, offline, deterministic headless run: no sandbox
    /// (containers run as root), no GPU, nothing fetched in the background.
    fn command(&self, budget: Duration) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        // Its own process group, so a hung run can be stopped with its children.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Runs Chromium to completion (at most `deadline`); returns stdout.
    fn run(&self, mut cmd: Command, deadline: Duration) -> String {
        let mut child = cmd.spawn().expect("chromium starts");
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for chromium") {
                break status;
            }
            if started.elapsed() > deadline {
                // Stop the group this run started (the browser and its helpers).
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                panic!("chromium did not finish within {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        assert!(
            status.success(),
            "chromium failed ({status}): {}",
            stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        stdout
    }

    /// The page's DOM after `budget` of (virtual) time: its scripts ran,
    /// timers fired and fetches answered.
    pub fn dump_dom(&self, url: &str, budget: Duration) -> String {
        let mut cmd = self.command(budget);
        cmd.arg("--dump-dom").arg(url);
        self.run(cmd, budget + Duration::from_secs(60))
    }

    /// Loads `url` again and again until `done` holds on its DOM, for at
    /// most `timeout`; returns that DOM, or the last one in the error.
    pub fn wait_for_dom(
        &self,
        url: &str,
        budget: Duration,
        timeout: Duration,
        done: impl Fn(&Dom) -> bool,
    ) -> Result<Dom, Dom> {
        let started = Instant::now();
        loop {
            let dom = Dom::parse(&self.dump_dom(url, budget));
            if done(&dom) {
                return Ok(dom);
            }
            if started.elapsed() > timeout {
                return Err(dom);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A PNG of the page's viewport at `width`×`height`.
    pub fn screenshot(
        &self,
        url: &str,
        file: &Path,
        (width, height): (u32, u32),
        budget: Duration,
    ) {
        let _ = std::fs::remove_file(file);
        let mut cmd = self.command(budget);
        cmd.arg(format!("--screenshot={}", file.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(url);
        self.run(cmd, budget + Duration::from_secs(60));
        assert!(
            file.is_file(),
            "chromium wrote no screenshot to {}",
            file.display()
        );
    }
}

/// The width and height of a PNG, checking its signature and header.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 33 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// One start tag of the serialized DOM.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|x| x == class))
    }
}

/// The start tags of a serialized document, attributes unescaped, plus the
/// raw text: enough to find the page's elements by class and `data-`.
pub struct Dom {
    pub html: String,
    pub elements: Vec<Element>,
}

impl Dom {
    pub fn parse(html: &str) -> Dom {
        let mut elements = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            if name_len == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let name = rest[..name_len].to_ascii_lowercase();
            rest = &rest[name_len..];
            let mut attrs = BTreeMap::new();
            loop {
                rest = rest.trim_start();
                if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
                    break;
                }
                let key_len = rest
                    .find(|c: char| c.is_whitespace() || "=>/".contains(c))
                    .unwrap_or(rest.len())
                    .max(1);
                let key = rest[..key_len].to_ascii_lowercase();
                rest = rest[key_len..].trim_start();
                let mut value = String::new();
                if let Some(after) = rest.strip_prefix('=') {
                    let after = after.trim_start();
                    let (raw, next) = match after.chars().next() {
                        Some(q @ ('"' | '\'')) => {
                            let end = after[1..].find(q).map_or(after.len(), |i| i + 1);
                            (&after[1..end], &after[(end + 1).min(after.len())..])
                        }
                        _ => {
                            let end = after
                                .find(|c: char| c.is_whitespace() || c == '>')
                                .unwrap_or(after.len());
                            (&after[..end], &after[end..])
                        }
                    };
                    value = unescape(raw);
                    rest = next;
                }
                attrs.insert(key, value);
            }
            elements.push(Element { name, attrs });
        }
        Dom {
            html: html.to_string(),
            elements,
        }
    }

    /// Elements with this class (and every `(attribute, value)` given).
    pub fn find<'a>(
        &'a self,
        class: &'a str,
        attrs: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements
            .iter()
            .filter(move |e| matches(e, class, attrs))
    }

    /// The first element with this class (and attributes).
    pub fn one(&self, class: &str, attrs: &[(&str, &str)]) -> Option<&Element> {
        self.elements.iter().find(|e| matches(e, class, attrs))
    }

    /// The element with this id.
    pub fn by_id(&self, id: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.attr("id") == Some(id))
    }
}

fn matches(e: &Element, class: &str, attrs: &[(&str, &str)]) -> bool {
    e.has_class(class) && attrs.iter().all(|(k, v)| e.attr(k) == Some(*v))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
