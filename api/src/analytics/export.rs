//! `GET /api/v1/calls/export.csv`: the calls of a window with their insights, one CSV row
//! each, streamed as the rows come out of the database (memory stays flat for 100 000 calls).

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::csv::{Cell, push_record};
use super::reports::{CALL_DURATION_MS, REFUSED_AT_INTAKE};
use super::window::Window;
use crate::ids::ms_to_rfc3339;
use crate::store::calls::CallAccess;

/// The header row; docs/analytics.md describes each column.
pub const COLUMNS: [&str; 21] = [
    "id",
    "external_id",
    "started_at",
    "received_at",
    "direction",
    "source",
    "status",
    "duration_seconds",
    "customer_phone",
    "agent",
    "contact_id",
    "conversation_id",
    "call_type",
    "sentiment_label",
    "sentiment_score",
    "flags",
    "flag_categories",
    "disclosure_missing",
    "tracker_hits",
    "trackers",
    "qa_percent",
];

/// A chunk is sent once it holds this much text; the channel holds a few chunks, so a slow
/// client slows the query down instead of filling memory.
const CHUNK_BYTES: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 4;

#[derive(Debug, FromRow)]
struct ExportRow {
    id: String,
    external_id: Option<String>,
    t: i64,
    created_at: i64,
    direction: Option<String>,
    source: String,
    status: String,
    dur: Option<i64>,
    customer_phone: Option<String>,
    agent_identifier: Option<String>,
    contact_id: Option<String>,
    conversation_id: Option<String>,
    call_type: Option<String>,
    sentiment_label: Option<String>,
    sentiment_score: Option<f64>,
    flags: Option<i64>,
    flag_summary: Option<String>,
    disclosure_missing: Option<i64>,
    tracker_hits: Option<i64>,
    tracker_summary: Option<String>,
    qa: Option<f64>,
}

fn query(access: &CallAccess, w: &Window) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(format!(
        "SELECT calls.id AS id, calls.external_id AS external_id, \
         COALESCE(calls.started_at, calls.created_at) AS t, calls.created_at AS created_at, \
         calls.direction AS direction, calls.source AS source, calls.status AS status, \
         {CALL_DURATION_MS} AS dur, calls.customer_phone AS customer_phone, \
         calls.agent_identifier AS agent_identifier, calls.contact_id AS contact_id, \
         calls.conversation_id AS conversation_id, \
         COALESCE(calls.call_type_override, i.call_type) AS call_type, \
         i.sentiment_label AS sentiment_label, i.sentiment_score AS sentiment_score, \
         i.flags AS flags, i.flag_summary AS flag_summary, \
         i.disclosure_missing AS disclosure_missing, i.tracker_hits AS tracker_hits, \
         i.tracker_summary AS tracker_summary, \
         COALESCE((SELECT AVG(sc.percent) FROM call_scorecards sc \
                   WHERE sc.org_id = calls.org_id AND sc.call_id = calls.id \
                     AND sc.percent IS NOT NULL), i.suggested_qa_percent) AS qa \
         FROM calls LEFT JOIN recordings r ON r.call_id = calls.id \
         LEFT JOIN call_insights i ON i.call_id = calls.id WHERE"
    ));
    access.push_condition(&mut q);
    q.push(" AND COALESCE(calls.started_at, calls.created_at) >= ");
    q.push_bind(w.from_ms);
    q.push(" AND COALESCE(calls.started_at, calls.created_at) < ");
    q.push_bind(w.to_ms);
    q.push(format!(
        " AND NOT {REFUSED_AT_INTAKE} ORDER BY COALESCE(calls.started_at, calls.created_at), calls.id"
    ));
    q
}

fn number(v: Option<f64>, decimals: usize) -> Cell<'static> {
    match v.filter(|x| x.is_finite()) {
        Some(x) => Cell::Number(format!("{x:.decimals$}")),
        None => Cell::Empty,
    }
}

fn int(v: Option<i64>) -> Cell<'static> {
    v.map_or(Cell::Empty, |n| Cell::Number(n.to_string()))
}

fn text(v: &Option<String>) -> Cell<'_> {
    v.as_deref().map_or(Cell::Empty, Cell::Text)
}

fn push_row(out: &mut String, r: &ExportRow) {
    let started = ms_to_rfc3339(r.t);
    let received = ms_to_rfc3339(r.created_at);
    push_record(
        out,
        &[
            Cell::Text(&r.id),
            text(&r.external_id),
            Cell::Text(&started),
            Cell::Text(&received),
            text(&r.direction),
            Cell::Text(&r.source),
            Cell::Text(&r.status),
            number(r.dur.map(|d| d as f64 / 1000.0), 3),
            text(&r.customer_phone),
            text(&r.agent_identifier),
            text(&r.contact_id),
            text(&r.conversation_id),
            text(&r.call_type),
            text(&r.sentiment_label),
            number(r.sentiment_score, 3),
            int(r.flags),
            text(&r.flag_summary),
            int(r.disclosure_missing),
            int(r.tracker_hits),
            text(&r.tracker_summary),
            number(r.qa, 2),
        ],
    );
}

/// The streaming response. Rows are read by a task that stops when the client goes away; a
/// database error mid-way ends the body early (the status line is already sent), which the
/// client sees as a truncated transfer rather than a complete-looking file.
pub fn stream(pool: SqlitePool, access: CallAccess, w: Window) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let mut q = query(&access, &w);
        let mut rows = q.build_query_as::<ExportRow>().fetch(&pool);
        let mut chunk = String::with_capacity(CHUNK_BYTES + 1024);
        let mut header = String::new();
        push_record(&mut header, &COLUMNS.map(Cell::Text));
        chunk.push_str(&header);
        let mut count: u64 = 0;
        while let Some(row) = rows.next().await {
            match row {
                Ok(r) => {
                    push_row(&mut chunk, &r);
                    count += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, org_id = %access.org_id, "CSV export failed mid-way");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, String::with_capacity(CHUNK_BYTES + 1024));
                if tx.send(Ok(Bytes::from(full))).await.is_err() {
                    return; // the client went away
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(Ok(Bytes::from(chunk))).await;
        }
        tracing::info!(org_id = %access.org_id, rows = count, "CSV export streamed");
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let file_name = format!(
        "attachment; filename=\"calls-{}-{}.csv\"",
        ms_to_rfc3339(w.from_ms).get(..10).unwrap_or("from"),
        ms_to_rfc3339(w.to_ms).get(..10).unwrap_or("to"),
    );
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&file_name) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
