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
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Create { name: String },
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
    /// Treat a stereo file's channels as these speakers; mono (one unknown speaker) if omitted.
    #[arg(long, value_enum)]
    pub stereo_roles: Option<StereoRoles>,
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
