//! SIPVicious `svwar`: tries to enumerate extensions on a SIP server. Used to show that
//! callscope's responses do not reveal which extensions exist.

use crate::process::ChildGuard;
use crate::{Error, Result};
use std::net::SocketAddr;
use std::path::Path;
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
    /// Source address; by default 127.0.0.1. SIPVicious 0.3.3 ignores its own `-b` (the
    /// option is parsed but never handed to the scanner, which binds every interface), so
    /// the tools run through [`BIND_SHIM`], which binds their socket to this address.
    pub bind_ip: Option<std::net::IpAddr>,
    /// SIP domain in the request URI, From and To (`--domain`), e.g. the server's realm.
    pub domain: Option<String>,
    /// `--force`: scan even when an unknown extension is answered with a challenge (svwar
    /// otherwise gives up after its first probe against a server that challenges everyone).
    pub force: bool,
}

/// Runs a SIPVicious tool (`svwar`, `svcrack`) with its UDP socket bound to `SV_BIND_IP`:
/// wraps `socket.bind` so the tool's bind to all interfaces becomes a bind to that one
/// address, then calls the tool's own `main()` unchanged.
pub const BIND_SHIM: &str = r#"
import importlib, os, socket, sys
ip = os.environ["SV_BIND_IP"]
_bind = socket.socket.bind
def bind(self, addr):
    if isinstance(addr, tuple) and addr[0] in ("", "0.0.0.0"):
        addr = (ip,) + tuple(addr[1:])
    return _bind(self, addr)
socket.socket.bind = bind
sys.path.insert(0, "/usr/share/sipvicious")
tool = sys.argv[1]
sys.argv = [tool] + sys.argv[2:]
sys.exit(importlib.import_module("sipvicious." + tool).main())
"#;

/// A SIPVicious tool run through [`BIND_SHIM`] in a temp dir of its own (it keeps sessions
/// under `$HOME/.sipvicious`); its combined output once it exits (bounded by `timeout`).
fn run_tool(
    tool: &'static str,
    args: &[String],
    bind_ip: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("sipvicious-")
        .tempdir()
        .map_err(|e| Error::io("creating sipvicious temp dir", e))?;
    if !Path::new("/usr/share/sipvicious/sipvicious").is_dir() {
        return Err(Error::ToolMissing {
            tool,
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let shim = dir.path().join("bind_shim.py");
    std::fs::write(&shim, BIND_SHIM).map_err(|e| Error::io("writing the bind shim", e))?;
    let log = dir.path().join(format!("{tool}.log"));
    let ip = bind_ip.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    // The Debian package's interpreter, not whichever python3 is first on PATH.
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(&shim)
        .arg(tool)
        .args(args)
        .env("SV_BIND_IP", ip.to_string())
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null());
    let mut guard = ChildGuard::spawn_logged("sipvicious", &mut cmd, &log)?;
    guard.wait_timeout(timeout)?;
    std::fs::read_to_string(&log).map_err(|e| Error::io("reading sipvicious log", e))
}

/// [`scan`] with a chosen source address and domain.
pub fn scan_with(
    target: SocketAddr,
    range: &str,
    method: &str,
    timeout: Duration,
    options: &ScanOptions,
) -> Result<SvwarReport> {
    let mut args: Vec<String> = ["-e", range, "-m", method, "-p"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(target.port().to_string());
    if let Some(domain) = &options.domain {
        args.extend(["--domain".into(), domain.clone()]);
    }
    if options.force {
        args.push("--force".into());
    }
    args.push(target.ip().to_string());
    let output = run_tool("svwar", &args, options.bind_ip, timeout)?;
    Ok(SvwarReport {
        found: parse_table(&output),
        output,
    })
}

/// What `svcrack` reported: the passwords it believes it found, and its full output.
#[derive(Debug, Clone)]
pub struct SvcrackReport {
    /// (extension, password) rows of its result table.
    pub cracked: Vec<(String, String)>,
    pub output: String,
}

/// `svcrack`: tries each password of `dictionary` for `username` by REGISTER with digest
/// answers, from `options.bind_ip` with `options.domain` as the SIP domain.
pub fn crack(
    target: SocketAddr,
    username: &str,
    dictionary: &[&str],
    timeout: Duration,
    options: &ScanOptions,
) -> Result<SvcrackReport> {
    let dict = tempfile::Builder::new()
        .prefix("svcrack-dict-")
        .tempfile()
        .map_err(|e| Error::io("creating the dictionary", e))?;
    std::fs::write(dict.path(), dictionary.join("\n") + "\n")
        .map_err(|e| Error::io("writing the dictionary", e))?;
    let mut args: Vec<String> = vec![
        "-u".into(),
        username.into(),
        "-d".into(),
        dict.path().display().to_string(),
        "-p".into(),
        target.port().to_string(),
        // Give up 5 s after the last response (a banned source gets none) instead of 10.
        "--maximumtime".into(),
        "5".into(),
    ];
    if let Some(domain) = &options.domain {
        args.extend(["--domain".into(), domain.clone()]);
    }
    args.push(target.ip().to_string());
    let output = run_tool("svcrack", &args, options.bind_ip, timeout)?;
    let cracked = parse_table(&output)
        .into_iter()
        .map(|f| (f.extension, f.authentication))
        .collect();
    Ok(SvcrackReport { cracked, output })
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
