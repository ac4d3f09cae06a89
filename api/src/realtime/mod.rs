//! Realtime: the organization's events pushed over a WebSocket as they commit.
//!
//! Every organization-wide event (the same names and bodies webhooks carry: messages,
//! conversations, contacts, notes, tasks, calls, compliance flags, scorecards) is appended to
//! the `event_stream` table in the transaction that made the change ([`log`]). One task tails
//! that table and fans new rows out to the open sockets ([`bus`]); each socket keeps what its
//! caller may see under the same rules as the REST API ([`scope`]) and what it asked for
//! ([`ws`]). Because the stream is durable, a client that reconnects with the last `seq` it
//! saw gets what it missed, and a socket that falls behind catches up from the table instead
//! of losing events.

pub mod bus;
pub mod log;
pub mod scope;
pub mod ws;

pub use bus::EventBus;
