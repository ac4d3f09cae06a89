//! Store functions against a real SQLite file: organization scoping and timeline paging.

use callscope_api::store::{self, calls, contacts, timeline};

async fn pool(dir: &std::path::Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let pool = store::connect(&url).await.unwrap();
    store::migrate(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn timeline_pages_cover_every_event_once_even_with_equal_times() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path()).await;
    let org = store::orgs::create_org(&pool, "a").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let c = contacts::find_or_create_by_phone(&mut conn, &org, "+14155552671")
        .await
        .unwrap();
    // Same phone again: the same contact.
    let again = contacts::find_or_create_by_phone(&mut conn, &org, "+14155552671")
        .await
        .unwrap();
    assert_eq!(c.id, again.id);
    let payload = serde_json::json!({});
    for (i, at) in [1000, 2000, 2000, 2000, 3000, 4000, 4000]
        .iter()
        .enumerate()
    {
        let r = format!("ref-{i}");
        timeline::record_event(
            &mut conn,
            &org,
            &timeline::NewEvent {
                contact_id: Some(&c.id),
                conversation_id: None,
                kind: "call.processed",
                ref_id: &r,
                payload: &payload,
                occurred_at: *at,
            },
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    for _ in 0..10 {
        let page = timeline::list_for_contact(
            &pool,
            &org,
            &c.id,
            cursor.as_ref().map(|(a, i)| (*a, i.as_str())),
            2,
        )
        .await
        .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some((last.occurred_at, last.id.clone()));
        seen.extend(page.into_iter().map(|e| (e.occurred_at, e.ref_id.unwrap())));
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut refs: Vec<_> = seen.iter().map(|(_, r)| r.clone()).collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 7);
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
}

#[tokio::test]
async fn another_organization_sees_nothing_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path()).await;
    let a = store::orgs::create_org(&pool, "a").await.unwrap();
    let b = store::orgs::create_org(&pool, "b").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let new = calls::NewCall {
        external_id: Some("x".into()),
        source: "upload",
        channel_layout: "mono".into(),
        metadata: "{}".into(),
        ..Default::default()
    };
    let (call, created) =
        calls::insert_or_existing(&mut conn, &a, &new, calls::CallStatus::Received, None)
            .await
            .unwrap();
    assert!(created);
    assert!(
        calls::get_call(&pool, &b, &call.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        calls::find_by_external_id(&pool, &b, "x")
            .await
            .unwrap()
            .is_none()
    );
    let all = calls::list_calls(
        &pool,
        &calls::CallAccess::all(&b),
        &calls::CallFilter::default(),
        None,
        50,
    )
    .await
    .unwrap();
    assert!(all.is_empty());
    // Writes scoped too: B cannot fail A's call.
    calls::mark_failed(&pool, &b, &call.id, "x", "y")
        .await
        .unwrap();
    let still = calls::get_call(&pool, &a, &call.id).await.unwrap().unwrap();
    assert_eq!(still.status, "received");
    let c = contacts::find_or_create_by_phone(&mut conn, &a, "+14155552671")
        .await
        .unwrap();
    assert!(
        contacts::get_contact(&pool, &b, &c.id)
            .await
            .unwrap()
            .is_none()
    );
    // The same phone in B is B's own contact.
    let cb = contacts::find_or_create_by_phone(&mut conn, &b, "+14155552671")
        .await
        .unwrap();
    assert_ne!(c.id, cb.id);
}
