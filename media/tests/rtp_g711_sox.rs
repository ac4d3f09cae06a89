//! Our G.711 against an independent implementation: SoX's `ul`/`al` raw formats. Decoding
//! all 256 codes must agree with SoX exactly. For encoding, SoX first rounds the sample to
//! 13/14 bits (and shifts negatives before negating, rounding their magnitude up); we compare
//! |x| itself against G.711's decision values. So the two may differ for samples within a
//! rounding step of a decision boundary: always by one level, with ours inside the G.711
//! interval of the code we chose.

use callscope_media::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use std::path::Path;
use std::process::Command;

fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox is installed (apt-get install sox)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn decode_matches_sox_for_every_code() {
    let dir = tempfile::tempdir().unwrap();
    let codes: Vec<u8> = (0..=255).collect();
    std::fs::write(dir.path().join("codes.raw"), &codes).unwrap();
    for (kind, decode) in [
        ("ul", ulaw_to_linear as fn(u8) -> i16),
        ("al", alaw_to_linear),
    ] {
        let out = path(dir.path(), &format!("{kind}.s16"));
        sox(&[
            "-t",
            kind,
            "-r",
            "8000",
            "-c",
            "1",
            &path(dir.path(), "codes.raw"),
            "-t",
            "s16",
            "-L",
            &out,
        ]);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 512);
        for (code, pair) in bytes.chunks_exact(2).enumerate() {
            let theirs = i16::from_le_bytes([pair[0], pair[1]]);
            assert_eq!(decode(code as u8), theirs, "{kind} code {code:#04x}");
        }
    }
}

/// Width of the G.711 quantisation interval a code stands for, on the 16-bit scale.
fn ulaw_step(code: u8) -> i32 {
    8 << ((!code >> 4) & 7)
}

fn alaw_step(code: u8) -> i32 {
    16 << (((code ^ 0x55) >> 4) & 7).saturating_sub(1)
}

#[test]
fn encode_matches_sox_for_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(dir.path().join("all.s16"), raw).unwrap();
    type Law = (&'static str, fn(i16) -> u8, fn(u8) -> i16, fn(u8) -> i32);
    let laws: [Law; 2] = [
        ("ul", linear_to_ulaw, ulaw_to_linear, ulaw_step),
        ("al", linear_to_alaw, alaw_to_linear, alaw_step),
    ];
    for (kind, encode, decode, step) in laws {
        let out = path(dir.path(), &format!("enc.{kind}"));
        // -D: no dither, so SoX quantises deterministically.
        sox(&[
            "-D",
            "-t",
            "s16",
            "-r",
            "8000",
            "-c",
            "1",
            "-L",
            &path(dir.path(), "all.s16"),
            "-t",
            kind,
            &out,
        ]);
        let theirs = std::fs::read(&out).unwrap();
        assert_eq!(theirs.len(), samples.len());
        // Distinct decoded levels in order, to tell neighbouring quantiser steps.
        let mut levels: Vec<i16> = (0..=255u8).map(decode).collect();
        levels.sort_unstable();
        levels.dedup();
        let mut differing = 0;
        for (&x, &t) in samples.iter().zip(&theirs) {
            let ours = encode(x);
            // µ-law's two zeros (0xFF, 0x7F) are the same level.
            if ours == t || decode(ours) == decode(t) {
                continue;
            }
            differing += 1;
            let err = |c: u8| (i32::from(decode(c)) - i32::from(x)).abs();
            let rank = |c: u8| levels.binary_search(&decode(c)).unwrap_or(usize::MAX);
            assert_eq!(
                rank(ours).abs_diff(rank(t)),
                1,
                "{kind}: {x} gives non-adjacent levels {ours:#04x} / {t:#04x}"
            );
            assert!(
                err(ours) <= step(ours) / 2,
                "{kind}: {x}: ours {ours:#04x} (err {}) outside its G.711 interval; sox {t:#04x}",
                err(ours)
            );
        }
        // Near-boundary samples are a small minority.
        assert!(differing < 2_000, "{kind}: {differing} samples differ");
        eprintln!(
            "{kind}: {differing} of 65536 samples encode differently from sox (adjacent levels, ours within its G.711 interval)"
        );
    }
}
