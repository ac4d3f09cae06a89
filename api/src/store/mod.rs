//! The store: every function takes the organization id and filters by it, so a handler cannot
//! forget the scoping (ARCHITECTURE: "Every query is scoped by organization at the store
//! layer"). Runtime queries only (no compile-time macros needing a live database).

pub mod analysis_config;
pub mod batch;
pub mod call_analyses;
pub mod calls;
pub mod contacts;
pub mod db;
pub mod jobs;
pub mod optimize;
pub mod orgs;
pub mod recordings;
pub mod segments;
pub mod timeline;

pub use db::{connect, migrate};
