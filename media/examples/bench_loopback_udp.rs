//! What one relayed RTP packet costs the kernel on this machine, apart from anything
//! callscope does: a 172-byte datagram (20 ms of G.711 with its RTP header) sent with
//! `sendto` to a loopback socket and read back with `recv`, timed per call.
//!
//! On loopback the sender's `sendto` also runs the receiver's side of the stack (IP and UDP
//! input, the socket queue, the reader's wake-up) before it returns, so in the media
//! benchmarks, whose peers are SIPp on 127.0.0.1, callscope is charged for SIPp's receive
//! of every packet it relays. The figures are the floor under `scripts/bench-media`'s
//! per-call CPU: a bridged call relays 100 packets a second and reads 100.
//!
//! Then two socket-level changes, timed as a send + receive pair each, alternating round by
//! round so that a noisy neighbour hits them alike: a receive timestamp per datagram
//! (`SO_TIMESTAMPNS`, which the media engine asks for, read as a control message) and a
//! connected sender (`send` instead of `sendto`: no route lookup per datagram).
//!
//! `cargo run --release -p callscope-media --example bench_loopback_udp`

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const DATAGRAM: usize = 172;
/// Datagrams per burst: sent back to back, then read back, so the receive queue stays
/// short (the default receive buffer holds a few hundred).
const BURST: usize = 100;
const BURSTS: usize = 2_000;

fn main() -> std::io::Result<()> {
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    receiver.set_read_timeout(Some(Duration::from_secs(1)))?;
    let to = receiver.local_addr()?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let packet = [0x80u8; DATAGRAM];
    let mut buf = [0u8; 2048];

    let null_calls = 1_000_000;
    let started = Instant::now();
    for _ in 0..null_calls {
        // getppid(2), about the cheapest system call there is: the cost of entering and
        // leaving the kernel, the part of each send and receive that batching would save.
        std::hint::black_box(std::os::unix::process::parent_id());
    }
    let probe = started.elapsed().as_nanos() as f64 / f64::from(null_calls);

    let (mut send_ns, mut recv_ns, mut lost) = (0u128, 0u128, 0usize);
    for _ in 0..BURSTS {
        let t = Instant::now();
        for _ in 0..BURST {
            sender.send_to(&packet, to)?;
        }
        send_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        for _ in 0..BURST {
            match receiver.recv(&mut buf) {
                Ok(n) if n == DATAGRAM => {}
                _ => lost += 1,
            }
        }
        recv_ns += t.elapsed().as_nanos();
    }
    let n = (BURST * BURSTS) as f64;
    let (send, recv) = (send_ns as f64 / n, recv_ns as f64 / n);
    println!("getppid (a system call's round trip): {probe:7.0} ns");
    println!("sendto, {DATAGRAM} B to loopback:      {send:7.0} ns per datagram");
    println!("recv, {DATAGRAM} B:                   {recv:7.0} ns per datagram");
    println!(
        "per bridged call (100 sent + 100 read a second): {:.4} % of a core in these calls alone",
        (send + recv) * 100.0 / 1e9 * 100.0
    );
    if lost > 0 {
        println!("({lost} reads came back short or timed out)");
    }
    socket_options()
}

/// Rounds of the socket-option comparison, and send + receive pairs per variant and round.
const ROUNDS: usize = 8;
const PAIRS: usize = 100_000;

/// The four combinations of timestamp and connected sender, alternated; medians printed.
fn socket_options() -> std::io::Result<()> {
    let variants = [(false, false), (true, false), (false, true), (true, true)];
    let mut figures = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for _ in 0..ROUNDS {
        for (figure, &(timestamp, connected)) in figures.iter_mut().zip(&variants) {
            figure.push(pair_ns(timestamp, connected)?);
        }
    }
    let medians: Vec<f64> = figures
        .iter_mut()
        .map(|f| {
            f.sort_by(f64::total_cmp);
            (f[ROUNDS / 2 - 1] + f[ROUNDS / 2]) / 2.0
        })
        .collect();
    println!("send + one-datagram recvmsg pair, median of {ROUNDS} rounds of {PAIRS}:");
    for (&(timestamp, connected), median) in variants.iter().zip(&medians) {
        let sender = if connected {
            "send (connected)"
        } else {
            "sendto"
        };
        let stamp = if timestamp { " + SO_TIMESTAMPNS" } else { "" };
        println!("  {:<36} {median:7.0} ns", format!("{sender}{stamp}"));
    }
    let base = medians[0];
    let change = |m: f64| format!("{:+.0} ns ({:+.1} %)", m - base, (m - base) * 100.0 / base);
    println!(
        "receive timestamp: {}; connected sender: {}",
        change(medians[1]),
        change(medians[2])
    );
    Ok(())
}

/// Nanoseconds per `sendto`/`send` of one datagram and its `recvmsg` (with room for a
/// control message, as the engine's `recvmmsg` has) over loopback.
fn pair_ns(timestamp: bool, connected: bool) -> std::io::Result<f64> {
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    let to = receiver.local_addr()?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    if connected {
        sender.connect(to)?;
    }
    let fd = receiver.as_raw_fd();
    if timestamp {
        let on: libc::c_int = 1;
        // SAFETY: a live socket and a c_int option value of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let packet = [0x80u8; DATAGRAM];
    let mut buf = [0u8; 2048];
    let mut control = [0u64; 32];
    let started = Instant::now();
    for _ in 0..PAIRS {
        if connected {
            sender.send(&packet)?;
        } else {
            sender.send_to(&packet, to)?;
        }
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid; the pointers set below lead to live buffers
        // of the lengths given, and they outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: `msg` as set up above, on a live socket.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n != DATAGRAM as isize {
            return Err(std::io::Error::other(
                "a loopback datagram did not come back",
            ));
        }
    }
    Ok(started.elapsed().as_nanos() as f64 / PAIRS as f64)
}
