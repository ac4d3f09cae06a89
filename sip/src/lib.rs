//! callscope's SIP side: transports (UDP/TCP), transactions and dialogs (rsipstack), the
//! registrar with digest authentication, and a back-to-back user agent per call. It knows
//! nothing of HTTP, the database or ML: what it needs from the application (users, trunks,
//! routes, media ports) comes through the traits in [`directory`] and [`media`], and what
//! happens to calls goes out as [`events::CallEvent`]s.

pub mod auth;
pub mod call;
pub mod config;
pub mod control;
pub mod directory;
pub mod events;
pub mod handler;
pub mod media;
pub mod negotiation;
pub mod registrar;
pub mod rtp_media;
pub mod sdp;
pub mod security;
pub mod server;
pub mod signalling_media;
pub mod softphones;
pub mod validate;

pub use config::SipConfig;
pub use server::{SipError, SipServer};
pub use validate::{ParseRejection, classify_message};
