//! A bounded, deterministic mini-fuzz over real files of every format: flipped bytes, cut
//! tails, spliced garbage. Each input must yield audio or a bad-input error, never a panic.
//! (The open-ended version is the cargo-fuzz target in `transcription/fuzz`.)

mod common;

use callscope_transcription::decode::StreamDecoder;
use common::*;

fn mutate(seed: u64, original: &[u8]) -> Vec<u8> {
    let r = pseudo_random_bytes(seed, 128);
    let pick = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap()) as usize;
    let mut bytes = original.to_vec();
    let len = bytes.len().max(1);
    match seed % 4 {
        // Flip a handful of bytes, often in the header where parsers are most exposed.
        0 => {
            for k in 0..8 {
                let at = if k < 4 {
                    pick(k) % len.min(256)
                } else {
                    pick(k) % len
                };
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= (pick(k + 1) as u8) | 1;
                }
            }
        }
        // Cut at a random point.
        1 => bytes.truncate(pick(0) % len),
        // Overwrite a random span with garbage.
        2 => {
            let at = pick(0) % len;
            let span = (pick(1) % 4096).min(len - at);
            let junk = pseudo_random_bytes(seed ^ 0xdead, span);
            bytes[at..at + span].copy_from_slice(&junk);
        }
        // Duplicate a span (repeated packets / headers).
        _ => {
            let at = pick(0) % len;
            let span = (pick(1) % 8192).min(len - at);
            let copy = bytes[at..at + span].to_vec();
            bytes.splice(at..at, copy);
        }
    }
    bytes
}

#[test]
fn mutated_files_never_panic() {
    let call = scripted_call();
    let mut outcomes = [0usize; 2];
    for (i, enc) in ENCODINGS.iter().enumerate() {
        let original = std::fs::read(encode(call, enc)).unwrap();
        for round in 0..12u64 {
            let seed = (i as u64) * 1000 + round + 1;
            let bytes = mutate(seed, &original);
            let result = std::panic::catch_unwind(|| {
                let mut decoder = match StreamDecoder::from_bytes(bytes) {
                    Ok(d) => d,
                    Err(e) => return Err(e),
                };
                let mut chunk = Vec::new();
                let mut frames = 0u64;
                for _ in 0..1_000_000 {
                    match decoder.next_chunk(&mut chunk) {
                        Ok(true) => frames += chunk.first().map_or(0, |c| c.len() as u64),
                        Ok(false) => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(frames)
            });
            match result {
                Ok(Ok(frames)) => {
                    assert!(frames > 0, "{} seed {seed}: Ok with no audio", enc.name);
                    outcomes[0] += 1;
                }
                Ok(Err(e)) => {
                    assert!(e.is_bad_input(), "{} seed {seed}: {e}", enc.name);
                    outcomes[1] += 1;
                }
                Err(_) => panic!("{} seed {seed}: decoder panicked", enc.name),
            }
        }
    }
    eprintln!("decoded: {}, rejected: {}", outcomes[0], outcomes[1]);
    assert_eq!(outcomes.iter().sum::<usize>(), ENCODINGS.len() * 12);
}

#[test]
fn random_inputs_never_panic() {
    for seed in 1..200u64 {
        let len = (seed as usize * 7919) % 20_000;
        let mut bytes = pseudo_random_bytes(seed, len);
        // Give some inputs a real magic number so the container parsers get exercised too.
        let magic: &[u8] = match seed % 6 {
            0 => b"RIFF\x24\x00\x00\x00WAVEfmt ",
            1 => b"OggS\x00\x02",
            2 => b"fLaC\x00\x00\x00\x22",
            3 => b"ID3\x04\x00\x00",
            4 => &[0x1A, 0x45, 0xDF, 0xA3],
            _ => b"\x00\x00\x00\x18ftypM4A ",
        };
        bytes.splice(0..0, magic.iter().copied());
        let result = std::panic::catch_unwind(|| match StreamDecoder::from_bytes(bytes) {
            Ok(mut d) => {
                let mut chunk = Vec::new();
                for _ in 0..100_000 {
                    match d.next_chunk(&mut chunk) {
                        Ok(true) => {}
                        Ok(false) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => assert!(e.is_bad_input(), "seed {seed}: {e}"),
            Err(_) => panic!("seed {seed}: panic"),
        }
    }
}
