//! SIPVicious `svwar`: tries to enumerate extensions on a SIP server. Used to show that
//! callscope's responses do not reveal which extensions exist.

use crate::process::ChildGuard;
use crate::{Error, Result};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An extension svwar believes exists, with how it judged it (`reqauth`, `noauth`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundExtension {
    pub extension: String,
    pub authentication: String,
}

/// The result of one scan: what svwar reported, and its full output for diagnostics.
#[derive(Debug, Clone)]
pub struct SvwarReport {
    pub found: Vec<FoundExtension>,
    pub output: String,
}

/// Scans `target` for extensions in `range` (e.g. `"100-199"`) with `method` (`REGISTER`,
/// `INVITE` or `OPTIONS`), waiting at most `timeout`.
pub fn scan(
    target: SocketAddr,
    range: &str,
    method: &str,
    timeout: Duration,
) -> Result<SvwarReport> {
    scan_with(target, range, method, timeout, &ScanOptions::default())
}

/// Where svwar binds and which domain it puts in its requests.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Source address (`-b`); by default 127.0.0.1 (svwar itself would bind every interface).
    pub bind_ip: Option<std::net::IpAddr>,
    /// SIP domain in the request URI, From and To (`--domain`), e.g. the server's realm.
    pub domain: Option<String>,
}

/// [`scan`] with a chosen source address and domain.
pub fn scan_with(
    target: SocketAddr,
    range: &str,
    method: &str,
    timeout: Duration,
    options: &ScanOptions,
) -> Result<SvwarReport> {
    let dir = tempfile::Builder::new()
        .prefix("svwar-")
        .tempdir()
        .map_err(|e| Error::io("creating svwar temp dir", e))?;
    let log = dir.path().join("svwar.log");
    let mut cmd = Command::new("svwar");
    cmd.args(["-e", range, "-m", method, "-p"])
        .arg(target.port().to_string())
        .arg("-b")
        .arg(
            options
                .bind_ip
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
                .to_string(),
        );
    if let Some(domain) = &options.domain {
        cmd.arg("--domain").arg(domain);
    }
    cmd.arg(target.ip().to_string())
        // svwar saves sessions under $HOME/.sipvicious: keep that inside the temp dir.
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null());
    let mut guard = ChildGuard::spawn_logged("svwar", &mut cmd, &log)?;
    guard.wait_timeout(timeout)?;
    let output = std::fs::read_to_string(&log).map_err(|e| Error::io("reading svwar log", e))?;
    Ok(SvwarReport {
        found: parse_table(&output),
        output,
    })
}

/// Rows of svwar's result table: `| 101 | reqauth |`.
pub fn parse_table(output: &str) -> Vec<FoundExtension> {
    output
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            match cells.as_slice() {
                [ext, auth] if *ext != "Extension" => Some(FoundExtension {
                    extension: ext.to_string(),
                    authentication: auth.to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_table;

    #[test]
    fn parses_result_rows_only() {
        let out = "+-----------+----------------+\n| Extension | Authentication |\n\
                   +===========+================+\n| 101       | reqauth        |\n\
                   +-----------+----------------+\n| 103       | noauth         |\n";
        let found = parse_table(out);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].extension, "101");
        assert_eq!(found[1].authentication, "noauth");
        assert!(parse_table("WARNING:root:found nothing").is_empty());
    }
}
