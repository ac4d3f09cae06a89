//! Reading a socket's datagrams without the read that only finds it empty.
//!
//! tokio's `recv_from` learns that a socket is drained by reading it once more and getting
//! `EAGAIN`: for RTP, where a wake-up almost always brings one datagram, that doubles the
//! receive system calls. Here one `recvmmsg(MSG_DONTWAIT)` asks for up to [`BATCH`]
//! datagrams; getting fewer means the queue is empty, so the socket's readiness is cleared
//! at once (tokio clears it only if no new readiness event arrived since it was observed,
//! and a datagram arriving later raises a new edge-triggered event, so none is missed).
//! A full batch keeps the readiness and the caller simply comes back for more.
//!
//! Each datagram comes with its arrival time: the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`, asked for on every media socket), brought onto the monotonic clock.
//! A clocked socket (see `socket.rs`) is read up to 20 ms after its packets arrived, and
//! jitter, the jitter buffer and the recording's placement need when they arrived, not when
//! they were read.
//!
//! Other systems read one datagram per call the portable way (as before), stamped with the
//! time of the read.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::socket::MediaSocket;

/// Largest datagram we read (anything longer is truncated and then fails to parse).
pub const DATAGRAM: usize = 2048;
/// Datagrams asked for per read. RTP at 20 ms brings one per wake-up; more only arrive
/// together after a stall, so a small batch is enough (8 KiB, one per thread).
pub const BATCH: usize = 4;

/// Whether a read that returned fewer datagrams than asked has drained the socket.
const SHORT_READ_MEANS_EMPTY: bool = cfg!(target_os = "linux");

/// Oldest arrival a kernel timestamp may give: anything older (a clock stepped between
/// the packet and the read) is taken as read now.
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

/// Receive buffer asked for on every media socket. The default (208 KiB, 256 small
/// datagrams on Linux) is enough for a socket read as packets arrive, but a clocked one
/// (`socket.rs`) holds up to a tick's worth, and a sender catching up after a stall can
/// send seconds of audio at once. Memory is charged per queued datagram, not reserved; the
/// kernel caps the figure at `net.core.rmem_max`.
#[cfg(target_os = "linux")]
const RECEIVE_BUFFER: libc::c_int = 1 << 20;

/// Prepares a media socket's receive side: the kernel stamps each datagram with its arrival
/// time, and queues up to [`RECEIVE_BUFFER`]. Best effort: without stamps datagrams are
/// stamped when read, without the buffer the system default applies.
pub fn prepare_receive(socket: &std::net::UdpSocket) {
    #[cfg(target_os = "linux")]
    {
        let on: libc::c_int = 1;
        set_int_option(
            socket,
            libc::SO_TIMESTAMPNS,
            on,
            "no kernel receive timestamps",
        );
        set_int_option(
            socket,
            libc::SO_RCVBUF,
            RECEIVE_BUFFER,
            "default receive buffer",
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

#[cfg(target_os = "linux")]
fn set_int_option(
    socket: &std::net::UdpSocket,
    option: libc::c_int,
    value: libc::c_int,
    failing: &str,
) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain setsockopt on a live descriptor, with a pointer to a local int and its
    // size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "{failing}");
    }
}

/// Per datagram: length, source, and how long before the read it arrived (None: no kernel
/// stamp, take the read's time).
type Meta = (usize, Option<SocketAddr>, Option<Duration>);

/// Up to [`BATCH`] datagrams from one read: payloads, lengths, sources and arrival times.
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    meta: [Meta; BATCH],
    count: usize,
    /// When the last read returned.
    read_at: Instant,
}

thread_local! {
    /// The batch that every call task running on this thread reads into. A batch is read
    /// and its datagrams handled within one poll of one task, so tasks never need their own:
    /// one per thread stays in the core's cache, where a batch per call (8 KiB each) was
    /// memory the kernel's copy and our parse found cold at every packet.
    static THREAD_BATCH: RefCell<RecvBatch> = RefCell::new(RecvBatch::default());
}

/// Runs `f` with this thread's receive batch. Not re-entrant: nothing `f` calls may ask for
/// the batch again (the call task reads, then handles, never both at once).
pub fn with_thread_batch<R>(f: impl FnOnce(&mut RecvBatch) -> R) -> R {
    THREAD_BATCH.with_borrow_mut(f)
}

/// What one read of a ready socket gave.
pub enum ReadOutcome {
    /// `count` datagrams are in the batch.
    Got,
    /// Nothing was waiting (readiness cleared).
    Empty,
    /// The socket reported an error (ICMP port unreachable and the like).
    Failed(io::Error),
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            meta: [(0, None, None); BATCH],
            count: 0,
            read_at: Instant::now(),
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last read, in arrival order, with their sources and arrival
    /// times (a datagram whose source could not be decoded is skipped).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr, Instant)> {
        let read_at = self.read_at;
        self.bufs
            .iter()
            .zip(self.meta.iter())
            .take(self.count)
            .filter_map(move |(buf, (len, from, age))| {
                let arrived = age
                    .and_then(|age| read_at.checked_sub(age))
                    .unwrap_or(read_at);
                Some((buf.get(..*len)?, (*from)?, arrived))
            })
    }

    /// Whether the last read that got datagrams also emptied the socket's queue: it got fewer
    /// than a batch, and on Linux `recvmmsg` only stops short when the queue ran dry (or an
    /// error is pending, which the next read reports). A clocked socket read on the tick need
    /// not be read again until the next one: that read would only find it empty.
    pub fn drained(&self) -> bool {
        SHORT_READ_MEANS_EMPTY && self.count < BATCH
    }

    /// Reads what `socket` holds, up to a batch; call when tokio said it is readable.
    pub fn read(&mut self, socket: &MediaSocket) -> ReadOutcome {
        self.count = 0;
        let mut got = 0usize;
        let result = socket.try_read(|| {
            got = read_now(socket, &mut self.bufs, &mut self.meta)?;
            self.read_at = Instant::now();
            if SHORT_READ_MEANS_EMPTY && got < BATCH {
                // Fewer than asked: the queue is empty. Saying WouldBlock makes tokio
                // clear the readiness now, instead of after one more (empty) read.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        self.count = got;
        match result {
            Ok(_) => ReadOutcome::Got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if got > 0 {
                    ReadOutcome::Got
                } else {
                    ReadOutcome::Empty
                }
            }
            Err(e) => ReadOutcome::Failed(e),
        }
    }
}

/// One non-blocking `recvmmsg`: the number of datagrams read (≥ 1), or the error
/// (`WouldBlock` when nothing is queued).
#[cfg(target_os = "linux")]
fn read_now(
    socket: &MediaSocket,
    bufs: &mut [[u8; DATAGRAM]; BATCH],
    meta: &mut [Meta; BATCH],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    // Room for one SCM_TIMESTAMPNS message per datagram (16 header + 16 timespec bytes),
    // u64s for cmsghdr's alignment.
    let mut controls = [[0u64; CONTROL_WORDS]; BATCH];
    for (((buf, iov), (addr, msg)), control) in bufs
        .iter_mut()
        .zip(iovs.iter_mut())
        .zip(addrs.iter_mut().zip(msgs.iter_mut()))
        .zip(controls.iter_mut())
    {
        iov.iov_base = buf.as_mut_ptr().cast();
        iov.iov_len = DATAGRAM;
        msg.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
        msg.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_hdr.msg_control = control.as_mut_ptr().cast();
        msg.msg_hdr.msg_controllen = std::mem::size_of_val(control) as _;
    }
    // SAFETY: every pointer in `msgs` points into `bufs`, `iovs` or `addrs`, which outlive
    // the call and are not otherwise borrowed during it; the lengths given are theirs.
    let n = unsafe {
        libc::recvmmsg(
            socket.std().as_raw_fd(),
            msgs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).min(BATCH);
    let wall_now = std::time::SystemTime::now();
    for ((msg, addr), slot) in msgs.iter().zip(addrs.iter()).zip(meta.iter_mut()).take(n) {
        let age = arrival_stamp(&msg.msg_hdr)
            .and_then(|stamp| wall_now.duration_since(stamp).ok())
            .filter(|age| *age <= MAX_STAMP_AGE);
        *slot = (
            (msg.msg_len as usize).min(DATAGRAM),
            socket_addr(addr, msg.msg_hdr.msg_namelen),
            age,
        );
    }
    Ok(n)
}

/// u64 words of control buffer per datagram: a timestamp message needs 32 bytes; 64 leave
/// room should the kernel add another.
#[cfg(target_os = "linux")]
const CONTROL_WORDS: usize = 8;

/// The kernel's receive timestamp among a received message's control messages.
#[cfg(target_os = "linux")]
fn arrival_stamp(hdr: &libc::msghdr) -> Option<std::time::SystemTime> {
    // SAFETY: `hdr` is the header recvmmsg filled: msg_control points at our live buffer
    // and msg_controllen is what the kernel wrote into it, so the CMSG_* walk stays inside
    // it; the timestamp is read unaligned from the data of a message the kernel says is an
    // SCM_TIMESTAMPNS, whose payload is a timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET
                && c.cmsg_type == libc::SCM_TIMESTAMPNS
                && c.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let secs = u64::try_from(ts.tv_sec).ok()?;
                let nanos = u32::try_from(ts.tv_nsec)
                    .ok()
                    .filter(|n| *n < 1_000_000_000)?;
                return std::time::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// The source address the kernel wrote, if it is IPv4 or IPv6.
#[cfg(target_os = "linux")]
fn socket_addr(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let len = len as usize;
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and storage is
            // larger and at least as aligned.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Portable fallback: one datagram per read; the readiness is kept until a read finds the
/// socket empty.
#[cfg(not(target_os = "linux"))]
fn read_now(
    socket: &MediaSocket,
    bufs: &mut [[u8; DATAGRAM]; BATCH],
    meta: &mut [Meta; BATCH],
) -> io::Result<usize> {
    let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
        return Ok(0);
    };
    let (len, from) = socket.try_recv_from(buf)?;
    *slot = (len, Some(from), None);
    Ok(1)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A loopback media socket read on the clock, as a transcoding call reads it (directly,
    /// whatever the reactor has or has not seen yet), its address, and a peer to send from.
    fn clocked_socket_and_peer() -> (MediaSocket, SocketAddr, std::net::UdpSocket) {
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut socket = MediaSocket::adopt(bound).expect("adopt");
        socket.set_clocked(true).expect("clock");
        let addr = socket.local_addr().expect("addr");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        (socket, addr, peer)
    }

    /// A datagram read 80 ms after it arrived is stamped with its arrival, not the read.
    #[tokio::test]
    async fn datagrams_carry_their_arrival_time() {
        let (socket, addr, peer) = clocked_socket_and_peer();
        let sent_at = Instant::now();
        peer.send_to(b"early", addr).expect("send");
        std::thread::sleep(Duration::from_millis(80));
        let mut batch = RecvBatch::default();
        assert!(matches!(batch.read(&socket), ReadOutcome::Got));
        let read_at = Instant::now();
        let got: Vec<_> = batch.datagrams().collect();
        assert_eq!(got.len(), 1);
        let (data, from, arrived) = got[0];
        assert_eq!((data, from), (&b"early"[..], peer.local_addr().unwrap()));
        assert!(arrived >= sent_at, "not before it was sent");
        assert!(
            read_at.duration_since(arrived) >= Duration::from_millis(70),
            "arrival {:?} before the read",
            read_at.duration_since(arrived)
        );
    }

    /// A burst far beyond the system's default receive queue (256 such datagrams here)
    /// waits whole for the next read of a clocked socket.
    #[tokio::test]
    async fn a_clocked_socket_holds_a_burst() {
        let (socket, addr, peer) = clocked_socket_and_peer();
        let burst = 700;
        for i in 0..burst {
            let mut packet = [0u8; 172];
            packet[..4].copy_from_slice(&(i as u32).to_be_bytes());
            peer.send_to(&packet, addr).expect("send");
        }
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        for _ in 0..burst {
            match batch.read(&socket) {
                ReadOutcome::Got => got.extend(batch.datagrams().map(|(d, _, _)| d[..4].to_vec())),
                ReadOutcome::Empty => break,
                ReadOutcome::Failed(e) => panic!("read failed: {e}"),
            }
        }
        assert_eq!(
            got.len(),
            burst,
            "every datagram of the burst, none dropped"
        );
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, d)| d[..] == (i as u32).to_be_bytes()),
            "in order"
        );
    }

    /// A read that got fewer than a batch says the queue is empty (so the tick's read of a
    /// clocked socket stops there); a full batch does not, and the next read takes the rest.
    #[tokio::test]
    async fn a_short_read_says_the_socket_is_drained() {
        let (socket, addr, peer) = clocked_socket_and_peer();
        let mut batch = RecvBatch::default();
        peer.send_to(b"one", addr).expect("send");
        assert!(matches!(batch.read(&socket), ReadOutcome::Got));
        assert!(batch.drained(), "one datagram of a batch of {BATCH}");
        assert!(matches!(batch.read(&socket), ReadOutcome::Empty));

        for _ in 0..=BATCH {
            peer.send_to(b"more", addr).expect("send");
        }
        assert!(matches!(batch.read(&socket), ReadOutcome::Got));
        assert_eq!(batch.datagrams().count(), BATCH);
        assert!(
            !batch.drained(),
            "a full batch may have left datagrams behind"
        );
        assert!(matches!(batch.read(&socket), ReadOutcome::Got));
        assert_eq!(batch.datagrams().count(), 1);
        assert!(batch.drained());
    }
}
