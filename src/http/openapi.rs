//! The router's OpenAPI 3.1 description, generated (utoipa) from the request shapes the
//! handlers parse and the operation list below, served at `GET /openapi.json` and frozen by a
//! snapshot test (`tests/http_api.rs`), so a change of the API is a visible diff.
//!
//! Owns: the description. May not touch: the handlers' behaviour (each operation below names
//! the handler in `super` it describes; the loopback test checks both agree).
//!
//! Answers that are the library's own types are described as objects here, with their shape
//! in the text: their serde forms are documented with the types themselves.

// The functions below exist for their `#[utoipa::path]` descriptions only.
#![allow(dead_code)]

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use utoipa::OpenApi;

use super::problem::{Details, json};
use super::{Amounted, Best, Cancel, Checkout, Empty, Extend, Join, Leave, NewBlock, Price, Scan, Who};

/// The API description as JSON (OpenAPI 3.1).
pub fn description() -> Value {
    serde_json::to_value(Api::openapi()).unwrap_or(Value::Null)
}

pub(crate) async fn serve() -> Response {
    json(StatusCode::OK, &description())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "seathold",
        description = "Paid bookings: holds, checkout, signed payment results, tickets, the door, waiting lists. Errors are RFC 9457 problem details (application/problem+json)."
    ),
    paths(
        health,
        occurrences,
        create,
        occurrence,
        configure,
        availability,
        seat_map,
        checkout,
        basket,
        booking,
        bookings_of,
        tickets,
        cancel,
        abandon,
        extend,
        check_in,
        block,
        unblock,
        set_price,
        waitlist,
        join,
        leave,
        ledger,
        webhook
    ),
    components(schemas(
        Details, Checkout, Best, Cancel, Amounted, Who, Extend, Scan, NewBlock, Empty, Price, Join, Leave
    ))
)]
struct Api;

const PROBLEM: &str = "application/problem+json";

#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The store answers: `{\"status\":\"ok\"}`", body = Object),
              (status = 503, description = "The store does not answer", body = Details, content_type = PROBLEM)))]
fn health() {}

#[utoipa::path(get, path = "/occurrences", tag = "occurrences",
    params(("after" = Option<String>, Query, description = "List keys after this one"),
           ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)")),
    responses((status = 200, description = "`{\"occurrences\":[key…]}` in key order", body = Object),
              (status = 400, description = "A malformed query", body = Details, content_type = PROBLEM)))]
fn occurrences() {}

#[utoipa::path(post, path = "/occurrences", tag = "occurrences",
    request_body(content = Object, description = "`{occ_key, capacity, hold_ttl_secs, …}`: the key and an occurrence configuration (tiers, pools, seat_price, seating, issue_tickets, offer_ttl_secs, …); unknown fields are refused. It needs tiers or a seat_price."),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same configuration answers 200 `replayed`")),
    responses((status = 201, description = "Created: `{occ_key, config, replayed: false}`", body = Object),
              (status = 200, description = "A keyed retry: `replayed: true`", body = Object),
              (status = 400, description = "A body that does not parse (with `field`)", body = Details, content_type = PROBLEM),
              (status = 409, description = "The key exists with another configuration", body = Details, content_type = PROBLEM),
              (status = 413, description = "A body over 64 KiB", body = Details, content_type = PROBLEM),
              (status = 415, description = "A body not labelled JSON", body = Details, content_type = PROBLEM),
              (status = 422, description = "No seller's price, or an inconsistent configuration", body = Details, content_type = PROBLEM)))]
fn create() {}

#[utoipa::path(get, path = "/occurrences/{occ}", tag = "occurrences",
    params(("occ" = String, Path, description = "The occurrence key")),
    responses((status = 200, description = "`{occ_key, config_version, config}`", body = Object),
              (status = 400, description = "Not an occurrence key (`field`: `occ`)", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such occurrence", body = Details, content_type = PROBLEM)))]
fn occurrence() {}

#[utoipa::path(put, path = "/occurrences/{occ}/config", tag = "occurrences",
    params(("occ" = String, Path, description = "The occurrence key")),
    request_body(content = Object, description = "An occurrence configuration (as for creation, without `occ_key`); an existing occurrence only"),
    responses((status = 200, description = "`{occ_key, config}`", body = Object),
              (status = 400, description = "A body that does not parse (with `field`)", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such occurrence (create it with `POST /occurrences`)", body = Details, content_type = PROBLEM),
              (status = 409, description = "The change conflicts with seats in use", body = Details, content_type = PROBLEM),
              (status = 422, description = "An inconsistent configuration", body = Details, content_type = PROBLEM)))]
fn configure() {}

#[utoipa::path(get, path = "/occurrences/{occ}/availability", tag = "reads",
    params(("occ" = String, Path, description = "The occurrence key")),
    responses((status = 200, description = "Seats for sale, held, sold, blocked, offered and available, per tier", body = Object),
              (status = 404, description = "No such occurrence", body = Details, content_type = PROBLEM)))]
fn availability() {}

#[utoipa::path(get, path = "/occurrences/{occ}/seat-map", tag = "reads",
    params(("occ" = String, Path, description = "The occurrence key")),
    responses((status = 200, description = "`{sections:[{section, rows:[{row, seats}]}]}`, a character a seat: `.` free, `H` held, `S` sold, `B` blocked", body = Object),
              (status = 404, description = "No such occurrence, or it has no seat map (`not_seated`)", body = Details, content_type = PROBLEM)))]
fn seat_map() {}

#[utoipa::path(post, path = "/occurrences/{occ}/checkout", tag = "checkout",
    params(("occ" = String, Path, description = "The occurrence key"),
           ("Idempotency-Key" = Option<String>, Header, description = "The hold's ref (a body `ref` must be the same); a retry answers the first answer, also after the hold was paid or lapsed")),
    request_body = Checkout,
    responses((status = 201, description = "A hold placed (`awaiting_payment`, with the checkout request) or a free order confirmed (`confirmed`)", body = Object),
              (status = 200, description = "A retry of the same request: the first answer, `replayed: true`", body = Object),
              (status = 400, description = "A malformed body or Idempotency-Key, a `ref` other than the key, or an unknown seat", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such occurrence", body = Details, content_type = PROBLEM),
              (status = 409, description = "Refused by the show's state: `full`, `already`, `price_changed`, `limit_reached`, `seat_taken`, `single_gap` (the answer in `answer`); or, without a key, a ref used before", body = Details, content_type = PROBLEM),
              (status = 422, description = "An Idempotency-Key used for another request (`idempotency_key_reused`), or a bad amount", body = Details, content_type = PROBLEM)))]
fn checkout() {}

#[utoipa::path(post, path = "/baskets", tag = "checkout",
    params(("Idempotency-Key" = Option<String>, Header, description = "Each part without a ref is placed under `<key>-<index>`; a retry answers the first answer")),
    request_body(content = Object, description = "`{parts: [{occ_key, …as a checkout body…}]}`: one hold per part, each at its own occurrence, all or none"),
    responses((status = 201, description = "`{status: \"placed\", parts: [each part's checkout answer]}`", body = Object),
              (status = 200, description = "A retry: every part replayed, `replayed: true`", body = Object),
              (status = 400, description = "A malformed part (`field`: `parts[i].…`)", body = Details, content_type = PROBLEM),
              (status = 409, description = "Part `i` could not be placed (named by its answer: `full`, `seat_taken`, …; `answer`: `{part, outcome}`); the parts before it were released", body = Details, content_type = PROBLEM)))]
fn basket() {}

#[utoipa::path(get, path = "/occurrences/{occ}/bookings/{ref}", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("ref" = String, Path, description = "The booking's ref")),
    responses((status = 200, description = "The booking: state (`live`, `lapsed`, `confirmed`, `released`, `expired`, `cancelled`), price, lines, seat_ids, RFC 3339 instants, ticket states", body = Object),
              (status = 404, description = "No booking has this ref (`no_booking`)", body = Details, content_type = PROBLEM)))]
fn booking() {}

#[utoipa::path(get, path = "/occurrences/{occ}/actors/{actor}/bookings", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("actor" = String, Path, description = "The actor")),
    responses((status = 200, description = "`{bookings:[…]}`, each as `GET …/bookings/{ref}` answers", body = Object)))]
fn bookings_of() {}

#[utoipa::path(get, path = "/occurrences/{occ}/bookings/{ref}/tickets", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("ref" = String, Path, description = "The booking's ref")),
    responses((status = 200, description = "`{tickets:[{id, index, tier?, seat?, status, at?, credential}]}`", body = Object),
              (status = 500, description = "The service has no ticket key", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such booking", body = Details, content_type = PROBLEM)))]
fn tickets() {}

#[utoipa::path(post, path = "/occurrences/{occ}/bookings/{ref}/cancel", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("ref" = String, Path, description = "The booking's ref"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Cancel,
    responses((status = 200, description = "`cancelled` (the refund given, seats, provider_ref) or `noop`", body = Object),
              (status = 400, description = "A malformed body, or a ticket the booking does not have", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such occurrence or booking", body = Details, content_type = PROBLEM),
              (status = 409, description = "A ticket of it is checked in (`checked_in`, in `answer`), or it is not a paid booking", body = Details, content_type = PROBLEM),
              (status = 422, description = "A refund above the seats' share or in another currency, or a key reused", body = Details, content_type = PROBLEM)))]
fn cancel() {}

#[utoipa::path(post, path = "/occurrences/{occ}/bookings/{ref}/abandon", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("ref" = String, Path, description = "The booking's ref"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Who,
    responses((status = 200, description = "`released` (the live hold's seats are free) or `noop`", body = Object)))]
fn abandon() {}

#[utoipa::path(post, path = "/occurrences/{occ}/bookings/{ref}/extend", tag = "bookings",
    params(("occ" = String, Path, description = "The occurrence key"), ("ref" = String, Path, description = "The booking's ref"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Extend,
    responses((status = 200, description = "`{request}`: the checkout request with its new expiry", body = Object),
              (status = 404, description = "No such occurrence or hold", body = Details, content_type = PROBLEM),
              (status = 409, description = "The hold is not live", body = Details, content_type = PROBLEM),
              (status = 422, description = "Extensions not allowed here, or a key reused", body = Details, content_type = PROBLEM)))]
fn extend() {}

#[utoipa::path(post, path = "/occurrences/{occ}/check-in", tag = "door",
    params(("occ" = String, Path, description = "The occurrence whose door scans"),
           ("Idempotency-Key" = Option<String>, Header, description = "A scanner's retry answers the first answer")),
    request_body = Scan,
    responses((status = 200, description = "`admitted`", body = Object),
              (status = 409, description = "`already_checked_in`, `wrong_occurrence` (another show's ticket) or `cancelled` (in `answer`)", body = Details, content_type = PROBLEM),
              (status = 422, description = "Not a ticket of this system (`invalid`)", body = Details, content_type = PROBLEM)))]
fn check_in() {}

#[utoipa::path(post, path = "/occurrences/{occ}/blocks", tag = "organiser",
    params(("occ" = String, Path, description = "The occurrence key"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = NewBlock,
    responses((status = 200, description = "`blocked` (also when the same block was made before)", body = Object),
              (status = 400, description = "Neither seats nor seat_ids, or an unknown seat", body = Details, content_type = PROBLEM),
              (status = 409, description = "No room (`full`), a named seat taken (`seat_taken`), or the name used for another block", body = Details, content_type = PROBLEM)))]
fn block() {}

#[utoipa::path(post, path = "/occurrences/{occ}/blocks/{block}/unblock", tag = "organiser",
    params(("occ" = String, Path, description = "The occurrence key"), ("block" = String, Path, description = "The block's name"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Empty,
    responses((status = 200, description = "`unblocked`: its seats go to the waiting list first", body = Object),
              (status = 404, description = "No such block", body = Details, content_type = PROBLEM)))]
fn unblock() {}

#[utoipa::path(post, path = "/occurrences/{occ}/prices", tag = "organiser",
    params(("occ" = String, Path, description = "The occurrence key"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Price,
    responses((status = 200, description = "`{ok: true}`", body = Object),
              (status = 409, description = "The tier's price is locked while a live hold has its seats", body = Details, content_type = PROBLEM),
              (status = 422, description = "No such tier", body = Details, content_type = PROBLEM)))]
fn set_price() {}

#[utoipa::path(get, path = "/occurrences/{occ}/waitlist", tag = "waiting list",
    params(("occ" = String, Path, description = "The occurrence key")),
    responses((status = 200, description = "`{entries:[{actor, tier?, seats, position}], offers:[{actor, tier?, seats, expires_at}]}`", body = Object)))]
fn waitlist() {}

#[utoipa::path(post, path = "/occurrences/{occ}/waitlist", tag = "waiting list",
    params(("occ" = String, Path, description = "The occurrence key"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Join,
    responses((status = 200, description = "`{position, offered}` (the same entry when joined before)", body = Object),
              (status = 400, description = "Seats out of range", body = Details, content_type = PROBLEM),
              (status = 404, description = "No such occurrence", body = Details, content_type = PROBLEM),
              (status = 409, description = "The list is full", body = Details, content_type = PROBLEM),
              (status = 422, description = "A seated or unknown tier, or a key reused", body = Details, content_type = PROBLEM)))]
fn join() {}

#[utoipa::path(post, path = "/occurrences/{occ}/waitlist/leave", tag = "waiting list",
    params(("occ" = String, Path, description = "The occurrence key"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry answers the first answer")),
    request_body = Leave,
    responses((status = 200, description = "`{left}`: whether there was an entry (its offer passes on)", body = Object)))]
fn leave() {}

#[utoipa::path(get, path = "/occurrences/{occ}/ledger", tag = "reads",
    params(("occ" = String, Path, description = "The occurrence key")),
    responses((status = 200, description = "`{entries:[…], received:{currency: amount}, refunded:{…}}`", body = Object)))]
fn ledger() {}

#[utoipa::path(post, path = "/webhooks/payment", tag = "payments",
    params(("webhook-id" = String, Header, description = "Standard Webhooks message id"),
           ("webhook-timestamp" = String, Header, description = "Unix seconds, within 5 minutes"),
           ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`")),
    request_body(content = Object, description = "An `events.payment` result: `{kind, occ_key, actor, ref, status, amount?, currency?, provider_ref?}`"),
    responses((status = 200, description = "Accounted: `confirmed`, `released`, `noop`, `paid_but_no_hold` (refund it) or `rejected`, with `replayed`", body = Object),
              (status = 400, description = "A body that is not a payment result", body = Details, content_type = PROBLEM),
              (status = 401, description = "A bad, old or missing signature: nothing was read", body = Details, content_type = PROBLEM),
              (status = 413, description = "A body over 64 KiB", body = Details, content_type = PROBLEM)))]
fn webhook() {}
