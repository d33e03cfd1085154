//! Keeps mailbridge under Graph's per-mailbox limits by itself, so that Graph never has to throttle
//! it: at most 4 requests at a time per mailbox, and a steady rate under 10,000 per 10 minutes.

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
        tokio::time::sleep_until(start_at).await;
        Slot(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
