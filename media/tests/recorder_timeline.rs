//! Recording timeline: exact sample positions under loss, reordering, DTX, late and duplicate
//! packets, timestamp wrap, channels that start at different times, pause/resume, and
//! hostile input.

use std::time::{Duration, Instant};

use callscope_media::recorder::{Channel, StreamTime, Timeline, TimelineConfig, TimelineError};

const RATE: u32 = 8000;
const PKT: usize = 160; // 20 ms at 8 kHz

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rtp(timestamp: u32) -> StreamTime {
    StreamTime::Rtp {
        timestamp,
        clock_rate: RATE,
    }
}

/// A packet whose samples all carry `value`, so positions can be read back from the output.
fn packet(value: i16) -> Vec<i16> {
    vec![value; PKT]
}

fn left(out: &[i16]) -> Vec<i16> {
    out.chunks(2).map(|f| f[0]).collect()
}

fn right(out: &[i16]) -> Vec<i16> {
    out.chunks(2).map(|f| f[1]).collect()
}

/// Asserts `channel[range]` all equal `value`.
fn assert_run(channel: &[i16], range: std::ops::Range<usize>, value: i16) {
    let slice = &channel[range.clone()];
    if let Some(bad) = slice.iter().position(|&s| s != value) {
        panic!(
            "frame {} is {} (expected {value} over {range:?})",
            range.start + bad,
            slice[bad]
        );
    }
}

#[test]
fn loss_reorder_dtx_late_and_duplicates_land_at_exact_frames() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let mut out = Vec::new();
    // Packet 3 carries timestamp u32::MAX; packet 4 wraps to 159.
    let base: u32 = u32::MAX - 3 * PKT as u32;
    let ts = |k: u32| base.wrapping_add(k * PKT as u32);
    // Packet k covers frames 160k..160(k+1) and arrives when its last sample was captured.
    let arrive = |k: u64| t0 + ms(20 * (k + 1));

    // 0, 1, 2 in order; 3 lost; 5 before 4 (reordered); 4 twice (duplicate).
    for k in 0..3u32 {
        let o = tl
            .push(
                Channel::Agent,
                rtp(ts(k)),
                &packet(k as i16 + 1),
                arrive(k.into()),
            )
            .unwrap();
        assert_eq!(o.placed, PKT as u64, "packet {k}");
    }
    tl.advance(arrive(3), &mut out);
    tl.push(Channel::Agent, rtp(ts(5)), &packet(6), arrive(5))
        .unwrap();
    let first = tl
        .push(Channel::Agent, rtp(ts(4)), &packet(5), arrive(5))
        .unwrap();
    let dup = tl
        .push(Channel::Agent, rtp(ts(4)), &packet(5), arrive(5))
        .unwrap();
    assert_eq!((first.placed, first.duplicate), (PKT as u64, 0));
    assert_eq!((dup.placed, dup.duplicate), (0, PKT as u64));
    // DTX: nothing for 1 s after packet 5, then packet 56 (frames 8960..9120) on time.
    tl.advance(arrive(30), &mut out);
    tl.push(Channel::Agent, rtp(ts(56)), &packet(57), arrive(56))
        .unwrap();
    tl.advance(arrive(56), &mut out);
    // Packet 40 shows up 400 ms late: its frames were emitted (silence) 200 ms ago.
    let late = tl
        .push(Channel::Agent, rtp(ts(40)), &packet(41), arrive(60))
        .unwrap();
    assert_eq!((late.placed, late.late), (0, PKT as u64));
    tl.finish(arrive(60), &mut out);

    let l = left(&out);
    assert_eq!(
        l.len(),
        160 * 61,
        "recording lasts until the wall clock at finish"
    );
    assert_run(&l, 0..160, 1);
    assert_run(&l, 160..320, 2);
    assert_run(&l, 320..480, 3);
    assert_run(&l, 480..640, 0); // lost packet 3 → silence of exactly one packet
    assert_run(&l, 640..800, 5);
    assert_run(&l, 800..960, 6);
    assert_run(&l, 960..8960, 0); // DTX gap
    assert_run(&l, 8960..9120, 57);
    assert_run(&l, 9120..l.len(), 0);
    assert_run(&right(&out), 0..l.len(), 0); // the customer never spoke
    let stats = tl.stats();
    assert_eq!(stats.late_samples[0], PKT as u64);
    assert_eq!(stats.duplicate_samples[0], PKT as u64);
    assert_eq!(
        stats.resyncs,
        [0, 0],
        "timestamp wrap must not look like a jump"
    );
    assert_eq!(stats.emitted_frames, l.len() as u64);
}

#[test]
fn channels_starting_at_different_times_stay_aligned_to_the_wall_clock() {
    // 16 kHz recording; the customer leg is Opus (48 kHz RTP clock) and starts 1 s later
    // with an unrelated timestamp base.
    let rate = 16_000;
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(rate), t0).unwrap();
    let mut out = Vec::new();
    let pkt = 320; // 20 ms at 16 kHz
    for k in 0..150u32 {
        let now = t0 + ms(20 * (u64::from(k) + 1));
        let agent = StreamTime::Rtp {
            timestamp: 77 + k * 320,
            clock_rate: 16_000,
        };
        tl.push(Channel::Agent, agent, &vec![100; pkt], now)
            .unwrap();
        if k >= 50 {
            let j = k - 50;
            let customer = StreamTime::Rtp {
                timestamp: 3_000_000_000u32.wrapping_add(j * 960),
                clock_rate: 48_000,
            };
            tl.push(Channel::Customer, customer, &vec![-200; pkt], now)
                .unwrap();
        }
        tl.advance(now, &mut out);
    }
    tl.finish(t0 + ms(3000), &mut out);
    let (l, r) = (left(&out), right(&out));
    assert_eq!(l.len(), 48_000);
    assert_run(&l, 0..48_000, 100);
    assert_run(&r, 0..16_000, 0);
    assert_run(&r, 16_000..48_000, -200);
}

#[test]
fn media_time_input_is_placed_like_rtp() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let mut out = Vec::new();
    tl.push(
        Channel::Customer,
        StreamTime::Media(ms(5000)),
        &packet(9),
        t0 + ms(20),
    )
    .unwrap();
    // 100 ms later in media time, arriving 100 ms later: frames 800..960.
    tl.push(
        Channel::Customer,
        StreamTime::Media(ms(5100)),
        &packet(8),
        t0 + ms(120),
    )
    .unwrap();
    tl.finish(t0 + ms(200), &mut out);
    let r = right(&out);
    assert_run(&r, 0..160, 9);
    assert_run(&r, 160..800, 0);
    assert_run(&r, 800..960, 8);
    assert_run(&r, 960..1600, 0);
}

#[test]
fn a_timestamp_jump_reanchors_to_the_wall_clock() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let mut out = Vec::new();
    tl.push(Channel::Agent, rtp(1000), &packet(1), t0 + ms(20))
        .unwrap();
    // New stream (e.g. after a re-INVITE) with a timestamp 10 minutes ahead, arriving at 1 s:
    // placed by the wall clock (frames 7840..8000), not 10 minutes into the file.
    let o = tl
        .push(
            Channel::Agent,
            rtp(1000 + 600 * RATE),
            &packet(2),
            t0 + ms(1000),
        )
        .unwrap();
    assert!(o.anchored);
    tl.push(
        Channel::Agent,
        rtp(1000 + 600 * RATE + 160),
        &packet(3),
        t0 + ms(1020),
    )
    .unwrap();
    tl.finish(t0 + ms(1100), &mut out);
    let l = left(&out);
    assert_eq!(l.len(), 8800);
    assert_run(&l, 0..160, 1);
    assert_run(&l, 160..7840, 0);
    assert_run(&l, 7840..8000, 2);
    assert_run(&l, 8000..8160, 3);
    assert_eq!(tl.stats().resyncs, [1, 0]);
}

#[test]
fn a_fast_sender_clock_cannot_drag_a_channel_beyond_the_resync_threshold() {
    // The customer's RTP clock runs 5 % fast for 60 s: without correction it would end 3 s
    // ahead of the agent. It must never be placed more than the threshold from the wall clock.
    let t0 = Instant::now();
    let cfg = TimelineConfig {
        resync_threshold: ms(100),
        ..TimelineConfig::new(RATE)
    };
    let mut tl = Timeline::new(cfg, t0).unwrap();
    let mut out = Vec::new();
    for k in 0..3000u64 {
        let now = t0 + ms(20 * (k + 1));
        tl.push(Channel::Agent, rtp((k * 160) as u32), &packet(1), now)
            .unwrap();
        tl.push(Channel::Customer, rtp((k * 168) as u32), &packet(2), now)
            .unwrap();
        tl.advance(now, &mut out);
    }
    tl.finish(t0 + ms(60_000), &mut out);
    let r = right(&out);
    // The last customer packet arrived at 60 s; its samples must end within 100 ms + one
    // packet of 60 s.
    let last = r.iter().rposition(|&s| s == 2).unwrap() as i64 + 1;
    assert!(
        (last - 480_000).abs() <= 800 + 160,
        "customer ends at frame {last}"
    );
    assert!(
        tl.stats().resyncs[1] >= 20,
        "drift must have been corrected: {:?}",
        tl.stats()
    );
    assert_eq!(left(&out).len(), r.len());
}

#[test]
fn pause_and_resume_write_silence_and_report_the_interval() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let mut out = Vec::new();
    for k in 0..150u64 {
        let now = t0 + ms(20 * (k + 1));
        let ts = (k * 160) as u32;
        tl.push(Channel::Agent, rtp(ts), &packet(10), now).unwrap();
        tl.push(Channel::Customer, rtp(ts + 999), &packet(-10), now)
            .unwrap();
        if k + 1 == 50 {
            let p = tl.pause(now).unwrap();
            assert_eq!(p.start_frame, 8000);
            assert_eq!(tl.pause(now), Err(TimelineError::AlreadyPaused));
        }
        if k + 1 == 100 {
            let p = tl.resume(now).unwrap();
            assert_eq!((p.start_frame, p.end_frame), (8000, Some(16_000)));
        }
        tl.advance(now, &mut out);
    }
    assert_eq!(tl.resume(t0 + ms(3000)), Err(TimelineError::NotPaused));
    tl.finish(t0 + ms(3000), &mut out);
    let (l, r) = (left(&out), right(&out));
    assert_eq!(l.len(), 24_000);
    assert_run(&l, 0..8000, 10);
    assert_run(&r, 0..8000, -10);
    assert_run(&l, 8000..16_000, 0);
    assert_run(&r, 8000..16_000, 0);
    assert_run(&l, 16_000..24_000, 10);
    assert_run(&r, 16_000..24_000, -10);
    assert_eq!(tl.pauses().len(), 1);
    assert_eq!(tl.frame_time(tl.pauses()[0].start_frame), ms(1000));
}

#[test]
fn a_pause_still_open_at_finish_is_closed_there() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    tl.pause(t0 + ms(500)).unwrap();
    let mut out = Vec::new();
    tl.finish(t0 + ms(800), &mut out);
    assert_eq!(tl.pauses()[0].end_frame, Some(6400));
    assert_eq!(
        tl.push(Channel::Agent, rtp(0), &packet(1), t0 + ms(900)),
        Err(TimelineError::Finished)
    );
}

#[test]
fn bad_configuration_and_packets_are_refused() {
    let t0 = Instant::now();
    assert_eq!(
        Timeline::new(TimelineConfig::new(44_100), t0).unwrap_err(),
        TimelineError::UnsupportedRate(44_100)
    );
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let zero = StreamTime::Rtp {
        timestamp: 0,
        clock_rate: 0,
    };
    assert_eq!(
        tl.push(Channel::Agent, zero, &packet(1), t0),
        Err(TimelineError::ZeroClockRate)
    );
    let huge = vec![1i16; 8001];
    assert!(matches!(
        tl.push(Channel::Agent, rtp(0), &huge, t0),
        Err(TimelineError::PacketTooLong { .. })
    ));
}

#[test]
fn buffering_stays_bounded_when_advance_is_not_called() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    // An hour passes without `advance`: the packet would sit 3600 s ahead of what was
    // emitted; it is dropped and counted instead of growing the buffer by an hour.
    let o = tl
        .push(
            Channel::Agent,
            rtp(0),
            &packet(1),
            t0 + Duration::from_secs(3600),
        )
        .unwrap();
    assert_eq!(o.overrun, PKT as u64);
    assert_eq!(o.placed, 0);
}

/// Small deterministic generator so the hostile test needs no extra dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn hostile_input_never_panics_and_output_stays_whole_frames() {
    let t0 = Instant::now();
    for seed in 0..20u64 {
        let mut rng = Lcg(seed);
        let cfg = TimelineConfig::new([8000, 16_000, 48_000][(seed % 3) as usize]);
        let mut tl = Timeline::new(cfg, t0).unwrap();
        let mut out = Vec::new();
        let mut now = t0;
        let mut total = 0u64;
        for _ in 0..500 {
            // Wall clock moves forward, sometimes backwards (NTP step), sometimes far ahead.
            now = match rng.next() % 10 {
                0 => now.checked_sub(ms(rng.next() % 5000)).unwrap_or(now),
                1 => now + ms(rng.next() % 5000),
                _ => now + ms(rng.next() % 40),
            };
            let channel = if rng.next().is_multiple_of(2) {
                Channel::Agent
            } else {
                Channel::Customer
            };
            let time = match rng.next() % 4 {
                0 => StreamTime::Media(Duration::from_nanos(rng.next() << 30)),
                1 => StreamTime::Media(Duration::MAX),
                _ => StreamTime::Rtp {
                    timestamp: (rng.next() as u32) ^ ((rng.next() as u32) << 16),
                    clock_rate: [0, 1, 8000, 48_000, u32::MAX][(rng.next() % 5) as usize],
                },
            };
            let len = (rng.next() % 2000) as usize;
            let samples: Vec<i16> = (0..len).map(|_| rng.next() as i16).collect();
            let _ = tl.push(channel, time, &samples, now);
            match rng.next() % 8 {
                0 => drop(tl.pause(now)),
                1 => drop(tl.resume(now)),
                2 => tl.restart_channel(channel),
                _ => {}
            }
            total += tl.advance(now, &mut out);
            assert_eq!(out.len() as u64, total * 2);
        }
        total += tl.finish(now, &mut out);
        assert_eq!(out.len() as u64, total * 2);
        assert_eq!(tl.stats().emitted_frames, total);
    }
}

#[test]
fn several_pauses_each_silence_exactly_their_interval() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(RATE), t0).unwrap();
    let mut out = Vec::new();
    // Pauses at [0.5 s, 0.7 s), [1.0 s, 1.1 s), and one at 1.2 s resumed by a clock that
    // stepped back 40 ms (so it covers nothing).
    let events = [
        (25u64, true),
        (35, false),
        (50, true),
        (55, false),
        (60, true),
    ];
    for k in 0..100u64 {
        let now = t0 + ms(20 * (k + 1));
        tl.push(Channel::Agent, rtp((k * 160) as u32), &packet(7), now)
            .unwrap();
        for &(at, pause) in &events {
            if at == k + 1 {
                if pause {
                    tl.pause(now).unwrap();
                } else {
                    tl.resume(now).unwrap();
                }
            }
        }
        // The clock steps back 40 ms right after the third pause began.
        if k + 1 == 60 {
            tl.resume(t0 + ms(20 * 58)).unwrap();
        }
        tl.advance(now, &mut out);
    }
    tl.finish(t0 + ms(2000), &mut out);
    let l = left(&out);
    assert_run(&l, 0..4000, 7);
    assert_run(&l, 4000..5600, 0);
    assert_run(&l, 5600..8000, 7);
    assert_run(&l, 8000..8800, 0);
    assert_run(&l, 8800..9600, 7);
    assert_run(&l, 9600..16_000, 7); // the stepped-back resume closed an empty interval
    let got: Vec<_> = tl
        .pauses()
        .iter()
        .map(|p| (p.start_frame, p.end_frame))
        .collect();
    assert_eq!(
        got,
        vec![(4000, Some(5600)), (8000, Some(8800)), (9600, Some(9600))]
    );
}
