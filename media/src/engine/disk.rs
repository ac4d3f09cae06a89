//! The recording's disk side: a `RecordingWriter` on its own thread, fed through a bounded channel.
//!
//! The call task only ever `try_send`s chunks of interleaved frames (a few per second); a
//! slow or stalled disk fills the channel and further chunks are dropped and counted by the
//! sender, so RTP handling never waits on the file system. The thread writes, lets the writer
//! flush on its interval, and on `Finish` fsyncs and renames. If the call task disappears
//! without finishing (cancelled, panicked), dropping the writer still flushes the `.part`
//! file for start-up repair.

use std::time::Instant;

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
    /// Frames that did not fit into the channel.
    pub dropped_frames: u64,
}

/// Chunks in flight before the disk is considered lagging (≈ 12 s at a 200 ms tick).
const DISK_QUEUE: usize = 64;

impl DiskWriter {
    /// Starts the writer thread; `events` receives `RecordingFailed` if the disk fails.
    pub fn spawn(
        writer: RecordingWriter,
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
        Ok(DiskWriter {
            tx,
            dropped_frames: 0,
        })
    }

    /// Queues frames without waiting; counts them as dropped if the disk lags.
    pub fn write(&mut self, interleaved: Vec<i16>) {
        if interleaved.is_empty() {
            return;
        }
        let frames = interleaved.len() as u64 / 2;
        if self.tx.try_send(DiskMsg::Frames(interleaved)).is_err() {
            self.dropped_frames += frames;
        }
    }

    /// Final flush, fsync and rename; waits for the thread (only at call close).
    pub async fn finish(self) -> Result<FinishedRecording, String> {
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
                if let Err(e) = w.write(&frames, Instant::now()) {
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
