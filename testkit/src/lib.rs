//! Drivers for real SIP peers on loopback, for callscope's tests and benchmarks.
//!
//! Every driver starts its peer as a child process bound to 127.0.0.1, in a temporary
//! directory of its own, and kills it by PID when dropped ([`process::ChildGuard`]). Every
//! wait is bounded by a timeout. The API is blocking (std threads and sockets): call it from
//! plain `#[test]`s, from `tokio::task::spawn_blocking`, or from a multi-thread tokio runtime
//! when callscope runs in the same process — never from a current-thread runtime that also
//! drives the server, or the server starves while the test waits.
//!
//! The peers come from Debian packages installed by `scripts/setup`: SIPp (`sip-tester`),
//! baresip, linphonec (`linphone-cli`), SIPVicious (`sipvicious`); the browser (Chromium,
//! driven through `tests/browser`'s playwright-core) from `chromium` and npm.

pub mod agent_ws;
pub mod aiortc;
pub mod audio_compare;
pub mod baresip;
pub mod bench;
pub mod bench_g711;
pub mod browser;
pub mod callscope;
pub mod capture;
pub mod digest;
pub mod error;
pub mod http;
pub mod linphone;
pub mod netns;
pub mod ports;
pub mod process;
pub mod rustpbx;
pub mod sip_uac;
pub mod sipp;
pub mod stats;
pub mod svwar;
pub mod tools;
pub mod webhook;

pub use error::{Error, Result};

use std::path::{Path, PathBuf};

/// The workspace this test run belongs to, found at run time.
///
/// Why not `env!("CARGO_MANIFEST_DIR")` alone: cargo keeps workspace crates' artifacts
/// across checkouts at other paths that share a target directory, so a testkit compiled for
/// one clone can be linked into another clone's tests and point at the first clone's
/// files. `cargo test` runs each binary with the package directory as its working directory
/// (and exports `CARGO_MANIFEST_DIR`), so the nearest `[workspace]` above it is this run's.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    start
        .and_then(|dir| nearest_workspace(&dir))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn nearest_workspace(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|toml| toml.lines().any(|line| line.trim() == "[workspace]"))
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}
