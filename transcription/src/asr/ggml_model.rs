//! Checks a whisper.cpp ggml model file in Rust before whisper.cpp sees it.
//!
//! Why: whisper.cpp trusts its input. A header with absurd sizes makes it allocate without
//! bound, a negative length aborts the process, a file cut inside its last tensor loads
//! "successfully" with garbage weights, and a file with a vocabulary but no tensors is
//! accepted as an "empty model for testing" whose transcriptions are meaningless. A server
//! that loads a model named in its configuration must refuse all of these with a clear
//! message instead. So this module walks the whole file layout (header, mel filters,
//! vocabulary, every tensor header) and checks each tensor against the shapes whisper's
//! hyper-parameters imply, seeking over the tensor data rather than reading it.
//!
//! Layout (all integers little-endian i32): magic `ggml`, 11 hyper-parameters (the last is
//! the weight type), mel filters (`n_mel`, `n_fft`, f32 × n_mel·n_fft), vocabulary (count,
//! then length-prefixed bytes per token), then tensors until the end of the file:
//! `n_dims`, `name_len`, `type`, `ne[0..n_dims]`, name bytes, data.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// `ggml` read as a little-endian u32.
const GGML_MAGIC: u32 = 0x6767_6d6c;
/// whisper computes a 400-point FFT, so its mel filters have 201 frequency bins.
const WHISPER_N_FFT_BINS: i32 = 201;
/// Every released whisper model uses 1500 audio positions (30 s) and 448 text positions;
/// whisper.cpp's decoding assumes these windows.
const WHISPER_AUDIO_CTX: i32 = 1500;
const WHISPER_TEXT_CTX: i32 = 448;
/// whisper.cpp indexes its logits by fixed special-token ids (up to ~51864), so a smaller
/// vocabulary would make it read out of bounds; 51866 is large-v3's.
const MIN_N_VOCAB: i32 = 51_864;
const MAX_N_VOCAB: i32 = 51_866;
/// Generous ceilings (large-v3 has 1280 dims and 32 layers) that keep allocation bounded.
const MAX_STATE: i32 = 8192;
const MAX_LAYERS: i32 = 128;
const MAX_TOKEN_BYTES: i32 = 4096;
const MAX_TENSOR_NAME: i32 = 256;

/// What the validation learned, for logs and the engine name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSummary {
    pub hparams: HParams,
    /// True when the vocabulary is multilingual (n_vocab ≥ 51865).
    pub multilingual: bool,
    pub n_tensors: usize,
    pub file_bytes: u64,
}

/// whisper's hyper-parameters as stored in the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl HParams {
    /// A human name of the architecture size ("tiny", "base", ...), from the layer count
    /// as whisper.cpp does.
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "custom",
        }
    }
}

/// Why a file is not a usable whisper model. The text is shown to the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelFileError {
    #[error("cannot read model file: {0}")]
    Io(String),
    #[error("not a whisper ggml model file (bad magic {0:#010x}; expected 'ggml')")]
    BadMagic(u32),
    #[error("the file ends early, inside its {0}: truncated download?")]
    Truncated(&'static str),
    #[error("implausible model header: {0}")]
    BadHeader(String),
    #[error(
        "the file has a vocabulary but no weights (a vocabulary-only test model); download a real model, see models/README.md"
    )]
    NoWeights,
    #[error("bad tensor in model file: {0}")]
    BadTensor(String),
    #[error("the model file lacks {missing} of its {expected} tensors (first missing: {first})")]
    MissingTensors {
        missing: usize,
        expected: usize,
        first: String,
    },
}

/// Walk `path` and check it is a complete whisper ggml model.
pub fn validate_model_file(path: &Path) -> Result<ModelSummary, ModelFileError> {
    let file = File::open(path).map_err(|e| ModelFileError::Io(e.to_string()))?;
    let file_bytes = file
        .metadata()
        .map_err(|e| ModelFileError::Io(e.to_string()))?
        .len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len: file_bytes,
    };

    let magic = r.u32("magic")?;
    if magic != GGML_MAGIC {
        return Err(ModelFileError::BadMagic(magic));
    }
    let hparams = read_hparams(&mut r)?;
    check_hparams(&hparams)?;
    skip_mel_filters(&mut r, &hparams)?;
    skip_vocabulary(&mut r, &hparams)?;
    let n_tensors = check_tensors(&mut r, &hparams)?;

    Ok(ModelSummary {
        multilingual: hparams.n_vocab >= 51_865,
        hparams,
        n_tensors,
        file_bytes,
    })
}

/// A reader that knows the file length, so every length field is checked against what is
/// left before anything is allocated or skipped.
struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.len
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>, ModelFileError> {
        if (n as u64) > self.remaining() {
            return Err(ModelFileError::Truncated(what));
        }
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ModelFileError::Truncated(what),
                _ => ModelFileError::Io(e.to_string()),
            })?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ModelFileError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, ModelFileError> {
        Ok(self.u32(what)? as i32)
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<(), ModelFileError> {
        if n > self.remaining() {
            return Err(ModelFileError::Truncated(what));
        }
        let delta = i64::try_from(n).map_err(|_| ModelFileError::Truncated(what))?;
        self.inner
            .seek(SeekFrom::Current(delta))
            .map_err(|e| ModelFileError::Io(e.to_string()))?;
        self.pos += n;
        Ok(())
    }
}

fn read_hparams<R: Read + Seek>(r: &mut Reader<R>) -> Result<HParams, ModelFileError> {
    const W: &str = "header";
    Ok(HParams {
        n_vocab: r.i32(W)?,
        n_audio_ctx: r.i32(W)?,
        n_audio_state: r.i32(W)?,
        n_audio_head: r.i32(W)?,
        n_audio_layer: r.i32(W)?,
        n_text_ctx: r.i32(W)?,
        n_text_state: r.i32(W)?,
        n_text_head: r.i32(W)?,
        n_text_layer: r.i32(W)?,
        n_mels: r.i32(W)?,
        ftype: r.i32(W)?,
    })
}

fn check_hparams(h: &HParams) -> Result<(), ModelFileError> {
    let bad = |m: String| Err(ModelFileError::BadHeader(m));
    if !(MIN_N_VOCAB..=MAX_N_VOCAB).contains(&h.n_vocab) {
        return bad(format!(
            "n_vocab {} (whisper models have {MIN_N_VOCAB}..={MAX_N_VOCAB})",
            h.n_vocab
        ));
    }
    if h.n_audio_ctx != WHISPER_AUDIO_CTX || h.n_text_ctx != WHISPER_TEXT_CTX {
        return bad(format!(
            "context sizes audio {} / text {} (expected {WHISPER_AUDIO_CTX} / {WHISPER_TEXT_CTX})",
            h.n_audio_ctx, h.n_text_ctx
        ));
    }
    if h.n_mels != 80 && h.n_mels != 128 {
        return bad(format!("n_mels {} (expected 80 or 128)", h.n_mels));
    }
    if h.n_audio_state != h.n_text_state {
        return bad(format!(
            "audio state {} differs from text state {}",
            h.n_audio_state, h.n_text_state
        ));
    }
    for (name, state, heads, layers) in [
        ("audio", h.n_audio_state, h.n_audio_head, h.n_audio_layer),
        ("text", h.n_text_state, h.n_text_head, h.n_text_layer),
    ] {
        if !(1..=MAX_STATE).contains(&state)
            || !(1..=state).contains(&heads)
            || state % heads != 0
            || !(1..=MAX_LAYERS).contains(&layers)
        {
            return bad(format!(
                "{name} state {state}, heads {heads}, layers {layers}"
            ));
        }
    }
    if weight_type_of_ftype(h.ftype).is_none() {
        return bad(format!("unsupported weight type (ftype {})", h.ftype));
    }
    Ok(())
}

/// The ggml tensor type used for the large matrices of a model of file type `ftype`
/// (whisper.cpp's `ggml_ftype_to_ggml_type`, restricted to the types whisper.cpp's
/// quantizer produces). The quantization version is encoded in thousands and ignored.
fn weight_type_of_ftype(ftype: i32) -> Option<GgmlType> {
    let t = match ftype.rem_euclid(1000) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        7 => 8,
        8 => 6,
        9 => 7,
        10 => 10,
        11 => 11,
        12 => 12,
        13 => 13,
        14 => 14,
        _ => return None,
    };
    if ftype < 0 {
        return None;
    }
    GgmlType::from_id(t)
}

/// The ggml tensor types a whisper file may contain, with their block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GgmlType {
    id: i32,
    /// Elements per block.
    block: u64,
    /// Bytes per block.
    block_bytes: u64,
}

impl GgmlType {
    fn from_id(id: i32) -> Option<Self> {
        let (block, block_bytes) = match id {
            0 => (1, 4),      // f32
            1 => (1, 2),      // f16
            2 => (32, 18),    // q4_0
            3 => (32, 20),    // q4_1
            6 => (32, 22),    // q5_0
            7 => (32, 24),    // q5_1
            8 => (32, 34),    // q8_0
            10 => (256, 84),  // q2_K
            11 => (256, 110), // q3_K
            12 => (256, 144), // q4_K
            13 => (256, 176), // q5_K
            14 => (256, 210), // q6_K
            _ => return None,
        };
        Some(GgmlType {
            id,
            block,
            block_bytes,
        })
    }
}

fn skip_mel_filters<R: Read + Seek>(r: &mut Reader<R>, h: &HParams) -> Result<(), ModelFileError> {
    let n_mel = r.i32("mel filters")?;
    let n_fft = r.i32("mel filters")?;
    if n_mel != h.n_mels || n_fft != WHISPER_N_FFT_BINS {
        return Err(ModelFileError::BadHeader(format!(
            "mel filter bank {n_mel}×{n_fft} (expected {}×{WHISPER_N_FFT_BINS})",
            h.n_mels
        )));
    }
    // Both are small positive numbers here, so the product cannot overflow.
    r.skip(n_mel as u64 * n_fft as u64 * 4, "mel filters")
}

fn skip_vocabulary<R: Read + Seek>(r: &mut Reader<R>, h: &HParams) -> Result<(), ModelFileError> {
    let n = r.i32("vocabulary")?;
    if !(1..=h.n_vocab).contains(&n) {
        return Err(ModelFileError::BadHeader(format!(
            "vocabulary of {n} tokens (header says at most {})",
            h.n_vocab
        )));
    }
    for i in 0..n {
        let len = r.i32("vocabulary")?;
        if !(0..=MAX_TOKEN_BYTES).contains(&len) {
            return Err(ModelFileError::BadHeader(format!(
                "token {i} has length {len}"
            )));
        }
        r.skip(len as u64, "vocabulary")?;
    }
    Ok(())
}

/// Expected tensor shapes in ggml order (`ne[0]` is the innermost dimension), and whether
/// the tensor is one of the large matrices stored in the model's weight type (the others
/// are f32, as whisper.cpp creates them).
fn expected_tensors(h: &HParams) -> HashMap<String, (Vec<i64>, bool)> {
    let s = h.n_audio_state as i64;
    let mels = h.n_mels as i64;
    let mut t: HashMap<String, (Vec<i64>, bool)> = HashMap::new();
    let mut add = |name: String, ne: &[i64], big: bool| {
        t.insert(name, (ne.to_vec(), big));
    };
    add(
        "encoder.positional_embedding".into(),
        &[s, h.n_audio_ctx as i64],
        false,
    );
    add("encoder.conv1.weight".into(), &[3, mels, s], true);
    add("encoder.conv1.bias".into(), &[1, s], false);
    add("encoder.conv2.weight".into(), &[3, s, s], true);
    add("encoder.conv2.bias".into(), &[1, s], false);
    add("encoder.ln_post.weight".into(), &[s], false);
    add("encoder.ln_post.bias".into(), &[s], false);
    let block = |add: &mut dyn FnMut(String, &[i64], bool), p: String, cross: bool| {
        let attn = |add: &mut dyn FnMut(String, &[i64], bool), a: String| {
            add(format!("{a}.query.weight"), &[s, s], true);
            add(format!("{a}.query.bias"), &[s], false);
            add(format!("{a}.key.weight"), &[s, s], true);
            add(format!("{a}.value.weight"), &[s, s], true);
            add(format!("{a}.value.bias"), &[s], false);
            add(format!("{a}.out.weight"), &[s, s], true);
            add(format!("{a}.out.bias"), &[s], false);
        };
        add(format!("{p}.attn_ln.weight"), &[s], false);
        add(format!("{p}.attn_ln.bias"), &[s], false);
        attn(add, format!("{p}.attn"));
        if cross {
            add(format!("{p}.cross_attn_ln.weight"), &[s], false);
            add(format!("{p}.cross_attn_ln.bias"), &[s], false);
            attn(add, format!("{p}.cross_attn"));
        }
        add(format!("{p}.mlp_ln.weight"), &[s], false);
        add(format!("{p}.mlp_ln.bias"), &[s], false);
        add(format!("{p}.mlp.0.weight"), &[s, 4 * s], true);
        add(format!("{p}.mlp.0.bias"), &[4 * s], false);
        add(format!("{p}.mlp.2.weight"), &[4 * s, s], true);
        add(format!("{p}.mlp.2.bias"), &[s], false);
    };
    for i in 0..h.n_audio_layer {
        block(&mut add, format!("encoder.blocks.{i}"), false);
    }
    add(
        "decoder.positional_embedding".into(),
        &[s, h.n_text_ctx as i64],
        false,
    );
    add(
        "decoder.token_embedding.weight".into(),
        &[s, h.n_vocab as i64],
        true,
    );
    add("decoder.ln.weight".into(), &[s], false);
    add("decoder.ln.bias".into(), &[s], false);
    for i in 0..h.n_text_layer {
        block(&mut add, format!("decoder.blocks.{i}"), true);
    }
    t
}

fn check_tensors<R: Read + Seek>(r: &mut Reader<R>, h: &HParams) -> Result<usize, ModelFileError> {
    if r.at_end() {
        return Err(ModelFileError::NoWeights);
    }
    let mut expected = expected_tensors(h);
    let total = expected.len();
    let mut seen = 0usize;
    while !r.at_end() {
        let n_dims = r.i32("tensor header")?;
        let name_len = r.i32("tensor header")?;
        let ttype = r.i32("tensor header")?;
        if !(1..=4).contains(&n_dims) {
            return Err(ModelFileError::BadTensor(format!(
                "tensor #{seen} has {n_dims} dimensions"
            )));
        }
        if !(1..=MAX_TENSOR_NAME).contains(&name_len) {
            return Err(ModelFileError::BadTensor(format!(
                "tensor #{seen} has a name of {name_len} bytes"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(i64::from(r.i32("tensor header")?));
        }
        let name_bytes = r.bytes(name_len as usize, "tensor header")?;
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let Some((shape, big)) = expected.remove(&name) else {
            return Err(ModelFileError::BadTensor(format!(
                "unknown or repeated tensor '{name}'"
            )));
        };
        if ne != shape {
            return Err(ModelFileError::BadTensor(format!(
                "tensor '{name}' has shape {ne:?}, the header implies {shape:?}"
            )));
        }
        let Some(ty) = GgmlType::from_id(ttype) else {
            return Err(ModelFileError::BadTensor(format!(
                "tensor '{name}' has unknown type {ttype}"
            )));
        };
        // Small tensors are always f32 in whisper.cpp; large ones use the file's type. f16
        // files keep conv weights in f16 too, so anything other than f32 must match ftype.
        let wanted = weight_type_of_ftype(h.ftype).map(|t| t.id);
        let allowed = ty.id == 0 || (big && (ty.id == 1 || Some(ty.id) == wanted));
        if !allowed {
            return Err(ModelFileError::BadTensor(format!(
                "tensor '{name}' has type {ttype}, which whisper.cpp cannot load here"
            )));
        }
        let elements: u64 = shape.iter().map(|&d| d as u64).product();
        let row = shape.first().copied().unwrap_or(1) as u64;
        if !row.is_multiple_of(ty.block) {
            return Err(ModelFileError::BadTensor(format!(
                "tensor '{name}' rows of {row} do not fit blocks of {}",
                ty.block
            )));
        }
        r.skip(elements / ty.block * ty.block_bytes, "tensor data")?;
        seen += 1;
    }
    if let Some(first) = expected.keys().min() {
        return Err(ModelFileError::MissingTensors {
            missing: expected.len(),
            expected: total,
            first: first.clone(),
        });
    }
    Ok(seen)
}
