//! callscope application crate (store, HTTP API, jobs, webhooks).
