//! CPU of the recording timeline alone (user space, one thread, no I/O): two channels of
//! 20 ms G.711 packets at 8 kHz, released every 200 ms as the engine does.
//!
//! `cargo run --release -p callscope-media --example bench_timeline -- [call-seconds] [rounds]`
//!
//! Time is simulated (packets are stamped, not waited for), so the figure is the timeline's
//! own cost per packet, repeatable on a busy machine: the best of `rounds` is printed.

use std::time::{Duration, Instant};

use callscope_media::recorder::{Channel, StreamTime, Timeline, TimelineConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(600);
    let rounds: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(5);
    let pcm: Vec<i16> = (0..160).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
    let mut best = f64::MAX;
    let mut checksum = 0i64;
    for _ in 0..rounds {
        let origin = Instant::now();
        let mut timeline = Timeline::new(TimelineConfig::new(8000), origin).expect("timeline");
        let mut out = Vec::with_capacity(8192);
        let packets = seconds * 50;
        let started = Instant::now();
        for n in 0..packets {
            let now = origin + Duration::from_millis(20 * (n + 1));
            for (channel, offset) in [(Channel::Agent, 0u32), (Channel::Customer, 4000)] {
                let time = StreamTime::Rtp {
                    timestamp: offset.wrapping_add(160 * n as u32),
                    clock_rate: 8000,
                };
                let _ = timeline.push(channel, time, &pcm, now);
            }
            if n % 10 == 9 {
                out.clear();
                timeline.advance(now, &mut out);
                checksum += out.iter().map(|&s| i64::from(s)).sum::<i64>();
            }
        }
        let ns = started.elapsed().as_nanos() as f64 / (packets * 2) as f64;
        best = best.min(ns);
    }
    println!("timeline: {best:.0} ns per 20 ms packet (best of {rounds}; checksum {checksum})");
}
