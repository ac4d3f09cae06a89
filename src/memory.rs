//! How the process hands memory back to the system.
//!
//! glibc's malloc serves a block above its mmap threshold (128 KiB at start) with its own
//! mapping, unmapped when freed. But each time such a block is freed it raises the threshold
//! to that block's size (up to 32 MiB), so from then on blocks of that size come from an
//! arena, and an arena keeps what is freed inside it. Two uses of ours meet that:
//! - every agent login checks an argon2id password hash, which fills 19 MiB; after the
//!   first, each check on another thread left up to 19 MiB resident in that thread's arena
//!   (measured: 20 logins took a fresh server from 29 to 89 MB, with no call up);
//! - the post-call pipeline's buffers of a long recording (decoded audio, features), kept
//!   in the same way after each job.
//!
//! Setting the threshold ourselves turns the adjustment off: blocks from 1 MiB up are
//! always mapped and always returned. Smaller blocks, the media path's among them (a
//! recording chunk is at most 144 KiB), stay in the arenas as before. Mapping a large block
//! costs a page fault per 4 KiB touched, small beside the work done on a MiB of data.

/// Blocks of this size and more are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Fixes glibc's mmap threshold (see the module docs). Elsewhere, a no-op.
pub fn return_large_blocks_when_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a malloc tunable; any value is accepted or refused
        // (returns 0), never unsafe to the heap.
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if accepted == 0 {
            tracing::debug!("malloc refused a fixed mmap threshold");
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process, from /proc/self/statm (pages × 4 KiB).
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("resident pages");
        pages * 4096
    }

    /// What agent logins do to the heap: a 19 MiB argon2 block filled and freed, each time on
    /// another thread. Without the fixed threshold the first free raises glibc's threshold, the
    /// next block is carved from an arena and stays resident once freed (measured: +19 MiB).
    #[test]
    fn large_blocks_freed_on_other_threads_are_given_back() {
        const BLOCK: usize = 19 << 20;
        return_large_blocks_when_freed();
        let before = resident_bytes();
        for round in 0..4u8 {
            std::thread::spawn(move || {
                let block = vec![round.wrapping_add(1); BLOCK];
                std::hint::black_box(&block);
            })
            .join()
            .expect("thread");
        }
        let grown = resident_bytes().saturating_sub(before);
        assert!(
            grown < 8 << 20,
            "resident memory grew by {} MiB after four 19 MiB blocks were freed",
            grown >> 20
        );
    }
}
