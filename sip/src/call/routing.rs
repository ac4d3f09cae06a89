//! Turning a routing decision ([`Destination`]) into the INVITEs to send: which contacts,
//! all at once or one member after another, and for how long.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::Uri;
use rsipstack::transport::SipAddr;

use crate::directory::{Destination, RingStrategy, RouteTarget, SipTrunk};
use crate::handler::Locator;

/// One destination to ring: an INVITE to send, or an agent's browser softphone.
#[derive(Clone)]
pub struct Target {
    /// The user this rings (None for a trunk).
    pub user_id: Option<String>,
    pub reach: Reach,
}

/// How a target is reached. (`Credential` is not `Debug`: it holds a password.)
// A plan holds a handful of targets for a few seconds: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Reach {
    Sip {
        request_uri: Uri,
        destination: SipAddr,
        credential: Option<Credential>,
    },
    /// The user's softphone page (told over the application's WebSocket).
    Browser,
}

/// A group of targets rung together.
#[derive(Clone)]
pub struct Step {
    pub targets: Vec<Target>,
    /// How long this step rings before it is given up.
    pub timeout: Duration,
}

/// The whole ringing plan: steps in order, under an overall limit.
#[derive(Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub total_timeout: Duration,
}

/// Why no plan could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlan {
    /// No such destination: 404.
    NotFound,
    /// A route that rejects with this status.
    Reject(u16),
    /// Nobody reachable right now (no registered contact): 480.
    Unavailable,
}

pub struct PlanInput<'a> {
    pub locator: &'a dyn Locator,
    pub org_id: &'a str,
    pub default_timeout: Duration,
    /// Users in a call right now (skipped by longest-idle).
    pub busy: &'a (dyn Fn(&str) -> bool + Sync),
    /// When a user last finished a call (ms); never = 0.
    pub idle_since_ms: &'a (dyn Fn(&str) -> i64 + Sync),
    /// Whether a user's browser softphone can ring now.
    pub softphone: &'a (dyn Fn(&str) -> bool + Sync),
}

pub fn plan(destination: &Destination, input: &PlanInput<'_>) -> Result<Plan, NoPlan> {
    match destination {
        Destination::NotFound => Err(NoPlan::NotFound),
        Destination::External { number_e164, trunk } => Ok(Plan {
            steps: vec![Step {
                targets: vec![trunk_target(number_e164, trunk)],
                timeout: input.default_timeout,
            }],
            total_timeout: input.default_timeout,
        }),
        Destination::Internal(RouteTarget::Reject { status }) => Err(NoPlan::Reject(*status)),
        Destination::Internal(RouteTarget::User { user_id }) => {
            let targets = user_targets(input, user_id);
            if targets.is_empty() {
                return Err(NoPlan::Unavailable);
            }
            Ok(Plan {
                steps: vec![Step {
                    targets,
                    timeout: input.default_timeout,
                }],
                total_timeout: input.default_timeout,
            })
        }
        Destination::Internal(RouteTarget::RingGroup {
            members,
            strategy,
            member_timeout_s,
            total_timeout_s,
        }) => {
            let total = seconds_or(*total_timeout_s, input.default_timeout);
            let member_timeout = seconds_or(*member_timeout_s, total);
            match strategy {
                RingStrategy::RingAll => {
                    let targets: Vec<Target> = members
                        .iter()
                        .flat_map(|member| user_targets(input, member))
                        .collect();
                    if targets.is_empty() {
                        return Err(NoPlan::Unavailable);
                    }
                    Ok(Plan {
                        steps: vec![Step {
                            targets,
                            timeout: total,
                        }],
                        total_timeout: total,
                    })
                }
                RingStrategy::LongestIdle => {
                    let mut available: Vec<(i64, usize, Vec<Target>)> = members
                        .iter()
                        .enumerate()
                        .filter(|(_, member)| !(input.busy)(member))
                        .map(|(order, member)| {
                            (
                                (input.idle_since_ms)(member),
                                order,
                                user_targets(input, member),
                            )
                        })
                        .filter(|(_, _, targets)| !targets.is_empty())
                        .collect();
                    if available.is_empty() {
                        return Err(NoPlan::Unavailable);
                    }
                    // Longest idle = earliest end of last call; ties keep the group's order.
                    available.sort_by_key(|(idle_since, order, _)| (*idle_since, *order));
                    Ok(Plan {
                        steps: available
                            .into_iter()
                            .map(|(_, _, targets)| Step {
                                targets,
                                timeout: member_timeout,
                            })
                            .collect(),
                        total_timeout: total,
                    })
                }
            }
        }
    }
}

fn seconds_or(seconds: u32, default: Duration) -> Duration {
    if seconds == 0 {
        default
    } else {
        Duration::from_secs(u64::from(seconds))
    }
}

/// Every place a user can be rung: each registered phone, and the softphone page.
fn user_targets(input: &PlanInput<'_>, user_id: &str) -> Vec<Target> {
    let phones = input
        .locator
        .contacts(input.org_id, user_id)
        .into_iter()
        .filter_map(|contact| {
            let uri = Uri::try_from(contact.uri.as_str()).ok()?;
            Some(Target {
                user_id: Some(user_id.to_string()),
                reach: Reach::Sip {
                    request_uri: uri,
                    destination: sip_addr(contact.received, contact.transport),
                    credential: None,
                },
            })
        });
    let browser = (input.softphone)(user_id).then(|| Target {
        user_id: Some(user_id.to_string()),
        reach: Reach::Browser,
    });
    phones.chain(browser).collect()
}

fn trunk_target(number_e164: &str, trunk: &SipTrunk) -> Target {
    let host = trunk.outbound_proxy;
    let user = number_e164.to_string();
    let request_uri = Uri {
        scheme: Some(rsipstack::sip::Scheme::Sip),
        auth: Some(rsipstack::sip::Auth {
            user,
            password: None,
        }),
        host_with_port: host.into(),
        params: vec![],
        headers: vec![],
    };
    let credential = match (&trunk.username, &trunk.password) {
        (Some(username), Some(password)) => Some(Credential {
            username: username.clone(),
            password: password.clone(),
            realm: None,
            ..Default::default()
        }),
        _ => None,
    };
    Target {
        user_id: None,
        reach: Reach::Sip {
            request_uri,
            destination: sip_addr(host, rsipstack::sip::Transport::Udp),
            credential,
        },
    }
}

pub fn sip_addr(addr: SocketAddr, transport: rsipstack::sip::Transport) -> SipAddr {
    SipAddr {
        r#type: Some(transport),
        addr: addr.into(),
    }
}
