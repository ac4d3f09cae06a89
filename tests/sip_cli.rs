//! SIP administration through the real `callscope` binary: users, trunks and routes created
//! by the CLI land in the database as the SIP side needs them. Digest HA1 values are checked
//! against `md5sum`/`sha256sum` (an implementation independent of ours); the password itself
//! is nowhere in the database.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_callscope");

fn cmd(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("CALLSCOPE_DATA_DIR", data)
        .env("CALLSCOPE_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .env_remove("CALLSCOPE_CONFIG")
        .env_remove("CALLSCOPE_DATABASE_URL");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("run callscope");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn fails(c: &mut Command) -> Output {
    let out = c.output().expect("run callscope");
    assert!(!out.status.success(), "{c:?} should have failed");
    out
}

/// hex digest of `text` by a coreutils tool (`md5sum`, `sha256sum`).
fn coreutils_digest(tool: &str, text: &str) -> String {
    let mut child = Command::new(tool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn sqlite(data: &Path, sql: &'static str, bind: &str) -> String {
    // Read the database with a fresh process-independent connection through the binary's
    // own dependency (sqlx), so the test sees exactly what was committed.
    let url = format!("sqlite://{}", data.join("callscope.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(bind)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
    })
}

#[test]
fn users_trunks_and_routes_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let org = ok(cmd(&data).args(["org", "create", "Acme Corp"]));
    let realm = ok(cmd(&data).args(["org", "realm", "--org", &org]));
    assert_eq!(realm, "acme-corp.callscope.local");

    let alice = ok(cmd(&data).args([
        "user",
        "create",
        "--org",
        &org,
        "--name",
        "Alice Agent",
        "--extension",
        "1001",
        "--password",
        "alice-secret-1",
    ]));
    // Password from stdin (`-`), kept out of the process list.
    let mut child = cmd(&data)
        .args([
            "user",
            "create",
            "--org",
            &org,
            "--name",
            "Bob",
            "--extension",
            "1002",
            "--password",
            "-",
            "--role",
            "supervisor",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bob-secret-22\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // HA1 = H(username:realm:password), computed by coreutils.
    for (id, ext, pw) in [
        (&alice, "1001", "alice-secret-1"),
        (&bob, "1002", "bob-secret-22"),
    ] {
        let row = sqlite(
            &data,
            "SELECT sip_ha1_md5 || ' ' || sip_ha1_sha256 || ' ' || password_hash FROM users WHERE id = $1",
            id,
        );
        let parts: Vec<&str> = row.split(' ').collect();
        assert_eq!(parts.len(), 3, "{row}");
        let a1 = format!("{ext}:{realm}:{pw}");
        assert_eq!(parts[0], coreutils_digest("md5sum", &a1));
        assert_eq!(parts[1], coreutils_digest("sha256sum", &a1));
        assert!(parts[2].starts_with("$argon2id$"), "{}", parts[2]);
    }
    // The passwords are nowhere in the database file (nor its WAL).
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        for pw in ["alice-secret-1", "bob-secret-22"] {
            assert!(
                !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
                "{pw} found in {}",
                f.path().display()
            );
        }
    }

    let users = ok(cmd(&data).args(["user", "list", "--org", &org]));
    assert_eq!(
        users,
        format!("{alice}\t1001\tagent\tAlice Agent\n{bob}\t1002\tsupervisor\tBob")
    );

    // Duplicate extension, weak password, unknown org: clear errors, nothing written.
    let dup = fails(cmd(&data).args([
        "user",
        "create",
        "--org",
        &org,
        "--name",
        "X",
        "--extension",
        "1001",
        "--password",
        "another-secret",
    ]));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already taken"));
    let weak = fails(cmd(&data).args([
        "user",
        "create",
        "--org",
        &org,
        "--name",
        "X",
        "--extension",
        "1003",
        "--password",
        "short",
    ]));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let no_org = fails(cmd(&data).args([
        "user",
        "create",
        "--org",
        "nope",
        "--name",
        "X",
        "--extension",
        "1003",
        "--password",
        "another-secret",
    ]));
    assert!(String::from_utf8_lossy(&no_org.stderr).contains("no organization"));
    assert_eq!(
        sqlite(
            &data,
            "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE org_id = $1",
            &org
        ),
        "2"
    );

    let trunk = ok(cmd(&data).args([
        "trunk",
        "create",
        "--org",
        &org,
        "--name",
        "carrier",
        "--host",
        "127.0.0.1:5080",
        "--username",
        "acme",
        "--password",
        "trunk-pw",
        "--inbound-acl",
        "127.0.0.1",
        "--inbound-acl",
        "203.0.113.9/24",
    ]));
    let trunks = ok(cmd(&data).args(["trunk", "list", "--org", &org]));
    assert_eq!(
        trunks,
        format!("{trunk}\tcarrier\t127.0.0.1:5080\tudp\t127.0.0.1/32,203.0.113.0/24")
    );
    let bad_acl = fails(cmd(&data).args([
        "trunk",
        "create",
        "--org",
        &org,
        "--name",
        "t2",
        "--host",
        "h:5060",
        "--inbound-acl",
        "10.0.0.0/40",
    ]));
    assert!(String::from_utf8_lossy(&bad_acl.stderr).contains("CIDR"));

    let r1 = ok(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "+1 415 555 2671",
        "--user",
        "1001",
    ]));
    let r2 = ok(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "(415) 555-2672",
        "--ring-group",
        "1001,1002",
        "--strategy",
        "longest_idle",
        "--timeout",
        "15",
    ]));
    let r3 = ok(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "4155552673",
        "--reject",
        "486",
    ]));
    let routes = ok(cmd(&data).args(["route", "list", "--org", &org]));
    assert_eq!(
        routes,
        format!(
            "{r1}\t+14155552671\t{{\"kind\":\"user\",\"user_id\":\"{alice}\"}}\n\
             {r2}\t+14155552672\t{{\"kind\":\"ring_group\",\"members\":[\"{alice}\",\"{bob}\"],\"strategy\":\"longest_idle\",\"member_timeout_s\":15,\"total_timeout_s\":30}}\n\
             {r3}\t+14155552673\t{{\"kind\":\"reject\",\"status\":486}}"
        )
    );
    // Two targets at once is a usage error; an unknown extension and a taken DID are refused.
    fails(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "4155552674",
        "--user",
        "1001",
        "--reject",
        "486",
    ]));
    let unknown = fails(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "4155552674",
        "--user",
        "1999",
    ]));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user with extension 1999"));
    let taken = fails(cmd(&data).args([
        "route",
        "create",
        "--org",
        &org,
        "--did",
        "+14155552671",
        "--reject",
        "403",
    ]));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));

    // The realm cannot change under existing HA1 values.
    let realm_change =
        fails(cmd(&data).args(["org", "realm", "--org", &org, "--set", "x.example"]));
    assert!(String::from_utf8_lossy(&realm_change.stderr).contains("digest secrets"));
}
