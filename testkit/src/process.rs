//! A child process that cannot outlive the test that started it.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often bounded waits poll a child or a file. Short enough not to slow tests down,
/// long enough not to burn a core of this 2-core machine.
pub const POLL: Duration = Duration::from_millis(20);

/// Owns a spawned child; on drop it is sent SIGTERM, given a moment, then SIGKILLed and
/// reaped — always by its own PID, never by name.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: &'static str,
    log: Option<PathBuf>,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr appended to `log` (so a chatty peer can never
    /// block on a full pipe) and stdin closed unless the caller configured it.
    pub fn spawn_logged(name: &'static str, cmd: &mut Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)
            .map_err(|e| Error::io(format!("creating log {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("duplicating log handle", e))?;
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        Self::spawn(name, cmd, Some(log.to_path_buf()))
    }

    /// Spawns `cmd` as configured by the caller.
    pub fn spawn(name: &'static str, cmd: &mut Command, log: Option<PathBuf>) -> Result<Self> {
        let child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing { tool: name, source },
            _ => Error::io(format!("spawning {name}"), source),
        })?;
        Ok(ChildGuard {
            child,
            name,
            log,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Mutable access to the underlying child (for its stdin/stdout pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Some(status)` once the child has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .map_err(|e| Error::io(format!("polling {}", self.name), e))?;
        }
        Ok(self.exited)
    }

    /// Waits at most `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} (pid {}) to exit", self.name, self.pid()),
                    after: timeout,
                    log: self.log.clone(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Fails with [`Error::ExitedEarly`] if the child is no longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_status()? {
            None => Ok(()),
            Some(status) => Err(Error::ExitedEarly {
                tool: self.name,
                status: status.to_string(),
                log: self.log.clone(),
            }),
        }
    }

    /// Asks the child to stop (SIGTERM), waits up to `grace`, then kills it (SIGKILL).
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        signal(self.pid(), libc::SIGTERM);
        match self.wait_timeout(grace) {
            Ok(status) => Ok(status),
            Err(_) => {
                let _ = self.child.kill();
                let status = self
                    .child
                    .wait()
                    .map_err(|e| Error::io(format!("reaping {}", self.name), e))?;
                self.exited = Some(status);
                Ok(status)
            }
        }
    }

    /// CPU time (user + system) the child has used so far, from /proc/PID/stat.
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time_of(self.pid())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.terminate(Duration::from_millis(500));
    }
}

/// Sends `sig` to `pid`. Failure (the process already gone) is fine: the caller reaps next.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a PID we spawned and still own (not yet reaped, so the PID
        // cannot have been reused) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// utime + stime of any process, from /proc/PID/stat (fields 14 and 15, in clock ticks).
pub fn cpu_time_of(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| Error::Parse {
            what: path.clone(),
            detail: "no ')' after the command name".into(),
        })?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the first field is the state (field 3), so utime (14) is index 11.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| Error::Parse {
                what: path.clone(),
                detail: format!("field {} missing", i + 3),
            })
    };
    let ticks = tick(11)? + tick(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Resident set size of a process in bytes, from /proc/PID/status (VmRSS).
pub fn rss_bytes_of(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error::Parse {
            what: path,
            detail: "no VmRSS line".into(),
        })
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    log: Option<&Path>,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                after: timeout,
                log: log.map(Path::to_path_buf),
            });
        }
        std::thread::sleep(POLL);
    }
}
