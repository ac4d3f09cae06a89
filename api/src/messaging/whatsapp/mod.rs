//! WhatsApp Cloud API: Meta's webhook (verification handshake, signed notifications) and
//! sends through the Graph API.

pub mod batch;
pub mod channel_cache;
pub mod graph;
pub mod ingest;
pub mod payload;
pub mod signature;
pub mod webhook;
