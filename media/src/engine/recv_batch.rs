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
//! Other systems read one datagram per call the portable way (as before).

use std::io;
use std::net::SocketAddr;

use super::socket::MediaSocket;

/// Largest datagram we read (anything longer is truncated and then fails to parse).
pub const DATAGRAM: usize = 2048;
/// Datagrams asked for per read. RTP at 20 ms brings one per wake-up; more only arrive
/// together after a stall, so a small batch is enough, and it is 8 KiB per call.
pub const BATCH: usize = 4;

/// Whether a read that returned fewer datagrams than asked has drained the socket.
const SHORT_READ_MEANS_EMPTY: bool = cfg!(target_os = "linux");

/// Up to [`BATCH`] datagrams from one read: payloads, lengths and sources.
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    meta: [(usize, Option<SocketAddr>); BATCH],
    count: usize,
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
            meta: [(0, None); BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last read, in arrival order, with their sources (a datagram
    /// whose source could not be decoded is skipped).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.bufs
            .iter()
            .zip(self.meta.iter())
            .take(self.count)
            .filter_map(|(buf, (len, from))| Some((buf.get(..*len)?, (*from)?)))
    }

    /// Reads what `socket` holds, up to a batch; call when tokio said it is readable.
    pub fn read(&mut self, socket: &MediaSocket) -> ReadOutcome {
        self.count = 0;
        let mut got = 0usize;
        let result = socket.try_read(|| {
            got = read_now(socket, &mut self.bufs, &mut self.meta)?;
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
    meta: &mut [(usize, Option<SocketAddr>); BATCH],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((buf, iov), (addr, msg)) in bufs
        .iter_mut()
        .zip(iovs.iter_mut())
        .zip(addrs.iter_mut().zip(msgs.iter_mut()))
    {
        iov.iov_base = buf.as_mut_ptr().cast();
        iov.iov_len = DATAGRAM;
        msg.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
        msg.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
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
    for ((msg, addr), slot) in msgs.iter().zip(addrs.iter()).zip(meta.iter_mut()).take(n) {
        *slot = (
            (msg.msg_len as usize).min(DATAGRAM),
            socket_addr(addr, msg.msg_hdr.msg_namelen),
        );
    }
    Ok(n)
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
    meta: &mut [(usize, Option<SocketAddr>); BATCH],
) -> io::Result<usize> {
    let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
        return Ok(0);
    };
    let (len, from) = socket.try_recv_from(buf)?;
    *slot = (len, Some(from));
    Ok(1)
}
