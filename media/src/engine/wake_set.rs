//! Which of a task's wait sources woke it, so that a pass polls only those.
//!
//! A call task waits on up to eight sources at once: its control channel, four sockets and
//! three timers. Polled the `select!` way, every wake-up re-polls all of them, and a source
//! that is not ready re-registers the waker each time (for a socket that takes the lock of
//! its waiter list): a relayed packet woke the task once and paid for seven polls that
//! found nothing. Here each source gets its own waker, which marks the source's bit and
//! then wakes the task; a pass takes the marked bits and polls those sources only.
//!
//! Correctness rests on one rule, which the caller keeps: a source is polled again, with its
//! own waker, whenever what it registered may be gone. Its waker fired (`take` returns its
//! bit), it returned ready (nothing is registered then), or something else polled it with
//! another waker or changed it. The last two the caller tracks itself, in bits of its own
//! that it polls before it next returns `Pending`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// What every source of a set shares: the bits of the sources that fired since the task last
/// looked, and the task's own waker.
struct Shared {
    fired: AtomicU32,
    task: Mutex<Option<Waker>>,
}

/// One source's waker: marks its bit, and wakes the task if no other source had already.
struct Source {
    shared: Arc<Shared>,
    bit: u32,
}

impl Wake for Source {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Whoever turns the set from empty to non-empty wakes the task; the others' bits
        // are taken in by the pass that wake-up causes (`take` registers the task's waker
        // before it empties the set, so no bit set after that can go unnoticed).
        let before = self.shared.fired.fetch_or(self.bit, Ordering::AcqRel);
        if before == 0
            && let Ok(task) = self.shared.task.lock()
            && let Some(task) = task.as_ref()
        {
            task.wake_by_ref();
        }
    }
}

/// The wakers of up to 32 sources of one task.
pub struct WakeSet {
    shared: Arc<Shared>,
    wakers: Vec<Waker>,
}

impl WakeSet {
    /// `count` sources (at most 32), all marked: the first pass polls each one, which
    /// registers its waker.
    pub fn new(count: u32) -> WakeSet {
        assert!(count <= 32, "a wake set has at most 32 sources");
        let all = all_bits(count);
        let shared = Arc::new(Shared {
            fired: AtomicU32::new(all),
            task: Mutex::new(None),
        });
        let wakers = (0..count)
            .map(|i| {
                Waker::from(Arc::new(Source {
                    shared: shared.clone(),
                    bit: 1 << i,
                }))
            })
            .collect();
        WakeSet { shared, wakers }
    }

    /// Registers the task's waker (from the task's own `cx`) and takes the bits of the
    /// sources that fired since the last call; the set is empty afterwards.
    pub fn take(&self, cx: &Context<'_>) -> u32 {
        if let Ok(mut task) = self.shared.task.lock() {
            match task.as_ref() {
                Some(known) if known.will_wake(cx.waker()) => {}
                _ => *task = Some(cx.waker().clone()),
            }
        }
        self.shared.fired.swap(0, Ordering::AcqRel)
    }

    /// The waker to poll source `index` with.
    pub fn waker(&self, index: u32) -> &Waker {
        &self.wakers[index as usize]
    }
}

/// The bits of sources `0..count`.
pub fn all_bits(count: u32) -> u32 {
    if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wake-ups.
    struct CountingTask(AtomicUsize);

    impl Wake for CountingTask {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<CountingTask>, Waker) {
        let counter = Arc::new(CountingTask(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn every_source_is_marked_at_first() {
        let set = WakeSet::new(8);
        let (_, waker) = task();
        assert_eq!(set.take(&Context::from_waker(&waker)), 0xff);
        assert_eq!(set.take(&Context::from_waker(&waker)), 0, "taking empties");
    }

    #[test]
    fn a_source_marks_its_bit_and_wakes_the_task_once_per_pass() {
        let set = WakeSet::new(4);
        let (count, waker) = task();
        let cx = Context::from_waker(&waker);
        set.take(&cx);
        set.waker(2).wake_by_ref();
        set.waker(0).wake_by_ref();
        // Waking by value (what a source that was handed a clone does) marks the same bit.
        let owned = set.waker(2).clone();
        owned.wake();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the first source to fire wakes the task, the others only mark"
        );
        assert_eq!(set.take(&cx), 0b101);
        set.waker(3).wake_by_ref();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "a new pass, a new wake-up"
        );
        assert_eq!(set.take(&cx), 0b1000);
    }

    #[test]
    fn the_latest_task_waker_is_the_one_woken() {
        let set = WakeSet::new(1);
        let (first, first_waker) = task();
        let (second, second_waker) = task();
        set.take(&Context::from_waker(&first_waker));
        set.take(&Context::from_waker(&second_waker));
        set.waker(0).wake_by_ref();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wakes_from_other_threads_are_all_taken_in() {
        let set = Arc::new(WakeSet::new(16));
        let (_, waker) = task();
        let cx = Context::from_waker(&waker);
        set.take(&cx);
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let set = set.clone();
                std::thread::spawn(move || set.waker(i).wake_by_ref())
            })
            .collect();
        for t in threads {
            t.join().expect("waker thread");
        }
        assert_eq!(set.take(&cx), 0xffff);
    }

    #[test]
    fn all_bits_covers_the_sources() {
        assert_eq!(all_bits(0), 0);
        assert_eq!(all_bits(1), 1);
        assert_eq!(all_bits(8), 0xff);
        assert_eq!(all_bits(32), u32::MAX);
    }
}
