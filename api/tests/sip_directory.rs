//! The database-backed SIP directory on a real SQLite file: realm → organization, digest
//! users, trunk ACL matching, and routing of dialled numbers and inbound DIDs.

use std::net::IpAddr;

use callscope_api::sip::DbDirectory;
use callscope_api::sip::routes::create_route;
use callscope_api::sip::trunks::{NewTrunk, create_trunk};
use callscope_api::sip::users::{NewUser, Role, create_user, mark_call_ended};
use callscope_api::sip::{credentials, domains};
use callscope_api::store;
use callscope_sip::directory::{Destination, Directory, RingStrategy, RouteTarget};

async fn db() -> (tempfile::TempDir, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let pool = store::connect(&url).await.unwrap();
    store::migrate(&pool).await.unwrap();
    (dir, pool)
}

async fn user(pool: &sqlx::SqlitePool, org: &str, ext: &str) -> String {
    create_user(
        pool,
        org,
        &NewUser {
            name: &format!("user {ext}"),
            extension: ext,
            password: &format!("password-{ext}"),
            role: Role::Agent,
        },
    )
    .await
    .unwrap()
    .id
}

async fn trunk(pool: &sqlx::SqlitePool, org: &str, name: &str, acl: &[&str]) -> String {
    let acl: Vec<String> = acl.iter().map(|s| s.to_string()).collect();
    create_trunk(
        pool,
        org,
        &NewTrunk {
            name,
            host: "127.0.0.1:5080",
            transport: "udp",
            username: Some("acct"),
            password: Some("trunk-secret"),
            inbound_acl: &acl,
        },
    )
    .await
    .unwrap()
    .trunk
    .id
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn users_are_found_by_realm_and_extension_only() {
    let (_d, pool) = db().await;
    let acme = store::orgs::create_org(&pool, "Acme").await.unwrap();
    let other = store::orgs::create_org(&pool, "Other").await.unwrap();
    let alice = user(&pool, &acme, "1001").await;
    user(&pool, &other, "1001").await;
    let dir = DbDirectory::new(pool.clone(), "US");

    let realm = dir.realm_of_org(&acme).await.unwrap().unwrap();
    assert_eq!(realm, "acme.callscope.local");
    let u = dir.user_by_username(&realm, "1001").await.unwrap().unwrap();
    assert_eq!(u.user_id, alice);
    assert_eq!(u.org_id, acme);
    assert_eq!(
        u.ha1_md5,
        credentials::ha1_md5("1001", &realm, "password-1001")
    );
    assert_eq!(
        u.ha1_sha256,
        credentials::ha1_sha256("1001", &realm, "password-1001")
    );
    // Realms are host names: case does not matter.
    assert!(
        dir.user_by_username("ACME.callscope.local", "1001")
            .await
            .unwrap()
            .is_some()
    );
    // The other org's 1001 is a different user in a different realm.
    let other_realm = dir.realm_of_org(&other).await.unwrap().unwrap();
    let o = dir
        .user_by_username(&other_realm, "1001")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(o.user_id, alice);
    for (r, u) in [
        (realm.as_str(), "1002"),
        ("nowhere.example", "1001"),
        (realm.as_str(), "' OR 1=1 --"),
        (realm.as_str(), ""),
    ] {
        assert!(
            dir.user_by_username(r, u).await.unwrap().is_none(),
            "{r} {u}"
        );
    }
    assert!(dir.realm_of_org("no-such-org").await.unwrap().is_none());

    // A second org with the same name gets a distinct realm.
    let acme2 = store::orgs::create_org(&pool, "Acme").await.unwrap();
    let r2 = dir.realm_of_org(&acme2).await.unwrap().unwrap();
    assert_ne!(r2, realm);
    assert!(
        r2.starts_with("acme-") && r2.ends_with(".callscope.local"),
        "{r2}"
    );
    // Settable while the org has no users; refused once HA1s depend on it.
    domains::set_realm(&pool, &acme2, "pbx.acme2.example")
        .await
        .unwrap();
    assert_eq!(
        dir.realm_of_org(&acme2).await.unwrap().as_deref(),
        Some("pbx.acme2.example")
    );
    assert!(matches!(
        domains::set_realm(&pool, &acme2, &realm).await,
        Err(domains::DomainError::Taken(_))
    ));
    assert!(matches!(
        domains::set_realm(&pool, &acme, "new.example").await,
        Err(domains::DomainError::HasUsers)
    ));
}

#[tokio::test]
async fn trunks_are_found_by_source_most_specific_first() {
    let (_d, pool) = db().await;
    let a = store::orgs::create_org(&pool, "A").await.unwrap();
    let b = store::orgs::create_org(&pool, "B").await.unwrap();
    let wide = trunk(&pool, &a, "wide", &["10.0.0.0/8", "2001:db8::/32"]).await;
    let narrow = trunk(&pool, &b, "narrow", &["10.1.2.0/24"]).await;
    let host = trunk(&pool, &a, "host", &["127.0.0.1"]).await;
    let dir = DbDirectory::new(pool.clone(), "US");

    let t = |s: &'static str| {
        let dir = &dir;
        async move {
            dir.trunk_by_source(ip(s))
                .await
                .unwrap()
                .map(|t| t.trunk_id)
        }
    };
    assert_eq!(t("10.9.9.9").await, Some(wide.clone()));
    assert_eq!(t("10.1.2.3").await, Some(narrow.clone()));
    assert_eq!(t("::ffff:10.1.2.3").await, Some(narrow));
    assert_eq!(t("2001:db8::7").await, Some(wide));
    assert_eq!(t("127.0.0.1").await, Some(host.clone()));
    assert_eq!(t("127.0.0.2").await, None);
    assert_eq!(t("192.0.2.1").await, None);

    let full = dir.trunk_by_source(ip("127.0.0.1")).await.unwrap().unwrap();
    assert_eq!(full.org_id, a);
    assert_eq!(full.outbound_proxy, "127.0.0.1:5080".parse().unwrap());
    assert_eq!(full.username.as_deref(), Some("acct"));
    assert_eq!(full.password.as_deref(), Some("trunk-secret"));
    assert_eq!(full.inbound_acl, vec![(ip("127.0.0.1"), 32)]);
    let _ = b;
}

#[tokio::test]
async fn routing_extensions_dids_and_external_numbers() {
    let (_d, pool) = db().await;
    let org = store::orgs::create_org(&pool, "Acme").await.unwrap();
    let other = store::orgs::create_org(&pool, "Other").await.unwrap();
    let alice = user(&pool, &org, "1001").await;
    let bob = user(&pool, &org, "1002").await;
    let carol = user(&pool, &org, "1003").await;
    user(&pool, &other, "2001").await;
    let dir = DbDirectory::new(pool.clone(), "US");

    // No trunk yet: extensions route, external numbers do not.
    assert_eq!(
        dir.route_from_user(&org, "1002").await.unwrap(),
        Destination::Internal(RouteTarget::User {
            user_id: bob.clone()
        })
    );
    assert_eq!(
        dir.route_from_user(&org, "sip:1003@acme.callscope.local")
            .await
            .unwrap(),
        Destination::Internal(RouteTarget::User {
            user_id: carol.clone()
        })
    );
    assert_eq!(
        dir.route_from_user(&org, "+442079460958").await.unwrap(),
        Destination::NotFound
    );
    // Another org's extension is not reachable.
    assert_eq!(
        dir.route_from_user(&org, "2001").await.unwrap(),
        Destination::NotFound
    );
    assert_eq!(
        dir.route_from_user(&org, "9999").await.unwrap(),
        Destination::NotFound
    );

    let t = trunk(&pool, &org, "carrier", &["127.0.0.1"]).await;
    trunk(&pool, &org, "backup", &[]).await;
    for dialled in ["+44 20 7946 0958", "00442079460958", "sip:+442079460958@x"] {
        match dir.route_from_user(&org, dialled).await.unwrap() {
            Destination::External { number_e164, trunk } => {
                assert_eq!(number_e164, "+442079460958");
                assert_eq!(trunk.trunk_id, t, "the first trunk is the default");
            }
            other => panic!("{dialled}: {other:?}"),
        }
    }
    match dir.route_from_user(&org, "(415) 555-2671").await.unwrap() {
        Destination::External { number_e164, .. } => assert_eq!(number_e164, "+14155552671"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        dir.route_from_user(&org, "12").await.unwrap(),
        Destination::NotFound
    );
    assert_eq!(
        dir.route_from_user(&org, "alice").await.unwrap(),
        Destination::NotFound
    );

    // Inbound DIDs.
    create_route(
        &pool,
        &org,
        "+14155550100",
        &RouteTarget::User {
            user_id: alice.clone(),
        },
    )
    .await
    .unwrap();
    create_route(
        &pool,
        &org,
        "+14155550101",
        &RouteTarget::RingGroup {
            members: vec![alice.clone(), bob.clone(), carol.clone()],
            strategy: RingStrategy::LongestIdle,
            member_timeout_s: 10,
            total_timeout_s: 30,
        },
    )
    .await
    .unwrap();
    create_route(
        &pool,
        &org,
        "+14155550102",
        &RouteTarget::Reject { status: 603 },
    )
    .await
    .unwrap();
    let sip_trunk = dir.trunk_by_source(ip("127.0.0.1")).await.unwrap().unwrap();
    for did in [
        "+14155550100",
        "14155550100",
        "4155550100",
        "sip:+1-415-555-0100@carrier",
    ] {
        assert_eq!(
            dir.route_inbound(&sip_trunk, did).await.unwrap(),
            Destination::Internal(RouteTarget::User {
                user_id: alice.clone()
            }),
            "{did}"
        );
    }
    assert_eq!(
        dir.route_inbound(&sip_trunk, "+14155550102").await.unwrap(),
        Destination::Internal(RouteTarget::Reject { status: 603 })
    );
    assert_eq!(
        dir.route_inbound(&sip_trunk, "+14155550199").await.unwrap(),
        Destination::NotFound
    );
    // A PBX trunk may address an extension directly.
    assert_eq!(
        dir.route_inbound(&sip_trunk, "1003").await.unwrap(),
        Destination::Internal(RouteTarget::User {
            user_id: carol.clone()
        })
    );
    // Dialling our own DID from inside stays inside.
    assert_eq!(
        dir.route_from_user(&org, "+14155550100").await.unwrap(),
        Destination::Internal(RouteTarget::User {
            user_id: alice.clone()
        })
    );

    // Longest idle: never-called members first (configured order), then by last call end.
    let group = |d: Destination| match d {
        Destination::Internal(RouteTarget::RingGroup { members, .. }) => members,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        group(dir.route_inbound(&sip_trunk, "+14155550101").await.unwrap()),
        vec![alice.clone(), bob.clone(), carol.clone()]
    );
    mark_call_ended(&pool, &org, &alice, 3_000).await.unwrap();
    mark_call_ended(&pool, &org, &bob, 1_000).await.unwrap();
    assert_eq!(
        group(dir.route_inbound(&sip_trunk, "+14155550101").await.unwrap()),
        vec![carol.clone(), bob.clone(), alice.clone()]
    );
    // An older end never moves the mark back.
    mark_call_ended(&pool, &org, &alice, 500).await.unwrap();
    assert_eq!(
        group(dir.route_inbound(&sip_trunk, "+14155550101").await.unwrap()),
        vec![carol, bob, alice]
    );
}
