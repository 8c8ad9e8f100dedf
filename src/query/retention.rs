//! Hour partitions of the history, and deleting the old ones.
//!
//! Files live under `<history>/<table>/hour=YYYY-MM-DDTHH/`, in UTC. A
//! whole hour is the unit of retention: deleting a directory is atomic
//! enough for a reader (a query sees the hour or not), and the hive-style
//! name lets SQL filter on `hour` without opening a file.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

const HOUR_MS: u64 = 3_600_000;

/// How much history to keep. `None` keeps everything on that axis.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    /// Hours that ended longer ago than this are deleted.
    pub max_age: Option<Duration>,
    /// Past this many bytes in all tables, the oldest hours are deleted
    /// (never the newest one, which is being written).
    pub max_bytes: Option<u64>,
}

/// One table's files of one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub table: String,
    /// `2026-11-26T09`.
    pub hour: String,
    pub start_ms: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// The partition name of the hour holding `ms` (UTC): `2026-11-26T09`.
pub fn hour_of(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    let at = UNIX_EPOCH + Duration::from_millis(ms - ms % HOUR_MS);
    humantime::format_rfc3339_seconds(at).to_string()[..13].to_owned()
}

/// The start of a partition's hour, in ms; `None` for a foreign name.
pub fn hour_start_ms(hour: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(&format!("{hour}:00:00Z")).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    ms.is_multiple_of(HOUR_MS).then_some(ms)
}

/// Every partition under `history`, oldest hour first.
pub fn partitions(history: &Path) -> std::io::Result<Vec<Partition>> {
    let mut out = Vec::new();
    let tables = match std::fs::read_dir(history) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for table in tables {
        let table = table?;
        if !table.file_type()?.is_dir() {
            continue;
        }
        for part in std::fs::read_dir(table.path())? {
            let part = part?;
            let name = part.file_name().to_string_lossy().into_owned();
            let Some(hour) = name.strip_prefix("hour=") else {
                continue;
            };
            let Some(start_ms) = hour_start_ms(hour) else {
                continue;
            };
            out.push(Partition {
                table: table.file_name().to_string_lossy().into_owned(),
                hour: hour.to_owned(),
                start_ms,
                bytes: dir_bytes(&part.path())?,
                path: part.path(),
            });
        }
    }
    out.sort_by(|a, b| (a.start_ms, &a.table).cmp(&(b.start_ms, &b.table)));
    Ok(out)
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for f in std::fs::read_dir(dir)? {
        total += f?.metadata()?.len();
    }
    Ok(total)
}

/// Deletes what `policy` no longer keeps, as of `now_ms` (passed in, so
/// tests can be hours ahead without waiting). Returns the deleted
/// partitions.
pub fn enforce(history: &Path, now_ms: u64, policy: &Policy) -> std::io::Result<Vec<Partition>> {
    let all = partitions(history)?;
    let newest = all.iter().map(|p| p.start_ms).max().unwrap_or(0);
    let expired = |p: &Partition| {
        policy
            .max_age
            .is_some_and(|age| p.start_ms + HOUR_MS + age.as_millis() as u64 <= now_ms)
    };
    let (mut gone, mut kept): (Vec<_>, Vec<_>) = all.into_iter().partition(expired);
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = kept.iter().map(|p| p.bytes).sum();
        while total > max {
            let Some(oldest) = kept.first().map(|p| p.start_ms).filter(|s| *s < newest) else {
                break;
            };
            let (hour, rest): (Vec<_>, Vec<_>) =
                kept.into_iter().partition(|p| p.start_ms == oldest);
            total -= hour.iter().map(|p| p.bytes).sum::<u64>();
            gone.extend(hour);
            kept = rest;
        }
    }
    for p in &gone {
        std::fs::remove_dir_all(&p.path)?;
        tracing::info!(table = %p.table, hour = %p.hour, bytes = p.bytes, "history partition deleted");
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(history: &Path, table: &str, start_ms: u64, bytes: usize) {
        let dir = history
            .join(table)
            .join(format!("hour={}", hour_of(start_ms as i64)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.parquet"), vec![0u8; bytes]).unwrap();
    }

    #[test]
    fn hours_round_trip() {
        let ms = 1_795_000_123_456i64;
        let hour = hour_of(ms);
        assert_eq!(hour.len(), 13);
        let start = hour_start_ms(&hour).unwrap();
        assert!(start as i64 <= ms && ms < start as i64 + HOUR_MS as i64);
        assert_eq!(hour_start_ms("nonsense"), None);
    }

    #[test]
    fn age_deletes_whole_old_hours() {
        let dir = tempfile::tempdir().unwrap();
        let h0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS;
        for h in 0..3 {
            make(dir.path(), "edges", h0 + h * HOUR_MS, 10);
            make(dir.path(), "nodes", h0 + h * HOUR_MS, 10);
        }
        let policy = Policy {
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: None,
        };
        // Two hours after the first hour ended: only it is older than an hour.
        let gone = enforce(dir.path(), h0 + 2 * HOUR_MS, &policy).unwrap();
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|p| p.start_ms == h0));
        assert_eq!(partitions(dir.path()).unwrap().len(), 4);
    }

    #[test]
    fn size_deletes_oldest_hours_but_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let h0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS;
        for h in 0..3 {
            make(dir.path(), "edges", h0 + h * HOUR_MS, 100);
        }
        let policy = Policy {
            max_age: None,
            max_bytes: Some(150),
        };
        let gone = enforce(dir.path(), h0, &policy).unwrap();
        assert_eq!(gone.len(), 2, "{gone:?}");
        let left = partitions(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].start_ms, h0 + 2 * HOUR_MS);
        let tiny = Policy {
            max_age: None,
            max_bytes: Some(1),
        };
        assert!(enforce(dir.path(), h0, &tiny).unwrap().is_empty());
    }
}
