//! Where call tasks run: the engine's own media threads, or the caller's runtime.
//!
//! A media thread is one OS thread running a single-threaded tokio runtime that carries
//! nothing but call tasks. On the server's shared work-stealing runtime every readiness
//! event could land on either worker, wake the parked one to steal, and interleave with
//! HTTP, SIP and database work; a relayed packet is a few microseconds of work, so those
//! hand-offs (futex wake-ups, cross-thread queue traffic, cache misses) were a real share
//! of each call's CPU. On a media thread a wake-up takes every socket that became ready
//! from one `epoll_wait` and polls those calls back to back, on one core's cache.
//!
//! Calls are spread over the threads round-robin when they are created; a call stays on
//! its thread for its whole life (its sockets are registered with that thread's reactor).
//! The threads stop when the engine is dropped (their remaining call tasks are dropped
//! with their runtime, closing the sockets).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The name every media thread carries (what `top -H` and /proc/PID/task/*/comm show).
pub const THREAD_NAME: &str = "callscope-media";

/// How the engine starts call tasks.
pub enum Spawner {
    /// On the runtime of whoever creates the call (`tokio::spawn`).
    Caller,
    /// On the engine's media threads.
    Threads(MediaThreads),
}

impl Spawner {
    /// `count` media threads, or the caller's runtime when `count` is 0. If the threads
    /// cannot be started (the OS refuses a thread), calls run on the caller's runtime and
    /// the reason is logged: media keeps working, only less efficiently.
    pub fn new(count: usize) -> Spawner {
        if count == 0 {
            return Spawner::Caller;
        }
        match MediaThreads::start(count) {
            Ok(threads) => Spawner::Threads(threads),
            Err(e) => {
                tracing::error!(error = %e, "cannot start media threads; calls run on the main runtime");
                Spawner::Caller
            }
        }
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self {
            Spawner::Caller => {
                tokio::spawn(task);
            }
            Spawner::Threads(threads) => threads.spawn(task),
        }
    }

    /// Media threads running (0 when calls run on the caller's runtime).
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        match self {
            Spawner::Caller => 0,
            Spawner::Threads(t) => t.handles.len(),
        }
    }
}

/// Running media threads; dropping this stops them.
pub struct MediaThreads {
    handles: Vec<Handle>,
    /// Dropped with the engine: each thread's runtime then returns from `block_on` and
    /// drops its tasks.
    _stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl MediaThreads {
    fn start(count: usize) -> std::io::Result<MediaThreads> {
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for _ in 0..count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(THREAD_NAME.to_string())
                .spawn(move || {
                    // Returns when the engine drops its sender (or it is gone already).
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            handles.push(handle);
            stops.push(stop);
        }
        Ok(MediaThreads {
            handles,
            _stops: stops,
            next: AtomicUsize::new(0),
        })
    }

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        // `start` made at least one thread, so the modulo is defined.
        if let Some(handle) = self.handles.get(i % self.handles.len().max(1)) {
            handle.spawn(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    #[tokio::test]
    async fn tasks_run_on_the_named_media_threads_round_robin() {
        let spawner = Spawner::new(2);
        assert_eq!(spawner.threads(), 2);
        let mut names = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            spawner.spawn(async move {
                let _ = tx.send((thread_name(), std::thread::current().id()));
            });
            let (name, id) = tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .expect("task ran")
                .expect("reply");
            names.push(name);
            ids.push(id);
        }
        assert!(names.iter().all(|n| n == THREAD_NAME), "{names:?}");
        // Round-robin over two threads: 1st and 3rd share one, 2nd and 4th the other.
        assert_eq!(ids[0], ids[2]);
        assert_eq!(ids[1], ids[3]);
        assert_ne!(ids[0], ids[1]);
    }

    #[tokio::test]
    async fn zero_threads_runs_tasks_on_the_callers_runtime() {
        let spawner = Spawner::new(0);
        assert_eq!(spawner.threads(), 0);
        let (tx, rx) = oneshot::channel();
        let here = std::thread::current().id();
        spawner.spawn(async move {
            let _ = tx.send(std::thread::current().id());
        });
        // A current-thread test runtime: the task runs on this very thread.
        let ran_on = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("task ran")
            .expect("reply");
        assert_eq!(ran_on, here);
    }

    #[test]
    fn dropping_the_threads_drops_their_tasks() {
        let spawner = Spawner::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // The task holds the sender forever; when the runtime drops it, the channel closes.
        spawner.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        drop(spawner);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
