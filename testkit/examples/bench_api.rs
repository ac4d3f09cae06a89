//! The API benchmark behind `scripts/bench-api`: timeline reads on a large SQLite database
//! and WhatsApp message ingestion through the signed webhook, against the real release
//! `callscope serve`. Prints a Markdown report on stdout; progress on stderr.
//!
//! Setup: testkit's `Callscope` harness provisions a data directory through the CLI
//! (`migrate`, `org create`, `apikey create`) and starts `serve` (SIP off). The database is
//! then filled in one transaction, with rows shaped like the server's own (see
//! `seed_database`): contacts, one voice conversation each, calls with a stored analysis
//! for every call event, and timeline events of four kinds (`call.processed`,
//! `message.created`, `note.created`, `task.created`) with payloads of the server's JSON
//! shapes. One contact (the "heavy" one) gets 10,000 events, the others share the rest.
//! `serve` is then restarted, so it reads a fully written file with a cold cache.
//!
//! Timeline reads are open-loop: request i is due at t0 + i/rate, whether or not earlier
//! ones have answered, and its latency runs from when it was due, so a stalled server shows
//! up as queueing delay rather than as fewer requests sent (no coordinated omission).
//! Scenarios: the heavy contact's first page; its deeper pages (cursors collected by walking
//! its whole timeline first); a typical contact's first page (contacts picked across all).
//! Each runs a discarded warm-up, then the measured window.
//!
//! Ingestion is closed-loop with N concurrent senders of signed `POST
//! /api/v1/webhooks/whatsapp` notifications, one text message each (how Meta delivers
//! them), every one with its own wamid, from a pool of distinct senders (half of them
//! numbers of existing contacts). After each step the stored rows are counted: every
//! accepted notification must be exactly one message row and one timeline event.
//!
//! Environment (all optional):
//! - `CALLSCOPE_BIN`: the release binary (default `target/release/callscope`)
//! - `BENCH_API_CONTACTS` (100000), `BENCH_API_EVENTS` (1000000), `BENCH_API_HEAVY` (10000)
//! - `BENCH_API_RATE`: timeline requests per second (200); `BENCH_API_SECS`: window (30)
//! - `BENCH_API_WARMUP_SECS` (5)
//! - `BENCH_API_CONCURRENCY`: ingestion steps, e.g. `4,16,64` (default); `BENCH_API_INGEST_SECS` (30)
//! - `BENCH_API_SENDERS`: distinct WhatsApp senders (20000)
//! - `BENCH_API_KEEP_DB`: a path to copy the seeded database to, for looking into it later
//! - `BENCH_API_ONLY`: `ingest` skips the timeline reads (the database is still seeded: half
//!   the senders are its contacts)

use callscope_testkit::bench::{Window, WindowFigures, env_list, env_or, machine};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::stats::percentile;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Res<T> = Result<T, String>;
/// The URL of request `i` of a scenario.
type UrlFor = Box<dyn Fn(u64) -> String>;

const PHONE_NUMBER_ID: &str = "PN-BENCH-1";
const APP_SECRET: &str = "bench-app-secret";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per INSERT statement while seeding (9 columns × 400 stays far under SQLite's
/// 32,766 bound parameters).
const SEED_BATCH: usize = 400;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-api: {e}");
            ExitCode::from(2)
        }
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

struct Knobs {
    contacts: usize,
    events: usize,
    heavy: usize,
    rate: f64,
    secs: f64,
    warmup_secs: f64,
    concurrency: Vec<u64>,
    ingest_secs: f64,
    senders: u64,
    /// Only the ingestion steps (`BENCH_API_ONLY=ingest`).
    ingest_only: bool,
}

fn run() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var("CALLSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/callscope"));
    let k = Knobs {
        contacts: env_or("BENCH_API_CONTACTS", 100_000usize).max(2),
        events: env_or("BENCH_API_EVENTS", 1_000_000usize),
        heavy: env_or("BENCH_API_HEAVY", 10_000usize),
        rate: env_or("BENCH_API_RATE", 200.0f64).clamp(1.0, 20_000.0),
        secs: env_or("BENCH_API_SECS", 30.0f64).clamp(1.0, 600.0),
        warmup_secs: env_or("BENCH_API_WARMUP_SECS", 5.0f64).clamp(0.0, 60.0),
        concurrency: env_list("BENCH_API_CONCURRENCY", "4,16,64"),
        ingest_secs: env_or("BENCH_API_INGEST_SECS", 30.0f64).clamp(1.0, 600.0),
        senders: env_or("BENCH_API_SENDERS", 20_000u64).max(1),
        ingest_only: std::env::var("BENCH_API_ONLY").is_ok_and(|v| v == "ingest"),
    };
    if k.events < k.heavy + (k.contacts - 1) {
        return Err(
            "BENCH_API_EVENTS must cover the heavy contact and one event per other contact".into(),
        );
    }
    println!("# callscope API benchmark\n");
    println!("- machine: {}", machine());
    println!("- binary: {}", bin.display());

    let mut cs = Callscope::builder(&bin)
        .env("CALLSCOPE_SIP_ENABLED", "false")
        .env("CALLSCOPE_HTTP_RATE_LIMIT_PER_MINUTE", "100000000")
        .start()
        .map_err(err("starting callscope"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err("tokio runtime"))?;

    let db = cs.data_dir().join("callscope.db");
    eprintln!(
        "bench-api: seeding {} contacts and {} events",
        k.contacts, k.events
    );
    let t = Instant::now();
    let seeded = rt.block_on(seed_database(&db, cs.org_id(), &k))?;
    let seed_s = t.elapsed().as_secs_f64();
    let db_mb = file_mb(&db) + file_mb(&db.with_extension("db-wal"));
    println!(
        "- seeded {} contacts, {} timeline events ({} calls with analyses) in {seed_s:.1} s; database {db_mb:.0} MB",
        seeded.contacts.len(),
        seeded.events,
        seeded.calls
    );
    for (what, plan) in rt.block_on(query_plans(&db, cs.org_id(), &seeded.contacts[0]))? {
        println!("- query plan, {what}: {plan}");
    }
    if let Ok(keep) = std::env::var("BENCH_API_KEEP_DB") {
        // For looking into a run afterwards (sqlite3, EXPLAIN, a manual `serve`).
        std::fs::copy(&db, &keep).map_err(err("copying the database"))?;
        println!("- database copied to {keep}, API key {}", cs.api_key());
    }
    cs.restart().map_err(err("restarting callscope"))?;
    let pid = cs.pid().ok_or("callscope is not running")?;
    let idle_rss = callscope_testkit::process::rss_bytes_of(pid).map_err(|e| e.to_string())?;
    println!(
        "- callscope idle RSS after restart: {:.1} MB",
        idle_rss as f64 / 1e6
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(err("HTTP client"))?;
    let base = cs.base_url();
    let key = cs.api_key().to_string();

    // The heavy contact, checked and walked once: every page, every event exactly once.
    let heavy = seeded.contacts[0].clone();
    let cursors = if k.ingest_only {
        vec![String::new()]
    } else {
        rt.block_on(walk_timeline(&client, &base, &key, &heavy, k.heavy))?
    };
    if !k.ingest_only {
        println!(
            "- walked the heavy contact's timeline: {} events in {} pages of 50, none missing or repeated",
            k.heavy,
            cursors.len() + 1
        );
    }

    let mut timeline_rows = Vec::new();
    let scenarios: [(&str, UrlFor); 3] = [
        (
            "heavy contact (10,000 events), first page",
            Box::new({
                let url = format!("{base}/api/v1/contacts/{heavy}/timeline");
                move |_| url.clone()
            }),
        ),
        (
            "heavy contact, deeper pages (cursor)",
            Box::new({
                let url = format!("{base}/api/v1/contacts/{heavy}/timeline?before=");
                let cursors = cursors.clone();
                move |i| {
                    // A stride coprime with the page count: every depth, in no fixed order.
                    let c = &cursors[(i as usize * 61) % cursors.len()];
                    format!("{url}{c}")
                }
            }),
        ),
        (
            "typical contact (~10 events), first page",
            Box::new({
                let ids = seeded.contacts.clone();
                let base = base.clone();
                move |i| {
                    let n = ids.len() - 1;
                    let id = &ids[1 + (i as usize * 7919) % n];
                    format!("{base}/api/v1/contacts/{id}/timeline")
                }
            }),
        ),
    ];
    let scenarios: &[(&str, UrlFor)] = if k.ingest_only { &[] } else { &scenarios };
    for (label, url) in scenarios {
        if k.warmup_secs > 0.0 {
            eprintln!("bench-api: warm-up: {label}");
            rt.block_on(open_loop(
                &client,
                &key,
                k.rate,
                k.warmup_secs,
                url.as_ref(),
            ));
        }
        eprintln!("bench-api: {label}: {} req/s for {} s", k.rate, k.secs);
        let w = Window::start(pid, &[std::process::id()]).map_err(|e| e.to_string())?;
        let r = rt.block_on(open_loop(&client, &key, k.rate, k.secs, url.as_ref()));
        let f = w.finish().map_err(|e| e.to_string())?;
        timeline_rows.push((label.to_string(), r, f));
    }
    let loadavg_mid = loadavg();

    // WhatsApp ingestion.
    let channel = rt.block_on(create_channel(&client, &base, &key))?;
    let mut ingest_rows = Vec::new();
    let mut accepted_total = 0u64;
    for (step, &n) in k.concurrency.iter().enumerate() {
        let n = n.clamp(1, 1024);
        let before = rt.block_on(count_messages(&db, &channel))?;
        eprintln!(
            "bench-api: ingestion, {n} concurrent senders for {} s",
            k.ingest_secs
        );
        let w = Window::start(pid, &[std::process::id()]).map_err(|e| e.to_string())?;
        let r = rt.block_on(ingest(&client, &base, n, k.ingest_secs, step, k.senders));
        let f = w.finish().map_err(|e| e.to_string())?;
        let after = rt.block_on(count_messages(&db, &channel))?;
        accepted_total += r.ok;
        let stored = after.0 - before.0;
        if stored != r.ok || after.0 != after.1 || after.0 != after.2 {
            return Err(format!(
                "ingestion step {n}: {} notifications accepted but {stored} messages stored (total {} rows, {} distinct wamids, {} timeline events)",
                r.ok, after.0, after.1, after.2
            ));
        }
        ingest_rows.push((n, r, f, stored, loadavg()));
    }
    let end = rt.block_on(count_messages(&db, &channel))?;
    let contacts_now = rt.block_on(count_contacts(&db))?;

    if !timeline_rows.is_empty() {
        println!(
            "\n## Timeline reads: GET /api/v1/contacts/{{id}}/timeline, open loop at {} req/s for {} s each\n",
            k.rate, k.secs
        );
        println!(
            "| scenario | sent | ok | errors | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | callscope CPU % of a core | client CPU % | callscope RSS MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (label, r, f) in &timeline_rows {
            let lat = &r.latencies_ms;
            println!(
                "| {label} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} |",
                r.sent,
                r.ok,
                r.sent - r.ok,
                r.ok as f64 / r.wall_s,
                ms(percentile(lat, 50.0)),
                ms(percentile(lat, 90.0)),
                ms(percentile(lat, 99.0)),
                ms(percentile(lat, 100.0)),
                f.cpu_pct,
                f.peers_pct.first().copied().unwrap_or(0.0),
                f.rss_bytes as f64 / 1e6
            );
        }
        for (label, r, _) in &timeline_rows {
            let slow = r.latencies_ms.iter().filter(|&&l| l > 20.0).count();
            println!(
                "\n- {label}: {slow} requests over 20 ms, due in seconds {:?} of the window",
                r.slow_seconds
            );
        }
        print_threads(
            &timeline_rows
                .iter()
                .map(|(l, _, f)| (l.clone(), f))
                .collect::<Vec<_>>(),
        );
    }

    println!(
        "\n## WhatsApp ingestion: signed POST /api/v1/webhooks/whatsapp, one message each, closed loop, {} s per step\n",
        k.ingest_secs
    );
    println!(
        "| concurrency | posted | accepted (200) | errors | stored messages | stored msg/s | p50 ms | p90 ms | p99 ms | max ms | callscope CPU % of a core | client CPU % | callscope RSS MB | load average after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, r, f, stored, load) in &ingest_rows {
        let lat = &r.latencies_ms;
        println!(
            "| {n} | {} | {} | {} | {stored} | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {load} |",
            r.sent,
            r.ok,
            r.sent - r.ok,
            *stored as f64 / r.wall_s,
            ms(percentile(lat, 50.0)),
            ms(percentile(lat, 90.0)),
            ms(percentile(lat, 99.0)),
            ms(percentile(lat, 100.0)),
            f.cpu_pct,
            f.peers_pct.first().copied().unwrap_or(0.0),
            f.rss_bytes as f64 / 1e6
        );
    }
    print_threads(
        &ingest_rows
            .iter()
            .map(|(n, _, f, _, _)| (format!("ingestion, concurrency {n}"), f))
            .collect::<Vec<_>>(),
    );
    println!(
        "\n- stored check: {accepted_total} accepted notifications → {} message rows, {} distinct wamids, {} `message.created` timeline events for them; contacts now {contacts_now}",
        end.0, end.1, end.2
    );
    println!(
        "- load average after the timeline runs: {loadavg_mid}; at the end: {}",
        loadavg()
    );
    let errors: Vec<String> = cs
        .log()
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .take(5)
        .map(str::to_owned)
        .collect();
    if !errors.is_empty() {
        println!("- callscope logged errors, first ones: {errors:?}");
    }
    cs.stop(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn print_threads(rows: &[(String, &WindowFigures)]) {
    println!("\nCPU by callscope thread kind (% of a core):\n");
    for (label, f) in rows {
        let t: Vec<String> = f
            .threads
            .iter()
            .take(6)
            .map(|(name, pct)| format!("{name} {pct:.0}"))
            .collect();
        println!(
            "- {label}: user {:.0}, system {:.0}; {}",
            f.user_sys_pct.0,
            f.user_sys_pct.1,
            t.join(", ")
        );
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------------------
// Seeding

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A UUIDv7 for time `ms`, as the server's `new_id` makes them (time-ordered text).
fn uuid7(ms: i64, rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        (ms >> 16) as u32,
        (ms & 0xffff) as u16,
        a & 0xfff,
        0x8000 | ((a >> 12) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 UTC with milliseconds, as the server's `ms_to_rfc3339` writes them.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// The phone number of seeded contact `j`: +1 415 2xx xxxx (valid NANP numbers), so a
/// WhatsApp sender with that number lands in the existing contact.
fn contact_phone(j: usize) -> String {
    format!("+1415{:03}{:04}", 200 + j / 10_000, j % 10_000)
}

struct Seeded {
    contacts: Vec<String>,
    events: usize,
    calls: usize,
}

struct EventRow {
    id: String,
    contact: usize,
    conversation: usize,
    kind: &'static str,
    ref_id: String,
    payload: String,
    at: i64,
}

struct CallRow {
    id: String,
    contact: usize,
    conversation: usize,
    phone: String,
    started: i64,
    duration_ms: i64,
    analysis: String,
}

/// Writes the benchmark's rows into the server's database in one transaction: the server
/// has the file open (WAL), but is idle.
async fn seed_database(db: &Path, org: &str, k: &Knobs) -> Res<Seeded> {
    let opts = SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(err("opening the database"))?;
    sqlx::query("PRAGMA cache_size = -262144")
        .execute(&mut conn)
        .await
        .map_err(err("cache_size"))?;
    let mut tx = conn.begin().await.map_err(err("BEGIN"))?;
    let now = now_ms();
    let two_years = 730 * 86_400_000i64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // Contacts and one voice conversation each (what processing a call opens).
    let mut contacts = Vec::with_capacity(k.contacts);
    let mut conversations = Vec::with_capacity(k.contacts);
    let mut created = Vec::with_capacity(k.contacts);
    for _ in 0..k.contacts {
        let at = now - two_years - 86_400_000 + rng.below(86_400_000) as i64;
        contacts.push(uuid7(at, &mut rng));
        conversations.push(uuid7(at, &mut rng));
        created.push(at);
    }
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds",
    ];
    for chunk in (0..k.contacts).collect::<Vec<_>>().chunks(SEED_BATCH) {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO contacts (id, org_id, phone_e164, display_name, first_name, last_name, attributes, created_at, updated_at) ",
        );
        b.push_values(chunk, |mut row, &j| {
            let (f, l) = (FIRST[j % 8], LAST[(j / 8) % 8]);
            row.push_bind(&contacts[j])
                .push_bind(org)
                .push_bind(contact_phone(j))
                .push_bind(format!("{f} {l} {j}"))
                .push_bind(f)
                .push_bind(l)
                .push_bind(r#"{"segment":"smb","source":"import"}"#)
                .push_bind(created[j])
                .push_bind(created[j]);
        });
        b.build()
            .execute(&mut *tx)
            .await
            .map_err(err("inserting contacts"))?;
        // The phone index the server keeps beside each contact (matching looks here).
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO contact_phones (org_id, contact_id, phone_e164, is_primary, created_at) ",
        );
        b.push_values(chunk, |mut row, &j| {
            row.push_bind(org)
                .push_bind(&contacts[j])
                .push_bind(contact_phone(j))
                .push_bind(1i64)
                .push_bind(created[j]);
        });
        b.build()
            .execute(&mut *tx)
            .await
            .map_err(err("inserting contact phones"))?;
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO conversations (id, org_id, contact_id, channel, started_at, last_activity_at, created_at, updated_at) ",
        );
        b.push_values(chunk, |mut row, &j| {
            row.push_bind(&conversations[j])
                .push_bind(org)
                .push_bind(&contacts[j])
                .push_bind("voice")
                .push_bind(created[j])
                .push_bind(now)
                .push_bind(created[j])
                .push_bind(now);
        });
        b.build()
            .execute(&mut *tx)
            .await
            .map_err(err("inserting conversations"))?;
    }

    // Events: the heavy contact first, then the rest spread evenly over the others.
    let others = k.contacts - 1;
    let rest = k.events - k.heavy;
    let (base, extra) = (rest / others, rest % others);
    let mut events = Vec::with_capacity(SEED_BATCH);
    let mut calls = Vec::with_capacity(SEED_BATCH);
    let (mut n_events, mut n_calls) = (0usize, 0usize);
    for j in 0..k.contacts {
        let count = if j == 0 {
            k.heavy
        } else {
            base + usize::from(j - 1 < extra)
        };
        for e in 0..count {
            let at = now - rng.below(two_years as u64) as i64;
            let id = uuid7(at, &mut rng);
            let ref_id = uuid7(at, &mut rng);
            // About a quarter calls, 45 % messages, 15 % notes, 15 % tasks.
            let kind = match (e * 7 + j) % 20 {
                0..=4 => "call.processed",
                5..=13 => "message.created",
                14..=16 => "note.created",
                _ => "task.created",
            };
            let payload = match kind {
                "call.processed" => {
                    let c = call_row(&ref_id, j, at, &mut rng);
                    let p = call_payload(&c, &contacts[j], &conversations[j]);
                    calls.push(c);
                    p
                }
                "message.created" => message_payload(
                    &ref_id,
                    &contacts[j],
                    &conversations[j],
                    at,
                    created[j],
                    &mut rng,
                ),
                "note.created" => {
                    note_payload(&ref_id, &contacts[j], &conversations[j], at, &mut rng)
                }
                _ => task_payload(&ref_id, &contacts[j], &conversations[j], at, &mut rng),
            };
            events.push(EventRow {
                id,
                contact: j,
                conversation: j,
                kind,
                ref_id,
                payload,
                at,
            });
            if events.len() == SEED_BATCH {
                n_events +=
                    flush_events(&mut tx, org, &contacts, &conversations, &mut events).await?;
            }
            if calls.len() == SEED_BATCH {
                n_calls += flush_calls(&mut tx, org, &contacts, &conversations, &mut calls).await?;
            }
        }
    }
    n_events += flush_events(&mut tx, org, &contacts, &conversations, &mut events).await?;
    n_calls += flush_calls(&mut tx, org, &contacts, &conversations, &mut calls).await?;
    tx.commit().await.map_err(err("COMMIT"))?;
    // Fold the WAL back into the file so the server starts from a plain database.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .map_err(err("checkpoint"))?;
    conn.close().await.map_err(err("closing the database"))?;
    Ok(Seeded {
        contacts,
        events: n_events,
        calls: n_calls,
    })
}

async fn flush_events(
    tx: &mut SqliteConnection,
    org: &str,
    contacts: &[String],
    conversations: &[String],
    rows: &mut Vec<EventRow>,
) -> Res<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO timeline_events (id, org_id, contact_id, conversation_id, kind, ref_id, payload, occurred_at, created_at) ",
    );
    b.push_values(rows.iter(), |mut row, e| {
        row.push_bind(&e.id)
            .push_bind(org)
            .push_bind(&contacts[e.contact])
            .push_bind(&conversations[e.conversation])
            .push_bind(e.kind)
            .push_bind(&e.ref_id)
            .push_bind(&e.payload)
            .push_bind(e.at)
            .push_bind(e.at);
    });
    b.build()
        .execute(&mut *tx)
        .await
        .map_err(err("inserting timeline events"))?;
    let n = rows.len();
    rows.clear();
    Ok(n)
}

async fn flush_calls(
    tx: &mut SqliteConnection,
    org: &str,
    contacts: &[String],
    conversations: &[String],
    rows: &mut Vec<CallRow>,
) -> Res<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO calls (id, org_id, source, direction, customer_phone, agent_identifier, started_at, duration_ms, channel_layout, language, status, asr_outcome, contact_id, conversation_id, created_at, updated_at, completed_at) ",
    );
    b.push_values(rows.iter(), |mut row, c| {
        row.push_bind(&c.id)
            .push_bind(org)
            .push_bind("upload")
            .push_bind("inbound")
            .push_bind(&c.phone)
            .push_bind("agent-7")
            .push_bind(c.started)
            .push_bind(c.duration_ms)
            .push_bind("stereo_agent_left")
            .push_bind("en")
            .push_bind("completed")
            .push_bind("transcribed")
            .push_bind(&contacts[c.contact])
            .push_bind(&conversations[c.conversation])
            .push_bind(c.started)
            .push_bind(c.started + c.duration_ms + 20_000)
            .push_bind(c.started + c.duration_ms + 20_000);
    });
    b.build()
        .execute(&mut *tx)
        .await
        .map_err(err("inserting calls"))?;
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO call_analyses (call_id, org_id, version, result, analysed_at) ",
    );
    b.push_values(rows.iter(), |mut row, c| {
        row.push_bind(&c.id)
            .push_bind(org)
            .push_bind(1i64)
            .push_bind(&c.analysis)
            .push_bind(c.started + c.duration_ms + 20_000);
    });
    b.build()
        .execute(&mut *tx)
        .await
        .map_err(err("inserting analyses"))?;
    let n = rows.len();
    rows.clear();
    Ok(n)
}

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const SENTIMENTS: [&str; 3] = ["positive", "neutral", "negative"];

fn call_row(id: &str, j: usize, at: i64, rng: &mut Rng) -> CallRow {
    let duration_ms = 30_000 + rng.below(900_000) as i64;
    let overall = SENTIMENTS[rng.below(3) as usize];
    let customer = SENTIMENTS[rng.below(3) as usize];
    // The stored analysis: the fields the timeline reads, plus the bulk a real one carries
    // (summary, topics, action items), so parsing it costs what it would.
    let analysis = json!({
        "version": 1,
        "summary": "The customer called about an internet outage since the morning. The agent checked the line, found a fault at the cabinet and booked an engineer visit for tomorrow between 8 and 12.",
        "sentiment": {
            "overall": overall,
            "score": 0.12,
            "per_role": [
                {"role": "agent", "sentiment": "positive", "score": 0.41},
                {"role": "customer", "sentiment": customer, "score": -0.08}
            ],
            "timeline": [{"start_ms": 0, "end_ms": 60000, "sentiment": "neutral"}, {"start_ms": 60000, "end_ms": 120000, "sentiment": customer}]
        },
        "call_type": {"call_type": "support", "confidence": 0.83, "source": "classifier"},
        "topics": [{"topic": "outage", "score": 0.91}, {"topic": "engineer visit", "score": 0.66}, {"topic": "billing", "score": 0.12}],
        "action_items": [{"text": "Book an engineer visit", "owner": "agent"}, {"text": "Send a confirmation SMS", "owner": "agent"}],
        "compliance": if rng.below(4) == 0 {
            json!([{"rule_id": "greeting", "category": "script", "severity": "low", "segment_seq": 0, "evidence": "no company name in the greeting"}])
        } else {
            json!([])
        },
        "talk_ratio": {"agent": 0.46, "customer": 0.54},
        "silence_ms": 4200,
        "interruptions": 3
    })
    .to_string();
    CallRow {
        id: id.to_string(),
        contact: j,
        conversation: j,
        phone: contact_phone(j),
        started: at - duration_ms - 20_000,
        duration_ms,
        analysis,
    }
}

fn call_payload(c: &CallRow, contact: &str, conversation: &str) -> String {
    let done = c.started + c.duration_ms + 20_000;
    json!({
        "call": {
            "id": c.id,
            "external_call_id": null,
            "source": "upload",
            "direction": "inbound",
            "customer_phone": c.phone,
            "agent_identifier": "agent-7",
            "call_timestamp": rfc3339(c.started),
            "duration_seconds": c.duration_ms as f64 / 1000.0,
            "channel_layout": "stereo_agent_left",
            "language": "en",
            "status": "completed",
            "asr_outcome": "transcribed",
            "failure": null,
            "retry_count": 0,
            "metadata": {"queue": "support"},
            "contact_id": contact,
            "conversation_id": conversation,
            "created_at": rfc3339(c.started),
            "updated_at": rfc3339(done),
            "completed_at": rfc3339(done),
        },
        "recording_duration_ms": c.duration_ms,
        "segments": c.duration_ms / 6000,
        "talk_time_ms": {"agent": c.duration_ms * 4 / 10, "customer": c.duration_ms / 2, "unknown": 0},
        "processed_at": rfc3339(done),
    })
    .to_string()
}

fn message_payload(
    id: &str,
    contact: &str,
    conversation: &str,
    at: i64,
    started: i64,
    rng: &mut Rng,
) -> String {
    let inbound = rng.below(2) == 0;
    json!({
        "message": {
            "id": id,
            "conversation_id": conversation,
            "channel_id": null,
            "channel": "api",
            "contact_id": contact,
            "direction": if inbound { "inbound" } else { "outbound" },
            "sender": {"type": if inbound { "contact" } else { "user" }, "id": if inbound { Some(contact) } else { None }},
            "content": "Hello, I wanted to check on the status of my order from last week, thank you!",
            "content_type": "text",
            "attachments": [],
            "content_attributes": {},
            "status": if inbound { "received" } else { "delivered" },
            "error": null,
            "external_id": format!("wamid.seed.{id}"),
            "sent_at": null,
            "delivered_at": if inbound { None } else { Some(rfc3339(at + 900)) },
            "read_at": null,
            "failed_at": null,
            "created_at": rfc3339(at),
            "updated_at": rfc3339(at),
        },
        "conversation": {
            "id": conversation,
            "contact_id": contact,
            "channel": "voice",
            "channel_id": null,
            "status": "open",
            "snoozed_until": null,
            "assignee_id": null,
            "priority": "none",
            "labels": [],
            "started_at": rfc3339(started),
            "last_activity_at": rfc3339(at),
            "created_at": rfc3339(started),
            "updated_at": rfc3339(at),
        }
    })
    .to_string()
}

fn note_payload(id: &str, contact: &str, conversation: &str, at: i64, rng: &mut Rng) -> String {
    json!({
        "id": id,
        "contact_id": contact,
        "conversation_id": if rng.below(2) == 0 { Some(conversation) } else { None },
        "body": "Customer prefers a call back in the afternoon; asked about the loyalty discount.",
        "author": {"kind": "user", "id": "0190c0de-0000-7000-8000-000000000001"},
        "created_at": rfc3339(at),
        "updated_at": rfc3339(at),
    })
    .to_string()
}

fn task_payload(id: &str, contact: &str, conversation: &str, at: i64, rng: &mut Rng) -> String {
    json!({
        "id": id,
        "title": "Call back about the engineer visit",
        "description": "Confirm the slot and that the router was replaced.",
        "contact_id": contact,
        "conversation_id": conversation,
        "call_id": null,
        "assignee_user_id": null,
        "due_at": rfc3339(at + 86_400_000),
        "priority": PRIORITIES[rng.below(4) as usize],
        "done": false,
        "done_at": null,
        "source": "manual",
        "action_item_index": null,
        "created_by": "0190c0de-0000-7000-8000-000000000001",
        "created_at": rfc3339(at),
        "updated_at": rfc3339(at),
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------
// Timeline reads

/// Reads every page of `contact`'s timeline (50 per page); the `next_cursor` of each page
/// but the last. Fails unless it sees exactly `expected` distinct events, newest first.
async fn walk_timeline(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    contact: &str,
    expected: usize,
) -> Res<Vec<String>> {
    let mut cursors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut insights = 0usize;
    let mut next: Option<String> = None;
    for _ in 0..=(expected / 50 + 1) {
        let url = match &next {
            None => format!("{base}/api/v1/contacts/{contact}/timeline"),
            Some(c) => format!("{base}/api/v1/contacts/{contact}/timeline?before={c}"),
        };
        let r = client
            .get(&url)
            .header("x-api-key", key)
            .send()
            .await
            .map_err(err("timeline page"))?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.map_err(err("timeline page body"))?;
        if status != 200 {
            return Err(format!("timeline page: status {status}: {v}"));
        }
        for e in v["data"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if !seen.insert(id.clone()) {
                return Err(format!("timeline walk: event {id} seen twice"));
            }
            kinds.insert(e["kind"].as_str().unwrap_or_default().to_string());
            if e.get("insights")
                .is_some_and(|i| i["sentiment"].is_string())
            {
                insights += 1;
            }
        }
        match v["next_cursor"].as_str() {
            Some(c) => {
                cursors.push(c.to_string());
                next = Some(c.to_string());
            }
            None => break,
        }
    }
    if seen.len() != expected {
        return Err(format!(
            "timeline walk: {} events, expected {expected}",
            seen.len()
        ));
    }
    if kinds.len() < 4 || insights == 0 {
        return Err(format!(
            "timeline walk: kinds {kinds:?}, {insights} call events with insights"
        ));
    }
    Ok(cursors)
}

struct LoadResult {
    /// Seconds into the window (by due time) in which some request took over 20 ms.
    slow_seconds: Vec<u64>,
    sent: u64,
    ok: u64,
    wall_s: f64,
    latencies_ms: Vec<f64>,
}

/// Open loop: request `i` is due at `t0 + i / rate`; its latency counts from then.
async fn open_loop(
    client: &reqwest::Client,
    key: &str,
    rate: f64,
    secs: f64,
    url: &dyn Fn(u64) -> String,
) -> LoadResult {
    let n = (rate * secs).round() as u64;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let req = client.get(url(i)).header("x-api-key", key);
        handles.push(tokio::spawn(async move {
            let ok = match req.send().await {
                Ok(r) => r.status().as_u16() == 200 && r.bytes().await.is_ok_and(|b| !b.is_empty()),
                Err(_) => false,
            };
            (due.elapsed().as_secs_f64() * 1000.0, ok, i)
        }));
    }
    let mut latencies_ms = Vec::with_capacity(n as usize);
    let mut ok = 0;
    let mut slow_seconds = Vec::new();
    for h in handles {
        if let Ok((lat, good, i)) = h.await {
            latencies_ms.push(lat);
            ok += u64::from(good);
            let second = (i as f64 / rate) as u64;
            if lat > 20.0 && slow_seconds.last() != Some(&second) {
                slow_seconds.push(second);
            }
        }
    }
    LoadResult {
        slow_seconds,
        sent: n,
        ok,
        wall_s: t0.elapsed().as_secs_f64().max(1e-3),
        latencies_ms,
    }
}

// ---------------------------------------------------------------------------------------
// WhatsApp ingestion

async fn create_channel(client: &reqwest::Client, base: &str, key: &str) -> Res<String> {
    let r = client
        .post(format!("{base}/api/v1/channels"))
        .header("x-api-key", key)
        .json(&json!({
            "kind": "whatsapp", "name": "Bench WhatsApp",
            "phone_number_id": PHONE_NUMBER_ID, "business_account_id": "WABA-BENCH",
            "verify_token": "bench-verify-token", "app_secret": APP_SECRET,
            "access_token": "bench-access-token", "graph_base_url": "http://127.0.0.1:9/v21.0",
        }))
        .send()
        .await
        .map_err(err("creating the channel"))?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.map_err(err("channel body"))?;
    match (status, v["id"].as_str()) {
        (201, Some(id)) => Ok(id.to_string()),
        _ => Err(format!("creating the channel: {status} {v}")),
    }
}

/// Sender `s`'s wa_id: the even ones are numbers of seeded contacts, the odd ones new.
fn sender_wa_id(s: u64) -> String {
    if s.is_multiple_of(2) {
        contact_phone((s / 2) as usize % 100_000)
            .trim_start_matches('+')
            .to_string()
    } else {
        format!(
            "1628{:03}{:04}",
            200 + (s / 2) / 10_000 % 800,
            (s / 2) % 10_000
        )
    }
}

fn notification(wa_id: &str, wamid: &str, seq: u64) -> Vec<u8> {
    let ts = (now_ms() / 1000).to_string();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-BENCH", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": format!("Sender {wa_id}")}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": ts, "type": "text",
                          "text": {"body": format!("Hi, is my order {seq} on its way? Thanks")}}]
        }}]}]
    }))
    .unwrap_or_default()
}

fn sign(body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(APP_SECRET.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// `n` workers post notifications back to back until `secs` pass.
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    n: u64,
    secs: f64,
    step: usize,
    senders: u64,
) -> LoadResult {
    let url = Arc::new(format!("{base}/api/v1/webhooks/whatsapp"));
    let seq = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for _ in 0..n {
        let (client, url, seq) = (client.clone(), url.clone(), seq.clone());
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < deadline {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                let wa_id = sender_wa_id(i % senders);
                let body = notification(&wa_id, &format!("wamid.bench.{step}.{i}"), i);
                let sig = sign(&body);
                let t = Instant::now();
                let ok = match client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("X-Hub-Signature-256", sig)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                out.push((t.elapsed().as_secs_f64() * 1000.0, ok));
            }
            out
        }));
    }
    let mut latencies_ms = Vec::new();
    let (mut sent, mut ok) = (0u64, 0u64);
    for h in handles {
        if let Ok(v) = h.await {
            for (lat, good) in v {
                sent += 1;
                ok += u64::from(good);
                latencies_ms.push(lat);
            }
        }
    }
    LoadResult {
        slow_seconds: Vec::new(),
        sent,
        ok,
        wall_s: t0.elapsed().as_secs_f64(),
        latencies_ms,
    }
}

/// (message rows, distinct wamids, `message.created` timeline events) of the channel.
async fn count_messages(db: &Path, channel: &str) -> Res<(u64, u64, u64)> {
    let mut conn = read_only(db).await?;
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM messages WHERE channel_id = $1 AND direction = 'inbound'",
    )
    .bind(channel)
    .fetch_one(&mut conn)
    .await
    .map_err(err("counting messages"))?;
    let (events,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM messages m JOIN timeline_events t
           ON t.org_id = m.org_id AND t.kind = 'message.created' AND t.ref_id = m.id
         WHERE m.channel_id = $1 AND m.direction = 'inbound'",
    )
    .bind(channel)
    .fetch_one(&mut conn)
    .await
    .map_err(err("counting timeline events"))?;
    conn.close().await.map_err(err("closing"))?;
    Ok((rows as u64, distinct as u64, events as u64))
}

async fn count_contacts(db: &Path) -> Res<u64> {
    let mut conn = read_only(db).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM contacts")
        .fetch_one(&mut conn)
        .await
        .map_err(err("counting contacts"))?;
    conn.close().await.map_err(err("closing"))?;
    Ok(n as u64)
}

/// SQLite's plan for the statements a timeline page runs (as `store::timeline::list` and
/// the call insights build them), so a report shows which index each one uses.
async fn query_plans(db: &Path, org: &str, contact: &str) -> Res<Vec<(&'static str, String)>> {
    let mut conn = read_only(db).await?;
    let statements: [(&str, &str); 3] = [
        (
            "first page",
            "SELECT * FROM timeline_events WHERE org_id = $1 AND contact_id = $2 ORDER BY occurred_at DESC, id DESC LIMIT 51",
        ),
        (
            "page before a cursor",
            "SELECT * FROM timeline_events WHERE org_id = $1 AND contact_id = $2 AND (occurred_at < 1 OR (occurred_at = 1 AND id < 'x')) ORDER BY occurred_at DESC, id DESC LIMIT 51",
        ),
        (
            "call insights",
            "SELECT c.org_id, c.id, c.status, c.duration_ms, r.duration_ms, a.result FROM calls c LEFT JOIN recordings r ON r.call_id = c.id LEFT JOIN call_analyses a ON a.call_id = c.id WHERE c.id IN ($1, $2, 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l')",
        ),
    ];
    let mut out = Vec::new();
    for (what, sql) in statements {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(org)
                .bind(contact)
                .fetch_all(&mut conn)
                .await
                .map_err(err("EXPLAIN QUERY PLAN"))?;
        let detail: Vec<String> = rows.into_iter().map(|r| r.3).collect();
        out.push((what, detail.join("; ")));
    }
    conn.close().await.map_err(err("closing"))?;
    Ok(out)
}

async fn read_only(db: &Path) -> Res<SqliteConnection> {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(db).read_only(true))
        .await
        .map_err(err("opening the database"))
}
