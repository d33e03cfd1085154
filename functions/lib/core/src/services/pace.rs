//! Keeps mailbridge under Graph's per-mailbox limits by itself, so that Graph never has to throttle
//! it: at most 4 requests at a time per mailbox, and a steady rate under 10,000 per 10 minutes.
//!
//! Two layers. [`SharedPace`] holds the limits across every process that works on a mailbox (each
//! Lambda container, each local worker): a record per mailbox in the state store, changed only by
//! conditional writes, with the job slots held (a job's Graph calls are sequential, so four slots
//! mean four requests at most) and the instant the next request is due at the steady rate, charged
//! per Graph request by [`PacedGraph`]. [`Pace`], in memory, first admits a process's own jobs, so
//! that a busy container does not poll the store with more jobs than it could run.

use crate::model::*;
use crate::ports::{Clock, GraphCtx, MailGraph, MimeDownload};
use crate::repo::Repo;
use crate::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Graph's concurrent requests per app and mailbox.
pub const PER_MAILBOX_CONCURRENCY: usize = 4;
/// 16.5 per second: under Graph's 10,000 per 10 minutes (16.7 per second) with room for the
/// occasional token refresh.
pub const PER_MAILBOX_INTERVAL: Duration = Duration::from_micros(60_607);
/// Requests that may start at once after a quiet spell: 10 minutes at the steady rate plus this
/// stays under Graph's 10,000.
pub const PER_MAILBOX_BURST: u32 = 50;

/// Graph's limits per app and mailbox, as mailbridge holds them. Configurable: Microsoft's page has
/// been read as counting the concurrency per app too, and tests shorten the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphLimits {
    /// Requests at once.
    pub concurrency: usize,
    /// The steady rate's interval between requests.
    pub interval: Duration,
    /// Requests that may start at once after a quiet spell.
    pub burst: u32,
}

impl Default for GraphLimits {
    fn default() -> Self {
        Self {
            concurrency: PER_MAILBOX_CONCURRENCY,
            interval: PER_MAILBOX_INTERVAL,
            burst: PER_MAILBOX_BURST,
        }
    }
}

struct Lane {
    slots: Arc<Semaphore>,
    /// When the next request would start at the steady rate (the "theoretical arrival time").
    due: Mutex<Instant>,
}

/// Per-mailbox admission: a concurrency limit and a rate (a token bucket in its GCRA form).
pub struct Pace {
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    concurrency: usize,
    interval: Duration,
    burst: u32,
}

impl Default for Pace {
    fn default() -> Self {
        Self::new(
            PER_MAILBOX_CONCURRENCY,
            PER_MAILBOX_INTERVAL,
            PER_MAILBOX_BURST,
        )
    }
}

/// Held while the work runs; dropping it frees the mailbox's slot.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Pace {
    pub fn with_limits(limits: GraphLimits) -> Self {
        Self::new(limits.concurrency, limits.interval, limits.burst)
    }

    pub fn new(concurrency: usize, interval: Duration, burst: u32) -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
            concurrency,
            interval,
            burst,
        }
    }

    /// Waits for one of the mailbox's slots, then for its turn at the steady rate.
    pub async fn enter(&self, mailbox_id: &str) -> Slot {
        let lane = self
            .lanes
            .lock()
            .unwrap()
            .entry(mailbox_id.to_string())
            .or_insert_with(|| {
                Arc::new(Lane {
                    slots: Arc::new(Semaphore::new(self.concurrency)),
                    due: Mutex::new(Instant::now()),
                })
            })
            .clone();
        let permit = lane
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let start_at = {
            let now = Instant::now();
            let mut due = lane.due.lock().unwrap();
            let tat = (*due).max(now);
            *due = tat + self.interval;
            tat.checked_sub(self.interval * self.burst).unwrap_or(now)
        };
        crate::rt::sleep(start_at.saturating_duration_since(Instant::now())).await;
        Slot(permit)
    }
}

/// A mailbox's admission record, shared by every process: the job slots held, each until its
/// lease runs out (a crashed holder's slot comes back then), and when the next Graph request is
/// due at the steady rate (its "theoretical arrival time").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaceRecord {
    pub due: Option<DateTime<Utc>>,
    pub slots: Vec<SlotLease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLease {
    pub id: String,
    pub until: DateTime<Utc>,
}

/// A job slot held in the shared record; give it back with [`SharedPace::leave`].
#[derive(Debug)]
pub struct Lease {
    mailbox: String,
    id: String,
}

/// Graph's per-mailbox limits across processes, over the state store.
pub struct SharedPace {
    records: Repo<PaceRecord>,
    clock: Arc<dyn Clock>,
    limits: GraphLimits,
    /// How long a slot is held at most: longer than any job (the import function's timeout).
    lease: chrono::Duration,
    /// How long a job waits here before it is handed back to the queue instead.
    max_wait: Duration,
    /// Slots taken before this belong to a process that has ended: free at once.
    void_before: Option<DateTime<Utc>>,
}

/// The first and the longest pause between two looks at a full record.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MOST: Duration = Duration::from_millis(400);

impl SharedPace {
    pub fn new(records: Repo<PaceRecord>, clock: Arc<dyn Clock>, limits: GraphLimits) -> Self {
        Self {
            records,
            clock,
            limits,
            lease: chrono::Duration::seconds(330),
            max_wait: Duration::from_secs(30),
            void_before: None,
        }
    }

    /// Slots taken before `start` were held by a process that has ended (a killed local runner):
    /// they are free at once instead of after their lease ([`Settings::claims_void_before`]).
    ///
    /// [`Settings::claims_void_before`]: super::Settings::claims_void_before
    pub fn voiding_before(self, start: Option<DateTime<Utc>>) -> Self {
        Self {
            void_before: start,
            ..self
        }
    }

    /// Takes one of the mailbox's job slots, waiting while all are held.
    pub async fn enter(&self, mailbox: &str) -> Result<Lease> {
        let id = crate::crypto::random_token(12);
        self.admit(mailbox, Some(&id)).await?;
        Ok(Lease {
            mailbox: mailbox.to_string(),
            id,
        })
    }

    /// Gives a slot back. On failure the slot comes back when its lease runs out.
    pub async fn leave(&self, lease: Lease) {
        let released = self
            .records
            .update(&lease.mailbox, |r| {
                let mut r = r?;
                let before = r.slots.len();
                r.slots.retain(|s| s.id != lease.id);
                (r.slots.len() != before).then_some(r)
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(mailbox = %lease.mailbox, error = %e, "a Graph slot is left to its lease");
        }
    }

    /// Waits for the mailbox's next turn at the steady rate, and takes it: one Graph request.
    pub async fn charge(&self, mailbox: &str) -> Result<()> {
        self.admit(mailbox, None).await
    }

    /// One admission: a slot (`Some(id)`) or a turn at the rate (`None`), under a conditional
    /// write; waits with a growing pause while the record says no.
    async fn admit(&self, mailbox: &str, slot: Option<&str>) -> Result<()> {
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let now = self.clock.now();
            let current = self.records.get(mailbox).await?;
            let cond = current.as_ref().map_or(crate::ports::Cond::Absent, |c| {
                crate::ports::Cond::Version(c.version)
            });
            let mut record = current.map(|c| c.value).unwrap_or_default();
            record.slots.retain(|s| {
                s.until > now
                    && !super::taken_by_an_ended_process(self.void_before, s.until, self.lease)
            });
            let interval =
                chrono::Duration::from_std(self.limits.interval).map_err(Error::storage)?;
            let due = record.due.map_or(now, |d| d.max(now));
            let wait = match slot {
                Some(_) if record.slots.len() >= self.limits.concurrency => Some(pause),
                Some(_) => None,
                None => {
                    let start_at = due - interval * self.limits.burst as i32;
                    (start_at > now).then(|| (start_at - now).to_std().unwrap_or_default())
                }
            };
            let Some(wait) = wait else {
                match slot {
                    Some(id) => record.slots.push(SlotLease {
                        id: id.to_string(),
                        until: now + self.lease,
                    }),
                    None => record.due = Some(due + interval),
                }
                match self.records.put(mailbox, &record, cond).await {
                    Ok(_) => return Ok(()),
                    // Another process took a turn meanwhile: look again at once.
                    Err(Error::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                }
            };
            if started.elapsed() + wait > self.max_wait {
                return Err(Error::Retry {
                    after: Some(wait.max(Duration::from_secs(1))),
                    reason: "other workers hold this mailbox's share of Graph's limits".into(),
                });
            }
            crate::rt::sleep(wait).await;
            if slot.is_some() {
                pause = (pause * 2).min(POLL_MOST);
            }
        }
    }
}

/// The Graph port, paced: every request for a mailbox waits for its turn at the mailbox's shared
/// rate first; Graph's throttling and failures are counted here.
pub struct PacedGraph {
    pub inner: Arc<dyn MailGraph>,
    pub pace: Arc<SharedPace>,
    pub metrics: Arc<dyn crate::ports::Metrics>,
}

impl PacedGraph {
    fn observe<T>(&self, answer: Result<T>) -> Result<T> {
        use crate::ports::Metric;
        match &answer {
            Err(Error::Throttled { .. }) => self.metrics.record(Metric::GraphThrottled),
            Err(Error::Retry { .. }) => self.metrics.record(Metric::GraphFailed),
            _ => {}
        }
        answer
    }

    async fn turn(&self, ctx: &GraphCtx<'_>) -> Result<()> {
        if ctx.mailbox.is_empty() {
            // A sign-in completing: the mailbox has no record (nor work) yet.
            return Ok(());
        }
        self.pace.charge(ctx.mailbox).await
    }
}

#[async_trait]
impl MailGraph for PacedGraph {
    async fn me(&self, ctx: GraphCtx<'_>) -> Result<GraphUser> {
        self.turn(&ctx).await?;
        self.observe(self.inner.me(ctx).await)
    }

    async fn user(&self, ctx: GraphCtx<'_>, id_or_upn: &str) -> Result<GraphUser> {
        self.turn(&ctx).await?;
        self.observe(self.inner.user(ctx, id_or_upn).await)
    }

    async fn users(&self, ctx: GraphCtx<'_>) -> Result<Vec<DirectoryUser>> {
        self.turn(&ctx).await?;
        self.observe(self.inner.users(ctx).await)
    }

    async fn folder(&self, ctx: GraphCtx<'_>, user_id: &str, folder: &str) -> Result<GraphFolder> {
        self.turn(&ctx).await?;
        self.observe(self.inner.folder(ctx, user_id, folder).await)
    }

    async fn child_folders(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Vec<GraphFolder>> {
        self.turn(&ctx).await?;
        self.observe(self.inner.child_folders(ctx, user_id, folder_id).await)
    }

    async fn create_subscription(
        &self,
        ctx: GraphCtx<'_>,
        req: &NewSubscription,
    ) -> Result<SubscriptionAnswer> {
        self.turn(&ctx).await?;
        self.observe(self.inner.create_subscription(ctx, req).await)
    }

    async fn renew_subscription(
        &self,
        ctx: GraphCtx<'_>,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        self.turn(&ctx).await?;
        self.observe(self.inner.renew_subscription(ctx, id, expiration).await)
    }

    async fn delete_subscription(&self, ctx: GraphCtx<'_>, id: &str) -> Result<()> {
        self.turn(&ctx).await?;
        self.observe(self.inner.delete_subscription(ctx, id).await)
    }

    async fn delta(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
        link: Option<&str>,
    ) -> Result<DeltaPage> {
        self.turn(&ctx).await?;
        self.observe(self.inner.delta(ctx, user_id, folder_id, link).await)
    }

    async fn add_category(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
        category: &str,
    ) -> Result<()> {
        self.turn(&ctx).await?;
        self.observe(
            self.inner
                .add_category(ctx, user_id, message_id, category)
                .await,
        )
    }

    async fn message_mime(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
    ) -> Result<MimeDownload> {
        self.turn(&ctx).await?;
        self.observe(self.inner.message_mime(ctx, user_id, message_id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryStateStore, ShiftedClock};

    fn shared(store: &Arc<InMemoryStateStore>, limits: GraphLimits) -> SharedPace {
        SharedPace::new(
            Repo::new(store.clone()),
            Arc::new(ShiftedClock::default()),
            limits,
        )
    }

    /// Two processes (each its own SharedPace, as two containers would have) over one store: never
    /// more than the concurrency at once between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_hold_across_processes() {
        let store = Arc::new(InMemoryStateStore::default());
        let limits = GraphLimits {
            concurrency: 3,
            interval: Duration::from_millis(1),
            burst: 100,
        };
        let paces = [
            Arc::new(shared(&store, limits)),
            Arc::new(shared(&store, limits)),
        ];
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..24 {
            let (pace, running, peak) = (paces[i % 2].clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let lease = pace.enter("m").await.unwrap();
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                pace.leave(lease).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
        let left: PaceRecord = Repo::new(store.clone())
            .get("m")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert!(left.slots.is_empty(), "{left:?}");
    }

    /// The rate holds across processes: 40 turns at 10 ms with a burst of 4 take at least 350 ms.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rate_holds_across_processes() {
        let store = Arc::new(InMemoryStateStore::default());
        let limits = GraphLimits {
            concurrency: 4,
            interval: Duration::from_millis(10),
            burst: 4,
        };
        let paces = [
            Arc::new(shared(&store, limits)),
            Arc::new(shared(&store, limits)),
        ];
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let pace = paces[i % 2].clone();
            tasks.push(tokio::spawn(async move { pace.charge("m").await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(350),
            "{:?}",
            t0.elapsed()
        );
    }

    /// A slot whose holder crashed comes back when its lease runs out; a job that cannot get one
    /// in time is handed back with a delay, not failed.
    #[tokio::test]
    async fn a_crashed_holders_slot_comes_back_and_waiting_is_bounded() {
        let store = Arc::new(InMemoryStateStore::default());
        let clock = Arc::new(ShiftedClock::default());
        let mut pace = SharedPace::new(
            Repo::new(store.clone()),
            clock.clone(),
            GraphLimits {
                concurrency: 1,
                ..GraphLimits::default()
            },
        );
        pace.max_wait = Duration::from_millis(50);
        let _crashed = pace.enter("m").await.unwrap();
        assert!(matches!(
            pace.enter("m").await,
            Err(Error::Retry { after: Some(_), .. })
        ));
        clock.advance(chrono::Duration::minutes(6));
        pace.enter("m").await.unwrap();
    }

    /// A local runner killed with its slots held starts again with them free: its data
    /// directory was its alone, so nobody else holds them.
    #[tokio::test]
    async fn slots_of_an_ended_process_are_free_at_once() {
        let store = Arc::new(InMemoryStateStore::default());
        let clock = Arc::new(ShiftedClock::default());
        let limits = GraphLimits {
            concurrency: 1,
            ..GraphLimits::default()
        };
        let mut killed = SharedPace::new(Repo::new(store.clone()), clock.clone(), limits);
        killed.max_wait = Duration::from_millis(50);
        let _held = killed.enter("m").await.unwrap();
        clock.advance(chrono::Duration::seconds(5));
        let start = clock.now();
        let mut restarted = SharedPace::new(Repo::new(store.clone()), clock.clone(), limits)
            .voiding_before(Some(start));
        restarted.max_wait = Duration::from_millis(50);
        let _taken = restarted.enter("m").await.unwrap();
        // A slot taken after the start is held as ever.
        assert!(matches!(
            restarted.enter("m").await,
            Err(Error::Retry { after: Some(_), .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_steady_rate() {
        let pace = Pace::new(100, Duration::from_millis(100), 5);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..15 {
            let _slot = pace.enter("m").await;
            starts.push(Instant::now() - t0);
        }
        // Six at once (the one due now and a burst of five), then one every 100 ms.
        assert!(starts[..6].iter().all(|d| d.is_zero()), "{starts:?}");
        assert_eq!(starts[6], Duration::from_millis(100));
        assert_eq!(starts[14], Duration::from_millis(900));
        // Another mailbox has its own lane.
        let _other = pace.enter("n").await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_concurrency_at_once() {
        let pace = Arc::new(Pace::new(2, Duration::from_millis(1), 100));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (pace, running, peak) = (pace.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = pace.enter("m").await;
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
