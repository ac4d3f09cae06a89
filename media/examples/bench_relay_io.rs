//! What the kernel alone costs per relayed RTP packet, what io_uring would save of it, and
//! what tokio's per-packet machinery adds: measured before anyone rewrites the media threads.
//!
//! Three bare relays with no callscope code, on the same load: `calls` calls of two legs, each
//! leg a UDP socket on 127.0.0.1, each fed by a simulated phone that sends a 172-byte datagram
//! (20 ms of G.711 with its RTP header) every 20 ms. A datagram arriving on leg `k` is sent on
//! from leg `k ^ 1`'s socket to that leg's phone, as a bridged call relays.
//!
//! - `epoll`: what the engine does in the kernel today. The legs are registered
//!   edge-triggered for reading; each ready leg is read with `recvmmsg` (up to 4 datagrams,
//!   kernel receive timestamps on), a short read meaning drained, and every datagram is sent
//!   on with its own `sendto`.
//! - `uring`: one io_uring for all legs, the legs' descriptors registered with it. Each leg
//!   has a multishot `recvmsg` (timestamps on) that takes buffers from a provided pool; every
//!   datagram is sent on with a `send` entry (destination address given), all the sends of
//!   one wake-up submitted with one `io_uring_enter`, whose buffer goes back to the pool when
//!   the send completes.
//! - `tokio`: the `epoll` relay's system calls inside the engine's shape: a single-threaded
//!   tokio runtime, a task per call holding its legs' registrations (read interest only),
//!   woken by the reactor, polling its legs' readiness. Against `epoll`, what tokio's
//!   per-packet machinery costs, with none of callscope's own work.
//!
//! The relay thread's CPU (schedstat) per datagram relayed is the figure; the phones run on
//! their own thread and are not counted. The variants alternate, `rounds` times each, since
//! the machine's speed moves between runs.
//!
//! `cargo run --release -p callscope-media --example bench_relay_io -- [calls] [seconds] [rounds]`

#[cfg(target_os = "linux")]
mod relay {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use io_uring::{IoUring, cqueue, opcode, types};

    const DATAGRAM: usize = 172;
    const PACKET_INTERVAL: Duration = Duration::from_millis(20);
    /// Datagrams per `recvmmsg`, as the engine asks (`recv_batch::BATCH`).
    const BATCH: usize = 4;
    /// Room for one SCM_TIMESTAMPNS control message (16-byte header + timespec).
    const CONTROL: usize = 32;
    const BUFFER: usize = 2048;

    /// CPU time of the calling thread, in ns (schedstat's first field).
    fn thread_cpu_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn set_int(fd: RawFd, level: libc::c_int, option: libc::c_int, value: libc::c_int) {
        // SAFETY: setsockopt on a live descriptor with a pointer to a local int.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    fn sockaddr_of(addr: SocketAddr) -> libc::sockaddr_in {
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 loopback only");
        };
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = v4.port().to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
        sa
    }

    /// The relay's legs and the phones at their far ends.
    pub struct Setup {
        legs: Vec<UdpSocket>,
        phones: Vec<UdpSocket>,
        /// Where leg `k` sends: phone `k`'s address.
        phone_addrs: Vec<libc::sockaddr_in>,
    }

    impl Setup {
        pub fn new(calls: usize) -> io::Result<Setup> {
            let mut legs = Vec::with_capacity(calls * 2);
            let mut phones = Vec::with_capacity(calls * 2);
            for _ in 0..calls * 2 {
                let leg = UdpSocket::bind("127.0.0.1:0")?;
                leg.set_nonblocking(true)?;
                set_int(leg.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
                set_int(leg.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20);
                let phone = UdpSocket::bind("127.0.0.1:0")?;
                phone.set_nonblocking(true)?;
                legs.push(leg);
                phones.push(phone);
            }
            let phone_addrs = phones
                .iter()
                .map(|p| p.local_addr().map(sockaddr_of))
                .collect::<io::Result<_>>()?;
            Ok(Setup {
                legs,
                phones,
                phone_addrs,
            })
        }
    }

    /// A relay loop: runs until `stop`, accounting for itself in the counters.
    pub type Relay = fn(&Setup, &AtomicBool, &RelayCounters);

    /// What one run measured.
    pub struct Run {
        pub relayed: u64,
        pub relay_cpu_ns: u64,
        pub sent_by_phones: u64,
        pub received_by_phones: u64,
        pub wakeups: u64,
    }

    /// Every phone sends one datagram to its leg per 20 ms until `stop`, and drains what it is
    /// sent; returns (sent, received).
    fn run_phones(setup: &Setup, stop: &AtomicBool) -> (u64, u64) {
        let packet = [0x80u8; DATAGRAM];
        let legs: Vec<SocketAddr> = setup
            .legs
            .iter()
            .map(|l| l.local_addr().expect("leg address"))
            .collect();
        let (mut sent, mut received) = (0u64, 0u64);
        let mut buf = [0u8; BUFFER];
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            for (phone, leg) in setup.phones.iter().zip(&legs) {
                if phone.send_to(&packet, leg).is_ok() {
                    sent += 1;
                }
            }
            for phone in &setup.phones {
                // Bounded: a phone is sent about one datagram per interval.
                for _ in 0..64 {
                    match phone.recv(&mut buf) {
                        Ok(_) => received += 1,
                        Err(_) => break,
                    }
                }
            }
            next += PACKET_INTERVAL;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // What is still on its way.
        std::thread::sleep(Duration::from_millis(50));
        for phone in &setup.phones {
            for _ in 0..64 {
                match phone.recv(&mut buf) {
                    Ok(_) => received += 1,
                    Err(_) => break,
                }
            }
        }
        (sent, received)
    }

    /// Runs the phones for `warmup + window` and `relay` for as long, measuring the relay
    /// thread over the window only.
    pub fn measure(setup: &Setup, warmup: Duration, window: Duration, relay: Relay) -> Run {
        let stop = AtomicBool::new(false);
        let counters = RelayCounters::default();
        std::thread::scope(|scope| {
            let phones = scope.spawn(|| run_phones(setup, &stop));
            let relay_thread = scope.spawn(|| relay(setup, &stop, &counters));
            std::thread::sleep(warmup);
            counters.mark.store(true, Ordering::SeqCst);
            std::thread::sleep(window);
            counters.mark.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::SeqCst);
            let (sent, received) = phones.join().expect("phones");
            relay_thread.join().expect("relay");
            Run {
                relayed: counters.window_relayed.load(Ordering::SeqCst),
                relay_cpu_ns: counters.window_cpu_ns.load(Ordering::SeqCst),
                sent_by_phones: sent,
                received_by_phones: received,
                wakeups: counters.window_wakeups.load(Ordering::SeqCst),
            }
        })
    }

    /// The relay thread's own accounting: it reads its CPU and counts when `mark` turns on
    /// and off, so the window covers exactly what it did in between.
    #[derive(Default)]
    pub struct RelayCounters {
        mark: AtomicBool,
        window_relayed: AtomicU64,
        window_cpu_ns: AtomicU64,
        window_wakeups: AtomicU64,
    }

    /// Follows `mark` from the relay loop: starts and ends the window on its edges.
    struct Window<'a> {
        counters: &'a RelayCounters,
        open: Option<(u64, u64, u64)>,
        closed: bool,
    }

    impl<'a> Window<'a> {
        fn new(counters: &'a RelayCounters) -> Self {
            Window {
                counters,
                open: None,
                closed: false,
            }
        }

        fn check(&mut self, relayed: u64, wakeups: u64) {
            let marked = self.counters.mark.load(Ordering::Relaxed);
            match (self.open, marked) {
                (None, true) if !self.closed => {
                    self.open = Some((relayed, wakeups, thread_cpu_ns()));
                }
                (Some((r0, w0, c0)), false) => {
                    let c = &self.counters;
                    c.window_relayed.store(relayed - r0, Ordering::SeqCst);
                    c.window_wakeups.store(wakeups - w0, Ordering::SeqCst);
                    c.window_cpu_ns
                        .store(thread_cpu_ns().saturating_sub(c0), Ordering::SeqCst);
                    self.open = None;
                    self.closed = true;
                }
                _ => {}
            }
        }
    }

    /// The engine's path: edge-triggered epoll, `recvmmsg` per ready leg, `sendto` per datagram.
    pub fn relay_epoll(setup: &Setup, stop: &AtomicBool, counters: &RelayCounters) {
        // SAFETY: plain epoll calls on descriptors that outlive this function.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epoll >= 0, "epoll_create1");
        for (k, leg) in setup.legs.iter().enumerate() {
            let mut event = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: k as u64,
            };
            // SAFETY: as above.
            let r =
                unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, leg.as_raw_fd(), &mut event) };
            assert_eq!(r, 0, "epoll_ctl");
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let fds: Vec<RawFd> = setup.legs.iter().map(|l| l.as_raw_fd()).collect();
        let mut scratch = Scratch::new();
        let (mut relayed, mut wakeups) = (0u64, 0u64);
        let mut window = Window::new(counters);
        while !stop.load(Ordering::Relaxed) {
            window.check(relayed, wakeups);
            // SAFETY: `events` has room for its length.
            let n =
                unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, 50) };
            wakeups += 1;
            for event in events.iter().take(n.max(0) as usize) {
                // Edge-triggered: read until a short read says the leg is drained.
                loop {
                    let (sent, drained) =
                        relay_leg(&mut scratch, &fds, &setup.phone_addrs, event.u64 as usize);
                    relayed += sent;
                    if drained {
                        break;
                    }
                }
            }
        }
        window.check(relayed, wakeups);
        // SAFETY: closing the descriptor this function opened.
        unsafe { libc::close(epoll) };
    }

    /// A leg's descriptor for tokio's reactor; the socket itself stays owned by `Setup`.
    struct LegFd(RawFd);

    impl AsRawFd for LegFd {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    /// Receive buffers, kept between reads as the engine keeps its `RecvBatch`.
    struct Scratch {
        bufs: Box<[[u8; BUFFER]; BATCH]>,
        controls: [[u64; CONTROL / 8]; BATCH],
    }

    impl Scratch {
        fn new() -> Scratch {
            Scratch {
                bufs: Box::new([[0; BUFFER]; BATCH]),
                controls: [[0; CONTROL / 8]; BATCH],
            }
        }
    }

    /// Reads what one leg holds (up to `BATCH` per `recvmmsg`, until a short read) and sends
    /// each datagram on; returns how many it relayed and whether the leg is drained.
    fn relay_leg(
        scratch: &mut Scratch,
        fds: &[RawFd],
        phone_addrs: &[libc::sockaddr_in],
        k: usize,
    ) -> (u64, bool) {
        let Scratch { bufs, controls } = scratch;
        // SAFETY: all-zero is valid for these C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: BUFFER,
            };
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = CONTROL;
        }
        // SAFETY: every pointer in `msgs` points at live buffers of the given sizes.
        let got = unsafe {
            libc::recvmmsg(
                fds[k],
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            return (0, true);
        }
        let to = &phone_addrs[k ^ 1];
        let mut relayed = 0;
        for (msg, buf) in msgs.iter().zip(bufs.iter()).take(got as usize) {
            // SAFETY: sends `msg_len` bytes of a live buffer to a valid address.
            let r = unsafe {
                libc::sendto(
                    fds[k ^ 1],
                    buf.as_ptr().cast(),
                    msg.msg_len as usize,
                    0,
                    (to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if r > 0 {
                relayed += 1;
            }
        }
        (relayed, (got as usize) < BATCH)
    }

    /// The engine's shape around the same system calls: a single-threaded tokio runtime, a
    /// task per call owning its two legs' registrations (read interest only), woken by the
    /// reactor and polling its sockets' readiness, as the call tasks do.
    pub fn relay_tokio(setup: &Setup, stop: &AtomicBool, counters: &RelayCounters) {
        use std::cell::Cell;
        use std::rc::Rc;
        use std::task::Poll;
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        let relayed = Rc::new(Cell::new(0u64));
        // The tasks must own what they use; the sockets stay open in `setup`, which outlives
        // the runtime (dropped when this function returns).
        let fds: Rc<Vec<RawFd>> = Rc::new(setup.legs.iter().map(|l| l.as_raw_fd()).collect());
        let phone_addrs = Rc::new(setup.phone_addrs.clone());
        for call in 0..setup.legs.len() / 2 {
            let relayed = relayed.clone();
            let (fds, phone_addrs) = (fds.clone(), phone_addrs.clone());
            local.spawn_local(async move {
                let register = |k: usize| {
                    // SAFETY: the descriptor belongs to a socket in `setup`, open until after
                    // this runtime and its tasks (and with them the registration) are gone.
                    unsafe { AsyncFd::register_with_interest(LegFd(fds[k]), Interest::READABLE) }
                        .map_err(|e| e.into_parts().1)
                        .expect("register")
                };
                let legs = [register(call * 2), register(call * 2 + 1)];
                let mut scratch = Scratch::new();
                loop {
                    let (k, mut guard) = std::future::poll_fn(|cx| {
                        for (i, leg) in legs.iter().enumerate() {
                            if let Poll::Ready(Ok(guard)) = leg.poll_read_ready(cx) {
                                return Poll::Ready((call * 2 + i, guard));
                            }
                        }
                        Poll::Pending
                    })
                    .await;
                    let (n, drained) = relay_leg(&mut scratch, &fds, &phone_addrs, k);
                    relayed.set(relayed.get() + n);
                    if drained {
                        guard.clear_ready();
                    }
                }
            });
        }
        let mut window = Window::new(counters);
        runtime.block_on(local.run_until(async {
            while !stop.load(Ordering::Relaxed) {
                window.check(relayed.get(), 0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            window.check(relayed.get(), 0);
        }));
    }

    /// user_data of a send: this bit plus the buffer id it sends from.
    const SEND: u64 = 1 << 32;
    const GROUP: u16 = 0;

    /// io_uring: multishot `recvmsg` per leg from a provided pool, a `send` entry per
    /// datagram, one submission per wake-up.
    pub fn relay_uring(setup: &Setup, stop: &AtomicBool, counters: &RelayCounters) {
        let legs = setup.legs.len();
        // Enough buffers for several datagrams per leg in flight.
        let buffers = (legs * 4).clamp(64, 32768);
        let mut ring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build((legs * 2).next_power_of_two().clamp(256, 32768) as u32)
            .expect("io_uring (kernel.io_uring_disabled?)");
        let fds: Vec<RawFd> = setup.legs.iter().map(|l| l.as_raw_fd()).collect();
        ring.submitter()
            .register_files(&fds)
            .expect("register files");
        let mut pool = vec![0u8; buffers * BUFFER];
        // SAFETY: all-zero msghdr; only the name and control lengths matter for multishot.
        let mut template: libc::msghdr = unsafe { std::mem::zeroed() };
        template.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        template.msg_controllen = CONTROL;
        let template = Box::new(template);

        // The provided buffers as a buffer ring (5.19+): giving a buffer back is a store and a
        // tail bump in shared memory, not an entry for the kernel to process.
        let mut bufs = BufRing::new(buffers.next_power_of_two() as u16);
        // SAFETY: the ring's memory (`bufs`) and the buffers (`pool`) are dropped only after
        // the io_uring, explicitly, at the end of this function.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.addr(), bufs.entries, GROUP, 0)
                .expect("register buffer ring");
        }
        for bid in 0..buffers {
            bufs.give(pool[bid * BUFFER..].as_mut_ptr(), BUFFER as u32, bid as u16);
        }
        bufs.publish();

        // SAFETY (all pushes below): the entries point at `pool`, `template` and
        // `setup.phone_addrs`, which live until the ring is dropped at the end of this
        // function, after the last submission.
        let arm = |k: usize| {
            opcode::RecvMsgMulti::new(types::Fixed(k as u32), &*template, GROUP)
                .build()
                .user_data(k as u64)
        };
        for k in 0..legs {
            // SAFETY: see above.
            unsafe {
                while ring.submission().push(&arm(k)).is_err() {
                    ring.submit().expect("submit");
                }
            }
        }
        ring.submit().expect("submit");

        let (mut relayed, mut wakeups) = (0u64, 0u64);
        let mut window = Window::new(counters);
        let mut pending: Vec<io_uring::squeue::Entry> = Vec::with_capacity(1024);
        let timeout = types::Timespec::new().nsec(50_000_000);
        let wait = types::SubmitArgs::new().timespec(&timeout);
        while !stop.load(Ordering::Relaxed) {
            window.check(relayed, wakeups);
            match ring.submitter().submit_with_args(1, &wait) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("io_uring_enter: {e}"),
            }
            wakeups += 1;
            for cqe in ring.completion() {
                let data = cqe.user_data();
                let flags = cqe.flags();
                if data & SEND != 0 {
                    if cqe.result() > 0 {
                        relayed += 1;
                    }
                    let bid = (data & 0xffff) as u16;
                    bufs.give(
                        pool[bid as usize * BUFFER..].as_mut_ptr(),
                        BUFFER as u32,
                        bid,
                    );
                    continue;
                }
                let k = data as usize;
                if !cqueue::more(flags) {
                    pending.push(arm(k));
                }
                let Some(bid) = cqueue::buffer_select(flags) else {
                    continue;
                };
                let start = bid as usize * BUFFER;
                let len = (cqe.result().max(0) as usize).min(BUFFER);
                let Ok(out) = types::RecvMsgOut::parse(&pool[start..start + len], &template) else {
                    // Nothing to send: the buffer goes straight back to the pool.
                    bufs.give(pool[start..].as_mut_ptr(), BUFFER as u32, bid);
                    continue;
                };
                let payload = out.payload_data();
                let to = &setup.phone_addrs[k ^ 1];
                pending.push(
                    opcode::Send::new(
                        types::Fixed((k ^ 1) as u32),
                        payload.as_ptr(),
                        payload.len() as u32,
                    )
                    .dest_addr((to as *const libc::sockaddr_in).cast())
                    .dest_addr_len(std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
                    .build()
                    .user_data(SEND | u64::from(bid)),
                );
            }
            bufs.publish();
            for entry in pending.drain(..) {
                // SAFETY: see above.
                unsafe {
                    while ring.submission().push(&entry).is_err() {
                        ring.submit().expect("submit");
                    }
                }
            }
        }
        window.check(relayed, wakeups);
        // The kernel may use the buffer ring until the io_uring is gone.
        drop(ring);
        drop(bufs);
        drop(pool);
    }

    /// A provided-buffer ring: `entries` slots the kernel takes buffers from, page-aligned
    /// as io_uring requires; the tail (published with release ordering) says how many were
    /// given.
    struct BufRing {
        base: *mut io_uring::types::BufRingEntry,
        entries: u16,
        tail: u16,
        layout: std::alloc::Layout,
    }

    impl BufRing {
        fn new(entries: u16) -> BufRing {
            let size = usize::from(entries) * std::mem::size_of::<io_uring::types::BufRingEntry>();
            let layout = std::alloc::Layout::from_size_align(size, 4096).expect("layout");
            // SAFETY: a non-zero size; zeroed memory is a valid (empty) ring.
            let base: *mut io_uring::types::BufRingEntry =
                unsafe { std::alloc::alloc_zeroed(layout) }.cast();
            assert!(!base.is_null(), "buffer ring allocation");
            BufRing {
                base,
                entries,
                tail: 0,
                layout,
            }
        }

        fn addr(&self) -> u64 {
            self.base as u64
        }

        /// Puts a buffer in the next slot (seen by the kernel at the next `publish`).
        fn give(&mut self, addr: *mut u8, len: u32, bid: u16) {
            let index = usize::from(self.tail & (self.entries - 1));
            // SAFETY: `index` is inside the ring's allocation.
            let entry = unsafe { &mut *self.base.add(index) };
            entry.set_addr(addr as u64);
            entry.set_len(len);
            entry.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
        }

        fn publish(&self) {
            // SAFETY: the tail field lives in the first entry of the ring's allocation; the
            // kernel reads it, so it is written atomically with release ordering.
            unsafe {
                let tail = io_uring::types::BufRingEntry::tail(self.base).cast_mut();
                (*tail.cast::<std::sync::atomic::AtomicU16>()).store(self.tail, Ordering::Release);
            }
        }
    }

    impl Drop for BufRing {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.base.cast(), self.layout) };
        }
    }
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    use std::time::Duration;
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let rounds: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(2);
    let setup = relay::Setup::new(calls)?;
    println!(
        "{calls} calls (two legs each), 172-byte datagrams every 20 ms both ways, {seconds} s windows"
    );
    println!(
        "| variant | relayed/s | relay CPU (% core) | ns per datagram | wake-ups/s | phones sent / received |"
    );
    println!("|---|---|---|---|---|---|");
    let variants: [(&str, relay::Relay); 3] = [
        ("epoll", relay::relay_epoll),
        ("uring", relay::relay_uring),
        ("tokio", relay::relay_tokio),
    ];
    for _ in 0..rounds {
        for (name, f) in variants {
            let window = Duration::from_secs(seconds);
            let run = relay::measure(&setup, Duration::from_secs(2), window, f);
            let secs = window.as_secs_f64();
            // tokio's reactor does not say how often it woke.
            let wakeups = if run.wakeups == 0 {
                "—".to_string()
            } else {
                format!("{:.0}", run.wakeups as f64 / secs)
            };
            println!(
                "| {name} | {:.0} | {:.2} | {:.0} | {wakeups} | {} / {} |",
                run.relayed as f64 / secs,
                run.relay_cpu_ns as f64 / 1e7 / secs,
                run.relay_cpu_ns as f64 / run.relayed.max(1) as f64,
                run.sent_by_phones,
                run.received_by_phones,
            );
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench_relay_io measures Linux's epoll and io_uring; nothing to do here");
}
