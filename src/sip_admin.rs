//! `callscope user|trunk|route …` and `callscope org realm`: SIP administration from the
//! command line, over the same store functions as the REST API.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use callscope_api::config::Config;
use callscope_api::server;
use callscope_api::sip::{domains, numbers, routes, trunks, users};
use callscope_sip::directory::{RingStrategy, RouteTarget};
use sqlx::SqlitePool;

use crate::cli::{RoleArg, RouteCommand, StrategyArg, TrunkCommand, UserCommand};

async fn open(config: &Config, org: &str) -> Result<SqlitePool> {
    let pool = server::open_database(config).await?;
    if !callscope_api::store::orgs::org_exists(&pool, org).await? {
        bail!("no organization with id {org}");
    }
    Ok(pool)
}

/// `-` means: read the secret from the first line of stdin.
fn secret(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn realm(config: &Config, org: &str, set: Option<&str>) -> Result<()> {
    let pool = open(config, org).await?;
    if let Some(r) = set {
        domains::set_realm(&pool, org, r).await?;
    }
    let mut conn = pool.acquire().await?;
    println!("{}", domains::ensure_realm(&mut conn, org).await?);
    Ok(())
}

pub async fn user(config: &Config, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create {
            org,
            name,
            extension,
            password,
            role,
        } => {
            let pool = open(config, &org).await?;
            let password = secret(&password)?;
            let role = match role {
                RoleArg::Agent => users::Role::Agent,
                RoleArg::Supervisor => users::Role::Supervisor,
                RoleArg::Admin => users::Role::Admin,
                RoleArg::Owner => users::Role::Owner,
            };
            let u = users::create_user(
                &pool,
                &org,
                &users::NewUser {
                    name: &name,
                    extension: &extension,
                    password: &password,
                    role,
                },
            )
            .await?;
            let realm = domains::realm_of_org(&pool, &org)
                .await?
                .unwrap_or_default();
            eprintln!(
                "user {} created: SIP username {} in realm {realm}",
                u.name, u.extension
            );
            println!("{}", u.id);
        }
        UserCommand::List { org } => {
            let pool = open(config, &org).await?;
            for u in users::list_users(&pool, &org).await? {
                println!("{}\t{}\t{}\t{}", u.id, u.extension, u.role, u.name);
            }
        }
    }
    Ok(())
}

pub async fn trunk(config: &Config, command: TrunkCommand) -> Result<()> {
    match command {
        TrunkCommand::Create {
            org,
            name,
            host,
            transport,
            username,
            password,
            inbound_acl,
        } => {
            let pool = open(config, &org).await?;
            let password = password.as_deref().map(secret).transpose()?;
            let t = trunks::create_trunk(
                &pool,
                &org,
                &trunks::NewTrunk {
                    name: &name,
                    host: &host,
                    transport: &transport,
                    username: username.as_deref(),
                    password: password.as_deref(),
                    inbound_acl: &inbound_acl,
                },
            )
            .await?;
            println!("{}", t.trunk.id);
        }
        TrunkCommand::List { org } => {
            let pool = open(config, &org).await?;
            for t in trunks::list_trunks(&pool, &org).await? {
                let acl: Vec<String> = t.acl.iter().map(ToString::to_string).collect();
                println!(
                    "{}\t{}\t{}:{}\t{}\t{}",
                    t.trunk.id,
                    t.trunk.name,
                    t.trunk.host,
                    t.trunk.port,
                    t.trunk.transport,
                    acl.join(",")
                );
            }
        }
    }
    Ok(())
}

async fn user_id(pool: &SqlitePool, org: &str, extension: &str) -> Result<String> {
    users::get_by_extension(pool, org, extension.trim())
        .await?
        .map(|u| u.id)
        .with_context(|| format!("no user with extension {extension} in this organization"))
}

pub async fn route(config: &Config, command: RouteCommand) -> Result<()> {
    match command {
        RouteCommand::Create {
            org,
            did,
            user,
            ring_group,
            strategy,
            timeout,
            reject,
        } => {
            let pool = open(config, &org).await?;
            let region = config.sip.region(&config.default_region);
            let did_e164 = numbers::to_e164(&numbers::dialled_digits(&did), region)
                .with_context(|| format!("{did:?} is not a valid phone number"))?;
            let target = match (user, ring_group, reject) {
                (Some(ext), None, None) => RouteTarget::User {
                    user_id: user_id(&pool, &org, &ext).await?,
                },
                (None, Some(exts), None) => {
                    let mut members = Vec::with_capacity(exts.len());
                    for e in &exts {
                        members.push(user_id(&pool, &org, e).await?);
                    }
                    let strategy = match strategy {
                        StrategyArg::RingAll => RingStrategy::RingAll,
                        StrategyArg::LongestIdle => RingStrategy::LongestIdle,
                    };
                    let total = callscope_api::sip::http::default_total_timeout(
                        strategy,
                        timeout,
                        members.len(),
                    );
                    RouteTarget::RingGroup {
                        members,
                        strategy,
                        member_timeout_s: timeout,
                        total_timeout_s: total,
                    }
                }
                (None, None, Some(status)) => RouteTarget::Reject { status },
                _ => bail!("give exactly one of --user, --ring-group and --reject"),
            };
            let r = routes::create_route(&pool, &org, &did_e164, &target).await?;
            eprintln!("route {} → {}", r.did, serde_json::to_string(&r.target)?);
            println!("{}", r.id);
        }
        RouteCommand::List { org } => {
            let pool = open(config, &org).await?;
            for r in routes::list_routes(&pool, &org).await? {
                println!("{}\t{}\t{}", r.id, r.did, serde_json::to_string(&r.target)?);
            }
        }
    }
    Ok(())
}
