//! The application side of SIP: the store of users, trunks, inbound routes and SIP domains;
//! the database-backed [`directory::DbDirectory`] the SIP server asks; the consumer that
//! turns call events into call records, timeline entries and webhooks; and the REST surface
//! (including call control).

pub mod call_media;
pub mod call_records;
pub mod consumer;
pub mod credentials;
pub mod directory;
pub mod domains;
pub mod http;
pub mod live_audio;
pub mod numbers;
pub mod recording_policy;
pub mod recording_settings;
pub mod routes;
pub mod runtime;
pub mod trunks;
pub mod users;

use std::sync::{Arc, OnceLock};

use callscope_media::engine::MediaEngine;
use callscope_sip::control::CallControl;
use callscope_sip::events::CallEvent;
use tokio::sync::mpsc;

pub use directory::DbDirectory;

/// What the HTTP side needs of a running SIP server. Empty while SIP is disabled; filled
/// once at start-up (hence `OnceLock`: handlers read it without locking).
/// Named counters and gauges of the running SIP server (`callscope_sip_<name>` in /metrics).
pub type SipStatsFn = dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync;

#[derive(Default)]
pub struct SipRuntime {
    control: OnceLock<Arc<dyn CallControl>>,
    /// Weak: the HTTP side must not keep the channel open once the SIP server is gone.
    events: OnceLock<mpsc::WeakSender<CallEvent>>,
    stats: OnceLock<Arc<SipStatsFn>>,
    media: OnceLock<MediaEngine>,
    recording_policy: OnceLock<Arc<recording_policy::DbRecordingPolicy>>,
}

impl SipRuntime {
    pub fn set_media(&self, engine: MediaEngine, policy: Arc<recording_policy::DbRecordingPolicy>) {
        let _ = self.media.set(engine);
        let _ = self.recording_policy.set(policy);
    }

    /// The media engine of the running SIP side.
    pub fn media(&self) -> Option<&MediaEngine> {
        self.media.get()
    }

    /// The recording policy to reload after its settings change.
    pub fn recording_policy(&self) -> Option<&Arc<recording_policy::DbRecordingPolicy>> {
        self.recording_policy.get()
    }

    pub fn control(&self) -> Option<Arc<dyn CallControl>> {
        self.control.get().cloned()
    }

    /// Install call control (once; later calls are ignored and return false).
    pub fn set_control(&self, control: Arc<dyn CallControl>) -> bool {
        self.control.set(control).is_ok()
    }

    /// Remember the event channel so that health checks can report its backlog.
    pub fn set_events(&self, tx: &mpsc::Sender<CallEvent>) -> bool {
        self.events.set(tx.downgrade()).is_ok()
    }

    /// Install the source of the SIP server's counters (once).
    pub fn set_stats(&self, stats: Arc<SipStatsFn>) -> bool {
        self.stats.set(stats).is_ok()
    }

    /// The SIP server's counters now (empty while SIP is disabled).
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        self.stats.get().map(|f| f()).unwrap_or_default()
    }

    pub fn enabled(&self) -> bool {
        self.control.get().is_some()
    }

    /// Events waiting for the consumer.
    pub fn events_pending(&self) -> Option<usize> {
        let tx = self.events.get()?.upgrade()?;
        Some(tx.max_capacity().saturating_sub(tx.capacity()))
    }
}
