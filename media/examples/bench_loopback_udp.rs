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
//! `cargo run --release -p callscope-media --example bench_loopback_udp`

use std::net::UdpSocket;
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
    Ok(())
}
