//! What the core asks of an async runtime, wherever it runs: tokio natively (Lambda, the local
//! runner), and in a WebAssembly component the host's clock through `wstd`, whose executor drives
//! the component's futures there (no tokio runtime does).

use std::future::Future;
use std::time::Duration;

/// Waits for `d`.
pub async fn sleep(d: Duration) {
    #[cfg(not(target_os = "wasi"))]
    tokio::time::sleep(d).await;
    #[cfg(target_os = "wasi")]
    wstd::task::sleep(wstd::time::Duration::from(d)).await;
}

/// `f`'s output, or `None` if it has not finished within `d` (it is then dropped, which cancels it).
pub async fn timeout<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    #[cfg(not(target_os = "wasi"))]
    return tokio::time::timeout(d, f).await.ok();
    #[cfg(target_os = "wasi")]
    {
        use futures_util::future::{select, Either};
        match select(std::pin::pin!(f), std::pin::pin!(sleep(d))).await {
            Either::Left((out, _)) => Some(out),
            Either::Right(_) => None,
        }
    }
}

/// Runs the futures all at once; their outputs, in the order they finish. Natively each is a tokio
/// task (spread over the runtime's threads; one that panics is an `Err` saying how, the others
/// still finish).
/// In a component they share the instance's one thread, where a panic aborts the instance.
pub async fn all<T, F>(futures: Vec<F>) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    #[cfg(not(target_os = "wasi"))]
    {
        let mut tasks = tokio::task::JoinSet::new();
        for f in futures {
            tasks.spawn(f);
        }
        let mut out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            out.push(joined.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
    #[cfg(target_os = "wasi")]
    Ok(futures_util::future::join_all(futures).await)
}
