//! What must survive a crash: the faults that are on right now (so a
//! restarted runner removes them) and every completed result.
//!
//! The active-fault journal is rewritten atomically (temporary file, then
//! rename) before a fault is injected and after it is removed, so a kill at
//! any moment leaves either no fault or a journal entry naming it. Results
//! are appended to a JSON lines file and synced before the run reports
//! done, so a kill loses no completed result.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::toxiproxy::Toxiproxy;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the experiment journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the experiment journal {path} is not valid JSON: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A fault that is (or may be) on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActiveFault {
    pub run_id: String,
    pub proxy_url: String,
    pub proxy: String,
    /// Names of the toxics created (or about to be).
    pub toxics: Vec<String>,
    pub disabled: bool,
    pub started_ms: u64,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("experiments")
}

fn active_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("active.json")
}

pub fn results_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("results.jsonl")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

pub fn read_active(data_dir: &Path) -> Result<Vec<ActiveFault>, JournalError> {
    let path = active_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn write_active(data_dir: &Path, faults: &[ActiveFault]) -> Result<(), JournalError> {
    let path = active_path(data_dir);
    std::fs::create_dir_all(dir(data_dir)).map_err(io(&path))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(faults).expect("journal entries serialize");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Adds or removes one run's entry.
pub fn set_active(
    data_dir: &Path,
    fault: Option<&ActiveFault>,
    run_id: &str,
) -> Result<(), JournalError> {
    let mut all = read_active(data_dir)?;
    all.retain(|f| f.run_id != run_id);
    all.extend(fault.cloned());
    write_active(data_dir, &all)
}

/// Removes every fault a previous run left on (after a crash or kill).
/// Returns how many were cleaned; faults that cannot be removed yet (the
/// proxy is unreachable) stay in the journal for the next attempt.
pub async fn clean_leftovers(data_dir: &Path) -> Result<usize, JournalError> {
    let mut left = Vec::new();
    let mut cleaned = 0;
    for fault in read_active(data_dir)? {
        match remove(&fault).await {
            Ok(()) => {
                tracing::warn!(run = %fault.run_id, proxy = %fault.proxy, "removed a fault left by an interrupted experiment");
                cleaned += 1;
            }
            Err(error) => {
                tracing::error!(%error, run = %fault.run_id, "cannot remove a leftover fault yet");
                left.push(fault);
            }
        }
    }
    write_active(data_dir, &left)?;
    Ok(cleaned)
}

/// Takes one fault off: its toxics and, if it disabled the proxy, that too.
pub async fn remove(fault: &ActiveFault) -> Result<(), super::toxiproxy::ToxiproxyError> {
    let api = Toxiproxy::new(&fault.proxy_url);
    for toxic in &fault.toxics {
        api.remove_toxic(&fault.proxy, toxic).await?;
    }
    if fault.disabled {
        api.set_enabled(&fault.proxy, true).await?;
    }
    Ok(())
}

/// Appends one result line and syncs it to disk.
pub fn append_result(data_dir: &Path, line: &[u8]) -> Result<(), JournalError> {
    let path = results_path(data_dir);
    std::fs::create_dir_all(dir(data_dir)).map_err(io(&path))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    f.write_all(line).map_err(io(&path))?;
    f.write_all(b"\n").map_err(io(&path))?;
    f.sync_all().map_err(io(&path))
}

/// Every completed result so far (lines that do not parse are skipped: a
/// torn last line after a power cut must not hide the rest).
pub fn read_results<T: serde::de::DeserializeOwned>(data_dir: &Path) -> Vec<T> {
    std::fs::read_to_string(results_path(data_dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
