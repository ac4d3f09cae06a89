//! Finding the peers' executables, so a missing package is reported as such rather than as
//! a confusing spawn failure deep inside a test.

use crate::{Error, Result};
use std::process::{Command, Stdio};

/// Checks that `tool` can be executed (runs it with `args`, e.g. `-v`, and ignores the exit
/// status: several peers exit non-zero when merely asked for their version).
pub fn require(tool: &'static str, args: &[&str]) -> Result<()> {
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|source| Error::ToolMissing { tool, source })
}
