//! callscope's application crate: configuration, store (sqlx), HTTP API (axum), API-key
//! auth, the durable job queue and its workers, and outbound webhooks. It wires the
//! `callscope-transcription` library to the outside world.

pub mod agent;
pub mod analysis;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod config;
pub mod crm;
pub mod egress;
pub mod error;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod messaging;
pub mod metadata_fields;
pub mod model_fetch;
pub mod permissions;
pub mod realtime;
pub mod remote_fetch;
pub mod retention;
pub mod server;
pub mod sip;
pub mod store;
pub mod teams;
pub mod twilio;
pub mod web;
pub mod webhooks;
pub mod worker;
