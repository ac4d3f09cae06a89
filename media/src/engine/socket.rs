//! A leg's UDP socket, watched by the reactor for reading only, or read on the call's clock.
//!
//! tokio's `UdpSocket` registers every socket for readable *and* writable events. On
//! Linux each datagram we send is freed inside `sendto` (on loopback at once, on a NIC at
//! transmit completion), and freeing it signals "writable" to every epoll watching the
//! socket: with both interests, each packet we relay puts an event on our own epoll
//! ready list that the next `epoll_wait` must collect and re-poll, only for tokio to find
//! nobody waiting for it. The media path never waits to write (a send that would block is
//! counted as a send error and the packet dropped, as a real-time relay must), so these
//! sockets are registered with read interest only and sent on directly.
//!
//! A transcoding call plays its audio out on a 20 ms tick, and what arrives between two
//! ticks is only needed at the next one. Its RTP sockets are then taken off the reactor
//! ([`MediaSocket::set_clocked`]) and read on the tick: every packet would otherwise wake the
//! media thread once (browsers send on their own clocks, so their packets rarely share a
//! wake-up), and at 50 softphone calls that was ≈ 3,400 wake-ups a second against 50
//! ticks. The kernel's receive timestamp of each datagram (`recv_batch`) keeps arrival
//! times, and with them jitter and playout, exact.
//!
//! Elsewhere than Unix the portable tokio socket is used as before, never clocked.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::sync::Arc;
use std::task::{Context, Poll};

#[cfg(unix)]
use tokio::io::unix::AsyncFd;

pub struct MediaSocket {
    /// The reactor's registration, None while the socket is clocked. Declared before
    /// `socket` so that it is dropped (deregistered) first.
    #[cfg(unix)]
    watch: Option<AsyncFd<Arc<std::net::UdpSocket>>>,
    #[cfg(unix)]
    socket: Arc<std::net::UdpSocket>,
    #[cfg(not(unix))]
    socket: tokio::net::UdpSocket,
}

impl std::fmt::Debug for MediaSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSocket")
            .field("local", &self.local_addr().ok())
            .field("clocked", &self.is_clocked())
            .finish()
    }
}

#[cfg(unix)]
fn register(socket: &Arc<std::net::UdpSocket>) -> io::Result<AsyncFd<Arc<std::net::UdpSocket>>> {
    // SAFETY: the registration holds its own `Arc` of the socket, so the descriptor stays
    // open and the same for the registration's whole life (no `into_inner` either).
    unsafe { AsyncFd::register_with_interest(socket.clone(), tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

impl MediaSocket {
    /// Registers a bound, non-blocking socket with the current runtime (call from inside
    /// the task that will read it).
    pub fn adopt(socket: std::net::UdpSocket) -> io::Result<MediaSocket> {
        socket.set_nonblocking(true)?;
        super::recv_batch::prepare_receive(&socket);
        #[cfg(unix)]
        {
            let socket = Arc::new(socket);
            let watch = Some(register(&socket)?);
            Ok(MediaSocket { watch, socket })
        }
        #[cfg(not(unix))]
        {
            Ok(MediaSocket {
                socket: tokio::net::UdpSocket::from_std(socket)?,
            })
        }
    }

    /// The bound socket itself (for the system calls tokio does not wrap).
    #[cfg(unix)]
    pub fn std(&self) -> &std::net::UdpSocket {
        &self.socket
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether the socket is read on the call's clock rather than by readiness.
    pub fn is_clocked(&self) -> bool {
        #[cfg(unix)]
        {
            self.watch.is_none()
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// Takes the socket off the reactor (`true`: the caller reads it on its clock) or puts
    /// it back (`false`). Call from the task that reads it. If registering again fails the
    /// socket stays clocked and the error is returned.
    pub fn set_clocked(&mut self, clocked: bool) -> io::Result<()> {
        #[cfg(unix)]
        {
            if clocked {
                // Dropping the registration deregisters the descriptor from epoll.
                self.watch = None;
            } else if self.watch.is_none() {
                self.watch = Some(register(&self.socket)?);
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            let _ = clocked;
            Ok(())
        }
    }

    /// Sends now or fails (`WouldBlock` when the socket's buffer is full): never waits.
    pub fn try_send_to(&self, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        #[cfg(unix)]
        {
            self.socket.send_to(packet, to)
        }
        #[cfg(not(unix))]
        {
            self.socket.try_send_to(packet, to)
        }
    }

    /// Ready when the reactor saw datagrams arrive (registers `cx`'s waker otherwise). A
    /// clocked socket is never ready this way: its owner reads it on the clock.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        #[cfg(unix)]
        {
            // The guard is dropped without clearing: `try_read` clears the readiness when
            // a read finds the socket empty.
            match &self.watch {
                Some(watch) => watch.poll_read_ready(cx).map_ok(|_guard| ()),
                None => Poll::Pending,
            }
        }
        #[cfg(not(unix))]
        {
            self.socket.poll_recv_ready(cx)
        }
    }

    /// Runs a read on the socket; a `WouldBlock` from `read` clears the readiness (a
    /// clocked socket has none to clear).
    pub fn try_read<R>(&self, read: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        #[cfg(unix)]
        {
            match &self.watch {
                Some(watch) => watch.try_io(tokio::io::Interest::READABLE, |_| read()),
                None => read(),
            }
        }
        #[cfg(not(unix))]
        {
            self.socket.try_io(tokio::io::Interest::READABLE, read)
        }
    }

    /// One datagram, if one is queued (portable path).
    #[cfg(not(target_os = "linux"))]
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(unix)]
        {
            self.socket.recv_from(buf)
        }
        #[cfg(not(unix))]
        {
            self.socket.try_recv_from(buf)
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// The event masks every epoll instance of this process holds for `fd` (from
    /// /proc/self/fdinfo of each epoll descriptor: `tfd: <fd> events: <hex mask> ...`).
    fn epoll_masks_for(fd: i32) -> Vec<u32> {
        let mut masks = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return masks;
        };
        for entry in dir.flatten() {
            let is_epoll = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().contains("eventpoll"))
                .unwrap_or(false);
            if !is_epoll {
                continue;
            }
            let info_path = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
            let info = std::fs::read_to_string(info_path).unwrap_or_default();
            for line in info.lines() {
                let mut words = line.split_whitespace();
                if words.next() != Some("tfd:") || words.next() != Some(&fd.to_string()) {
                    continue;
                }
                if words.next() == Some("events:")
                    && let Some(mask) = words.next().and_then(|m| u32::from_str_radix(m, 16).ok())
                {
                    masks.push(mask);
                }
            }
        }
        masks
    }

    #[tokio::test]
    async fn registered_for_reading_only_and_reads_what_arrives() {
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let socket = MediaSocket::adopt(bound).expect("adopt");
        let addr = socket.local_addr().expect("addr");

        // The reactor's epoll may be open under two descriptors (mio keeps a duplicate for
        // its registry), so the one registration can be listed more than once.
        let masks = epoll_masks_for(socket.std().as_raw_fd());
        assert!(!masks.is_empty(), "registered with the reactor");
        for mask in masks {
            assert_ne!(mask & libc::EPOLLIN as u32, 0, "readable: {mask:x}");
            assert_eq!(mask & libc::EPOLLOUT as u32, 0, "not writable: {mask:x}");
        }

        // Sends work without any writable interest, and a datagram arriving wakes a reader.
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        let peer_addr = peer.local_addr().expect("peer addr");
        assert_eq!(socket.try_send_to(b"out", peer_addr).expect("send"), 3);
        let mut buf = [0u8; 16];
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (n, from) = peer.recv_from(&mut buf).expect("peer receives");
        assert_eq!((&buf[..n], from), (&b"out"[..], addr));

        peer.send_to(b"in", addr).expect("peer sends");
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                std::future::poll_fn(|cx| socket.poll_recv_ready(cx))
                    .await
                    .expect("ready");
                let read = socket.try_read(|| socket.std().recv_from(&mut buf));
                match read {
                    Ok((n, from)) => break (buf[..n].to_vec(), from),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        })
        .await
        .expect("datagram within 5 s");
        assert_eq!(got, (b"in".to_vec(), peer_addr));

        // Drained: the next read reports WouldBlock (and clears the readiness).
        let again = socket.try_read(|| socket.std().recv_from(&mut buf));
        assert_eq!(
            again.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::WouldBlock)
        );
    }

    #[tokio::test]
    async fn a_clocked_socket_leaves_the_reactor_and_comes_back() {
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut socket = MediaSocket::adopt(bound).expect("adopt");
        let fd = socket.std().as_raw_fd();
        let addr = socket.local_addr().expect("addr");
        assert!(!socket.is_clocked());
        assert!(!epoll_masks_for(fd).is_empty(), "registered at first");

        socket.set_clocked(true).expect("clock");
        assert!(socket.is_clocked());
        assert!(
            epoll_masks_for(fd).is_empty(),
            "no epoll watches a clocked socket"
        );
        // Never ready by readiness; read directly, on the owner's clock.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(socket.poll_recv_ready(&mut cx).is_pending());
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.send_to(b"tick", addr).expect("peer sends");
        let mut buf = [0u8; 16];
        let mut got = None;
        for _ in 0..500 {
            match socket.try_read(|| socket.std().recv_from(&mut buf)) {
                Ok((n, _)) => {
                    got = Some(buf[..n].to_vec());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
        assert_eq!(got.as_deref(), Some(&b"tick"[..]));
        socket
            .set_clocked(true)
            .expect("clocking twice is harmless");

        socket.set_clocked(false).expect("back on the reactor");
        assert!(!socket.is_clocked());
        let masks = epoll_masks_for(fd);
        assert!(!masks.is_empty(), "registered again");
        assert!(masks.iter().all(|m| m & libc::EPOLLIN as u32 != 0));
        peer.send_to(b"event", addr).expect("peer sends");
        let ready = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| socket.poll_recv_ready(cx)),
        )
        .await;
        assert!(matches!(ready, Ok(Ok(()))), "readiness wakes again");
    }
}
