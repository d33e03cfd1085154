//! State (with conditional writes) and a durable job queue (with visibility timeouts) in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mailbridge_core::model::Job;
use mailbridge_core::ports::*;
use mailbridge_core::services::worker::MAX_RECEIVES;
use mailbridge_core::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct SqliteDb {
    conn: Mutex<Connection>,
    /// Tells the checkpointer thread to stop.
    stop: Arc<AtomicBool>,
    /// Set by the checkpointer when the WAL is past [`WAL_LIMIT_BYTES`]: the next caller
    /// truncates it on this connection, in turn with every other use (no lock timeouts).
    wal_too_large: Arc<AtomicBool>,
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the WAL is copied back into the database, off the request path.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A WAL larger than this is checkpointed whole and truncated: under steady writes, a passive
/// checkpoint never finds the log wholly copied, the log is never rewound, and it grows without
/// bound (1 GB in a soak of an hour), slowing every read. The truncation runs on the main
/// connection, between two uses: from the checkpointer's own, it held writers past their busy
/// timeout ("database is locked") while it copied the rest.
#[cfg(not(test))]
const WAL_LIMIT_BYTES: u64 = 64 << 20;
#[cfg(test)]
const WAL_LIMIT_BYTES: u64 = 1 << 20;

fn db(e: rusqlite::Error) -> Error {
    Error::storage(format!("sqlite: {e}"))
}

/// The body and version of a `state` row, from column `at` on.
fn stored(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    Ok(Stored {
        body: r.get(at)?,
        version: r.get::<_, i64>(at + 1)? as u64,
    })
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl SqliteDb {
    /// Opens (creating if needed) the database at `path`; `:memory:` for a throwaway one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
             PRAGMA wal_autocheckpoint=0;
             CREATE TABLE IF NOT EXISTS state (
               partition TEXT NOT NULL, sort TEXT NOT NULL, body TEXT NOT NULL,
               version INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (partition, sort));
             CREATE TABLE IF NOT EXISTS queue (
               id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, visible_at INTEGER NOT NULL,
               receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT);
             CREATE INDEX IF NOT EXISTS queue_visible ON queue (visible_at);
             CREATE TABLE IF NOT EXISTS dead_letters (
               id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, failed_at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS state_expiry ON state (expires_at)
               WHERE expires_at IS NOT NULL;",
        )
        .map_err(db)?;
        let stop = Arc::new(AtomicBool::new(false));
        let wal_too_large = Arc::new(AtomicBool::new(false));
        // A commit that triggers SQLite's own checkpoint waits for its fsync, with every other
        // caller queued behind it: a webhook answer would take tens of milliseconds. A thread of
        // its own, on its own connection, checkpoints instead.
        if let Some(file) = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) {
            let checkpointer = Connection::open(&file).map_err(db)?;
            let wal = PathBuf::from(format!("{}-wal", file.display()));
            let stop = stop.clone();
            let too_large = wal_too_large.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(CHECKPOINT_EVERY);
                        if let Err(e) =
                            checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        {
                            tracing::warn!(error = %e, "SQLite checkpoint failed");
                        }
                        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES) {
                            too_large.store(true, Ordering::Relaxed);
                        }
                    }
                })
                .map_err(Error::storage)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            stop,
            wal_too_large,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| Error::storage("sqlite connection poisoned"))?;
        if self.wal_too_large.swap(false, Ordering::Relaxed) {
            // Most of the log is copied already (the passive checkpoints): the rest is short.
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "SQLite WAL truncation failed; tried again later");
            }
        }
        f(&mut c).map_err(db)
    }

    /// Deletes the records whose expiry has passed (sign-in states, pace records), as DynamoDB's
    /// TTL does on AWS; the code never trusts an expired record it reads anyway. Returns how many.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        self.with(|c| {
            c.execute(
                "DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                params![now.timestamp()],
            )
        })
        .map(|n| n as u64)
    }

    /// Jobs waiting (visible or not), for status pages and tests.
    pub fn queue_depth(&self) -> Result<u64> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }

    /// Jobs ready now, being worked, or coming back within `within`; jobs parked for longer (a
    /// person must act first) are not counted.
    pub fn active_depth(&self, within: Duration) -> Result<u64> {
        let until = now_ms() + within.as_millis() as i64;
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM queue WHERE visible_at <= ?1",
                params![until],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as u64)
    }
}

impl SqliteDb {
    /// Makes the jobs parked for a person (not due within `within`) visible now, those of one
    /// mailbox or of all: what waited for a sign-in or a new secret goes on at once when it
    /// comes, not at its next hourly try. How many came back.
    pub fn wake_parked(&self, mailbox_id: Option<&str>, within: Duration) -> Result<u64> {
        let now = now_ms();
        let until = now + within.as_millis() as i64;
        self.with(|c| {
            c.execute(
                "UPDATE queue SET visible_at = ?1 WHERE visible_at > ?2 \
                 AND (?3 IS NULL OR json_extract(body, '$.mailbox_id') = ?3)",
                params![now, until, mailbox_id],
            )
        })
        .map(|n| n as u64)
    }

    /// Every dead-lettered job back in the queue, as new; how many.
    pub fn redrive(&self) -> Result<u64> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO queue (body, visible_at) SELECT body, ?1 FROM dead_letters ORDER BY id",
                params![now_ms()],
            )?;
            tx.execute("DELETE FROM dead_letters", [])?;
            tx.commit()?;
            Ok(n as u64)
        })
    }

    /// Jobs waiting in the dead-letter table.
    pub fn dead_letter_depth(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }
}

#[async_trait]
impl StateStore for SqliteDb {
    async fn get(&self, key: &Key) -> Result<Option<Stored>> {
        self.with(|c| {
            c.query_row(
                "SELECT body, version FROM state WHERE partition = ?1 AND sort = ?2",
                params![key.partition, key.sort],
                |r| stored(r, 0),
            )
            .optional()
        })
    }

    async fn put(
        &self,
        key: &Key,
        body: String,
        cond: Cond,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let exp = expires_at.map(|t| t.timestamp());
        let written = self.with(|c| {
            let tx = c.transaction()?;
            let current: Option<i64> = tx
                .query_row("SELECT version FROM state WHERE partition = ?1 AND sort = ?2", params![key.partition, key.sort], |r| r.get(0))
                .optional()?;
            if !cond.holds(current.map(|v| v as u64)) {
                return Ok(None);
            }
            let version = current.unwrap_or(0) + 1;
            tx.execute(
                "INSERT INTO state (partition, sort, body, version, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (partition, sort) DO UPDATE SET body = ?3, version = ?4, expires_at = ?5",
                params![key.partition, key.sort, body, version, exp],
            )?;
            tx.commit()?;
            Ok(Some(version as u64))
        })?;
        written.ok_or_else(|| Error::Conflict(format!("{}/{}", key.partition, key.sort)))
    }

    async fn take(&self, key: &Key) -> Result<Option<Stored>> {
        self.with(|c| {
            c.query_row(
                "DELETE FROM state WHERE partition = ?1 AND sort = ?2 RETURNING body, version",
                params![key.partition, key.sort],
                |r| stored(r, 0),
            )
            .optional()
        })
    }

    async fn list(&self, partition: &str) -> Result<Vec<(String, Stored)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT sort, body, version FROM state WHERE partition = ?1 ORDER BY sort",
            )?;
            let rows = st.query_map(params![partition], |r| Ok((r.get(0)?, stored(r, 1)?)))?;
            rows.collect()
        })
    }
}

#[async_trait]
impl JobQueue for SqliteDb {
    async fn send(&self, jobs: &[Job]) -> Result<()> {
        let bodies = jobs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::storage)?;
        self.with(|c| {
            let tx = c.transaction()?;
            for b in &bodies {
                tx.execute(
                    "INSERT INTO queue (body, visible_at) VALUES (?1, ?2)",
                    params![b, now_ms()],
                )?;
            }
            tx.commit()
        })
    }
}

#[async_trait]
impl JobSource for SqliteDb {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>> {
        let now = now_ms();
        let hidden_until = now + visibility.as_millis() as i64;
        self.with(|c| {
            let tx = c.transaction()?;
            let picked: Vec<(i64, String, i64)> = {
                let mut st = tx.prepare("SELECT id, body, receive_count FROM queue WHERE visible_at <= ?1 ORDER BY id LIMIT ?2")?;
                let rows = st.query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for (id, body, count) in picked {
                if count >= i64::from(MAX_RECEIVES) {
                    // SQS's redrive policy: a job received too often goes aside for a person.
                    tx.execute(
                        "INSERT INTO dead_letters (body, failed_at) VALUES (?1, ?2)",
                        params![body, now],
                    )?;
                    tx.execute("DELETE FROM queue WHERE id = ?1", params![id])?;
                    let job = serde_json::from_str::<Job>(&body).map_or("unreadable", |j| j.kind());
                    tracing::error!(
                        job,
                        "job dead-lettered after {MAX_RECEIVES} receives; it is tried again at the next start"
                    );
                    continue;
                }
                let receipt = format!("{id}:{}", mailbridge_core::crypto::random_token(8));
                tx.execute(
                    "UPDATE queue SET visible_at = ?1, receive_count = receive_count + 1, receipt = ?2 WHERE id = ?3",
                    params![hidden_until, receipt, id],
                )?;
                out.push(Delivery { receipt, job_body: body, receive_count: (count + 1) as u32 });
            }
            tx.commit()?;
            Ok(out)
        })
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        // Only the latest receiver's receipt deletes: a worker that lost its lease cannot.
        self.with(|c| c.execute("DELETE FROM queue WHERE receipt = ?1", params![receipt]))
            .map(|_| ())
    }
}

#[async_trait]
impl Redelivery for SqliteDb {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()> {
        let at = now_ms() + delay.as_millis() as i64;
        self.with(|c| {
            c.execute(
                "UPDATE queue SET visible_at = ?1 WHERE receipt = ?2",
                params![at, receipt],
            )
        })
        .map(|_| ())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use mailbridge_core::model::Origin as Src;

    /// Writes without a pause leave the WAL bounded: past its limit it is checkpointed whole and
    /// truncated, instead of growing for as long as writes go on.
    #[tokio::test]
    async fn the_wal_stays_bounded_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let d = SqliteDb::open(&path).unwrap();
        let wal = dir.path().join("state.db-wal");
        let body = "x".repeat(16 << 10);
        let mut largest = 0;
        for i in 0..1_000 {
            let k = Key::new("p", i.to_string());
            d.put(&k, body.clone(), Cond::Any, None).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // 16 MB written; the checkpointer's next turn, then the next use of the database.
        std::thread::sleep(CHECKPOINT_EVERY * 3);
        let k = Key::new("p", "999");
        assert_eq!(d.get(&k).await.unwrap().unwrap().body, body);
        let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert!(
            left <= WAL_LIMIT_BYTES,
            "WAL of {left} bytes (at most {largest} seen)"
        );
    }

    #[tokio::test]
    async fn conditional_writes_and_take() {
        let d = SqliteDb::open(":memory:").unwrap();
        let k = Key::new("p", "a");
        assert_eq!(d.put(&k, "1".into(), Cond::Absent, None).await.unwrap(), 1);
        assert!(matches!(
            d.put(&k, "x".into(), Cond::Absent, None).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            d.put(&k, "x".into(), Cond::Version(2), None).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            d.put(&k, "2".into(), Cond::Version(1), None).await.unwrap(),
            2
        );
        assert_eq!(
            d.get(&k).await.unwrap().unwrap(),
            Stored {
                body: "2".into(),
                version: 2
            }
        );
        assert_eq!(d.list("p").await.unwrap().len(), 1);
        assert!(d.take(&k).await.unwrap().is_some());
        assert!(d.take(&k).await.unwrap().is_none(), "a take is single-use");
    }

    /// A job of mailbox `m` that imports message `id`.
    fn import_job(id: &str) -> Job {
        Job::Import {
            mailbox_id: "m".into(),
            message_id: id.into(),
            origin: Src::Sweep,
            queued_at: None,
        }
    }

    #[tokio::test]
    async fn queue_redelivers_until_acked() {
        let d = SqliteDb::open(":memory:").unwrap();
        let job = import_job("x");
        d.send(&[job]).await.unwrap();
        let got = d.receive(10, Duration::from_millis(0)).await.unwrap();
        assert_eq!(got.len(), 1);
        let again = d.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            again[0].receive_count, 2,
            "not acked: delivered again after its visibility ran out"
        );
        assert!(
            d.receive(10, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty(),
            "hidden while in flight"
        );
        d.ack(&got[0].receipt).await.unwrap();
        assert_eq!(
            d.queue_depth().unwrap(),
            1,
            "a stale receipt deletes nothing"
        );
        d.ack(&again[0].receipt).await.unwrap();
        assert_eq!(d.queue_depth().unwrap(), 0);
    }

    #[tokio::test]
    async fn parked_jobs_wake_and_jobs_in_flight_stay_hidden() {
        let d = SqliteDb::open(":memory:").unwrap();
        d.send(&[import_job("parked"), import_job("working")])
            .await
            .unwrap();
        let got = d.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.len(), 2);
        d.retry_later(&got[0].receipt, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            d.wake_parked(Some("another"), Duration::from_secs(300))
                .unwrap(),
            0,
            "another mailbox's sign-in wakes nothing here"
        );
        assert_eq!(
            d.wake_parked(Some("m"), Duration::from_secs(300)).unwrap(),
            1
        );
        let woken = d.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(woken.len(), 1, "the parked job only, not the one in flight");
        assert_eq!(woken[0].receive_count, 2);
        assert_eq!(d.wake_parked(None, Duration::from_secs(300)).unwrap(), 0);
    }

    #[tokio::test]
    async fn dead_letters_are_kept_until_redriven() {
        let d = SqliteDb::open(":memory:").unwrap();
        let job = import_job("x");
        d.send(std::slice::from_ref(&job)).await.unwrap();
        for n in 1..=MAX_RECEIVES {
            let got = d.receive(10, Duration::ZERO).await.unwrap();
            assert_eq!(got[0].receive_count, n);
            d.retry_later(&got[0].receipt, Duration::ZERO)
                .await
                .unwrap();
        }
        // Received as often as the redrive policy allows: the next receive sets it aside.
        assert!(d.receive(10, Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(
            (d.queue_depth().unwrap(), d.dead_letter_depth().unwrap()),
            (0, 1)
        );
        assert_eq!(d.redrive().unwrap(), 1);
        assert_eq!(d.dead_letter_depth().unwrap(), 0);
        let back = d.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(back[0].job_body, serde_json::to_string(&job).unwrap());
        assert_eq!(back[0].receive_count, 1, "redriven as new");
    }
}
