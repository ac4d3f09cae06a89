//! `GET /api/v1/contacts/{id}/timeline` and `GET /api/v1/conversations/{id}/timeline`: one
//! history of calls, messages, notes, tasks and status changes, newest first.
//!
//! Paging goes both ways: `before` (or `cursor`) reads older events, `after` newer ones (what
//! a page that is open polls for); every page returns `next_cursor` (older, when there are
//! more) and `prev_cursor` (newer). `kinds=call,message` keeps those families (or exact
//! kinds such as `call.processed`). Call events carry the call's insights (duration,
//! outcome, sentiment, compliance flags, call type) read from its analysis. A reader who
//! sees only their own calls sees only those calls' events.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::AppState;
use super::{cursor, views};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::permissions::Permission;
use crate::store::timeline::{self, PageFrom, TimelineEvent, TimelineOf, TimelineQuery};

/// Most kinds one filter may name.
const MAX_KINDS: usize = 20;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Older than this cursor (the same as `before`; kept for existing clients).
    pub cursor: Option<String>,
    pub before: Option<String>,
    /// Newer than this cursor.
    pub after: Option<String>,
    /// Comma-separated kind families or kinds.
    pub kinds: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/contacts/{id}/timeline",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "The contact's timeline: calls, messages, notes, tasks, status changes",
    params(("id" = String, Path, description = "The contact's id."), TimelineParams),
    responses((status = 200, description = "`{data: [event], next_cursor, prev_cursor}`, newest first.", body = Object)),
)]
pub async fn contact_timeline(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<TimelineParams>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    // 404 for a contact of another organization, same as an unknown one.
    crate::store::contacts::get_contact(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    page(&state, &org, TimelineOf::Contact(id), q).await
}

#[utoipa::path(
    get,
    path = "/conversations/{id}/timeline",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "The conversation's timeline: calls, messages, notes, tasks, status changes",
    params(("id" = String, Path, description = "The conversation's id."), TimelineParams),
    responses((status = 200, description = "`{data: [event], next_cursor, prev_cursor}`, newest first.", body = Object)),
)]
pub async fn conversation_timeline(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<TimelineParams>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT id FROM conversations WHERE org_id = $1 AND id = $2")
            .bind(&org.org_id)
            .bind(&id)
            .fetch_optional(&state.pool)
            .await?;
    if exists.is_none() {
        return Err(ApiError::not_found("conversation"));
    }
    page(&state, &org, TimelineOf::Conversation(id), q).await
}

fn parse_kinds(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let kinds: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |k: &str| {
        k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
    };
    if kinds.len() > MAX_KINDS || !kinds.iter().all(|k| valid(k)) {
        return Err(ApiError::validation(format!(
            "kinds: up to {MAX_KINDS} comma-separated kinds such as call, message, note, task, conversation.status_changed"
        )));
    }
    Ok(kinds)
}

async fn page(
    state: &AppState,
    org: &OrgCtx,
    of: TimelineOf,
    q: TimelineParams,
) -> ApiResult<Json<Value>> {
    let access = org.call_access().unwrap_or_else(|_| {
        // No call permission at all: only the events of calls nobody can be shown, i.e. none.
        crate::store::calls::CallAccess::own(&org.org_id, "")
    });
    let limit = cursor::limit(q.limit);
    let older = q.before.as_deref().or(q.cursor.as_deref());
    let from = match (older, q.after.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation("give `before` or `after`, not both"));
        }
        (Some(c), None) => {
            let (at, id): (i64, String) = cursor::decode(c)?;
            PageFrom::Before(at, id)
        }
        (None, Some(c)) => {
            let (at, id): (i64, String) = cursor::decode(c)?;
            PageFrom::After(at, id)
        }
        (None, None) => PageFrom::Newest,
    };
    let reading_newer = matches!(from, PageFrom::After(..));
    let reading_older = matches!(from, PageFrom::Before(..));
    let query = TimelineQuery {
        of,
        from,
        kinds: parse_kinds(q.kinds.as_deref())?,
        limit: limit + 1,
        access,
    };
    let mut rows = timeline::list(&state.pool, &query).await?;
    let has_more = rows.len() as i64 > limit;
    if has_more {
        if reading_newer {
            // Newest first, but this page is the `limit` events right after the cursor.
            rows.remove(0);
        } else {
            rows.truncate(limit as usize);
        }
    }
    let position = |e: &TimelineEvent| cursor::encode(&(e.occurred_at, &e.id));
    let next_cursor = match rows.last() {
        Some(last) if has_more && !reading_newer => Some(position(last)),
        // Read forwards from a cursor: older events exist (the cursor's own and before).
        Some(last) if reading_newer => Some(position(last)),
        _ => None,
    };
    let prev_cursor = match rows.first() {
        Some(first) => Some(position(first)),
        // Nothing newer than the cursor yet: poll again from the same place.
        None if reading_newer => q.after.clone(),
        None => None,
    };
    let insights = call_insights(state, &org.org_id, &rows).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|e| {
            let mut v = views::event(e);
            if let Some(i) = e.ref_id.as_ref().and_then(|id| insights.get(id)) {
                v["insights"] = i.clone();
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": next_cursor,
        "prev_cursor": prev_cursor,
        "has_more_older": if reading_newer { Value::Null } else { json!(has_more) },
        "has_more_newer": if reading_newer { json!(has_more) } else if reading_older { Value::Null } else { json!(false) },
    })))
}

/// org id, id, status, claimed duration, recorded duration, stored analysis.
type CallRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// For the page's call events: duration, outcome, overall and customer sentiment, compliance
/// flags and call type, from the call row and its stored analysis.
async fn call_insights(
    state: &AppState,
    org_id: &str,
    rows: &[TimelineEvent],
) -> ApiResult<HashMap<String, Value>> {
    let ids: Vec<&str> = rows
        .iter()
        .filter(|e| e.kind.starts_with("call."))
        .filter_map(|e| e.ref_id.as_deref())
        .collect();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    // Looked up by primary key only, the organization checked on each row: with
    // `c.org_id = ?` in the WHERE clause and a few ids, SQLite (no statistics) picked an
    // (org_id, ...) index and read every call of the organization, ~50 ms a page at 250,000
    // calls (scripts/bench-api).
    let mut b: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
        "SELECT c.org_id, c.id, c.status, c.duration_ms, r.duration_ms, a.result FROM calls c \
         LEFT JOIN recordings r ON r.call_id = c.id \
         LEFT JOIN call_analyses a ON a.call_id = c.id WHERE c.id IN (",
    );
    let mut list = b.separated(", ");
    for id in &ids {
        list.push_bind(id.to_string());
    }
    b.push(")");
    let found: Vec<CallRow> = b.build_query_as().fetch_all(&state.pool).await?;
    for (row_org, id, status, claimed_ms, recorded_ms, analysis) in found {
        if row_org != org_id {
            continue;
        }
        let analysis: Value = analysis
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or(Value::Null);
        let customer = analysis["sentiment"]["per_role"]
            .as_array()
            .and_then(|roles| roles.iter().find(|r| r["role"] == "customer"))
            .map(|r| r["sentiment"].clone())
            .unwrap_or(Value::Null);
        let flags: Vec<Value> = analysis["compliance"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|flag| {
                        json!({
                            "rule_id": flag["rule_id"],
                            "category": flag["category"],
                            "severity": flag["severity"],
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            id,
            json!({
                "status": status,
                "duration_ms": recorded_ms.or(claimed_ms),
                "sentiment": analysis["sentiment"]["overall"],
                "customer_sentiment": customer,
                "call_type": analysis["call_type"]["call_type"],
                "flags": flags,
            }),
        );
    }
    Ok(out)
}
