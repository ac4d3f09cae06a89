//! The recording's disk side: a few writer threads that every recording of the engine shares.
//!
//! The call task gathers the frames its timeline releases and hands them to its recording's
//! writer thread every [`DISK_CHUNK`] of audio; the thread writes and flushes each chunk to
//! the OS at once. Chunks are as long as the crash-loss contract allows: a `kill -9` loses
//! at most one chunk, one housekeeping tick and the timeline's playout delay (0.5 + 0.2 +
//! 0.2 s, inside the promised 1 s). On `Finish` the thread fsyncs and renames.
//!
//! Why a pool and not a thread per recording (as before): that was one OS thread per
//! recorded call, each woken twice a second for a few microseconds of copying, so thread
//! count and wake-ups grew with the calls (RustPBX's 5,000 recorded calls would have been
//! 5,000 threads). Every call's housekeeping tick falls on the same process-wide grid
//! (`grid`), so the chunks of all the calls of a media thread come out within microseconds
//! of each other: a shared writer thread takes that burst in one wake-up.
//!
//! A slow or stalled disk never makes RTP handling wait: each recording may have at most
//! [`DISK_QUEUE`] chunks waiting for its thread, and chunks beyond that are dropped and
//! counted by the sender. Recordings are spread over the threads round-robin, so one file
//! stuck in the kernel delays the recordings of its thread only (their chunks queue, then
//! drop, as above). If the call task disappears without finishing (cancelled, panicked),
//! dropping its handle still hands the gathered frames over and lets the thread flush the
//! `.part` file for start-up repair.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::recorder::{FinishedRecording, RecordingWriter};

use super::types::MediaEvent;

/// How much audio goes to the writer thread (and from it to the OS) at once.
pub const DISK_CHUNK: Duration = Duration::from_millis(500);

/// Chunks of one recording waiting for its thread before the disk is considered lagging
/// (≈ 16 s of audio).
const DISK_QUEUE: usize = 32;

/// The name every writer thread carries.
const THREAD_NAME: &str = "callscope-rec";

type Finished = Result<FinishedRecording, String>;

/// What a recording's handle tells its writer thread; `id` names the recording there.
enum DiskMsg {
    Open {
        id: u64,
        writer: RecordingWriter,
        call_id: String,
        events: mpsc::Sender<MediaEvent>,
        in_flight: Arc<AtomicUsize>,
    },
    /// Interleaved left/right frames.
    Frames { id: u64, frames: Vec<i16> },
    Finish {
        id: u64,
        reply: oneshot::Sender<Finished>,
    },
    /// The handle was dropped without finishing: flush what was written, leave the `.part`.
    Abandon { id: u64 },
    /// Makes the thread panic while serving recording `id` (stands in for a writer's bug).
    #[cfg(test)]
    Panic { id: u64 },
}

impl DiskMsg {
    fn id(&self) -> u64 {
        match self {
            DiskMsg::Open { id, .. }
            | DiskMsg::Frames { id, .. }
            | DiskMsg::Finish { id, .. }
            | DiskMsg::Abandon { id } => *id,
            #[cfg(test)]
            DiskMsg::Panic { id } => *id,
        }
    }
}

/// The engine's writer threads; cloning shares them. They end once the pool and every
/// recording handle are dropped.
#[derive(Clone)]
pub struct DiskPool {
    threads: Arc<[Sender<DiskMsg>]>,
    next_thread: Arc<AtomicUsize>,
    next_id: Arc<AtomicU64>,
}

impl DiskPool {
    /// Starts `count` writer threads (at least one). Threads the OS refuses are logged and
    /// left out; with none at all, every recording fails to start with the reason.
    pub fn start(count: usize) -> DiskPool {
        let mut threads = Vec::new();
        for _ in 0..count.max(1) {
            let (tx, rx) = channel();
            let started = std::thread::Builder::new()
                .name(THREAD_NAME.into())
                // The thread only shuffles buffers into files: a small stack is plenty.
                .stack_size(256 * 1024)
                .spawn(move || run(rx));
            match started {
                Ok(_) => threads.push(tx),
                Err(error) => tracing::error!(%error, "cannot start a recording thread"),
            }
        }
        DiskPool {
            threads: threads.into(),
            next_thread: Arc::new(AtomicUsize::new(0)),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writer threads running.
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.threads.len()
    }
}

/// A recording's handle, held by the call task.
pub struct DiskWriter {
    tx: Sender<DiskMsg>,
    id: u64,
    /// Frames gathered for the next chunk (interleaved).
    gathered: Vec<i16>,
    /// Samples (both channels) per chunk: [`DISK_CHUNK`] at the recording's rate.
    chunk_samples: usize,
    /// Chunks handed to the thread and not yet written.
    in_flight: Arc<AtomicUsize>,
    /// Set by `finish`: a dropped handle that finished has nothing left to abandon.
    finished: bool,
    /// Frames that did not fit into the queue.
    pub dropped_frames: u64,
}

impl DiskWriter {
    /// Hands `writer`, recording at `rate` frames per second, to one of the pool's threads;
    /// `events` receives `RecordingFailed` if the disk fails.
    pub fn open(
        pool: &DiskPool,
        writer: RecordingWriter,
        rate: u32,
        call_id: String,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<DiskWriter, String> {
        if pool.threads.is_empty() {
            return Err("no recording thread could be started".into());
        }
        let index = pool.next_thread.fetch_add(1, Ordering::Relaxed) % pool.threads.len();
        let tx = pool.threads[index].clone();
        let id = pool.next_id.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        tx.send(DiskMsg::Open {
            id,
            writer,
            call_id,
            events,
            in_flight: in_flight.clone(),
        })
        .map_err(|_| "recording thread ended".to_string())?;
        let chunk_frames = u128::from(rate) * DISK_CHUNK.as_millis() / 1000;
        let chunk_samples = usize::try_from(chunk_frames * 2)
            .unwrap_or(usize::MAX)
            .max(2);
        Ok(DiskWriter {
            tx,
            id,
            gathered: Vec::new(),
            chunk_samples,
            in_flight,
            finished: false,
            dropped_frames: 0,
        })
    }

    /// Gathers interleaved frames; a full chunk is queued without waiting (counted as
    /// dropped if the disk lags).
    pub fn write(&mut self, interleaved: &[i16]) {
        if self.gathered.capacity() == 0 {
            // A chunk is sent once it holds `chunk_samples` or more, so it ends up to one
            // release longer (a 200 ms tick's worth, 0.4 chunk): room for that from the
            // start, or every chunk is reallocated (and copied) on its last release.
            let slack = interleaved.len().max(self.chunk_samples / 2);
            self.gathered.reserve_exact(self.chunk_samples + slack);
        }
        self.gathered.extend_from_slice(interleaved);
        if self.gathered.len() >= self.chunk_samples {
            let chunk = std::mem::take(&mut self.gathered);
            let frames = chunk.len() as u64 / 2;
            if self.in_flight.load(Ordering::Acquire) >= DISK_QUEUE || !self.hand_over(chunk) {
                self.dropped_frames += frames;
            }
        }
    }

    /// Queues a chunk for the thread (no bound: callers check it); false if the thread is
    /// gone.
    fn hand_over(&self, frames: Vec<i16>) -> bool {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let sent = self
            .tx
            .send(DiskMsg::Frames {
                id: self.id,
                frames,
            })
            .is_ok();
        if !sent {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    /// Final flush, fsync and rename; waits for the thread (only at call close). The
    /// frames still gathered go first, past the queue's bound: nothing is dropped at the end.
    pub async fn finish(mut self) -> Result<FinishedRecording, String> {
        self.finished = true;
        let rest = std::mem::take(&mut self.gathered);
        if !rest.is_empty() && !self.hand_over(rest) {
            return Err("recording thread ended early".to_string());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(DiskMsg::Finish { id: self.id, reply })
            .map_err(|_| "recording thread ended early".to_string())?;
        answer
            .await
            .map_err(|_| "recording thread ended without an answer".to_string())?
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled or unwinding: what was gathered still goes into the `.part` file.
        let rest = std::mem::take(&mut self.gathered);
        if !rest.is_empty() {
            self.hand_over(rest);
        }
        let _ = self.tx.send(DiskMsg::Abandon { id: self.id });
    }
}

/// Where a recording stands on its thread.
enum Writing {
    Active(RecordingWriter),
    /// A write failed: the writer is gone, its `.part` kept as it is (repairable), and the
    /// error, reported when it happened, is what `finish` returns.
    Failed(String),
}

/// One recording as its thread holds it.
struct Open {
    writing: Writing,
    call_id: String,
    events: mpsc::Sender<MediaEvent>,
    in_flight: Arc<AtomicUsize>,
}

impl Open {
    /// Stops writing (dropping the writer keeps the `.part` as it is) and reports why, once.
    fn fail(&mut self, error: String) {
        report_failure(&self.events, &self.call_id, &error);
        self.writing = Writing::Failed(error);
    }
}

/// Tells the engine a recording failed (`callscope_media_recording_failures_total`); each
/// failure is reported once, as nothing is written to a recording after it.
fn report_failure(events: &mpsc::Sender<MediaEvent>, call_id: &str, error: &str) {
    let _ = events.try_send(MediaEvent::RecordingFailed {
        call_id: call_id.to_string(),
        error: error.to_string(),
    });
}

/// A writer thread: serves its recordings' messages in order until every sender is gone.
/// Recordings still open then are dropped, which flushes their `.part` files.
fn run(rx: Receiver<DiskMsg>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        let id = msg.id();
        let served = panic::catch_unwind(AssertUnwindSafe(|| serve(&mut open, msg)));
        if served.is_err() {
            // A bug in a writer, not bad input (that is an error): the recording it hit stops
            // as a failed one, its `.part` kept for repair, and the thread goes on with the
            // others, as a thread per recording used to contain it.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(rec) = open.get_mut(&id) {
                    rec.fail("the recording's writer failed unexpectedly".to_string());
                }
            }));
        }
    }
}

fn serve(open: &mut HashMap<u64, Open>, msg: DiskMsg) {
    match msg {
        DiskMsg::Open {
            id,
            writer,
            call_id,
            events,
            in_flight,
        } => {
            open.insert(
                id,
                Open {
                    writing: Writing::Active(writer),
                    call_id,
                    events,
                    in_flight,
                },
            );
        }
        DiskMsg::Frames { id, frames } => {
            let Some(rec) = open.get_mut(&id) else {
                return;
            };
            rec.in_flight.fetch_sub(1, Ordering::AcqRel);
            let Writing::Active(w) = &mut rec.writing else {
                return;
            };
            let now = Instant::now();
            if let Err(e) = w.write(&frames, now).and_then(|()| w.flush(now)) {
                let error = e.to_string();
                tracing::warn!(call_id = rec.call_id, error, "recording write failed");
                rec.fail(error);
            }
        }
        DiskMsg::Finish { id, reply } => {
            let Some(rec) = open.remove(&id) else {
                let _ = reply.send(Err("recording unknown to its thread".to_string()));
                return;
            };
            let result = match rec.writing {
                Writing::Active(w) => w.finish(Instant::now()).map_err(|e| {
                    let error = e.to_string();
                    report_failure(&rec.events, &rec.call_id, &error);
                    error
                }),
                // Reported when it happened.
                Writing::Failed(error) => Err(error),
            };
            let _ = reply.send(result);
        }
        DiskMsg::Abandon { id } => {
            open.remove(&id);
        }
        #[cfg(test)]
        DiskMsg::Panic { .. } => panic!("a writer bug, as a test stands it in"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::WriterConfig;
    use crate::recorder::wav::{DATA_SIZE_OFFSET, HEADER_LEN};
    use std::path::Path;

    const RATE: u32 = 8000;

    fn writer(path: &Path) -> RecordingWriter {
        RecordingWriter::create(path, WriterConfig::new(RATE), Instant::now()).expect("create")
    }

    /// The samples of a WAV file as its header's data size claims them.
    fn samples(path: &Path) -> Vec<i16> {
        let bytes = std::fs::read(path).expect("read");
        let at = DATA_SIZE_OFFSET as usize;
        let claimed = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("size")) as usize;
        let data = &bytes[HEADER_LEN as usize..];
        assert_eq!(claimed, data.len(), "header and data agree");
        data.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// Interleaved frames `first..first + n`, left = frame index, right = its negative.
    fn frames(first: usize, n: usize) -> Vec<i16> {
        (first..first + n)
            .flat_map(|i| [(i % 30000) as i16, -((i % 30000) as i16)])
            .collect()
    }

    fn events() -> mpsc::Sender<MediaEvent> {
        mpsc::channel(16).0
    }

    /// A recording `<name>.wav` in `dir` on `pool`: its handle, final path and `.part` path.
    fn open_named(
        pool: &DiskPool,
        dir: &Path,
        name: &str,
        events: mpsc::Sender<MediaEvent>,
    ) -> (DiskWriter, std::path::PathBuf, std::path::PathBuf) {
        let path = dir.join(format!("{name}.wav"));
        let w = writer(&path);
        let part = w.part_path().to_path_buf();
        let h = DiskWriter::open(pool, w, RATE, name.into(), events).expect("open");
        (h, path, part)
    }

    #[tokio::test]
    async fn two_threads_write_many_recordings_each_exactly() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = DiskPool::start(2);
        assert_eq!(pool.threads(), 2);
        // 1.3 s each, in releases of 200 ms, interleaved across the recordings as the grid
        // interleaves calls: two full chunks each, and a rest that goes at `finish`.
        let mut handles: Vec<DiskWriter> = (0..12)
            .map(|i| open_named(&pool, dir.path(), &format!("r{i}"), events()).0)
            .collect();
        let release = 1600;
        let total = 10_400;
        for start in (0..total).step_by(release) {
            for h in handles.iter_mut() {
                h.write(&frames(start, release.min(total - start)));
            }
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.dropped_frames, 0);
            let done = h.finish().await.expect("finish");
            assert_eq!(done.frames, total as u64, "recording {i}");
            assert_eq!(done.path, dir.path().join(format!("r{i}.wav")));
            assert_eq!(samples(&done.path), frames(0, total), "recording {i}");
        }
    }

    #[tokio::test]
    async fn a_dropped_handle_leaves_everything_it_gathered_in_the_part_file() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = DiskPool::start(1);
        let (mut h, path, part) = open_named(&pool, dir.path(), "cut", events());
        // One full chunk (handed over) and 0.3 s still gathered.
        h.write(&frames(0, 4000));
        h.write(&frames(4000, 2400));
        drop(h);
        // The thread flushes on `Abandon`; a recording opened after it on the same thread
        // and finished tells us it got there.
        let probe = dir.path().join("probe.wav");
        let h = DiskWriter::open(&pool, writer(&probe), RATE, "p".into(), events()).expect("open");
        h.finish().await.expect("probe");
        assert!(!path.exists(), "never finished, so never renamed");
        assert_eq!(samples(&part), frames(0, 6400));
    }

    #[tokio::test]
    async fn chunks_beyond_the_queue_are_dropped_and_counted_never_waited_for() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = DiskPool::start(1);
        let path = dir.path().join("lag.wav");
        let mut h =
            DiskWriter::open(&pool, writer(&path), RATE, "lag".into(), events()).expect("open");
        h.write(&frames(0, 4000));
        // As if the disk held DISK_QUEUE chunks of this recording: the next is dropped.
        let queued = h.in_flight.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while queued.load(Ordering::Acquire) != 0 {
            assert!(
                Instant::now() < deadline,
                "the thread never took the first chunk"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        queued.store(DISK_QUEUE, Ordering::Release);
        h.write(&frames(4000, 4000));
        assert_eq!(h.dropped_frames, 4000);
        // The thread catching up (the count going down) lets chunks through again.
        queued.store(0, Ordering::Release);
        h.write(&frames(8000, 4000));
        assert_eq!(h.dropped_frames, 4000);
        let done = h.finish().await.expect("finish");
        assert_eq!(done.frames, 8000);
        let mut expected = frames(0, 4000);
        expected.extend(frames(8000, 4000));
        assert_eq!(samples(&done.path), expected);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_and_finish_gives_the_error() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = DiskPool::start(1);
        let path = dir.path().join("refused.wav");
        let (tx, mut rx) = mpsc::channel(16);
        let mut h =
            DiskWriter::open(&pool, writer(&path), RATE, "refused".into(), tx).expect("open");
        // A chunk the writer refuses (half a frame at its end): the thread's failure path.
        let mut odd = frames(0, 4000);
        odd.push(7);
        h.write(&odd);
        let error = h.finish().await.expect_err("finish fails");
        assert!(error.contains("stereo frames"), "{error}");
        match rx.recv().await {
            Some(MediaEvent::RecordingFailed { call_id, .. }) => assert_eq!(call_id, "refused"),
            other => panic!("expected RecordingFailed, got {other:?}"),
        }
        assert!(
            !path.exists(),
            "a failed recording is not renamed into place"
        );
    }

    #[tokio::test]
    async fn a_writer_bug_fails_its_recording_and_the_thread_goes_on() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = DiskPool::start(1);
        let (tx, mut rx) = mpsc::channel(16);
        let (mut broken, broken_path, part) = open_named(&pool, dir.path(), "broken", tx);
        broken.write(&frames(0, 4000));
        broken
            .tx
            .send(DiskMsg::Panic { id: broken.id })
            .expect("thread there");
        // The same (only) thread still writes a recording opened after the panic.
        let fine_path = dir.path().join("fine.wav");
        let mut fine = DiskWriter::open(&pool, writer(&fine_path), RATE, "fine".into(), events())
            .expect("open");
        fine.write(&frames(0, 6000));
        let done = fine.finish().await.expect("the thread goes on");
        assert_eq!(samples(&done.path), frames(0, 6000));
        // The recording the bug hit ends as failed, reported once, with what it had written
        // before in its `.part` for repair.
        broken.write(&frames(4000, 4000));
        let error = broken.finish().await.expect_err("failed");
        assert!(error.contains("unexpectedly"), "{error}");
        match rx.recv().await {
            Some(MediaEvent::RecordingFailed { call_id, .. }) => assert_eq!(call_id, "broken"),
            other => panic!("expected RecordingFailed, got {other:?}"),
        }
        assert!(rx.try_recv().is_err(), "reported once");
        assert!(!broken_path.exists());
        assert_eq!(samples(&part), frames(0, 4000));
    }
}
