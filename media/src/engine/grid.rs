//! One timer grid for every call in the process.
//!
//! Each call runs its own task with its own timers (20 ms playout, 200 ms housekeeping,
//! str0m's ICE/DTLS/RTCP deadlines). Left to start whenever their call started, the timers
//! of N calls fall on N different milliseconds of every 20 ms, and the runtime leaves its
//! event wait N times per period to fire them: at 50 transcoded calls that was 2,500
//! wake-ups a second, a third of the engine's CPU spent in the kernel. Every deadline here
//! is a point of one process-wide 20 ms grid instead, so all calls' ticks share one
//! wake-up per period and the runtime polls their tasks back to back.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The grid's period: the packet time of every stream we pace.
pub const GRID: Duration = Duration::from_millis(20);

/// The process-wide origin of the grid (fixed on first use).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The first grid point at or after `at`.
pub fn at_or_after(at: Instant) -> Instant {
    let origin = origin();
    let since = at.saturating_duration_since(origin).as_nanos();
    let period = GRID.as_nanos();
    let points = since.div_ceil(period);
    // 2^64 ns is 584 years of uptime: the cast cannot truncate in practice.
    origin + Duration::from_nanos((points * period) as u64)
}

/// The first grid point strictly after `at`: where a periodic timer started now ticks first.
pub fn after(at: Instant) -> Instant {
    at_or_after(at + Duration::from_nanos(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_multiples_of_the_period_from_one_origin() {
        let o = origin();
        let a = at_or_after(o + Duration::from_millis(7));
        let b = at_or_after(o + Duration::from_millis(33));
        assert_eq!(a.duration_since(o), Duration::from_millis(20));
        assert_eq!(b.duration_since(o), Duration::from_millis(40));
        // A point is its own grid point; `after` moves to the next one.
        assert_eq!(at_or_after(b), b);
        assert_eq!(after(b), b + GRID);
    }

    #[test]
    fn any_instant_rounds_up_by_less_than_one_period() {
        let o = origin();
        for us in (0..100_000u64).step_by(1_337) {
            let at = o + Duration::from_micros(us);
            let p = at_or_after(at);
            assert!(p >= at && p - at < GRID, "{us} µs → {:?}", p - o);
            assert_eq!(p.duration_since(o).as_nanos() % GRID.as_nanos(), 0);
        }
    }
}
