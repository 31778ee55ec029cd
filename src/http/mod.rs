//! A mountable HTTP API over an [`AsyncEngine`] (feature `http`, on axum): every operation a
//! venue needs as a route, so a service is `router(engine, options)` plus its own routes and
//! middleware. The shell is thin: each handler reads its input, calls one engine operation
//! and answers its outcome.
//!
//! Owns: the routes, the request shapes, the status mapping and the error bodies. May not
//! touch: the rules (every decision is the engine's), storage.
//!
//! # The contract
//!
//! - **JSON in, JSON out.** Request bodies are JSON (`Content-Type: application/json`, at
//!   most [`MAX_MESSAGE_BYTES`]); unknown fields are
//!   refused by name. Instants are RFC 3339, money is a decimal string with its currency,
//!   states are words.
//! - **Errors are problem details** (RFC 9457, `application/problem+json`) — also axum's own
//!   404, 405, 413 and 415, and a body that does not parse — with a stable `type`
//!   (`urn:seathold:problem:<name>`) and, where one field is at fault, `field`.
//! - **Status mapping, chosen once:** an answer that did what was asked is 2xx (201 when it
//!   created a resource with its own URL or ref: a hold, a basket's holds, an occurrence; 200
//!   otherwise — joining a list or blocking seats ensure a state, and say the same the second
//!   time — and for every replay); an answer that did not, because of the show's current state
//!   rather than the request's form, is **409** with the library's answer in `answer`
//!   (`full`, `already`, `price_changed`, `limit_reached`, `seat_taken`, `single_gap`; at the
//!   door `already_checked_in`, `wrong_occurrence`, `cancelled`; a cancellation refused
//!   `checked_in`). Why: a client, a proxy or a log that reads only the status never takes a
//!   full show for a sale. An unreadable ticket is 422 `invalid`. The payment webhook is the
//!   exception: every result it accounted answers 200 (refund signals included), because a
//!   provider retries anything else; only a bad signature (401) or body (4xx) is refused.
//!   A typed library error answers its [`ErrorKind`](crate::ErrorKind)'s status.
//! - **Every POST is safe to retry** with an `Idempotency-Key` header: it becomes the
//!   library's operation key ([`crate::opkeys`]); for a checkout it is the hold's ref (a
//!   body naming another `ref` is a 400), and a basket's parts get `<key>-<index>`. A retry
//!   answers the first answer (200, `"replayed": true`) — a checkout's also after its hold
//!   was paid or lapsed; the same key with another command is 422. Creating an occurrence
//!   is idempotent by its key: a retry with the same configuration answers 200
//!   `"replayed": true`, another configuration 409.
//! - **Tickets need a key:** the tickets and check-in routes answer 500 (a configuration
//!   error of the service) unless the engine has one ([`AsyncEngine::with_ticket_key`]).
//!
//! # Routes
//!
//! | method and path | operation | answer |
//! | --- | --- | --- |
//! | `GET /health` | the store answers | `{"status":"ok"}` |
//! | `GET /occurrences?after=K&limit=N` | [`AsyncEngine::occurrences`] | `{"occurrences":[K…]}` |
//! | `POST /occurrences` `{occ_key, …config}` | [`AsyncEngine::create`] | 201 `{occ_key, config}` |
//! | `GET /occurrences/{occ}` | [`AsyncEngine::occurrence`] | `{occ_key, config_version, config}` |
//! | `PUT /occurrences/{occ}/config` `{…config}` | [`AsyncEngine::open`] (an existing one only: 404 otherwise) | `{occ_key, config}` |
//! | `GET /occurrences/{occ}/availability` | [`AsyncEngine::availability`] | per tier |
//! | `GET /occurrences/{occ}/seat-map` | [`AsyncEngine::seat_map`] | `{"sections":[{"section","rows":[{"row","seats":"HH.S"}]}]}`: a character a seat (`.` free, `H` held, `S` sold, `B` blocked) |
//! | `POST /occurrences/{occ}/checkout` | [`AsyncEngine::request`] | 201 awaiting payment / confirmed |
//! | `POST /baskets` `{parts: [{occ_key, …checkout}]}` | [`AsyncEngine::request_basket`] | 201 `placed` (every part) / 409 (one could not be: the others released) |
//! | `GET /occurrences/{occ}/bookings/{ref}` | [`AsyncEngine::booking`] | a [`BookingView`] |
//! | `GET /occurrences/{occ}/actors/{actor}/bookings` | [`AsyncEngine::bookings_of`] | `{"bookings":[…]}` |
//! | `GET /occurrences/{occ}/bookings/{ref}/tickets` | [`AsyncEngine::tickets`] | `{"tickets":[…]}` |
//! | `POST /occurrences/{occ}/bookings/{ref}/cancel` `{tickets?, refund?}` | [`AsyncEngine::cancel`] / [`cancel_refunding`](AsyncEngine::cancel_refunding) | `cancelled` / `noop` |
//! | `POST /occurrences/{occ}/bookings/{ref}/abandon` `{actor}` | [`AsyncEngine::abandon`] | `released` / `noop` |
//! | `POST /occurrences/{occ}/bookings/{ref}/extend` `{seconds}` | [`AsyncEngine::extend`] | the checkout request |
//! | `POST /occurrences/{occ}/check-in` `{credential}` | [`AsyncEngine::check_in`] | `admitted` |
//! | `POST /occurrences/{occ}/blocks` `{block, seats?, tier?, seat_ids?}` | [`AsyncEngine::block`] / [`block_seats`](AsyncEngine::block_seats) | `blocked` |
//! | `POST /occurrences/{occ}/blocks/{block}/unblock` | [`AsyncEngine::unblock`] | `unblocked` |
//! | `POST /occurrences/{occ}/prices` `{tier, amount, currency}` | [`AsyncEngine::set_price`] | `{"ok":true}` |
//! | `GET /occurrences/{occ}/waitlist` | [`AsyncEngine::waitlist_of`] | entries and offers |
//! | `POST /occurrences/{occ}/waitlist` `{actor, tier?, seats}` | [`AsyncEngine::join_waitlist`] | `{position, offered}` |
//! | `POST /occurrences/{occ}/waitlist/leave` `{actor, tier?}` | [`AsyncEngine::leave_waitlist`] | `{"left":bool}` |
//! | `GET /occurrences/{occ}/ledger` | [`AsyncEngine::ledger`] | entries and totals |
//! | `POST /webhooks/payment` (signed) | [`AsyncEngine::settle_signed`] | the settlement |
//! | `GET /openapi.json` | [`description`] | this API as OpenAPI 3.1 |
//!
//! The sweep and the outbox relay are not routes: run them beside the router
//! ([`background`](crate::background), feature `tokio`).
//!
//! ```
//! use std::sync::Arc;
//! use seathold::http::{router, HttpOptions};
//! use seathold::webhooks::{Verifier, WebhookSecret};
//! use seathold::{AsyncEngine, MemoryStore};
//!
//! let secret = WebhookSecret::from_bytes(vec![7; 32])?;
//! let engine = Arc::new(AsyncEngine::new(MemoryStore::new()));
//! let app = router(engine, HttpOptions::new(Verifier::new(vec![secret])?));
//! // axum::serve(listener, app.merge(your_routes)).await?
//! # let _ = app;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod openapi;
mod problem;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use openapi::description;
pub use problem::{Details, PROBLEM_JSON, Problem};
pub use views::BookingView;

use problem::{Body, Params, Raw, json};

use crate::catalogue::{Line, OccurrenceConfig};
use crate::clock::Clock;
use crate::contract::{ActorId, BlockName, MAX_MESSAGE_BYTES, Metadata, Money, OccKey, OpKey, Ref, TierName};
use crate::holds::{HoldRequest, RequestOutcome};
use crate::opkeys::Replayed;
use crate::seating::{SeatChoice, SeatId};
use crate::webhooks::{Headers, Verifier};
use crate::{AsyncEngine, AsyncStore};

/// How the router is set up.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    verifier: Verifier,
    body_limit: usize,
}

impl HttpOptions {
    /// Payment webhooks checked by `verifier` (every secret of a rotation).
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier, body_limit: MAX_MESSAGE_BYTES }
    }

    /// Bodies up to `bytes` (default and most useful: the wire contract's
    /// [`MAX_MESSAGE_BYTES`]); larger ones answer 413 unread.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

struct Shared<S, C> {
    engine: Arc<AsyncEngine<S, C>>,
    verifier: Verifier,
}

type Ctx<S, C> = State<Arc<Shared<S, C>>>;
type Answer = Result<Response, Problem>;

/// The router: every route in the table above, with problem bodies for every error
/// (including unknown paths and methods). Merge your own routes into it, or nest it.
pub fn router<S, C>(engine: Arc<AsyncEngine<S, C>>, options: HttpOptions) -> Router
where
    S: AsyncStore + 'static,
    C: Clock + 'static,
{
    let shared = Arc::new(Shared { engine, verifier: options.verifier });
    Router::new()
        .route("/health", get(health::<S, C>))
        .route("/occurrences", get(occurrences::<S, C>).post(create::<S, C>))
        .route("/occurrences/{occ}", get(occurrence::<S, C>))
        .route("/occurrences/{occ}/config", put(configure::<S, C>))
        .route("/occurrences/{occ}/availability", get(availability::<S, C>))
        .route("/occurrences/{occ}/seat-map", get(seat_map::<S, C>))
        .route("/occurrences/{occ}/checkout", post(checkout::<S, C>))
        .route("/occurrences/{occ}/bookings/{ref}", get(booking::<S, C>))
        .route("/occurrences/{occ}/actors/{actor}/bookings", get(bookings_of::<S, C>))
        .route("/occurrences/{occ}/bookings/{ref}/tickets", get(tickets::<S, C>))
        .route("/occurrences/{occ}/bookings/{ref}/cancel", post(cancel::<S, C>))
        .route("/occurrences/{occ}/bookings/{ref}/abandon", post(abandon::<S, C>))
        .route("/occurrences/{occ}/bookings/{ref}/extend", post(extend::<S, C>))
        .route("/occurrences/{occ}/check-in", post(check_in::<S, C>))
        .route("/occurrences/{occ}/blocks", post(block::<S, C>))
        .route("/occurrences/{occ}/blocks/{block}/unblock", post(unblock::<S, C>))
        .route("/occurrences/{occ}/prices", post(set_price::<S, C>))
        .route("/occurrences/{occ}/waitlist", get(waitlist::<S, C>).post(join::<S, C>))
        .route("/occurrences/{occ}/waitlist/leave", post(leave::<S, C>))
        .route("/occurrences/{occ}/ledger", get(ledger::<S, C>))
        .route("/baskets", post(basket::<S, C>))
        .route("/webhooks/payment", post(webhook::<S, C>))
        .route("/openapi.json", get(openapi::serve))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------
// Shared pieces

fn occ(p: &Params) -> Result<OccKey, Problem> {
    p.id("occ", OccKey::new)
}

fn hold_ref(p: &Params) -> Result<Ref, Problem> {
    p.id("ref", Ref::new)
}

/// The engine's writes under the request's operation key, if it has one.
fn keyed<'a, S: AsyncStore, C: Clock>(
    engine: &'a AsyncEngine<S, C>,
    key: &'a Option<OpKey>,
) -> crate::WithOpKey<'a, S, C> {
    match key {
        Some(k) => engine.with_op_key(k),
        None => engine.without_op_key(),
    }
}

/// The request's `Idempotency-Key`, as an operation key.
fn op_key(headers: &HeaderMap) -> Result<Option<OpKey>, Problem> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let v = v.to_str().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "bad_idempotency_key", "Idempotency-Key must be visible ASCII")
            .at("Idempotency-Key")
    })?;
    OpKey::new(v)
        .map(Some)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_idempotency_key", e).at("Idempotency-Key"))
}

/// A domain answer (a `{"status": …}` object): `ok` statuses answer `created` or 200 (200
/// for a replay, with `"replayed": true`), any other is 409 with the answer in the problem.
fn answer<T: Serialize>(got: Replayed<T>, ok: &[&str], created: bool) -> Answer {
    let mut v = serde_json::to_value(&got.answer)
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    let status = v.get("status").and_then(Value::as_str).unwrap_or("ok").to_owned();
    if let Some(o) = v.as_object_mut() {
        o.insert("replayed".into(), json!(got.replayed));
    }
    if !ok.contains(&status.as_str()) {
        let (code, detail) = match status.as_str() {
            "invalid" => (StatusCode::UNPROCESSABLE_ENTITY, "the credential is not a ticket of this system"),
            _ => (StatusCode::CONFLICT, "the current state of the occurrence refused it: see `answer`"),
        };
        return Err(Problem::new(code, &status, detail).with_answer(v));
    }
    let code = if created && !got.replayed { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(code, &v))
}

// ---------------------------------------------------------------------------------------
// Occurrences

async fn health<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>) -> Answer {
    app.engine.occurrences(None, 1).await?;
    Ok(json(StatusCode::OK, &json!({ "status": "ok" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

async fn occurrences<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(page) = page.map_err(|r| Problem::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text()))?;
    let after = page
        .after
        .map(OccKey::new)
        .transpose()
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_id", e).at("after"))?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let keys = app.engine.occurrences(after.as_ref(), limit).await?;
    Ok(json(StatusCode::OK, &json!({ "occurrences": keys })))
}

/// `{occ_key, …config}`: read in two steps (a flattened struct would lose the path of a
/// bad field, and its unknown fields).
fn new_occurrence(body: &Body) -> Result<(OccKey, OccurrenceConfig), Problem> {
    let mut fields: serde_json::Map<String, Value> = body.parse()?;
    let key = fields
        .remove("occ_key")
        .ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "bad_body", "missing field `occ_key`").at("occ_key"))?;
    let occ_key: OccKey = problem::from_value(key).map_err(|p| p.at("occ_key"))?;
    Ok((occ_key, problem::from_value(Value::Object(fields))?))
}

/// Prices are the seller's: an occurrence sold over HTTP has tiers or a seat price, so a
/// checkout never takes its amount from the buyer.
fn sellable(config: &OccurrenceConfig) -> Result<(), Problem> {
    if !config.has_tiers() && config.seat_price().is_none() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_price",
            "an occurrence needs tiers or a seat price (\"seat_price\": {\"amount\", \"currency\"})",
        )
        .at("seat_price"));
    }
    Ok(())
}

async fn create<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let keyed = op_key(&headers)?.is_some();
    let (occ_key, config) = new_occurrence(&body)?;
    sellable(&config)?;
    match app.engine.create(&occ_key, config.clone()).await {
        Ok(()) => Ok(json(StatusCode::CREATED, &json!({ "occ_key": occ_key, "config": config, "replayed": false }))),
        // A retry of this very creation (same configuration) under an Idempotency-Key.
        Err(e) if keyed && e.kind() == crate::ErrorKind::Conflict => {
            let now = app.engine.occurrence(&occ_key).await?;
            if now.config == config {
                Ok(json(StatusCode::OK, &json!({ "occ_key": occ_key, "config": config, "replayed": true })))
            } else {
                Err(e.into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn occurrence<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    let o = app.engine.occurrence(&occ(&p)?).await?;
    Ok(json(StatusCode::OK, &json!({ "occ_key": o.key, "config_version": o.config_version, "config": o.config })))
}

async fn configure<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let config: OccurrenceConfig = body.parse()?;
    sellable(&config)?;
    // Reconfigures only: an occurrence is created by `POST /occurrences` (201).
    app.engine.occurrence(&occ_key).await?;
    app.engine.open(&occ_key, config.clone()).await?;
    Ok(json(StatusCode::OK, &json!({ "occ_key": occ_key, "config": config })))
}

async fn availability<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    Ok(json(StatusCode::OK, &app.engine.availability(&occ(&p)?).await?))
}

async fn seat_map<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    match app.engine.seat_map(&occ(&p)?).await? {
        // Sections and rows in quality order, as arrays (a JSON object's order is not kept
        // by every reader).
        Some(map) => {
            let sections: Vec<Value> = map
                .sections
                .iter()
                .map(|(section, rows)| {
                    let rows: Vec<Value> =
                        rows.iter().map(|(row, seats)| json!({ "row": row, "seats": seats })).collect();
                    json!({ "section": section, "rows": rows })
                })
                .collect();
            Ok(json(StatusCode::OK, &json!({ "sections": sections })))
        }
        None => Err(Problem::new(StatusCode::NOT_FOUND, "not_seated", "this occurrence has no seat map")),
    }
}

// ---------------------------------------------------------------------------------------
// Checkout and bookings

/// What to book: `quantity` seats at the seat price, `lines` of tiers, named `seat_ids`, or
/// the `best` block of a seated tier. `amount` + `currency` is the total the buyer was shown
/// (another price answers `price_changed`, never a seat at the buyer's price).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Checkout {
    #[schema(value_type = String)]
    actor: ActorId,
    #[serde(rename = "ref")]
    #[schema(value_type = Option<String>)]
    hold_ref: Option<Ref>,
    quantity: Option<u32>,
    #[schema(value_type = Option<Vec<Object>>)]
    lines: Option<Vec<Line>>,
    #[schema(value_type = Option<Vec<String>>)]
    seat_ids: Option<Vec<SeatId>>,
    best: Option<Best>,
    amount: Option<String>,
    currency: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Best {
    #[schema(value_type = String)]
    tier: TierName,
    quantity: u32,
}

/// A ref nobody chose: for a checkout with neither a `ref` nor an `Idempotency-Key`.
fn fresh_ref() -> Result<Ref, Problem> {
    Ok(Ref::new(format!("r-{}", uuid::Uuid::new_v4().simple()))?)
}

impl Checkout {
    /// The library's request at `occ_key`, under the body's `ref` or else `default_ref`.
    /// `at` prefixes the field a problem names (a basket's part).
    fn into_request(self, occ_key: OccKey, default_ref: Ref, at: &str) -> Result<HoldRequest, Problem> {
        let c = self;
        let hold_ref = c.hold_ref.unwrap_or(default_ref);
        let bad = |detail: &str, field: &str| {
            Problem::new(StatusCode::BAD_REQUEST, "bad_body", detail).at(format!("{at}{field}"))
        };
        let shown = match (c.amount, c.currency) {
            (Some(amount), Some(currency)) => {
                Some(Money::parse(&amount, &currency).map_err(|e| Problem::from(e).at(format!("{at}amount")))?)
            }
            (None, None) => None,
            (None, Some(_)) => return Err(bad("currency needs amount", "amount")),
            (Some(_), None) => return Err(bad("amount needs currency", "currency")),
        };
        let chosen = [c.quantity.is_some(), c.lines.is_some(), c.seat_ids.is_some(), c.best.is_some()];
        if chosen.iter().filter(|b| **b).count() > 1 {
            return Err(bad("name one of quantity, lines, seat_ids and best", "quantity"));
        }
        let mut req = if let Some(lines) = c.lines {
            HoldRequest::lines(occ_key, c.actor, hold_ref, lines)
        } else if let Some(seats) = c.seat_ids {
            HoldRequest::seated(occ_key, c.actor, hold_ref, SeatChoice::Chosen(seats))
        } else if let Some(b) = c.best {
            HoldRequest::seated(occ_key, c.actor, hold_ref, SeatChoice::Best { tier: b.tier, quantity: b.quantity })
        } else {
            HoldRequest::seats(occ_key, c.actor, hold_ref, c.quantity.unwrap_or(1))
        };
        if let Some(shown) = shown {
            req = req.expecting(shown);
        }
        if let Some(m) = c.metadata {
            req = req.with_metadata(m);
        }
        Ok(req)
    }
}

async fn checkout<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let c: Checkout = body.parse()?;
    // Under an Idempotency-Key the key is the hold's ref: a body naming another ref would
    // make one key place two holds.
    let default_ref = match &key {
        Some(k) => {
            let r = key_ref(k.as_str())?;
            if c.hold_ref.as_ref().is_some_and(|b| *b != r) {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "with an Idempotency-Key the key is the hold's ref: leave `ref` out or send the same value",
                )
                .at("ref"));
            }
            r
        }
        None => fresh_ref()?,
    };
    let req = c.into_request(occ_key, default_ref, "")?;
    let outcome = match app.engine.request(&req).await {
        // The ref's hold moved on since it was placed (paid, lapsed, released): a retry
        // under the key answers what the first request answered, if it was this request.
        Ok(RequestOutcome::Already { ref hold_ref, .. }) if key.is_some() && *hold_ref == req.hold_ref => {
            return replay_checkout(&app.engine, &req).await;
        }
        Ok(o) => o,
        Err(e) if key.is_some() && e.kind() == crate::ErrorKind::Conflict => {
            return replay_checkout(&app.engine, &req).await;
        }
        Err(e) => return Err(e.into()),
    };
    let replayed = matches!(
        outcome,
        RequestOutcome::AwaitingPayment { replayed: true, .. } | RequestOutcome::Confirmed { replayed: true, .. }
    );
    answer(Replayed { answer: outcome, replayed }, &["awaiting_payment", "confirmed"], true)
}

/// The ref an Idempotency-Key names (a key too long or malformed for a ref is a 400).
fn key_ref(key: &str) -> Result<Ref, Problem> {
    Ref::new(key).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_idempotency_key", e).at("Idempotency-Key"))
}

/// A keyed checkout retried after its hold moved on: the first answer (the hold's checkout
/// request, or its free confirmation), marked a replay — or 422 if the key's hold was placed
/// by another request.
async fn replay_checkout<S: AsyncStore + 'static, C: Clock + 'static>(
    engine: &AsyncEngine<S, C>,
    req: &HoldRequest,
) -> Answer {
    let hold = engine.booking(&req.occ_key, &req.hold_ref).await?;
    let Some(hold) = hold.filter(|h| req.placed(h)) else {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key placed another request; a new checkout needs a fresh key",
        )
        .at("Idempotency-Key"));
    };
    let free = !hold.lines.is_empty() && hold.price.amount.is_zero() && hold.ended_at == Some(hold.placed_at);
    let first = if free {
        RequestOutcome::Confirmed { hold_ref: hold.hold_ref.clone(), replayed: true, seat_ids: hold.seat_ids.to_vec() }
    } else {
        RequestOutcome::AwaitingPayment {
            checkout: hold.checkout_request(),
            replayed: true,
            seat_ids: hold.seat_ids.to_vec(),
        }
    };
    answer(Replayed { answer: first, replayed: true }, &["awaiting_payment", "confirmed"], true)
}

async fn booking<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    let hold = app.engine.booking(&occ(&p)?, &hold_ref(&p)?).await?;
    let hold = hold.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_booking", "no booking has this ref"))?;
    Ok(json(StatusCode::OK, &BookingView::of(&hold, app.engine.clock().now())))
}

async fn bookings_of<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    let actor = p.id("actor", ActorId::new)?;
    let now = app.engine.clock().now();
    let holds = app.engine.bookings_of(&occ(&p)?, &actor).await?;
    let views: Vec<BookingView> = holds.iter().map(|h| BookingView::of(h, now)).collect();
    Ok(json(StatusCode::OK, &json!({ "bookings": views })))
}

async fn tickets<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    let tickets = app.engine.tickets(&occ(&p)?, &hold_ref(&p)?).await?;
    Ok(json(StatusCode::OK, &json!({ "tickets": tickets })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Cancel {
    tickets: Option<Vec<u32>>,
    refund: Option<Amounted>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Amounted {
    amount: String,
    currency: String,
}

impl Amounted {
    fn money(&self, field: &str) -> Result<Money, Problem> {
        Money::parse(&self.amount, &self.currency).map_err(|e| Problem::from(e).at(field))
    }
}

async fn cancel<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (occ_key, r) = (occ(&p)?, hold_ref(&p)?);
    let key = op_key(&headers)?;
    let c: Cancel = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = match c.refund {
        Some(refund) => writes.cancel_refunding(&occ_key, &r, c.tickets.as_deref(), refund.money("refund")?).await?,
        None => writes.cancel(&occ_key, &r, c.tickets.as_deref()).await?,
    };
    answer(got, &["cancelled", "noop"], false)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Who {
    #[schema(value_type = String)]
    actor: ActorId,
}

async fn abandon<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (occ_key, r) = (occ(&p)?, hold_ref(&p)?);
    let key = op_key(&headers)?;
    let Who { actor } = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = writes.abandon(&occ_key, &actor, &r).await?;
    let replayed = got.replayed;
    Ok(json(StatusCode::OK, &json!({ "status": got.answer, "replayed": replayed })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Extend {
    seconds: u32,
}

async fn extend<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (occ_key, r) = (occ(&p)?, hold_ref(&p)?);
    let key = op_key(&headers)?;
    let Extend { seconds } = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = writes.extend(&occ_key, &r, time::Duration::seconds(i64::from(seconds))).await?;
    Ok(json(StatusCode::OK, &json!({ "request": got.answer, "replayed": got.replayed })))
}

/// `{"parts": [{occ_key, …a checkout…}]}`: one hold per part, each at its own occurrence,
/// all or none. Under an `Idempotency-Key`, a part without a `ref` gets `<key>-<index>`.
async fn basket<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let key = op_key(&headers)?;
    let mut fields: serde_json::Map<String, Value> = body.parse()?;
    let parts = match fields.remove("parts") {
        Some(Value::Array(parts)) if !parts.is_empty() && fields.is_empty() => parts,
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "a basket is {\"parts\": [{\"occ_key\", …a checkout…}, …]}, at least one part",
            )
            .at("parts"));
        }
    };
    let mut reqs = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let at = format!("parts[{i}].");
        let Value::Object(mut part) = part else {
            return Err(
                Problem::new(StatusCode::BAD_REQUEST, "bad_body", "a part is an object").at(format!("parts[{i}]"))
            );
        };
        let occ_key: OccKey = match part.remove("occ_key") {
            Some(k) => problem::from_value(k).map_err(|p| p.at(format!("{at}occ_key")))?,
            None => {
                return Err(Problem::new(StatusCode::BAD_REQUEST, "bad_body", "missing field `occ_key`")
                    .at(format!("{at}occ_key")));
            }
        };
        let c: Checkout = problem::from_value(Value::Object(part)).map_err(|p| {
            let field = p.details().field.clone().unwrap_or_default();
            p.at(format!("{at}{field}"))
        })?;
        let default_ref = match &key {
            Some(k) => key_ref(&format!("{k}-{i}"))?,
            None => fresh_ref()?,
        };
        reqs.push(c.into_request(occ_key, default_ref, &at)?);
    }
    match app.engine.request_basket(&reqs).await? {
        crate::Basket::Placed { parts } => {
            let replayed = parts.iter().all(|o| {
                matches!(
                    o,
                    RequestOutcome::AwaitingPayment { replayed: true, .. }
                        | RequestOutcome::Confirmed { replayed: true, .. }
                )
            });
            let code = if replayed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(json(code, &json!({ "status": "placed", "parts": parts, "replayed": replayed })))
        }
        crate::Basket::NotPlaced { part, outcome } => {
            let name = serde_json::to_value(&outcome)
                .ok()
                .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "not_placed".to_owned());
            Err(Problem::new(
                StatusCode::CONFLICT,
                &name,
                format!("part {part} could not be placed; the parts before it were released"),
            )
            .at(format!("parts[{part}]"))
            .with_answer(json!({ "status": "not_placed", "part": part, "outcome": outcome })))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The door, blocks, prices

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Scan {
    credential: String,
}

async fn check_in<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let Scan { credential } = body.parse()?;
    let writes = keyed(&app.engine, &key);
    answer(writes.check_in(&occ_key, &credential).await?, &["admitted"], false)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBlock {
    #[schema(value_type = String)]
    block: BlockName,
    seats: Option<u32>,
    #[schema(value_type = Option<String>)]
    tier: Option<TierName>,
    #[schema(value_type = Option<Vec<String>>)]
    seat_ids: Option<Vec<SeatId>>,
}

async fn block<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let b: NewBlock = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = match (b.seats, b.seat_ids) {
        (Some(n), None) => writes.block(&occ_key, &b.block, n, b.tier.as_ref()).await?,
        (None, Some(seats)) if b.tier.is_none() => writes.block_seats(&occ_key, &b.block, &seats).await?,
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "a block names seats (with an optional tier) or seat_ids",
            ));
        }
    };
    answer(got, &["blocked"], false)
}

async fn unblock<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let name = p.id("block", BlockName::new)?;
    let key = op_key(&headers)?;
    let _: Empty = body.parse()?;
    let writes = keyed(&app.engine, &key);
    answer(writes.unblock(&occ_key, &name).await?, &["unblocked"], false)
}

/// A body that must be empty (or `{}`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Price {
    #[schema(value_type = String)]
    tier: TierName,
    amount: String,
    currency: String,
}

async fn set_price<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let Price { tier, amount, currency } = body.parse()?;
    let price = Money::parse(&amount, &currency).map_err(|e| Problem::from(e).at("amount"))?;
    let writes = keyed(&app.engine, &key);
    let got = writes.set_price(&occ_key, &tier, price).await?;
    Ok(json(StatusCode::OK, &json!({ "ok": true, "replayed": got.replayed })))
}

// ---------------------------------------------------------------------------------------
// Waiting lists and the ledger

async fn waitlist<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    Ok(json(StatusCode::OK, &app.engine.waitlist_of(&occ(&p)?).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Join {
    #[schema(value_type = String)]
    actor: ActorId,
    #[schema(value_type = Option<String>)]
    tier: Option<TierName>,
    seats: u32,
}

async fn join<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let j: Join = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = writes.join_waitlist(&occ_key, &j.actor, j.tier.as_ref(), j.seats).await?;
    let body = json!({ "position": got.answer.position, "offered": got.answer.offered, "replayed": got.replayed });
    Ok(json(StatusCode::OK, &body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Leave {
    #[schema(value_type = String)]
    actor: ActorId,
    #[schema(value_type = Option<String>)]
    tier: Option<TierName>,
}

async fn leave<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let occ_key = occ(&p)?;
    let key = op_key(&headers)?;
    let l: Leave = body.parse()?;
    let writes = keyed(&app.engine, &key);
    let got = writes.leave_waitlist(&occ_key, &l.actor, l.tier.as_ref()).await?;
    Ok(json(StatusCode::OK, &json!({ "left": got.answer, "replayed": got.replayed })))
}

async fn ledger<S: AsyncStore + 'static, C: Clock + 'static>(State(app): Ctx<S, C>, p: Params) -> Answer {
    Ok(json(StatusCode::OK, &app.engine.ledger(&occ(&p)?).await?))
}

// ---------------------------------------------------------------------------------------
// The payment webhook

/// The provider's webhook: the signature is checked before the body is read; every result
/// accounted answers 200 (see the module docs).
async fn webhook<S: AsyncStore + 'static, C: Clock + 'static>(
    State(app): Ctx<S, C>,
    headers: HeaderMap,
    body: Raw,
) -> Answer {
    let signed = Headers::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    let settled = app.engine.settle_signed(&app.verifier, &signed, &body.0).await?;
    Ok(json(StatusCode::OK, &settled))
}
