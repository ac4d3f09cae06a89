//! The application side of SIP: the store of users, trunks, inbound routes and SIP domains;
//! the database-backed [`directory::DbDirectory`] the SIP server asks; the consumer that
//! turns call events into call records, timeline entries and webhooks; and the REST surface
//! (including call control).

pub mod call_records;
pub mod consumer;
pub mod credentials;
pub mod directory;
pub mod domains;
pub mod http;
pub mod numbers;
pub mod routes;
pub mod trunks;
pub mod users;

use std::sync::{Arc, OnceLock};

use callscope_sip::control::CallControl;
use callscope_sip::events::CallEvent;
use tokio::sync::mpsc;

pub use directory::DbDirectory;

/// What the HTTP side needs of a running SIP server. Empty while SIP is disabled; filled
/// once at start-up (hence `OnceLock`: handlers read it without locking).
#[derive(Default)]
pub struct SipRuntime {
    control: OnceLock<Arc<dyn CallControl>>,
    events: OnceLock<mpsc::Sender<CallEvent>>,
}

impl SipRuntime {
    pub fn control(&self) -> Option<Arc<dyn CallControl>> {
        self.control.get().cloned()
    }

    /// Install call control (once; later calls are ignored and return false).
    pub fn set_control(&self, control: Arc<dyn CallControl>) -> bool {
        self.control.set(control).is_ok()
    }

    /// Remember the event channel so that health checks can report its backlog.
    pub fn set_events(&self, tx: mpsc::Sender<CallEvent>) -> bool {
        self.events.set(tx).is_ok()
    }

    pub fn enabled(&self) -> bool {
        self.control.get().is_some()
    }

    /// Events waiting for the consumer.
    pub fn events_pending(&self) -> Option<usize> {
        self.events
            .get()
            .map(|tx| tx.max_capacity().saturating_sub(tx.capacity()))
    }
}
