//! Command-line interface of the `callscope` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "callscope",
    version,
    about = "Telephony and call-intelligence server"
)]
pub struct Cli {
    /// TOML configuration file; `CALLSCOPE_*` environment variables override it.
    #[arg(long, global = true, env = "CALLSCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the job workers until SIGINT/SIGTERM.
    Serve,
    /// Create or update the database schema.
    Migrate,
    /// Organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// API keys.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Run the post-call pipeline on a file, offline; the transcript goes to stdout.
    Transcribe(TranscribeArgs),
    /// Speech models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Users (agents): web login and SIP phone registration.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Upstream SIP trunks.
    Trunk {
        #[command(subcommand)]
        command: TrunkCommand,
    },
    /// Inbound routes: DID → user, ring group or rejection.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print its id. Only digest HA1 values and an argon2 hash of the
    /// password are stored.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// Digits; the SIP username and the number colleagues dial.
        #[arg(long)]
        extension: String,
        /// The SIP (and web) password; `-` reads it from the first line of stdin, which keeps
        /// it out of the process list and shell history.
        #[arg(long)]
        password: String,
        #[arg(long, value_enum, default_value = "agent")]
        role: RoleArg,
    },
    /// List an organization's users (id, extension, role, name), tab-separated.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Agent,
    Supervisor,
    Admin,
    Owner,
}

#[derive(Debug, Subcommand)]
pub enum TrunkCommand {
    /// Create a trunk and print its id.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// Where outbound calls go: HOST[:PORT] (default port 5060).
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "udp")]
        transport: String,
        /// Credentials for the trunk's digest challenges on outbound calls.
        #[arg(long)]
        username: Option<String>,
        /// `-` reads it from the first line of stdin.
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// A source network allowed to send inbound calls (repeatable), e.g. 203.0.113.0/24.
        #[arg(long = "inbound-acl")]
        inbound_acl: Vec<String>,
    },
    /// List an organization's trunks (id, name, host:port, transport, ACL), tab-separated.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Create an inbound route for a DID and print its id.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["user", "ring_group", "reject"])))]
    Create {
        #[arg(long)]
        org: String,
        /// The number (E.164, or national in the default region).
        #[arg(long)]
        did: String,
        /// Ring this user (extension).
        #[arg(long)]
        user: Option<String>,
        /// Ring these users (extensions, comma-separated).
        #[arg(long, value_delimiter = ',')]
        ring_group: Option<Vec<String>>,
        #[arg(long, value_enum, default_value = "ring_all", requires = "ring_group")]
        strategy: StrategyArg,
        /// Seconds each member rings (ring_all: the whole group's ringing time).
        #[arg(long, default_value_t = 20, requires = "ring_group")]
        timeout: u32,
        /// Reject with this SIP status (e.g. 403, 480, 486, 603).
        #[arg(long)]
        reject: Option<u16>,
    },
    /// List an organization's routes (id, DID, target as JSON), tab-separated.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StrategyArg {
    #[value(name = "ring_all")]
    RingAll,
    #[value(name = "longest_idle")]
    LongestIdle,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Create { name: String },
    /// Print the organization's SIP realm (created with its default on first use), or set it
    /// (only while the organization has no users: their digest secrets depend on it).
    Realm {
        #[arg(long)]
        org: String,
        #[arg(long)]
        set: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// Days until the key expires; never when omitted.
        #[arg(long)]
        expires_days: Option<u32>,
        /// Comma-separated permissions (e.g. `calls.read_all,intelligence.read`); all when
        /// omitted. `callscope apikey create --permissions help` lists them.
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download a whisper ggml model listed in models/manifest.toml (e.g. base.en).
    Fetch {
        name: String,
        /// Destination directory (default: <data_dir>/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value = callscope_api::model_fetch::DEFAULT_BASE_URL)]
        base_url: String,
    },
    /// List the models the manifest knows.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Json,
    Vtt,
    Srt,
    Txt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StereoRoles {
    /// Left channel is the agent, right the customer.
    #[value(name = "agent,customer")]
    AgentCustomer,
    /// Left channel is the customer, right the agent.
    #[value(name = "customer,agent")]
    CustomerAgent,
}

#[derive(Debug, clap::Args)]
pub struct TranscribeArgs {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    pub format: OutputFormat,
    /// Treat a stereo file's channels as these speakers; mono (speakers found by clustering)
    /// if omitted.
    #[arg(long, value_enum)]
    pub stereo_roles: Option<StereoRoles>,
    /// ONNX speaker-embedding model for clustering mono speakers (default:
    /// diarization.speaker_model from the config; without one, voice statistics).
    #[arg(long)]
    pub speaker_model: Option<PathBuf>,
    /// whisper ggml model (default: asr.model_path from the config).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// An existing transcript (WebVTT or JSON) to align instead of running ASR.
    #[arg(long)]
    pub transcript: Option<PathBuf>,
    /// Spoken language, e.g. "en".
    #[arg(long)]
    pub language: Option<String>,
}
