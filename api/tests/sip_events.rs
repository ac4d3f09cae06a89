//! The call-event consumer on a real SQLite database: a call's events become a `calls` row
//! (source sip) with its SIP side, a contact, timeline entries and webhook outbox rows;
//! replayed events change nothing; events for unknown calls are ignored; the spawned task
//! drains its channel.

use callscope_api::sip::consumer::{self, Applied};
use callscope_api::sip::trunks::{NewTrunk, create_trunk};
use callscope_api::sip::users::{NewUser, Role, create_user, get_user};
use callscope_api::store;
use callscope_api::webhooks::{NewEndpoint, create_endpoint};
use callscope_sip::events::{CallDirection, CallEvent, HangupSide};

async fn db() -> (tempfile::TempDir, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let pool = store::connect(&url).await.unwrap();
    store::migrate(&pool).await.unwrap();
    (dir, pool)
}

struct Fixture {
    org: String,
    agent: String,
    trunk: String,
}

async fn fixture(pool: &sqlx::SqlitePool) -> Fixture {
    let org = store::orgs::create_org(pool, "Acme").await.unwrap();
    let agent = create_user(
        pool,
        &org,
        &NewUser {
            name: "Alice",
            extension: "1001",
            password: "alice-password",
            role: Role::Agent,
        },
    )
    .await
    .unwrap()
    .id;
    let trunk = create_trunk(
        pool,
        &org,
        &NewTrunk {
            name: "carrier",
            host: "127.0.0.1:5080",
            transport: "udp",
            username: None,
            password: None,
            inbound_acl: &["127.0.0.1".to_string()],
        },
    )
    .await
    .unwrap()
    .trunk
    .id;
    create_endpoint(
        pool,
        &org,
        NewEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["call.*".into()],
            secret: None,
            description: None,
        },
    )
    .await
    .unwrap();
    Fixture { org, agent, trunk }
}

fn inbound_call(f: &Fixture, call_id: &str) -> Vec<CallEvent> {
    vec![
        CallEvent::Started {
            call_id: call_id.into(),
            org_id: f.org.clone(),
            direction: CallDirection::Inbound,
            from: "sip:+14155552671@127.0.0.1".into(),
            to: "sip:+14155550100@127.0.0.1".into(),
            sip_call_id: "abc123@127.0.0.1".into(),
            agent_user_id: None,
            trunk_id: Some(f.trunk.clone()),
            at_ms: 1_700_000_000_000,
        },
        CallEvent::Ringing {
            call_id: call_id.into(),
            at_ms: 1_700_000_000_200,
        },
        CallEvent::Answered {
            call_id: call_id.into(),
            answered_by_user_id: Some(f.agent.clone()),
            at_ms: 1_700_000_002_000,
        },
        CallEvent::Held {
            call_id: call_id.into(),
            at_ms: 1_700_000_005_000,
        },
        CallEvent::Resumed {
            call_id: call_id.into(),
            at_ms: 1_700_000_006_000,
        },
        CallEvent::Ended {
            call_id: call_id.into(),
            at_ms: 1_700_000_012_500,
            sip_status: 200,
            hangup_side: HangupSide::Callee,
            cause: "normal_clearing".into(),
        },
    ]
}

async fn outbox_events(pool: &sqlx::SqlitePool, org: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT event, payload FROM webhook_outbox WHERE org_id = $1 ORDER BY id")
        .bind(org)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_inbound_call_becomes_a_record_timeline_and_webhooks() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    let events = inbound_call(&f, "call-1");
    for ev in &events {
        assert_eq!(
            consumer::apply(&pool, ev, "US").await.unwrap(),
            Applied::Changed,
            "{ev:?}"
        );
    }

    let call = store::calls::get_call(&pool, &f.org, "call-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.source, "sip");
    assert_eq!(call.direction.as_deref(), Some("inbound"));
    assert_eq!(call.customer_phone.as_deref(), Some("+14155552671"));
    assert_eq!(call.agent_identifier.as_deref(), Some("1001"));
    assert_eq!(call.started_at, Some(1_700_000_000_000));
    assert_eq!(call.duration_ms, Some(10_500), "answer → end");
    let contact_id = call
        .contact_id
        .clone()
        .expect("contact from the caller's number");
    let contact = store::contacts::get_contact(&pool, &f.org, &contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.phone_e164.as_deref(), Some("+14155552671"));

    let sip = callscope_api::sip::call_records::get(&pool, &f.org, "call-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sip.state, "ended");
    assert_eq!(sip.direction, "inbound");
    assert_eq!(sip.trunk_id.as_deref(), Some(f.trunk.as_str()));
    assert_eq!(sip.answered_by_user_id.as_deref(), Some(f.agent.as_str()));
    assert_eq!(sip.invite_at, 1_700_000_000_000);
    assert_eq!(sip.ring_at, Some(1_700_000_000_200));
    assert_eq!(sip.answer_at, Some(1_700_000_002_000));
    assert_eq!(sip.end_at, Some(1_700_000_012_500));
    assert_eq!(sip.sip_status, Some(200));
    assert_eq!(sip.hangup_side.as_deref(), Some("callee"));
    assert_eq!(sip.hangup_cause.as_deref(), Some("normal_clearing"));
    assert_eq!(sip.on_hold, 0);
    // The agent's idle clock starts at the end of this call (longest-idle ring groups).
    let agent = get_user(&pool, &f.org, &f.agent).await.unwrap().unwrap();
    assert_eq!(agent.last_call_ended_at, Some(1_700_000_012_500));

    let timeline = store::timeline::list_for_contact(&pool, &f.org, &contact_id, None, 50)
        .await
        .unwrap();
    let kinds: Vec<&str> = timeline.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "call.started",
            "call.ringing",
            "call.answered",
            "call.held",
            "call.resumed",
            "call.ended"
        ]
    );
    assert!(
        timeline
            .iter()
            .all(|e| e.conversation_id == call.conversation_id)
    );

    let outbox = outbox_events(&pool, &f.org).await;
    let names: Vec<&str> = outbox.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "call.started",
            "call.ringing",
            "call.answered",
            "call.ended"
        ]
    );
    let ended: serde_json::Value = serde_json::from_str(&outbox[3].1).unwrap();
    assert_eq!(ended["event"], "call.ended");
    assert_eq!(ended["data"]["call"]["id"], "call-1");
    assert_eq!(ended["data"]["call"]["source"], "sip");
    assert_eq!(ended["data"]["sip"]["sip_status"], 200);
    assert_eq!(ended["data"]["sip"]["hangup_side"], "callee");
    assert_eq!(ended["data"]["sip"]["from"], "sip:+14155552671@127.0.0.1");
    let started: serde_json::Value = serde_json::from_str(&outbox[0].1).unwrap();
    assert_eq!(started["data"]["sip"]["state"], "trying");

    // Replaying every event changes nothing.
    for ev in &events {
        assert_eq!(
            consumer::apply(&pool, ev, "US").await.unwrap(),
            Applied::Unchanged,
            "{ev:?}"
        );
    }
    assert_eq!(outbox_events(&pool, &f.org).await.len(), 4);
    assert_eq!(
        store::timeline::list_for_contact(&pool, &f.org, &contact_id, None, 50)
            .await
            .unwrap()
            .len(),
        6
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn unanswered_internal_and_unknown_calls() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    // A cancelled internal call: no contact, no direction in `calls`, duration 0.
    let evs = [
        CallEvent::Started {
            call_id: "int-1".into(),
            org_id: f.org.clone(),
            direction: CallDirection::Internal,
            from: "sip:1001@acme.callscope.local".into(),
            to: "sip:1002@acme.callscope.local".into(),
            sip_call_id: "x@y".into(),
            agent_user_id: Some(f.agent.clone()),
            trunk_id: None,
            at_ms: 1_000,
        },
        CallEvent::Ringing {
            call_id: "int-1".into(),
            at_ms: 1_100,
        },
        CallEvent::Ended {
            call_id: "int-1".into(),
            at_ms: 4_000,
            sip_status: 487,
            hangup_side: HangupSide::Caller,
            cause: "cancelled".into(),
        },
        // Too late: the call is over.
        CallEvent::Answered {
            call_id: "int-1".into(),
            answered_by_user_id: None,
            at_ms: 5_000,
        },
    ];
    let results = [
        Applied::Changed,
        Applied::Changed,
        Applied::Changed,
        Applied::Unchanged,
    ];
    for (ev, want) in evs.iter().zip(results) {
        assert_eq!(consumer::apply(&pool, ev, "US").await.unwrap(), want);
    }
    let call = store::calls::get_call(&pool, &f.org, "int-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.direction, None);
    assert_eq!(call.contact_id, None);
    assert_eq!(call.duration_ms, Some(0));
    assert_eq!(call.agent_identifier.as_deref(), Some("1001"));
    let sip = callscope_api::sip::call_records::get(&pool, &f.org, "int-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sip.direction.as_str(), sip.sip_status, sip.answer_at),
        ("internal", Some(487), None)
    );
    assert_eq!(sip.hangup_cause.as_deref(), Some("cancelled"));

    // Events of calls we never saw start, and a start for a non-existent org: ignored.
    assert_eq!(
        consumer::apply(
            &pool,
            &CallEvent::Ringing {
                call_id: "ghost".into(),
                at_ms: 1
            },
            "US"
        )
        .await
        .unwrap(),
        Applied::UnknownCall
    );
    let mut bogus = inbound_call(&f, "bogus").remove(0);
    if let CallEvent::Started { org_id, .. } = &mut bogus {
        *org_id = "no-such-org".into();
    }
    assert_eq!(
        consumer::apply(&pool, &bogus, "US").await.unwrap(),
        Applied::UnknownCall
    );
    // A foreign agent/trunk id in an event is not recorded against this org.
    let other = store::orgs::create_org(&pool, "Other").await.unwrap();
    let mut foreign = inbound_call(&f, "foreign").remove(0);
    if let CallEvent::Started {
        org_id,
        agent_user_id,
        ..
    } = &mut foreign
    {
        *org_id = other.clone();
        *agent_user_id = Some(f.agent.clone());
    }
    assert_eq!(
        consumer::apply(&pool, &foreign, "US").await.unwrap(),
        Applied::Changed
    );
    let sip = callscope_api::sip::call_records::get(&pool, &other, "foreign")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sip.agent_user_id, None);
    assert_eq!(sip.trunk_id, None);
    assert_eq!(
        outbox_events(&pool, &other).await.len(),
        0,
        "no endpoints in the other org"
    );
}

#[tokio::test]
async fn the_spawned_consumer_drains_its_channel() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    let (tx, rx) = tokio::sync::mpsc::channel(consumer::EVENT_CHANNEL_CAPACITY);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = consumer::spawn(pool.clone(), rx, "US".into(), stop);
    for i in 0..20 {
        for ev in inbound_call(&f, &format!("c{i}")) {
            tx.try_send(ev).unwrap();
        }
    }
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(60), task)
        .await
        .expect("consumer finished")
        .unwrap();
    let ended: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM call_sip WHERE org_id = $1 AND state = 'ended'")
            .bind(&f.org)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(ended, 20);
    assert_eq!(outbox_events(&pool, &f.org).await.len(), 80);
    // All 20 calls came from the same number: one contact.
    let contacts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE org_id = $1")
        .bind(&f.org)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(contacts, 1);
}

#[tokio::test]
async fn a_stopped_consumer_applies_what_was_queued() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    let (tx, rx) = tokio::sync::mpsc::channel(consumer::EVENT_CHANNEL_CAPACITY);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    for ev in inbound_call(&f, "last") {
        tx.try_send(ev).unwrap();
    }
    // Stop before the task even starts: the queued events are still applied, and the task
    // ends although a sender is alive.
    stop_tx.send(true).unwrap();
    let task = consumer::spawn(pool.clone(), rx, "US".into(), stop);
    tokio::time::timeout(std::time::Duration::from_secs(30), task)
        .await
        .expect("consumer stopped")
        .unwrap();
    let sip = callscope_api::sip::call_records::get(&pool, &f.org, "last")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sip.state, "ended");
    drop(tx);
}

/// The events of `calls` calls (started, ringing, answered, held, ended: five each), in
/// waves of 100 overlapping calls as a busy trunk delivers them: each call's events stay in
/// order while calls interleave. Every call has its own caller number (its own contact).
fn load(f: &Fixture, calls: usize) -> Vec<CallEvent> {
    let mut out = Vec::with_capacity(calls * 5);
    for wave in 0..calls.div_ceil(100) {
        let ids: Vec<usize> = (wave * 100..((wave + 1) * 100).min(calls)).collect();
        for step in [0, 1, 2, 3, 5] {
            for &i in &ids {
                let mut ev = inbound_call(f, &format!("load-{i}")).remove(step);
                if let CallEvent::Started { from, .. } = &mut ev {
                    *from = format!("sip:+1415555{i:04}@127.0.0.1");
                }
                out.push(ev);
            }
        }
    }
    out
}

/// Push `events` into a channel of `capacity` at `per_second` (in bursts every 10 ms) the
/// way the SIP side does (`try_send`, a full channel drops and counts), through a consumer
/// applying up to `batch_max` per transaction. Returns (drops, seconds to drain).
async fn run_consumer(
    pool: &sqlx::SqlitePool,
    events: Vec<CallEvent>,
    capacity: usize,
    batch_max: usize,
    per_second: usize,
) -> (usize, f64) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let task = consumer::spawn_with_batch(pool.clone(), rx, "US".into(), stop, batch_max);
    let burst = (per_second / 100).max(1);
    let mut dropped = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        tick.tick().await;
        for ev in events.by_ref().take(burst) {
            if tx.try_send(ev).is_err() {
                dropped += 1;
            }
        }
    }
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(300), task)
        .await
        .expect("consumer finished")
        .unwrap();
    (dropped, started.elapsed().as_secs_f64())
}

async fn count_ended(pool: &sqlx::SqlitePool, org: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM call_sip WHERE org_id = $1 AND state = 'ended'")
        .bind(org)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// 20,000 events of 4,000 calls, interleaved in waves of 100 as a busy trunk delivers them,
/// all queued at once so the consumer takes them in full batches: every call ends up complete
/// with its webhooks, timeline entries and contact, as if applied one by one. How fast it
/// applies them is a figure of `scripts/bench-sip` (the backlog under real SIP load) and of
/// `measure_batch_against_per_event_throughput` below, not an assertion here: a rate checked
/// in a test fails whenever the shared machine is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_consumer_applies_every_event_of_thousands_of_interleaved_calls() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    let events = load(&f, 4_000);
    assert_eq!(events.len(), 20_000);
    let n = events.len();
    // A channel that holds them all: nothing can be dropped at the door.
    let (_, secs) = run_consumer(&pool, events, n, consumer::EVENT_BATCH_MAX, usize::MAX).await;
    eprintln!("batched: 20000 events applied in {secs:.2} s");
    assert_eq!(count_ended(&pool, &f.org).await, 4_000);
    // started, ringing, answered, ended webhooks per call; hold is timeline only.
    assert_eq!(outbox_events(&pool, &f.org).await.len(), 16_000);
    let timeline: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM timeline_events WHERE org_id = $1")
            .bind(&f.org)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(timeline, 20_000, "one timeline entry per event");
    let contacts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE org_id = $1")
        .bind(&f.org)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(contacts, 4_000);
}

/// Throughput of one transaction per event against batches, all events queued up front
/// (no drops possible): prints events/s for both. A measurement, run on demand:
/// `cargo test -p callscope-api --test sip_events -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_batch_against_per_event_throughput() {
    for batch_max in [1, consumer::EVENT_BATCH_MAX] {
        let (_d, pool) = db().await;
        let f = fixture(&pool).await;
        let events = load(&f, 2_000);
        let n = events.len();
        let (dropped, secs) = run_consumer(&pool, events, n, batch_max, 10_000_000).await;
        assert_eq!(dropped, 0);
        assert_eq!(count_ended(&pool, &f.org).await, 2_000);
        eprintln!(
            "batch_max {batch_max}: {n} events in {secs:.2} s = {:.0} events/s",
            n as f64 / secs
        );
    }
}

/// A failing event inside a batch loses only itself: the batch falls back to one
/// transaction per event and the other calls are recorded whole.
#[tokio::test]
async fn one_bad_event_does_not_lose_its_batch() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    // An Ended whose org's call_sip row is made to fail: a trigger aborts its UPDATE.
    sqlx::query(
        "CREATE TRIGGER fail_one BEFORE UPDATE OF end_at ON call_sip
         WHEN NEW.call_id = 'bad' BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut batch = Vec::new();
    for id in ["a", "bad", "b"] {
        batch.extend(inbound_call(&f, id));
    }
    consumer::apply_batch(&pool, &batch, "US").await;
    for id in ["a", "b"] {
        let sip = callscope_api::sip::call_records::get(&pool, &f.org, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sip.state, "ended", "{id}");
    }
    let bad = callscope_api::sip::call_records::get(&pool, &f.org, "bad")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bad.state, "answered",
        "everything but its failing end was recorded"
    );
    // a and b: 4 webhooks each; bad: 3 (its end failed).
    assert_eq!(outbox_events(&pool, &f.org).await.len(), 11);
}

/// A SIP call that is never recorded still uses minutes: when its end is applied, the quota
/// thresholds it crossed are announced then (quota.warning 80 and 95, quota.exhausted), not
/// at the organization's next upload.
#[tokio::test]
async fn an_unrecorded_call_that_crosses_the_quota_announces_it_when_it_ends() {
    let (_d, pool) = db().await;
    let f = fixture(&pool).await;
    callscope_api::analytics::quota::set_quota_minutes(&pool, &f.org, Some(1))
        .await
        .unwrap();
    let thresholds = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT threshold FROM quota_warnings WHERE org_id = $1 ORDER BY threshold",
        )
        .bind(&f.org)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    // Answered, then 70 s of talk: more than the whole 1-minute quota.
    let mut events = inbound_call(&f, "call-long");
    events.retain(|e| !matches!(e, CallEvent::Held { .. } | CallEvent::Resumed { .. }));
    let ended = events.pop().unwrap();
    consumer::apply_batch(&pool, &events, "US").await;
    assert!(
        thresholds().await.is_empty(),
        "nothing before the call ends"
    );
    let CallEvent::Ended {
        call_id,
        sip_status,
        hangup_side,
        cause,
        ..
    } = ended
    else {
        panic!("the last event ends the call")
    };
    let ended = CallEvent::Ended {
        call_id,
        at_ms: 1_700_000_072_000,
        sip_status,
        hangup_side,
        cause,
    };
    consumer::apply_batch(&pool, std::slice::from_ref(&ended), "US").await;
    assert_eq!(thresholds().await, vec![80, 95, 100]);
    let stream: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM event_stream WHERE org_id = $1 AND event LIKE 'quota.%' ORDER BY seq",
    )
    .bind(&f.org)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        stream,
        vec!["quota.warning", "quota.warning", "quota.exhausted"]
    );
    // A replayed end changes nothing and announces nothing again.
    consumer::apply_batch(&pool, std::slice::from_ref(&ended), "US").await;
    assert_eq!(thresholds().await, vec![80, 95, 100]);
}
