//! A manager's side of a call's analysis: the call type override and scorecards (the
//! analysis's suggestion, accepted or answered by a reviewer). Manual work survives
//! re-analysis: the override is applied to every new classification, and a stored
//! scorecard's reviewer answers are merged over each fresh suggestion when it is read.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use callscope_analysis::classify;
use callscope_analysis::report::CallAnalysis;
use callscope_analysis::scorecard::{self, ManualReview, Scorecard, ScorecardTemplate};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::definitions::TemplateDefinition;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::sip::http::json_body;
use crate::store::analysis_config::{self as config_store, ConfigKind};
use crate::store::{call_analyses, calls};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_call_type))
        .routes(routes!(list_scorecards))
        .routes(routes!(get_scorecard, put_scorecard))
}

/// The call exists for this caller, who may read its intelligence.
async fn ensure_call(state: &AppState, org: &OrgCtx, id: &str) -> ApiResult<()> {
    org.require(Permission::IntelligenceRead)?;
    match calls::get_visible_call(&state.pool, &org.call_access()?, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("call")),
    }
}

async fn stored_row(
    state: &AppState,
    org_id: &str,
    id: &str,
) -> ApiResult<call_analyses::StoredAnalysis> {
    call_analyses::get(&state.pool, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("analysis").with_code("not_analysed"))
}

async fn stored_analysis(state: &AppState, org_id: &str, id: &str) -> ApiResult<CallAnalysis> {
    let stored = stored_row(state, org_id, id).await?;
    serde_json::from_str(&stored.result).map_err(ApiError::internal)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CallTypeBody {
    /// The type to show; `null` removes the override (the computed type shows again).
    call_type: Option<String>,
}

/// Sets the manager's call type. The stored analysis is updated at once; re-analyses keep it.
#[utoipa::path(
    put,
    path = "/calls/{id}/call-type",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "Override a call's type (null removes the override); kept across re-analyses",
    params(("id" = String, Path, description = "The call's id.")),
    request_body = CallTypeBody,
    responses(
        (status = 200, description = "`{call_id, call_type}`", body = Object),
    ),
)]
async fn put_call_type(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<CallTypeBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ScorecardsReview)?;
    let body = json_body(body)?;
    let wanted = body
        .call_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if wanted.is_some_and(|t| t.chars().count() > 60) {
        return Err(ApiError::validation(
            "call_type must be at most 60 characters",
        ));
    }
    ensure_call(&state, &org, &id).await?;
    let stored = stored_row(&state, &org.org_id, &id).await?;
    let mut analysis: CallAnalysis =
        serde_json::from_str(&stored.result).map_err(ApiError::internal)?;
    let mut tx = state.pool.begin().await?;
    call_analyses::set_call_type_override(&mut *tx, &org.org_id, &id, wanted).await?;
    if let Some(c) = analysis.call_type.take() {
        analysis.call_type = Some(classify::apply_manual_override(c, wanted));
    }
    let result = serde_json::to_string(&analysis).map_err(ApiError::internal)?;
    call_analyses::save(
        &mut *tx,
        &org.org_id,
        &id,
        i64::from(analysis.version),
        &result,
        stored.unredacted.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "call_id": id, "call_type": analysis.call_type }),
    ))
}

async fn template(state: &AppState, org_id: &str, id: &str) -> ApiResult<ScorecardTemplate> {
    let row = config_store::get(&state.pool, ConfigKind::ScorecardTemplate, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("scorecard template"))?;
    let t: TemplateDefinition =
        serde_json::from_str(&row.definition).map_err(ApiError::internal)?;
    Ok(t.0)
}

/// The call's scorecard for a template: the stored review merged over today's suggestion, the
/// stored review alone when the analysis has no suggestion for it, else the suggestion.
async fn current_card(
    state: &AppState,
    org_id: &str,
    call_id: &str,
    template: &ScorecardTemplate,
) -> ApiResult<(Scorecard, Option<(i64, i64)>)> {
    let analysis = stored_analysis(state, org_id, call_id).await?;
    let suggestion = analysis
        .scorecard_suggestions
        .into_iter()
        .find(|c| c.template_id == template.id);
    let stored = call_analyses::scorecard(&state.pool, org_id, call_id, &template.id).await?;
    let times = stored.as_ref().map(|s| (s.created_at, s.updated_at));
    let stored: Option<Scorecard> = stored.and_then(|s| serde_json::from_str(&s.result).ok());
    let fresh = match suggestion {
        Some(s) => s,
        None => scorecard::suggest(template, &Default::default())
            .map_err(|e| ApiError::validation(e.to_string()))?,
    };
    let card = match stored {
        Some(previous) => scorecard::merge_on_reanalysis(template, fresh, &previous)
            .map_err(|e| ApiError::validation(e.to_string()))?,
        None => fresh,
    };
    Ok((card, times))
}

fn card_view(call_id: &str, card: &Scorecard, times: Option<(i64, i64)>) -> Value {
    let mut v = serde_json::to_value(card).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("call_id".into(), json!(call_id));
        o.insert("stored".into(), json!(times.is_some()));
        if let Some((created, updated)) = times {
            o.insert("created_at".into(), json!(ms_to_rfc3339(created)));
            o.insert("updated_at".into(), json!(ms_to_rfc3339(updated)));
        }
    }
    v
}

#[utoipa::path(
    get,
    path = "/calls/{id}/scorecards",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "A call's scorecards, one per active template: the review merged over the suggestion",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "`{items: [scorecard]}`", body = Object),
    ),
)]
async fn list_scorecards(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ensure_call(&state, &org, &id).await?;
    let rows = config_store::list(
        &state.pool,
        ConfigKind::ScorecardTemplate,
        &org.org_id,
        true,
    )
    .await?;
    let mut items = Vec::new();
    for row in rows {
        let Ok(t) = serde_json::from_str::<TemplateDefinition>(&row.definition) else {
            continue;
        };
        let (card, times) = current_card(&state, &org.org_id, &id, &t.0).await?;
        items.push(card_view(&id, &card, times));
    }
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    get,
    path = "/calls/{id}/scorecards/{template_id}",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "A call's scorecard for one template",
    params(("id" = String, Path, description = "The call's id."), ("template_id" = String, Path, description = "The scorecard template's id.")),
    responses(
        (status = 200, description = "The scorecard, with `call_id`, `stored` and, once reviewed, `created_at` and `updated_at`.", body = Object),
    ),
)]
async fn get_scorecard(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((id, template_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ensure_call(&state, &org, &id).await?;
    let template = template(&state, &org.org_id, &template_id).await?;
    let (card, times) = current_card(&state, &org.org_id, &id, &template).await?;
    Ok(Json(card_view(&id, &card, times)))
}

/// A review: answers (with notes) from a reviewer, or `accept: true` to take the suggestions
/// as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    /// Who reviewed (a name or a user id).
    reviewer: String,
    /// Take the suggested answers as they are.
    #[serde(default)]
    accept: bool,
    #[serde(default)]
    overall_comment: Option<String>,
    /// Answers that replace the suggestions.
    #[serde(default)]
    #[schema(value_type = Vec<ManualAnswerDoc>)]
    answers: Vec<scorecard::ManualAnswer>,
}

/// A reviewer's answer to one criterion (`callscope_analysis::scorecard::ManualAnswer`, which
/// has no schema of its own): documentation only.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(as = ManualAnswer)]
struct ManualAnswerDoc {
    /// The template criterion answered.
    criterion_id: String,
    /// `{"type": "yes"}`, `{"type": "no"}`, `{"type": "scale", "value": 4}` or
    /// `{"type": "not_applicable"}`, as the criterion's `answer_type` allows.
    answer: serde_json::Value,
    note: Option<String>,
}

#[utoipa::path(
    put,
    path = "/calls/{id}/scorecards/{template_id}",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "Review a call's scorecard: answers with notes, or accept the suggestions",
    params(("id" = String, Path, description = "The call's id."), ("template_id" = String, Path, description = "The scorecard template's id.")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The scorecard as stored.", body = Object),
    ),
)]
async fn put_scorecard(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((id, template_id)): Path<(String, String)>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ScorecardsReview)?;
    let body = json_body(body)?;
    ensure_call(&state, &org, &id).await?;
    let template = template(&state, &org.org_id, &template_id).await?;
    let (card, _) = current_card(&state, &org.org_id, &id, &template).await?;
    let card = if body.accept {
        scorecard::accept_suggestions(&template, card, &body.reviewer)
    } else {
        scorecard::apply_review(
            &template,
            card,
            &ManualReview {
                reviewer: body.reviewer.clone(),
                overall_comment: body.overall_comment.clone(),
                answers: body.answers,
            },
        )
    }
    .map_err(|e| ApiError::validation(e.to_string()))?;
    let result = serde_json::to_string(&card).map_err(ApiError::internal)?;
    let mut tx = state.pool.begin().await?;
    call_analyses::save_scorecard(
        &mut *tx,
        &org.org_id,
        &id,
        &template_id,
        card.reviewer.as_deref(),
        &result,
        card.totals.percent,
    )
    .await?;
    let (actor_kind, actor_id) = org.principal();
    crate::webhooks::enqueue_event_in(
        &mut tx,
        &org.org_id,
        "scorecard.saved",
        json!({
            "call_id": id,
            "template_id": template_id,
            "scorecard": card,
            "saved_by": { "kind": actor_kind, "id": actor_id },
        }),
    )
    .await
    .map_err(ApiError::internal)?;
    tx.commit().await?;
    let stored = call_analyses::scorecard(&state.pool, &org.org_id, &id, &template_id).await?;
    Ok(Json(card_view(
        &id,
        &card,
        stored.map(|s| (s.created_at, s.updated_at)),
    )))
}
