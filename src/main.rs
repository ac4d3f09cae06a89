//! The `callscope` binary: configuration, start-up, the admin commands and offline
//! transcription. Errors end here as `anyhow` with context.

mod cli;
mod memory;
mod sip_admin;
mod transcribe;

use anyhow::{Context, Result};
use callscope_api::config::Config;
use callscope_api::server;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{ApiKeyCommand, Cli, Command, ModelsCommand, OrgCommand};

fn init_logging() {
    let filter = EnvFilter::try_from_env("CALLSCOPE_LOG")
        // rsipstack logs every SIP packet at INFO: under load that is the whole log.
        .unwrap_or_else(|_| {
            EnvFilter::new("info,rsipstack=warn,symphonia_core::formats::probe=off")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CALLSCOPE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging();
    memory::return_large_blocks_when_freed();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            server::open_database(&config)
                .await
                .context("migrating the database")?;
            eprintln!("database at {} is up to date", config.database_url());
            Ok(())
        }
        Command::Org {
            command: OrgCommand::Realm { org, set },
        } => sip_admin::realm(&config, &org, set.as_deref()).await,
        Command::User { command } => sip_admin::user(&config, command).await,
        Command::Trunk { command } => sip_admin::trunk(&config, command).await,
        Command::Route { command } => sip_admin::route(&config, command).await,
        Command::Org {
            command: OrgCommand::Create { name },
        } => {
            let pool = server::open_database(&config).await?;
            let id = callscope_api::store::orgs::create_org(&pool, &name).await?;
            println!("{id}");
            Ok(())
        }
        Command::Apikey {
            command:
                ApiKeyCommand::Create {
                    org,
                    name,
                    expires_days,
                    permissions,
                },
        } => {
            use callscope_api::permissions::Permissions;
            let permissions = match permissions {
                None => Permissions::all(),
                Some(names) => {
                    Permissions::parse(names.iter().map(String::as_str)).map_err(|bad| {
                        anyhow::anyhow!(
                            "unknown permission {bad:?}; known: {}",
                            Permissions::all().names().join(", ")
                        )
                    })?
                }
            };
            let pool = server::open_database(&config).await?;
            anyhow::ensure!(
                callscope_api::store::orgs::org_exists(&pool, &org).await?,
                "no organization with id {org}"
            );
            let expires =
                expires_days.map(|d| callscope_api::ids::now_ms() + i64::from(d) * 86_400_000);
            let key = callscope_api::auth::create_scoped_api_key(
                &pool,
                &org,
                &name,
                expires,
                permissions,
            )
            .await?;
            eprintln!("API key {} created; it is shown only now:", key.id);
            println!("{}", key.key);
            Ok(())
        }
        Command::Transcribe(args) => transcribe::run(&config, args).await,
        Command::Models { command } => match command {
            ModelsCommand::Fetch {
                name,
                dir,
                base_url,
            } => {
                let dir = dir.unwrap_or_else(|| config.data_dir.join("models"));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = callscope_api::model_fetch::fetch_model(&name, &dir, &base_url).await?;
                eprintln!("model ready; set asr.model_path (or CALLSCOPE_ASR_MODEL_PATH) to:");
                println!("{}", path.display());
                Ok(())
            }
            ModelsCommand::List => {
                for m in callscope_api::model_fetch::known_models()? {
                    println!("{}\t{}\t~{} MiB", m.name, m.file, m.approx_size_mib);
                }
                Ok(())
            }
        },
    }
}

async fn serve(config: Config) -> Result<()> {
    let running = server::start(config).await.context("starting the server")?;
    eprintln!("callscope listening on http://{}", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and jobs");
    // A second signal while draining exits at once; the job leases make that safe.
    tokio::select! {
        _ = running.shutdown() => {}
        _ = shutdown_signal() => tracing::warn!("second signal: exiting without waiting"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
