//! The recording's disk side: a `RecordingWriter` on its own thread, fed through a bounded channel.
//!
//! The call task gathers the frames its timeline releases and `try_send`s them every
//! [`DISK_CHUNK`] of audio; the thread writes and flushes each chunk to the OS at once.
//! Each chunk costs the thread a wake-up, so chunks are as long as the crash-loss contract
//! allows: a `kill -9` loses at most one chunk, one housekeeping tick and the timeline's
//! playout delay (0.5 + 0.2 + 0.2 s, inside the promised 1 s). A slow or stalled disk fills
//! the channel and further chunks are dropped and counted by the sender, so RTP handling
//! never waits on the file system. The thread writes, lets the writer
//! flush on its interval, and on `Finish` fsyncs and renames. If the call task disappears
//! without finishing (cancelled, panicked), dropping the writer still flushes the `.part`
//! file for start-up repair.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::recorder::{FinishedRecording, RecordingWriter};

use super::types::MediaEvent;

pub enum DiskMsg {
    /// Interleaved left/right frames.
    Frames(Vec<i16>),
    Finish(oneshot::Sender<Result<FinishedRecording, String>>),
}

/// Handle held by the call task.
pub struct DiskWriter {
    tx: mpsc::Sender<DiskMsg>,
    /// Frames gathered for the next chunk (interleaved).
    gathered: Vec<i16>,
    /// Samples (both channels) per chunk: [`DISK_CHUNK`] at the recording's rate.
    chunk_samples: usize,
    /// Frames that did not fit into the channel.
    pub dropped_frames: u64,
}

/// How much audio goes to the writer thread (and from it to the OS) at once.
pub const DISK_CHUNK: Duration = Duration::from_millis(500);

/// Chunks in flight before the disk is considered lagging (≈ 16 s of audio).
const DISK_QUEUE: usize = 32;

impl DiskWriter {
    /// Starts the writer thread for a recording at `rate` frames per second; `events`
    /// receives `RecordingFailed` if the disk fails.
    pub fn spawn(
        writer: RecordingWriter,
        rate: u32,
        call_id: String,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<DiskWriter, String> {
        let (tx, rx) = mpsc::channel(DISK_QUEUE);
        std::thread::Builder::new()
            .name("callscope-rec".into())
            // The thread only shuffles buffers into a file: a small stack is plenty.
            .stack_size(256 * 1024)
            .spawn(move || run(writer, rx, call_id, events))
            .map_err(|e| format!("cannot start recording thread: {e}"))?;
        let chunk_frames = u128::from(rate) * DISK_CHUNK.as_millis() / 1000;
        let chunk_samples = usize::try_from(chunk_frames * 2)
            .unwrap_or(usize::MAX)
            .max(2);
        Ok(DiskWriter {
            tx,
            gathered: Vec::new(),
            chunk_samples,
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
            if self.tx.try_send(DiskMsg::Frames(chunk)).is_err() {
                self.dropped_frames += frames;
            }
        }
    }

    /// Final flush, fsync and rename; waits for the thread (only at call close). The
    /// frames still gathered go first (waiting for room: nothing is dropped at the end).
    pub async fn finish(mut self) -> Result<FinishedRecording, String> {
        let rest = std::mem::take(&mut self.gathered);
        if !rest.is_empty() {
            self.tx
                .send(DiskMsg::Frames(rest))
                .await
                .map_err(|_| "recording thread ended early".to_string())?;
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(DiskMsg::Finish(reply))
            .await
            .map_err(|_| "recording thread ended early".to_string())?;
        answer
            .await
            .map_err(|_| "recording thread ended without an answer".to_string())?
    }
}

fn run(
    writer: RecordingWriter,
    mut rx: mpsc::Receiver<DiskMsg>,
    call_id: String,
    events: mpsc::Sender<MediaEvent>,
) {
    let mut writer = Some(writer);
    let mut failure: Option<String> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            DiskMsg::Frames(frames) => {
                let Some(w) = writer.as_mut() else { continue };
                let now = Instant::now();
                if let Err(e) = w.write(&frames, now).and_then(|()| w.flush(now)) {
                    let error = e.to_string();
                    tracing::warn!(call_id, error, "recording write failed");
                    let _ = events.try_send(MediaEvent::RecordingFailed {
                        call_id: call_id.clone(),
                        error: error.clone(),
                    });
                    failure = Some(error);
                    // Keep the `.part` as it is (repairable); stop writing.
                    writer = None;
                }
            }
            DiskMsg::Finish(reply) => {
                let result = match (writer.take(), failure.take()) {
                    (Some(w), _) => w.finish(Instant::now()).map_err(|e| e.to_string()),
                    (None, Some(error)) => Err(error),
                    (None, None) => Err("recording already finished".to_string()),
                };
                if let Err(error) = &result {
                    let _ = events.try_send(MediaEvent::RecordingFailed {
                        call_id: call_id.clone(),
                        error: error.clone(),
                    });
                }
                let _ = reply.send(result);
                return;
            }
        }
    }
}
