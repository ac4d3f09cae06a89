//! Teams on the real server: admins manage them and their members, agents read them, every
//! change is audited and announced; conversations move between team queues (with a channel's
//! default team, the `team` filter and the `conversation.team_changed` timeline entry); a
//! team's leads see the calls of its members and nobody else's; a team routed from an
//! inbound number cannot be deleted; another organization's teams are 404.

mod common;

use callscope_api::sip::{domains, users};
use common::{CALL_VTT, Cred, TestServer, call, processed_upload, sign_in};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const REALM: &str = "teams.callscope.test";

struct Org {
    id: String,
    key: String,
    /// User ids by extension: 1001-1004 agents, 3001 an admin.
    users: Vec<(String, String)>,
}

impl Org {
    fn user(&self, ext: &str) -> &str {
        &self.users.iter().find(|(e, _)| e == ext).unwrap().1
    }
}

async fn org_with_users(s: &TestServer, name: &str, realm: &str) -> Org {
    let (id, key) = s.org(name).await;
    domains::set_realm(s.pool(), &id, realm).await.unwrap();
    let mut ids = Vec::new();
    for (ext, who, role) in [
        ("1001", "Alice Agent", users::Role::Agent),
        ("1002", "Bob Agent", users::Role::Agent),
        ("1003", "Lea Lead", users::Role::Agent),
        ("1004", "Olga Other", users::Role::Agent),
        ("3001", "Adam Admin", users::Role::Admin),
    ] {
        let u = users::create_user(
            s.pool(),
            &id,
            &users::NewUser {
                name: who,
                extension: ext,
                password: PASSWORD,
                role,
            },
        )
        .await
        .unwrap();
        ids.push((ext.to_string(), u.id));
    }
    Org {
        id,
        key,
        users: ids,
    }
}

/// Creates a team with the organization's key; its id.
async fn create_team(s: &TestServer, key: &str, body: Value) -> String {
    let (st, v) = call(
        s,
        &Cred::Key(key),
        Method::POST,
        "/api/v1/teams",
        Some(body),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn events(s: &TestServer, org: &str, family: &str) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT event, data FROM event_stream WHERE org_id = $1 AND event LIKE $2 ORDER BY seq",
    )
    .bind(org)
    .bind(format!("{family}.%"))
    .fetch_all(s.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(e, d)| (e, serde_json::from_str(&d).unwrap()))
        .collect()
}

#[tokio::test]
async fn admins_manage_teams_agents_read_them_and_every_change_is_audited() {
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let (_, other_key) = s.org("globex").await;
    let key = Cred::Key(&org.key);
    let agent_cookie = sign_in(&s, REALM, "1001", PASSWORD).await;
    let agent = Cred::Cookie(&agent_cookie);
    let admin_cookie = sign_in(&s, REALM, "3001", PASSWORD).await;
    let admin = Cred::Cookie(&admin_cookie);

    // An admin creates a team with its first members.
    let (st, billing) = call(
        &s,
        &admin,
        Method::POST,
        "/api/v1/teams",
        Some(json!({
            "name": "Billing",
            "description": "Invoices and refunds",
            "members": [{"user_id": org.user("1001")}, {"user_id": org.user("1003"), "role": "lead"}],
        })),
    )
    .await;
    assert_eq!(st, 201, "{billing}");
    let team = billing["id"].as_str().unwrap().to_string();
    assert_eq!(billing["name"], "Billing");
    assert_eq!(billing["member_count"], 2);
    let members = billing["members"].as_array().unwrap();
    assert_eq!(members[0]["user_id"], org.user("1001"));
    assert_eq!(members[0]["role"], "member");
    assert_eq!(members[0]["extension"], "1001");
    assert_eq!(members[1]["role"], "lead");

    // Names are unique regardless of case; junk is refused; nothing is created by either.
    let (st, err) = call(
        &s,
        &key,
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "  billing "})),
    )
    .await;
    assert_eq!(
        (st, err["code"].as_str()),
        (409, Some("team_name_taken")),
        "{err}"
    );
    assert_eq!(err["details"]["existing_id"], team.as_str());
    for junk in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "Sales", "colour": "red"}),
        json!({"name": "Sales", "members": [{"user_id": org.user("1002"), "role": "boss"}]}),
        json!({"name": "Sales", "members": [{"user_id": "no-such-user"}]}),
    ] {
        let (st, body) = call(&s, &key, Method::POST, "/api/v1/teams", Some(junk.clone())).await;
        assert!(st == 404 || st == 422, "{junk}: {st} {body}");
    }
    let (_, list) = call(&s, &key, Method::GET, "/api/v1/teams", None).await;
    assert_eq!(ids(&list), vec![team.clone()], "{list}");

    // Agents read teams but change nothing.
    let (st, _) = call(
        &s,
        &agent,
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "Agents' own"})),
    )
    .await;
    assert_eq!(st, 403);
    let path = format!("/api/v1/teams/{team}");
    let member_path = |ext: &str| format!("{path}/members/{}", org.user(ext));
    let (st, _) = call(
        &s,
        &agent,
        Method::PUT,
        &member_path("1002"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, seen) = call(&s, &agent, Method::GET, &path, None).await;
    assert_eq!(st, 200);
    assert_eq!(seen["members"].as_array().unwrap().len(), 2);

    // Members come and go; putting a member twice changes nothing the second time.
    let (st, v) = call(
        &s,
        &admin,
        Method::PUT,
        &member_path("1002"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["member_count"], 3);
    let (st, _) = call(
        &s,
        &admin,
        Method::PUT,
        &member_path("1002"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = call(
        &s,
        &admin,
        Method::PUT,
        &member_path("1002"),
        Some(json!({"role": "lead"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let bob = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["extension"] == "1002")
        .unwrap();
    assert_eq!(bob["role"], "lead");
    let (st, _) = call(&s, &admin, Method::DELETE, &member_path("1002"), None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, &admin, Method::DELETE, &member_path("1002"), None).await;
    assert_eq!(st, 404, "not a member any more");
    let (st, _) = call(
        &s,
        &admin,
        Method::PUT,
        &format!("{path}/members/no-such-user"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 404);

    // "My teams": the agent is in Billing only; an API key has no "me".
    let (_, sales) = call(
        &s,
        &key,
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "Sales", "members": [{"user_id": org.user("1002")}]})),
    )
    .await;
    let sales = sales["id"].as_str().unwrap().to_string();
    let (_, mine) = call(&s, &agent, Method::GET, "/api/v1/teams?user_id=me", None).await;
    assert_eq!(ids(&mine), vec![team.clone()], "{mine}");
    let (_, all) = call(&s, &agent, Method::GET, "/api/v1/teams", None).await;
    assert_eq!(ids(&all), vec![team.clone(), sales.clone()], "by name");
    let (st, _) = call(&s, &key, Method::GET, "/api/v1/teams?user_id=me", None).await;
    assert_eq!(st, 400);

    // Rename; a rename onto another team's name is refused; members do not change by PATCH.
    let (st, v) = call(
        &s,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"name": "Billing & Refunds", "description": null})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "Billing & Refunds");
    assert_eq!(v["description"], Value::Null);
    let (st, _) = call(
        &s,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"name": "SALES"})),
    )
    .await;
    assert_eq!(st, 409);
    let (st, _) = call(
        &s,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"members": []})),
    )
    .await;
    assert_eq!(st, 422);

    // Another organization finds none of it.
    let other = Cred::Key(&other_key);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Mine now"}))),
        (Method::DELETE, None),
    ] {
        let (st, _) = call(&s, &other, method.clone(), &path, body).await;
        assert_eq!(st, 404, "{method} from another organization");
    }
    let (st, _) = call(
        &s,
        &other,
        Method::PUT,
        &member_path("1004"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 404);
    let (_, theirs) = call(&s, &other, Method::GET, "/api/v1/teams", None).await;
    assert!(ids(&theirs).is_empty(), "{theirs}");
    let (_, still) = call(&s, &key, Method::GET, &path, None).await;
    assert_eq!(still["name"], "Billing & Refunds", "nothing changed");

    // Deleted: gone, and announced.
    let (st, _) = call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/api/v1/teams/{sales}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/teams/{sales}"),
        None,
    )
    .await;
    assert_eq!(st, 404);

    // Every change is an event (webhooks and the realtime stream) and an audit entry.
    let announced: Vec<String> = events(&s, &org.id, "team")
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        announced,
        [
            "team.created",
            "team.member_added",
            "team.member_updated",
            "team.member_removed",
            "team.created",
            "team.updated",
            "team.deleted",
        ],
    );
    let (_, log) = call(
        &s,
        &key,
        Method::GET,
        "/api/v1/audit-log?target_type=team",
        None,
    )
    .await;
    // Entries of the same millisecond have no order among themselves: compare as sets.
    let mut actions: Vec<String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    actions.sort();
    let mut expected = announced.clone();
    expected.sort();
    assert_eq!(actions, expected, "{log}");
    let renamed = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "team.updated")
        .unwrap();
    assert_eq!(renamed["details"]["before"]["name"], "Billing");
    assert_eq!(renamed["details"]["after"]["name"], "Billing & Refunds");
    assert_eq!(renamed["actor"]["id"], org.user("3001"), "{renamed}");
}

async fn api_channel(s: &TestServer, key: &str, default_team: Option<&str>) -> String {
    let (st, v) = call(
        s,
        &Cred::Key(key),
        Method::POST,
        "/api/v1/channels",
        Some(
            json!({"kind": "api", "name": "Web chat", "callback_url": "http://127.0.0.1:9/cb",
                    "default_team_id": default_team}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["default_team_id"], json!(default_team));
    v["id"].as_str().unwrap().to_string()
}

async fn inbound(s: &TestServer, key: &str, channel: &str, id: &str, who: &str) -> String {
    let (st, v) = call(
        s,
        &Cred::Key(key),
        Method::POST,
        &format!("/api/v1/channels/{channel}/messages"),
        Some(json!({"message_id": id, "contact": {"identifier": who}, "content": "hello"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v["conversation"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn conversations_move_between_team_queues() {
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let key = Cred::Key(&org.key);
    let agent_cookie = sign_in(&s, REALM, "1001", PASSWORD).await;
    let agent = Cred::Cookie(&agent_cookie);
    let team =
        |name: &str, ext: &str| json!({"name": name, "members": [{"user_id": org.user(ext)}]});
    let support = create_team(&s, &org.key, team("Support", "1001")).await;
    let sales = create_team(&s, &org.key, team("Sales", "1002")).await;

    // A channel whose conversations start in Support's queue, and one without a team.
    let web = api_channel(&s, &org.key, Some(&support)).await;
    let plain = api_channel(&s, &org.key, None).await;
    let c1 = inbound(&s, &org.key, &web, "m1", "crm-1").await;
    let c2 = inbound(&s, &org.key, &plain, "m2", "crm-2").await;
    let (_, v) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/conversations/{c1}"),
        None,
    )
    .await;
    assert_eq!(v["team_id"], support.as_str(), "{v}");

    let list = |q: String, cred: &'static str| {
        let s = &s;
        let agent = &agent;
        let key = &key;
        async move {
            let who = if cred == "agent" { agent } else { key };
            let (st, v) = call(
                s,
                who,
                Method::GET,
                &format!("/api/v1/conversations?{q}"),
                None,
            )
            .await;
            (st, ids(&v))
        }
    };
    assert_eq!(
        list(format!("team={support}"), "key").await,
        (200, vec![c1.clone()])
    );
    assert_eq!(
        list("team=none".into(), "key").await,
        (200, vec![c2.clone()])
    );
    assert_eq!(
        list("team=mine".into(), "agent").await,
        (200, vec![c1.clone()])
    );
    assert_eq!(list("team=mine".into(), "key").await.0, 400);

    // Handed over to Sales: one timeline entry and one event, with both teams named.
    let conv = format!("/api/v1/conversations/{c1}");
    let (st, v) = call(
        &s,
        &agent,
        Method::PATCH,
        &conv,
        Some(json!({"team_id": sales})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["team_id"], sales.as_str());
    let (st, _) = call(
        &s,
        &agent,
        Method::PATCH,
        &conv,
        Some(json!({"team_id": sales})),
    )
    .await;
    assert_eq!(st, 200, "the same team again changes nothing");
    for junk in [
        json!({"team_id": "no-such-team"}),
        json!({"team_id": 7}),
        json!({"team_id": ""}),
    ] {
        let (st, _) = call(&s, &agent, Method::PATCH, &conv, Some(junk.clone())).await;
        assert_eq!(st, 422, "{junk}");
    }
    assert_eq!(list("team=mine".into(), "agent").await, (200, vec![]));
    assert_eq!(
        list(format!("team={sales}"), "key").await,
        (200, vec![c1.clone()])
    );
    let changes = events(&s, &org.id, "conversation")
        .await
        .into_iter()
        .filter(|(e, _)| e == "conversation.team_changed")
        .collect::<Vec<_>>();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].1["previous_team_id"], support.as_str());
    assert_eq!(changes[0].1["team_id"], sales.as_str());
    assert_eq!(changes[0].1["changed_by"]["id"], org.user("1001"));
    let (_, timeline) = call(&s, &key, Method::GET, &format!("{conv}/timeline"), None).await;
    let kinds: Vec<&str> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"conversation.team_changed"), "{timeline}");

    // Out of every team, then the team deleted under a channel that defaults to it: the
    // conversations stay, without a team, and the channel goes on working.
    let (st, v) = call(
        &s,
        &key,
        Method::PATCH,
        &conv,
        Some(json!({"team_id": null})),
    )
    .await;
    assert_eq!((st, &v["team_id"]), (200, &Value::Null));
    let c3 = inbound(&s, &org.key, &web, "m3", "crm-3").await;
    let (st, _) = call(
        &s,
        &key,
        Method::DELETE,
        &format!("/api/v1/teams/{support}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (_, v) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/conversations/{c3}"),
        None,
    )
    .await;
    assert_eq!(v["team_id"], Value::Null, "{v}");
    let (_, ch) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/channels/{web}"),
        None,
    )
    .await;
    assert_eq!(ch["default_team_id"], Value::Null, "{ch}");
    let c4 = inbound(&s, &org.key, &web, "m4", "crm-4").await;
    let (_, v) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/conversations/{c4}"),
        None,
    )
    .await;
    assert_eq!(v["team_id"], Value::Null);

    // A channel's default team is checked and can be set and cleared.
    let ch_path = format!("/api/v1/channels/{plain}");
    let (st, _) = call(
        &s,
        &key,
        Method::PATCH,
        &ch_path,
        Some(json!({"default_team_id": "nope"})),
    )
    .await;
    assert_eq!(st, 422);
    let (st, v) = call(
        &s,
        &key,
        Method::PATCH,
        &ch_path,
        Some(json!({"default_team_id": sales})),
    )
    .await;
    assert_eq!((st, &v["default_team_id"]), (200, &json!(sales)), "{v}");
    let (st, v) = call(
        &s,
        &key,
        Method::PATCH,
        &ch_path,
        Some(json!({"default_team_id": null})),
    )
    .await;
    assert_eq!((st, &v["default_team_id"]), (200, &Value::Null), "{v}");
}

#[tokio::test]
async fn a_team_lead_sees_the_calls_of_the_team_members_and_no_one_else() {
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let key = Cred::Key(&org.key);
    let alice_call =
        processed_upload(&s, &org.key, &[("agent_identifier", "1001")], CALL_VTT).await;
    let bob_call = processed_upload(&s, &org.key, &[("agent_identifier", "1002")], CALL_VTT).await;
    let lea_call = processed_upload(&s, &org.key, &[("agent_identifier", "1003")], CALL_VTT).await;

    let team = create_team(
        &s,
        &org.key,
        json!({"name": "Tier 1", "members": [
            {"user_id": org.user("1001")},
            {"user_id": org.user("1003"), "role": "lead"},
        ]}),
    )
    .await;

    let lead_cookie = sign_in(&s, REALM, "1003", PASSWORD).await;
    let lead = Cred::Cookie(&lead_cookie);
    let alice_cookie = sign_in(&s, REALM, "1001", PASSWORD).await;
    let alice = Cred::Cookie(&alice_cookie);
    let listed = |cred: &'static str| {
        let s = &s;
        let (lead, alice) = (&lead, &alice);
        async move {
            let who = if cred == "lead" { lead } else { alice };
            let (st, v) = call(s, who, Method::GET, "/api/v1/calls?limit=50", None).await;
            assert_eq!(st, 200, "{v}");
            let mut ids = ids(&v);
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    // The lead: their own call and their member's; not Bob's, who is in no team of theirs.
    assert_eq!(
        listed("lead").await,
        sorted(vec![alice_call.clone(), lea_call.clone()])
    );
    let (st, _) = call(
        &s,
        &lead,
        Method::GET,
        &format!("/api/v1/calls/{alice_call}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        &s,
        &lead,
        Method::GET,
        &format!("/api/v1/calls/{bob_call}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    // A plain member sees only their own, not the lead's.
    assert_eq!(listed("alice").await, vec![alice_call.clone()]);
    let (st, _) = call(
        &s,
        &alice,
        Method::GET,
        &format!("/api/v1/calls/{lea_call}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    // Reports count the same calls.
    let (st, report) = call(&s, &lead, Method::GET, "/api/v1/analytics/calls", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["totals"]["calls"], 2, "{report}");

    // The member leaves: the lead no longer sees their calls.
    let (st, _) = call(
        &s,
        &key,
        Method::DELETE,
        &format!("/api/v1/teams/{team}/members/{}", org.user("1001")),
        None,
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(listed("lead").await, vec![lea_call.clone()]);
    // Bob joins as a member: now his calls are the lead's to see; demoted, the lead sees
    // only their own again.
    let member = |ext: &str| format!("/api/v1/teams/{team}/members/{}", org.user(ext));
    let (st, _) = call(&s, &key, Method::PUT, &member("1002"), Some(json!({}))).await;
    assert_eq!(st, 201);
    assert_eq!(
        listed("lead").await,
        sorted(vec![bob_call.clone(), lea_call.clone()])
    );
    let (st, _) = call(
        &s,
        &key,
        Method::PUT,
        &member("1003"),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(listed("lead").await, vec![lea_call.clone()]);
}

#[tokio::test]
async fn an_inbound_number_rings_a_team_and_the_team_cannot_go_while_it_does() {
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let key = Cred::Key(&org.key);
    let team = create_team(
        &s,
        &org.key,
        json!({"name": "Night shift", "members": [{"user_id": org.user("1002")}]}),
    )
    .await;
    let (st, route) = call(
        &s,
        &key,
        Method::POST,
        "/api/v1/routes",
        Some(
            json!({"did": "+14155550150", "target": {"kind": "team", "team_id": team,
                    "strategy": "longest_idle", "member_timeout_s": 15}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{route}");
    assert_eq!(route["team_id"], team.as_str());
    assert_eq!(
        route["target"],
        json!({"kind": "ring_group", "members": [org.user("1002")], "strategy": "longest_idle",
               "member_timeout_s": 15, "total_timeout_s": 15})
    );
    // Whoever joins rings from the next call on; the route itself is unchanged.
    let (st, _) = call(
        &s,
        &key,
        Method::PUT,
        &format!("/api/v1/teams/{team}/members/{}", org.user("1004")),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 201);
    let route_path = format!("/api/v1/routes/{}", route["id"].as_str().unwrap());
    let (_, now) = call(&s, &key, Method::GET, &route_path, None).await;
    assert_eq!(
        now["target"]["members"],
        json!([org.user("1002"), org.user("1004")])
    );
    assert_eq!(
        now["target"]["total_timeout_s"], 30,
        "a turn for each member"
    );

    // Bad team targets are refused.
    for target in [
        json!({"kind": "team", "team_id": "no-such-team"}),
        json!({"kind": "team", "team_id": team, "strategy": "random"}),
        json!({"kind": "team", "team_id": team, "member_timeout_s": 0}),
        json!({"kind": "team"}),
    ] {
        let (st, v) = call(
            &s,
            &key,
            Method::POST,
            "/api/v1/routes",
            Some(json!({"did": "+14155550151", "target": target.clone()})),
        )
        .await;
        assert_eq!(st, 422, "{target}: {v}");
    }

    // The team cannot be deleted while a route rings it.
    let team_path = format!("/api/v1/teams/{team}");
    let (st, err) = call(&s, &key, Method::DELETE, &team_path, None).await;
    assert_eq!(
        (st, err["code"].as_str()),
        (409, Some("team_in_use")),
        "{err}"
    );
    assert_eq!(err["details"]["route_ids"], json!([route["id"]]));
    let (st, _) = call(&s, &key, Method::DELETE, &route_path, None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, &key, Method::DELETE, &team_path, None).await;
    assert_eq!(st, 204);
}

#[tokio::test]
async fn calls_and_reports_narrow_to_one_team() {
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let (_, other_key) = s.org("globex").await;
    let key = Cred::Key(&org.key);
    let alice_call =
        processed_upload(&s, &org.key, &[("agent_identifier", "1001")], CALL_VTT).await;
    let bob_call = processed_upload(&s, &org.key, &[("agent_identifier", "1002")], CALL_VTT).await;
    let team = create_team(
        &s,
        &org.key,
        json!({"name": "Tier 1", "members": [{"user_id": org.user("1001")}, {"user_id": org.user("1004")}]}),
    )
    .await;

    let (st, list) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/calls?team_id={team}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(ids(&list), vec![alice_call.clone()]);
    let (_, all) = call(&s, &key, Method::GET, "/api/v1/calls", None).await;
    let mut all = ids(&all);
    all.sort();
    let mut both = vec![alice_call.clone(), bob_call.clone()];
    both.sort();
    assert_eq!(all, both);

    // The leaderboard of one team: its members' calls only, said in the answer.
    let (st, report) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/analytics/agents?team_id={team}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["team_id"], team.as_str());
    let agents: Vec<&str> = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(agents, vec!["1001"], "{report}");
    let (_, overview) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/analytics/calls?team_id={team}"),
        None,
    )
    .await;
    assert_eq!(overview["totals"]["calls"], 1, "{overview}");
    let r = s
        .http
        .get(s.url(&format!("/api/v1/calls/export.csv?team_id={team}")))
        .header("x-api-key", &org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(
        csv.contains(&alice_call) && !csv.contains(&bob_call),
        "{csv}"
    );

    // Unknown teams and another organization's team are 404, never an empty success.
    for path in [
        "/api/v1/calls?team_id=no-such-team".to_string(),
        "/api/v1/analytics/agents?team_id=no-such-team".to_string(),
    ] {
        let (st, _) = call(&s, &key, Method::GET, &path, None).await;
        assert_eq!(st, 404, "{path}");
    }
    let (st, _) = call(
        &s,
        &Cred::Key(&other_key),
        Method::GET,
        &format!("/api/v1/calls?team_id={team}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
}

/// A signed WhatsApp notification on a number whose channel defaults to a team: the new
/// conversation is in the team's queue (the batched intake applies the default as well).
#[tokio::test]
async fn whatsapp_conversations_start_in_the_channels_team() {
    use callscope_api::messaging::whatsapp::signature::sign;
    const APP_SECRET: &str = "app-secret-0123456789";
    let s = TestServer::start(|_| {}).await;
    let org = org_with_users(&s, "acme", REALM).await;
    let key = Cred::Key(&org.key);
    let team = create_team(&s, &org.key, json!({"name": "WhatsApp desk"})).await;
    let (st, ch) = call(
        &s,
        &key,
        Method::POST,
        "/api/v1/channels",
        Some(json!({
            "kind": "whatsapp", "name": "Support WhatsApp", "phone_number_id": "PN-TEAM-1",
            "verify_token": "verify-token-abcdef", "app_secret": APP_SECRET,
            "access_token": "EAAG-test-access-token-xyz", "default_team_id": team,
        })),
    )
    .await;
    assert_eq!(st, 201, "{ch}");
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN-TEAM-1"},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": "14155552671"}],
            "messages": [{"from": "14155552671", "id": "wamid.TEAM1", "timestamp": "1763700000",
                          "type": "text", "text": {"body": "my invoice is wrong"}}],
        }}]}],
    }))
    .unwrap();
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(APP_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, list) = call(
        &s,
        &key,
        Method::GET,
        &format!("/api/v1/conversations?team={team}"),
        None,
    )
    .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["data"][0]["channel"], "whatsapp");
}
