//! Test support: writes a whisper ggml model with random weights, so the real whisper.cpp
//! inference path runs in tests without a downloaded model (none can be fetched here).
//!
//! A Rust port of /work/shared/tools/gen_random_whisper_ggml.py, except that the vocabulary
//! and mel filter bank are copied from the vocabulary-only fixture `for-tests-ggml-tiny.en.bin`
//! (so decoded tokens are real English BPE pieces). The network is tiny (1 encoder and
//! 1 decoder layer, 64 dims, about 7.6 MB) and its weights are random: what it "hears" is
//! nonsense, so tests check structure (segments, times, errors), never words.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The fixtures directory: `$CALLSCOPE_FIXTURES`, else `<workspace>/../shared/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CALLSCOPE_FIXTURES") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// The vocabulary-only fixture model (valid header, vocabulary, mel filters; no weights).
pub fn vocab_only_model() -> PathBuf {
    fixtures_dir().join("models/for-tests-ggml-tiny.en.bin")
}

/// Reads 16 kHz mono s16 WAV into f32 samples in [-1, 1].
pub fn read_wav_16k_mono(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("open wav fixture");
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 16_000, "fixture must be 16 kHz");
    assert_eq!(spec.channels, 1, "fixture must be mono");
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("wav sample")) / 32768.0)
        .collect()
}

/// Deterministic pseudo-random numbers (splitmix64 + Box–Muller); no `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// IEEE 754 binary16 bits of `x`, rounding to nearest.
fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let mut half = (m >> shift) as u16;
        if (m >> (shift - 1)) & 1 != 0 {
            half += 1;
        }
        return sign | half;
    }
    let mut half = sign | ((e as u16) << 10) | ((man >> 13) as u16);
    if man & 0x1000 != 0 {
        half = half.wrapping_add(1);
    }
    half
}

/// Header pieces copied from the vocabulary source.
struct VocabSource {
    n_vocab: i32,
    n_mels: i32,
    /// `n_mel`, `n_fft` and the filter values, as stored.
    mel_block: Vec<u8>,
    /// Token count and the length-prefixed tokens, as stored.
    vocab_block: Vec<u8>,
}

fn le_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_vocab_source(path: &Path) -> VocabSource {
    let bytes = std::fs::read(path).expect("read vocabulary source model");
    assert_eq!(le_i32(&bytes, 0) as u32, 0x6767_6d6c, "source is not ggml");
    let n_vocab = le_i32(&bytes, 4);
    let mel_start = 4 + 11 * 4;
    let n_mel = le_i32(&bytes, mel_start);
    let n_fft = le_i32(&bytes, mel_start + 4);
    let vocab_start = mel_start + 8 + (n_mel * n_fft * 4) as usize;
    let n_tokens = le_i32(&bytes, vocab_start);
    let mut at = vocab_start + 4;
    for _ in 0..n_tokens {
        at += 4 + le_i32(&bytes, at) as usize;
    }
    VocabSource {
        n_vocab,
        n_mels: n_mel,
        mel_block: bytes[mel_start..vocab_start].to_vec(),
        vocab_block: bytes[vocab_start..at].to_vec(),
    }
}

const STATE: i32 = 64;
const HEADS: i32 = 2;

struct Writer {
    out: BufWriter<File>,
    rng: Rng,
}

impl Writer {
    fn i32(&mut self, v: i32) {
        self.out.write_all(&v.to_le_bytes()).expect("write");
    }

    /// One tensor, `shape` in numpy order (outermost first) as the Python script gives it.
    fn tensor(&mut self, name: &str, shape: &[i32]) {
        let n: usize = shape.iter().map(|&d| d as usize).product();
        let is_norm_weight = name.ends_with("ln.weight") || name.ends_with("ln_post.weight");
        // whisper.cpp keeps vectors, conv biases and positional embeddings in f32.
        let f32_tensor = shape.len() < 2
            || matches!(
                name,
                "encoder.conv1.bias"
                    | "encoder.conv2.bias"
                    | "encoder.positional_embedding"
                    | "decoder.positional_embedding"
            );
        let shape: Vec<i32> = if matches!(name, "encoder.conv1.bias" | "encoder.conv2.bias") {
            vec![shape[0], 1]
        } else {
            shape.to_vec()
        };
        self.i32(shape.len() as i32);
        self.i32(name.len() as i32);
        self.i32(if f32_tensor { 0 } else { 1 });
        for d in shape.iter().rev() {
            self.i32(*d);
        }
        self.out.write_all(name.as_bytes()).expect("write");
        let mut buf = Vec::with_capacity(n * if f32_tensor { 4 } else { 2 });
        for _ in 0..n {
            let v = if is_norm_weight {
                1.0
            } else {
                self.rng.normal() * 0.02
            };
            if f32_tensor {
                buf.extend_from_slice(&v.to_le_bytes());
            } else {
                buf.extend_from_slice(&f32_to_f16_bits(v).to_le_bytes());
            }
        }
        self.out.write_all(&buf).expect("write");
    }

    fn attention(&mut self, prefix: &str) {
        for part in ["query", "key", "value", "out"] {
            self.tensor(&format!("{prefix}.{part}.weight"), &[STATE, STATE]);
            if part != "key" {
                self.tensor(&format!("{prefix}.{part}.bias"), &[STATE]);
            }
        }
    }

    fn block(&mut self, prefix: &str, cross: bool) {
        self.tensor(&format!("{prefix}.attn_ln.weight"), &[STATE]);
        self.tensor(&format!("{prefix}.attn_ln.bias"), &[STATE]);
        self.attention(&format!("{prefix}.attn"));
        if cross {
            self.tensor(&format!("{prefix}.cross_attn_ln.weight"), &[STATE]);
            self.tensor(&format!("{prefix}.cross_attn_ln.bias"), &[STATE]);
            self.attention(&format!("{prefix}.cross_attn"));
        }
        self.tensor(&format!("{prefix}.mlp_ln.weight"), &[STATE]);
        self.tensor(&format!("{prefix}.mlp_ln.bias"), &[STATE]);
        self.tensor(&format!("{prefix}.mlp.0.weight"), &[4 * STATE, STATE]);
        self.tensor(&format!("{prefix}.mlp.0.bias"), &[4 * STATE]);
        self.tensor(&format!("{prefix}.mlp.2.weight"), &[STATE, 4 * STATE]);
        self.tensor(&format!("{prefix}.mlp.2.bias"), &[STATE]);
    }
}

/// Write a random-weight whisper model to `out`, with the vocabulary and mel filters of
/// `vocab_source` (a ggml whisper file such as the vocabulary-only fixture).
pub fn write_random_model(out: &Path, vocab_source: &Path, seed: u64) {
    let src = read_vocab_source(vocab_source);
    let file = File::create(out).expect("create model file");
    let mut w = Writer {
        out: BufWriter::new(file),
        rng: Rng(seed),
    };
    w.i32(0x6767_6d6c);
    for v in [
        src.n_vocab,
        1500,
        STATE,
        HEADS,
        1,
        448,
        STATE,
        HEADS,
        1,
        src.n_mels,
        1, // ftype: f16 matrices
    ] {
        w.i32(v);
    }
    w.out.write_all(&src.mel_block).expect("write");
    w.out.write_all(&src.vocab_block).expect("write");

    w.tensor("encoder.positional_embedding", &[1500, STATE]);
    w.tensor("encoder.conv1.weight", &[STATE, src.n_mels, 3]);
    w.tensor("encoder.conv1.bias", &[STATE]);
    w.tensor("encoder.conv2.weight", &[STATE, STATE, 3]);
    w.tensor("encoder.conv2.bias", &[STATE]);
    w.block("encoder.blocks.0", false);
    w.tensor("encoder.ln_post.weight", &[STATE]);
    w.tensor("encoder.ln_post.bias", &[STATE]);
    w.tensor("decoder.positional_embedding", &[448, STATE]);
    w.tensor("decoder.token_embedding.weight", &[src.n_vocab, STATE]);
    w.block("decoder.blocks.0", true);
    w.tensor("decoder.ln.weight", &[STATE]);
    w.tensor("decoder.ln.bias", &[STATE]);
    w.out.flush().expect("flush model file");
}

/// A random model in a fresh temporary directory (kept alive by the returned guard).
pub fn random_model_in_tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ggml-random-tiny.en.bin");
    write_random_model(&path, &vocab_only_model(), 0);
    (dir, path)
}
