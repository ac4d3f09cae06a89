//! Agents in the browser: web sessions (cookie login with the user's password) and presence.
//! The softphone's signalling (WebSocket) and WebRTC legs build on these.

pub mod calls;
pub mod http;
pub mod hub;
pub mod presence;
pub mod sessions;
pub mod softphone;
pub mod ws;
