//! Load for the benches: notifications POSTed on a schedule (open loop), and the figures they
//! print.

use std::time::Duration;
use tokio::time::Instant;

/// The value at `p` (0 to 1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The processor and the cores the bench ran on.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}

/// What a webhook answered to a load.
pub struct Acks {
    /// Answers other than 202, or none.
    pub failed: usize,
    /// Each answer's delay from when its request was due, after the warm-up, sorted.
    pub latencies: Vec<Duration>,
}

/// POSTs `bodies` to `url` one every `every`, from a thread and runtime of their own (as Graph's
/// requests come from elsewhere: their scheduling does not share the webhook's); the first
/// `warmup` answers are not counted.
pub async fn acknowledgements(
    url: String,
    bodies: Vec<String>,
    every: Duration,
    warmup: usize,
) -> Acks {
    let results = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(open_loop(url, bodies, every))
    })
    .await
    .unwrap();
    let failed = results.iter().filter(|r| !r.2).count();
    let mut latencies: Vec<Duration> = results
        .iter()
        .filter(|r| r.0 >= warmup)
        .map(|r| r.1)
        .collect();
    latencies.sort();
    Acks { failed, latencies }
}

/// POSTs each body at its scheduled time, whether or not earlier answers came; each answer's
/// delay is measured from when its request was due. (index, delay, answered 202)
async fn open_loop(
    url: String,
    bodies: Vec<String>,
    every: Duration,
) -> Vec<(usize, Duration, bool)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let due = t0 + every * i as u32;
        tokio::time::sleep_until(due).await;
        let req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        tasks.spawn(async move {
            let resp = req.send().await;
            let ok = matches!(&resp, Ok(r) if r.status().as_u16() == 202);
            (i, Instant::now() - due, ok)
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(r)) = tasks.join_next().await {
        out.push(r);
    }
    out
}
