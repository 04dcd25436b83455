//! Groups and red envelopes over HTTP: users make groups, send envelopes to a group or a
//! friend with the payment password, grab packets, and see who got how much.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use services::payments::{EnvelopeView, NewEnvelope, Recipient};
use services::secrets::hex;
use services::time::rfc3339_seconds;
use store::{Envelope, EnvelopeKind, EnvelopeState, Group, GroupMember};

use crate::payments::{
    check_payment_password, find_user, id_in_path, idempotency, outcome, parse, payment_error,
    rendered, session_user,
};
use crate::{unix_seconds, ApiError, AppState};

/// Most members named in one request.
const MEMBERS_PER_REQUEST_MAX: usize = 500;

fn group_json(group: &Group, members: &[GroupMember]) -> Value {
    json!({
        "id": format!("grp_{}", group.id),
        "object": "group",
        "name": group.name,
        "owner_id": format!("usr_{}", group.owner_user_id),
        "members": members.iter().map(|member| format!("usr_{}", member.user_id)).collect::<Vec<_>>(),
        "created_at": rfc3339_seconds(group.created_at),
    })
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    members: Vec<String>,
}

fn member_ids(state: &AppState, members: &[String]) -> Result<Vec<u64>, ApiError> {
    if members.len() > MEMBERS_PER_REQUEST_MAX {
        return Err(invalid(format!(
            "At most {MEMBERS_PER_REQUEST_MAX} members per request."
        )));
    }
    members
        .iter()
        .map(|member| find_user(state, member).map(|user| user.id))
        .collect()
}

/// `POST /v1/groups`: a group owned by the user, with members named by phone or id.
pub(crate) async fn create_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let request: GroupBody = parse(&body)?;
    let members = member_ids(&state, &request.members)?;
    let (group, members) = state
        .payments
        .create_group(&user, &request.name, &members, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok((StatusCode::CREATED, Json(group_json(&group, &members))).into_response())
}

/// `POST /v1/groups/{id}/members`: its owner adds members.
pub(crate) async fn add_members(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let group_id = id_in_path("grp_", &group, "group")?;
    let request: MembersBody = parse(&body)?;
    let members = member_ids(&state, &request.members)?;
    state
        .payments
        .add_group_members(&user, group_id, &members, unix_seconds())
        .await
        .map_err(payment_error)?;
    let (group, members) = state
        .payments
        .group(user.id, group_id)
        .map_err(payment_error)?;
    Ok(Json(group_json(&group, &members)))
}

/// `GET /v1/groups/{id}`: a group, to its members.
pub(crate) async fn get_group(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let group_id = id_in_path("grp_", &group, "group")?;
    let (group, members) = state
        .payments
        .group(user.id, group_id)
        .map_err(payment_error)?;
    Ok(Json(group_json(&group, &members)))
}

/// `GET /v1/me/groups`: the groups the user belongs to.
pub(crate) async fn my_groups(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let groups = state.payments.groups_of(user.id).map_err(payment_error)?;
    Ok(Json(json!({
        "data": groups.iter().map(|group| json!({
            "id": format!("grp_{}", group.id),
            "name": group.name,
            "owner_id": format!("usr_{}", group.owner_user_id),
        })).collect::<Vec<_>>(),
    })))
}

/// An envelope as anyone it was sent to sees it. Its packets and their commitment are shown
/// once it is closed: before, they would tell a member when the big packet comes next.
fn envelope_json(envelope: &Envelope, view: Option<&EnvelopeView>) -> Value {
    let closed = envelope.state != EnvelopeState::Open;
    let mut body = json!({
        "id": format!("env_{}", envelope.id),
        "object": "red_envelope",
        "sender_id": format!("usr_{}", envelope.sender_user_id),
        "group_id": envelope.group_id.map(|id| format!("grp_{id}")),
        "recipient_id": envelope.recipient_user_id.map(|id| format!("usr_{id}")),
        "kind": envelope.kind.as_str(),
        "total": envelope.total,
        "currency": envelope.currency,
        "count": envelope.packets.len(),
        "greeting": envelope.greeting,
        "state": envelope.state.as_str(),
        "registration_id": format!("reg_{}", envelope.registration_id),
        "created_at": rfc3339_seconds(envelope.created_at),
        "expires_at": rfc3339_seconds(envelope.expires_at),
        "returned": envelope.returned,
    });
    if closed {
        let commitment = services::envelopes::packets_commitment(
            envelope.id,
            &envelope.currency,
            &envelope.packets,
        );
        body["packets"] = json!(envelope.packets);
        body["commitment"] = json!(commitment);
        body["commitment_digest"] = json!(hex(&services::payments::payload_digest(&commitment)));
    }
    if let Some(view) = view {
        let luckiest = services::payments::luckiest(view);
        body["grabbed"] = json!(view.grabs.len());
        body["grabs"] = view
            .grabs
            .iter()
            .map(|(packet, user, amount)| {
                json!({
                    "user_id": format!("usr_{user}"),
                    "amount": amount,
                    "packet": packet,
                    "luckiest": luckiest == Some(*packet),
                })
            })
            .collect();
    }
    body
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeBody {
    /// A group (`grp_…`) …
    group_id: Option<String>,
    /// … or one friend (a phone number or `usr_…`).
    to: Option<String>,
    kind: String,
    amount: u64,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    greeting: String,
    payment_password: String,
}

fn one() -> usize {
    1
}

/// `POST /v1/red-envelopes`: sends a red envelope with the payment password.
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: EnvelopeBody = parse(&body)?;
    let kind = EnvelopeKind::parse(&request.kind)
        .ok_or_else(|| invalid("kind: ordinary (equal packets) or lucky (random packets)."))?;
    let to = match (&request.group_id, &request.to) {
        (Some(group), None) => Recipient::Group(id_in_path("grp_", group, "group")?),
        (None, Some(friend)) => Recipient::User(find_user(&state, friend)?.id),
        _ => return Err(invalid("Give group_id, or to (one friend), not both.")),
    };
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let render = |envelope: &Envelope| rendered(envelope_json(envelope, None), StatusCode::CREATED);
    let result = state
        .payments
        .send_envelope(
            &user,
            NewEnvelope {
                to,
                kind,
                amount: request.amount,
                count: request.count,
                greeting: request.greeting,
            },
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

/// `POST /v1/red-envelopes/{id}/grab`: the next packet, once per member.
pub(crate) async fn grab(
    State(state): State<Arc<AppState>>,
    Path(envelope): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let envelope_id = id_in_path("env_", &envelope, "red envelope")?;
    let grab = state
        .payments
        .grab(&user, envelope_id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(Json(json!({
        "envelope_id": format!("env_{}", grab.envelope_id),
        "packet": grab.packet,
        "amount": grab.amount,
        "currency": state.payments.config().currency.as_str(),
    })))
}

/// `GET /v1/red-envelopes/{id}`: the envelope and who got how much.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Path(envelope): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let envelope_id = id_in_path("env_", &envelope, "red envelope")?;
    let view = state
        .payments
        .envelope_view(user.id, envelope_id)
        .map_err(payment_error)?;
    let mut body = envelope_json(&view.envelope, Some(&view));
    if view.envelope.state != EnvelopeState::Open {
        // The registration made before the first grab: its digest is the commitment's.
        body["receipt"] =
            crate::log::registration_receipt_value(&state, view.envelope.registration_id).await?;
    }
    Ok(Json(body))
}
