//! Two network namespaces joined by a veth pair, for media tests over a link the test can
//! damage (random loss with iptables `statistic`; this kernel has no netem).
//!
//! Needs root and `ip`/`iptables` (iproute2, iptables). Names are unique per process and
//! pair (`csk<pid>x<n>a`), so tests run in parallel; a pair is deleted on drop, and pairs
//! left behind by a test process that died are deleted the next time one is created.
//! Peers run inside a namespace through [`Netns::command`] (`ip netns exec`, which execs
//! the program, so the PID is the peer's own), and the test talks to their control ports
//! through sockets opened inside the namespace ([`Netns::connect_tcp`]).

use crate::{Error, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PREFIX: &str = "csk";

/// Why namespaces cannot be used here, or `None` when they can (root, `ip netns`,
/// `iptables`). Tests print the reason and skip.
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (euid is not 0)".into());
    }
    for (tool, args) in [("ip", &["netns", "list"][..]), ("iptables", &["-V"][..])] {
        match Command::new(tool).args(args).stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "`{tool} {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => return Some(format!("{tool} is not installed (run scripts/setup): {e}")),
        }
    }
    None
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {cmd:?}"), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::CommandFailed {
            tool: "ip/iptables",
            command: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// One namespace of a [`NetnsPair`].
#[derive(Debug)]
pub struct Netns {
    name: String,
    iface: String,
    addr: Ipv4Addr,
}

impl Netns {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This namespace's end of the veth.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// This namespace's address on the veth (the far end reaches it there).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// `program` to be run inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args` inside the namespace to completion; fails on a non-zero exit.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Drops packets arriving on the veth for UDP destination ports `ports` with
    /// `probability` (0..1), on INPUT: dropping on a sender's OUTPUT makes its socket fail.
    pub fn add_udp_loss(&self, ports: RangeInclusive<u16>, probability: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(Error::Parse {
                what: "loss probability".into(),
                detail: format!("{probability} is not within 0..=1"),
            });
        }
        let range = format!("{}:{}", ports.start(), ports.end());
        let p = format!("{probability:.4}");
        self.run(
            "iptables",
            &[
                "-A",
                "INPUT",
                "-i",
                &self.iface,
                "-p",
                "udp",
                "--dport",
                &range,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )
        .map(|_| ())
    }

    /// (packets, bytes) dropped so far by the rules [`Netns::add_udp_loss`] added.
    pub fn dropped(&self) -> Result<(u64, u64)> {
        let out = self.run("iptables", &["-L", "INPUT", "-v", "-x", "-n"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut packets = 0;
        let mut bytes = 0;
        for line in text
            .lines()
            .filter(|l| l.contains("DROP") && l.contains("statistic"))
        {
            let mut cols = line.split_whitespace();
            packets += cols.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            bytes += cols.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        Ok((packets, bytes))
    }

    /// A TCP connection made from inside the namespace (a socket belongs to the namespace
    /// it was created in, whichever thread uses it later): how the test reaches a control
    /// port that listens on the namespace's own loopback.
    pub fn connect_tcp(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        connect_tcp_in(&self.name, addr, timeout)
    }
}

/// [`Netns::connect_tcp`] by namespace name.
pub fn connect_tcp_in(name: &str, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{name}");
    // A short-lived thread enters the namespace, so the caller's thread never changes.
    std::thread::scope(|s| {
        s.spawn(|| -> Result<TcpStream> {
            let file =
                std::fs::File::open(&path).map_err(|e| Error::io(format!("opening {path}"), e))?;
            // SAFETY: setns with a valid namespace fd affects only this thread, which ends
            // right after connecting.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(Error::io(
                    format!("entering namespace {name}"),
                    std::io::Error::last_os_error(),
                ));
            }
            TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| Error::io(format!("connecting to {addr} in {name}"), e))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Parse {
                what: "namespace thread".into(),
                detail: "panicked".into(),
            })
        })
    })
}

/// Two namespaces `a` (10.99.0.1) and `b` (10.99.0.2) on one veth link, each with `lo` up.
/// The addresses repeat across pairs: each pair is its own isolated network.
#[derive(Debug)]
pub struct NetnsPair {
    pub a: Netns,
    pub b: Netns,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetnsPair {
    /// Creates the pair (after deleting pairs whose creating process is gone).
    pub fn create() -> Result<Self> {
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names are limited to 15 bytes: "csk" + hex pid + "x" + n + side.
        let base = format!("{PREFIX}{pid:x}x{n}");
        let mk = |side: &str, last: u8| Netns {
            name: format!("{base}{side}"),
            iface: format!("{base}{side}"),
            addr: Ipv4Addr::new(10, 99, 0, last),
        };
        let pair = NetnsPair {
            a: mk("a", 1),
            b: mk("b", 2),
        };
        // From here on, Drop cleans up whatever part was built.
        for ns in [&pair.a, &pair.b] {
            ip(&["netns", "add", &ns.name])?;
        }
        ip(&[
            "link",
            "add",
            &pair.a.iface,
            "type",
            "veth",
            "peer",
            "name",
            &pair.b.iface,
        ])?;
        for ns in [&pair.a, &pair.b] {
            ip(&["link", "set", &ns.iface, "netns", &ns.name])?;
            let cidr = format!("{}/24", ns.addr);
            ns.run("ip", &["addr", "add", &cidr, "dev", &ns.iface])?;
            ns.run("ip", &["link", "set", &ns.iface, "up"])?;
            ns.run("ip", &["link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other end.
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", &ns.name]);
        }
    }
}

/// Deletes namespaces named by this module whose creating process no longer exists.
fn remove_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in text.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid_hex, _)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = u32::from_str_radix(pid_hex, 16) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
