//! The HTTP routes. Each handler reads its input, calls one engine operation and answers the
//! library's outcome as JSON; every error answers the status of its `ErrorKind`.

use std::fmt::Display;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use seathold::catalogue::{Availability, Line, OccurrenceConfig};
use seathold::contract::{ActorId, MAX_MESSAGE_BYTES, Money, OccKey, OpKey, Ref};
use seathold::holds::{CancelOutcome, Hold, HoldRequest, RequestOutcome};
use seathold::opkeys::Replayed;
use seathold::settlement::Settlement;
use seathold::webhooks::{Headers, Verifier};
use seathold::{AsyncEngine, AsyncStore, Classify, ErrorKind};

/// What every handler shares.
pub(crate) struct App<S> {
    pub engine: Arc<AsyncEngine<S>>,
    /// Checks payment webhooks against every configured secret (several during a rotation).
    pub verifier: Verifier,
}

type Ctx<S> = State<Arc<App<S>>>;
type Answer<T> = Result<T, ApiError>;

pub(crate) fn router<S: AsyncStore + 'static>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/health", get(health::<S>))
        .route("/occurrences", post(create::<S>))
        .route("/occurrences/{k}", get(occurrence::<S>))
        .route("/occurrences/{k}/availability", get(availability::<S>))
        .route("/occurrences/{k}/checkout", post(checkout::<S>))
        .route("/occurrences/{k}/bookings/{r}", get(booking::<S>))
        .route("/occurrences/{k}/bookings/{r}/tickets", get(tickets::<S>))
        .route("/occurrences/{k}/bookings/{r}/cancel", post(cancel::<S>))
        .route("/occurrences/{k}/check-in", post(check_in::<S>))
        .route("/webhooks/payment", post(webhook::<S>))
        // A payment result is at most 64 KiB; so is every body here. Larger: 413, unread.
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(app)
}

/// An error answer: `{"error": kind, "message": …}` with the kind's status.
pub(crate) struct ApiError(ErrorKind, String);

impl<E: Classify + Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Self(kind, message) = self;
        match kind {
            ErrorKind::Internal => tracing::error!(%message, "internal error"),
            ErrorKind::Unavailable => tracing::warn!(%message, "store unavailable"),
            _ => tracing::debug!(?kind, %message, "refused"),
        }
        let status = StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "error": kind, "message": message }))).into_response()
    }
}

fn bad_request(message: impl Display) -> ApiError {
    ApiError(ErrorKind::BadRequest, message.to_string())
}

/// A JSON body of the service's own request shapes (the engine's messages parse themselves).
fn parse<T: DeserializeOwned>(body: &[u8]) -> Answer<T> {
    serde_json::from_slice(body).map_err(bad_request)
}

async fn health<S: AsyncStore + 'static>(State(app): Ctx<S>) -> Answer<Json<Value>> {
    app.engine.occurrences(None, 1).await?; // the store answers
    Ok(Json(json!({ "status": "ok" })))
}

#[derive(Deserialize)]
struct NewOccurrence {
    occ_key: OccKey,
    #[serde(flatten)]
    config: OccurrenceConfig,
}

async fn create<S: AsyncStore + 'static>(State(app): Ctx<S>, body: Bytes) -> Answer<(StatusCode, Json<Value>)> {
    let NewOccurrence { occ_key, config } = parse(&body)?;
    // Prices are the seller's: an occurrence sold here has tiers or a seat price, so a
    // checkout never takes its amount from the buyer.
    if !config.has_tiers() && config.seat_price().is_none() {
        return Err(ApiError(
            ErrorKind::Unprocessable,
            "an occurrence needs tiers or a seat price (\"seat_price\": {\"amount\", \"currency\"})".into(),
        ));
    }
    app.engine.create(&occ_key, config.clone()).await?;
    tracing::info!(%occ_key, capacity = config.capacity(), "occurrence created");
    Ok((StatusCode::CREATED, Json(json!({ "occ_key": occ_key, "config": config }))))
}

async fn occurrence<S: AsyncStore + 'static>(State(app): Ctx<S>, Path(k): Path<String>) -> Answer<Json<Value>> {
    let occ = app.engine.occurrence(&OccKey::new(k)?).await?;
    Ok(Json(json!({ "occ_key": occ.key, "config_version": occ.config_version, "config": occ.config })))
}

async fn availability<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path(k): Path<String>,
) -> Answer<Json<Availability>> {
    Ok(Json(app.engine.availability(&OccKey::new(k)?).await?))
}

/// `{actor, ref?, quantity?, amount?, currency?}` for seats at the occurrence's seat price,
/// or `{actor, ref?, lines, amount?, currency?}` for tiers. The price is always the seller's:
/// an amount is only the total the buyer was shown, and another one answers
/// `price_changed`, never a seat at the buyer's price.
#[derive(Deserialize)]
struct Checkout {
    actor: ActorId,
    #[serde(rename = "ref")]
    hold_ref: Option<Ref>,
    amount: Option<String>, // parsed by `Money::parse`, whose errors know their status
    currency: Option<String>,
    quantity: Option<u32>,
    lines: Option<Vec<Line>>,
}

async fn checkout<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path(k): Path<String>,
    body: Bytes,
) -> Answer<(StatusCode, Json<RequestOutcome>)> {
    let occ_key = OccKey::new(k)?;
    let c: Checkout = parse(&body)?;
    let hold_ref = match c.hold_ref {
        Some(r) => r,
        None => Ref::new(format!("r-{}", uuid::Uuid::new_v4().simple()))?,
    };
    let money = match (c.amount, c.currency) {
        (Some(amount), Some(currency)) => Some(Money::parse(&amount, &currency)?),
        (None, None) => None,
        _ => return Err(bad_request("amount and currency go together")),
    };
    let mut req = match c.lines {
        Some(lines) => HoldRequest::lines(occ_key, c.actor, hold_ref, lines),
        None => HoldRequest::seats(occ_key, c.actor, hold_ref, c.quantity.unwrap_or(1)),
    };
    if let Some(shown) = money {
        req = req.expecting(shown);
    }
    let outcome = app.engine.request(&req).await?;
    let status = match outcome {
        RequestOutcome::AwaitingPayment { replayed: false, .. } | RequestOutcome::Confirmed { replayed: false, .. } => {
            StatusCode::CREATED
        }
        _ => StatusCode::OK, // a replay, or an answer that placed nothing (`full`, `already`…)
    };
    Ok((status, Json(outcome)))
}

async fn booking<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path((k, r)): Path<(String, String)>,
) -> Answer<Json<Hold>> {
    let hold = app.engine.booking(&OccKey::new(k)?, &Ref::new(r)?).await?;
    hold.map(Json).ok_or_else(|| ApiError(ErrorKind::NotFound, "no booking has this ref".into()))
}

async fn tickets<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path((k, r)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    let tickets = app.engine.tickets(&OccKey::new(k)?, &Ref::new(r)?).await?;
    Ok(Json(json!({ "tickets": tickets })))
}

/// The request's `Idempotency-Key` header, as the library's operation key: a retried POST
/// answers what the first one answered.
fn op_key(headers: &HeaderMap) -> Answer<Option<OpKey>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let v = v.to_str().map_err(|_| bad_request("Idempotency-Key must be visible ASCII"))?;
            Ok(Some(OpKey::new(v)?))
        }
    }
}

/// An answer of a write, with `"replayed": true` when an `Idempotency-Key` only replayed it.
fn marked<T: serde::Serialize>(got: Replayed<T>) -> Json<Value> {
    let mut v = json!(got.answer);
    if let Some(o) = v.as_object_mut() {
        o.insert("replayed".into(), json!(got.replayed));
    }
    Json(v)
}

async fn cancel<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path((k, r)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    let key = op_key(&headers)?;
    let writes = match &key {
        Some(k) => app.engine.with_op_key(k),
        None => app.engine.without_op_key(),
    };
    let got = writes.cancel(&OccKey::new(k)?, &Ref::new(r)?, None).await?;
    if let (CancelOutcome::Cancelled { refund, seats, .. }, false) = (&got.answer, got.replayed) {
        tracing::info!(%refund, seats, "booking cancelled: refund due");
    }
    Ok(marked(got))
}

#[derive(Deserialize)]
struct Scan {
    credential: String,
}

/// A scan at the door of occurrence `k`: another show's ticket answers `wrong_occurrence`.
async fn check_in<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    Path(k): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Value>> {
    let Scan { credential } = parse(&body)?;
    let key = op_key(&headers)?;
    let writes = match &key {
        Some(k) => app.engine.with_op_key(k),
        None => app.engine.without_op_key(),
    };
    Ok(marked(writes.check_in(&OccKey::new(k)?, &credential).await?))
}

/// The payment provider's webhook: the signature is checked before the body is read.
async fn webhook<S: AsyncStore + 'static>(
    State(app): Ctx<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Settlement>> {
    let signed = Headers::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    let settled = app.engine.settle_signed(&app.verifier, &signed, &body).await?;
    match &settled {
        Settlement::PaidButNoHold { refund, replayed: false } => {
            tracing::warn!(?refund, "payment without a hold: refund it")
        }
        Settlement::Rejected { reason } => tracing::error!(%reason, "payment rejected: investigate"),
        _ => {}
    }
    Ok(Json(settled))
}
