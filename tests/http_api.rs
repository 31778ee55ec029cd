//! The HTTP router (`seathold::http`, feature `http`) as a service mounts it: served on a
//! loopback port and driven with a real HTTP client — every route, every error status with
//! its problem body, retries under `Idempotency-Key` — on the in-memory store and on
//! PostgreSQL (a fresh schema) when `SEATHOLD_PG_URL` is set.

use crate::postgres_support;

use std::sync::Arc;

use reqwest::{Client, StatusCode};
use seathold::http::{HttpOptions, router};
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::tickets::TicketKey;
use seathold::webhooks::{Signer, Verifier, WebhookSecret};
use seathold::{AsyncEngine, AsyncStore, ManualClock, MemoryStore};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-12-07 19:00 UTC);

struct Api {
    base: String,
    http: Client,
    clock: Arc<ManualClock>,
    secret: WebhookSecret,
}

/// One answer: status, content type, body.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    ctype: String,
    body: Value,
}

impl Got {
    /// A problem body of `status` named `name` (`urn:seathold:problem:<name>`).
    #[track_caller]
    fn problem(&self, status: StatusCode, name: &str) -> &Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.ctype, "application/problem+json", "{self:?}");
        assert_eq!(self.body["type"], format!("urn:seathold:problem:{name}"), "{self:?}");
        assert_eq!(self.body["status"], status.as_u16(), "{self:?}");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "{self:?}");
        &self.body
    }

    /// A JSON answer of `status`.
    #[track_caller]
    fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!((self.status, self.ctype.as_str()), (status, "application/json"), "{self:?}");
        &self.body
    }
}

impl Api {
    async fn start<S: AsyncStore + 'static>(store: S) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let secret = WebhookSecret::from_bytes(vec![9u8; 32]).unwrap();
        let engine = AsyncEngine::with_clock(store, clock.clone())
            .with_ticket_key(TicketKey::new("a ticket key of thirty-two bytes or more").unwrap());
        let app = router(Arc::new(engine), HttpOptions::new(Verifier::new(vec![secret.clone()]).unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, http: Client::new(), clock, secret }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Got {
        let resp = req.send().await.expect("the router answers");
        let status = resp.status();
        let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(!status.is_server_error(), "never 5xx: {status} {}", String::from_utf8_lossy(&bytes));
        Got { status, ctype, body }
    }

    async fn get(&self, path: &str) -> Got {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Value) -> Got {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    /// POST `body` as it is, labelled JSON (bodies no `Value` can be: trailing bytes, say).
    async fn post_raw(&self, path: &str, body: &'static str) -> Got {
        self.send(self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body))
            .await
    }

    async fn post_keyed(&self, path: &str, key: &str, body: Value) -> Got {
        self.send(self.http.post(format!("{}{path}", self.base)).header("idempotency-key", key).json(&body)).await
    }

    async fn pay(&self, occ: &str, actor: &str, r: &str, amount: &str) -> Got {
        let body = json!({"kind": "events.payment", "occ_key": occ, "actor": actor, "ref": r, "status": "paid",
                          "amount": amount, "currency": "EUR", "provider_ref": format!("pay_{r}")})
        .to_string();
        let h = Signer::new(self.secret.clone()).sign(&format!("msg_{r}"), self.clock.now_utc(), body.as_bytes());
        let req = self
            .http
            .post(format!("{}/webhooks/payment", self.base))
            .header("webhook-id", h.id)
            .header("webhook-timestamp", h.timestamp)
            .header("webhook-signature", h.signature)
            .body(body);
        self.send(req).await
    }
}

trait Now {
    fn now_utc(&self) -> OffsetDateTime;
}

impl Now for ManualClock {
    fn now_utc(&self) -> OffsetDateTime {
        seathold::clock::Clock::now(self)
    }
}

async fn every_route(api: Api) {
    use StatusCode as S;
    // Health, and the paths and methods no route has: problems, not empty bodies.
    assert_eq!(api.get("/health").await.ok(S::OK), &json!({"status": "ok"}));
    api.get("/nowhere").await.problem(S::NOT_FOUND, "not_found");
    api.send(api.http.delete(format!("{}/occurrences", api.base)))
        .await
        .problem(S::METHOD_NOT_ALLOWED, "method_not_allowed");

    // Occurrences: created (201), a keyed retry replays (200), another creation conflicts.
    let price = json!({"amount": "25.00", "currency": "EUR"});
    let gig = json!({"occ_key": "gig", "capacity": 3, "hold_ttl_secs": 600, "issue_tickets": true,
                     "seat_price": price, "offer_ttl_secs": 300, "max_extension_secs": 300});
    let created = api.post_keyed("/occurrences", "create-gig", gig.clone()).await;
    assert_eq!(created.ok(S::CREATED)["replayed"], false);
    assert_eq!(api.post_keyed("/occurrences", "create-gig", gig.clone()).await.ok(S::OK)["replayed"], true);
    api.post("/occurrences", gig.clone()).await.problem(S::CONFLICT, "conflict");
    // Undocumented, lenient input is refused by name; an unpriced occurrence is refused.
    let mut typo = gig.clone();
    typo["tickets"] = json!(true);
    typo["occ_key"] = json!("typo");
    assert!(
        api.post("/occurrences", typo).await.problem(S::BAD_REQUEST, "bad_body")["detail"]
            .as_str()
            .unwrap()
            .contains("tickets")
    );
    let unpriced = json!({"occ_key": "free", "capacity": 5, "hold_ttl_secs": 600});
    assert_eq!(
        api.post("/occurrences", unpriced).await.problem(S::UNPROCESSABLE_ENTITY, "no_price")["field"],
        "seat_price"
    );
    // The body's form: JSON only, within the limit, parsed.
    let raw = |ct: &str, body: Vec<u8>| {
        api.http.post(format!("{}/occurrences", api.base)).header("content-type", ct).body(body)
    };
    api.send(raw("text/plain", b"{}".to_vec())).await.problem(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    api.send(raw("application/json", vec![b' '; 70 * 1024])).await.problem(S::PAYLOAD_TOO_LARGE, "payload_too_large");
    api.send(raw("application/json", b"{\"occ_key\":".to_vec())).await.problem(S::BAD_REQUEST, "bad_body");
    let bad_cap = api.post("/occurrences", json!({"occ_key": "x", "capacity": "many", "hold_ttl_secs": 1})).await;
    assert_eq!(bad_cap.problem(S::BAD_REQUEST, "bad_body")["field"], "capacity");

    let list = api.get("/occurrences?limit=10").await;
    assert_eq!(list.ok(S::OK)["occurrences"], json!(["gig"]));
    api.get("/occurrences?limit=ten").await.problem(S::BAD_REQUEST, "bad_query");
    let occ = api.get("/occurrences/gig").await;
    assert_eq!(occ.ok(S::OK)["config"]["capacity"], 3);
    api.get("/occurrences/nope").await.problem(S::NOT_FOUND, "not_found");
    let long = "k".repeat(300);
    assert_eq!(api.get(&format!("/occurrences/{long}")).await.problem(S::BAD_REQUEST, "bad_id")["field"], "occ");
    let mut reconf = gig.clone();
    reconf.as_object_mut().unwrap().remove("occ_key");
    reconf["capacity"] = json!(4);
    let put = api.send(api.http.put(format!("{}/occurrences/gig/config", api.base)).json(&reconf)).await;
    assert_eq!(put.ok(S::OK)["config"]["capacity"], 4);
    let nowhere = api.send(api.http.put(format!("{}/occurrences/nowhere/config", api.base)).json(&reconf)).await;
    nowhere.problem(S::NOT_FOUND, "not_found");
    assert_eq!(api.get("/occurrences/gig/availability").await.ok(S::OK)["available"], 4);
    api.get("/occurrences/gig/seat-map").await.problem(S::NOT_FOUND, "not_seated");

    // Checkout: placed (201), retried under its key (200, replayed), another body under the
    // same key (422), a full show (409 with the answer).
    let ann = api.post_keyed("/occurrences/gig/checkout", "ann-1", json!({"actor": "ann", "quantity": 2})).await;
    let ann_v = ann.ok(S::CREATED);
    assert_eq!(
        (&ann_v["status"], &ann_v["request"]["ref"], &ann_v["replayed"]),
        (&json!("awaiting_payment"), &json!("ann-1"), &json!(false))
    );
    let again = api.post_keyed("/occurrences/gig/checkout", "ann-1", json!({"actor": "ann", "quantity": 2})).await;
    assert_eq!(again.ok(S::OK)["replayed"], true);
    let other = api.post_keyed("/occurrences/gig/checkout", "ann-1", json!({"actor": "ann", "quantity": 1})).await;
    assert_eq!(other.problem(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused")["field"], "Idempotency-Key");
    let two_refs = api.post_keyed("/occurrences/gig/checkout", "ann-9", json!({"actor": "ann", "ref": "ann-10"})).await;
    assert_eq!(two_refs.problem(S::BAD_REQUEST, "bad_body")["field"], "ref", "one key, one hold");
    let long_key = "k".repeat(300);
    let bad_key = api.post_keyed("/occurrences/gig/checkout", &long_key, json!({"actor": "ann"})).await;
    assert_eq!(bad_key.problem(S::BAD_REQUEST, "bad_idempotency_key")["field"], "Idempotency-Key");
    let trailing = api.post_raw("/occurrences/gig/checkout", "{\"actor\":\"zed\"} trailing").await;
    trailing.problem(S::BAD_REQUEST, "bad_body");
    let bob = api.post("/occurrences/gig/checkout", json!({"actor": "bob", "ref": "bob-1", "quantity": 2})).await;
    bob.ok(S::CREATED);
    let full = api.post("/occurrences/gig/checkout", json!({"actor": "cat", "ref": "cat-1"})).await;
    assert_eq!(full.problem(S::CONFLICT, "full")["answer"]["status"], "full");
    let cheap =
        api.post("/occurrences/gig/checkout", json!({"actor": "dan", "amount": "1.00", "currency": "EUR"})).await;
    assert_eq!(cheap.problem(S::CONFLICT, "price_changed")["answer"]["amount"], "25.00");
    let both = api
        .post("/occurrences/gig/checkout", json!({"actor": "dan", "quantity": 1, "best": {"tier": "a", "quantity": 1}}))
        .await;
    both.problem(S::BAD_REQUEST, "bad_body");
    api.post("/occurrences/gig/checkout", json!({"actor": "dan", "amount": "1.00"}))
        .await
        .problem(S::BAD_REQUEST, "bad_body");
    let already = api.post("/occurrences/gig/checkout", json!({"actor": "ann", "ref": "ann-2"})).await;
    assert_eq!(already.problem(S::CONFLICT, "already")["answer"]["ref"], "ann-1");
    api.post("/occurrences/nope/checkout", json!({"actor": "ann"})).await.problem(S::NOT_FOUND, "not_found");

    // The waiting list: cat joins (201), reads, leaves, joins again.
    let joined = api.post("/occurrences/gig/waitlist", json!({"actor": "cat", "seats": 1})).await;
    assert_eq!(joined.ok(S::OK)["position"], 1);
    assert_eq!(api.get("/occurrences/gig/waitlist").await.ok(S::OK)["entries"][0]["actor"], "cat");
    assert_eq!(api.post("/occurrences/gig/waitlist/leave", json!({"actor": "cat"})).await.ok(S::OK)["left"], true);
    api.post("/occurrences/gig/waitlist", json!({"actor": "cat", "seats": 1})).await.ok(S::OK);
    api.post("/occurrences/gig/waitlist", json!({"actor": "cat", "seats": 0}))
        .await
        .problem(S::BAD_REQUEST, "bad_request");

    // A booking reads with RFC 3339 instants and readable states.
    let b = api.get("/occurrences/gig/bookings/ann-1").await;
    let b = b.ok(S::OK);
    assert_eq!((&b["state"], &b["amount"], &b["currency"]), (&json!("live"), &json!("50.00"), &json!("EUR")));
    assert_eq!(b["placed_at"], "2026-12-07T19:00:00Z");
    api.get("/occurrences/gig/bookings/none").await.problem(S::NOT_FOUND, "no_booking");
    assert_eq!(api.get("/occurrences/gig/actors/ann/bookings").await.ok(S::OK)["bookings"][0]["ref"], "ann-1");

    // Extend, then abandon bob's checkout: its seats go to cat's offer.
    let ext = api.post_keyed("/occurrences/gig/bookings/bob-1/extend", "bob-ext", json!({"seconds": 60})).await;
    assert_eq!(ext.ok(S::OK)["request"]["ref"], "bob-1");
    let gone = api.post("/occurrences/gig/bookings/bob-1/abandon", json!({"actor": "bob"})).await;
    assert_eq!(gone.ok(S::OK)["status"], "released");
    assert_eq!(api.get("/occurrences/gig/waitlist").await.ok(S::OK)["offers"][0]["actor"], "cat");

    // Paid by the signed webhook (200), a forged one refused (401 problem).
    assert_eq!(api.pay("gig", "ann", "ann-1", "50.00").await.ok(S::OK)["status"], "confirmed");
    // A keyed checkout retried after its hold was paid answers the first answer again.
    let late_retry = api.post_keyed("/occurrences/gig/checkout", "ann-1", json!({"actor": "ann", "quantity": 2})).await;
    let late_retry = late_retry.ok(S::OK);
    assert_eq!(
        (&late_retry["status"], &late_retry["request"]["ref"], &late_retry["replayed"]),
        (&json!("awaiting_payment"), &json!("ann-1"), &json!(true))
    );
    let late_other = api.post_keyed("/occurrences/gig/checkout", "ann-1", json!({"actor": "ann", "quantity": 1})).await;
    late_other.problem(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let forged = api.post_raw("/webhooks/payment", "{}").await;
    forged.problem(S::UNAUTHORIZED, "unauthorized");
    // A payment for a ref that holds nothing: accounted, so 200 (a provider retries anything else).
    assert_eq!(api.pay("gig", "eve", "eve-1", "25.00").await.ok(S::OK)["status"], "paid_but_no_hold");

    // Tickets and the door.
    let t = api.get("/occurrences/gig/bookings/ann-1/tickets").await;
    let tickets = t.ok(S::OK)["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 2);
    let scan = json!({"credential": tickets[0]["credential"]});
    let admitted = api.post_keyed("/occurrences/gig/check-in", "door-1", scan.clone()).await;
    assert_eq!(admitted.ok(S::OK)["status"], "admitted");
    assert_eq!(api.post_keyed("/occurrences/gig/check-in", "door-1", scan.clone()).await.ok(S::OK)["replayed"], true);
    api.post("/occurrences/gig/check-in", scan.clone()).await.problem(S::CONFLICT, "already_checked_in");
    api.post("/occurrences/gig/check-in", json!({"credential": "Zm9v.YmFy"}))
        .await
        .problem(S::UNPROCESSABLE_ENTITY, "invalid");
    let second = api
        .post_keyed(
            "/occurrences",
            "create-tue",
            json!({"occ_key": "tue", "capacity": 1, "hold_ttl_secs": 60, "seat_price": price}),
        )
        .await;
    second.ok(S::CREATED);
    let wrong = api.post("/occurrences/tue/check-in", json!({"credential": tickets[1]["credential"]})).await;
    assert_eq!(wrong.problem(S::CONFLICT, "wrong_occurrence")["answer"]["occ_key"], "gig");

    // Cancellation: the checked-in ticket refuses the whole (409), the other one alone goes.
    api.post("/occurrences/gig/bookings/ann-1/cancel", json!({})).await.problem(S::CONFLICT, "checked_in");
    let part = api
        .post_keyed(
            "/occurrences/gig/bookings/ann-1/cancel",
            "cancel-t1",
            json!({"tickets": [1], "refund": {"amount": "20.00", "currency": "EUR"}}),
        )
        .await;
    let part = part.ok(S::OK);
    assert_eq!((&part["status"], &part["seats"], &part["amount"]), (&json!("cancelled"), &json!(1), &json!("20.00")));
    let replay = api
        .post_keyed(
            "/occurrences/gig/bookings/ann-1/cancel",
            "cancel-t1",
            json!({"tickets": [1], "refund": {"amount": "20.00", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(replay.ok(S::OK)["replayed"], true);
    let reuse = api.post_keyed("/occurrences/gig/bookings/ann-1/cancel", "cancel-t1", json!({"tickets": [0]})).await;
    reuse.problem(S::UNPROCESSABLE_ENTITY, "unprocessable");
    api.post("/occurrences/gig/bookings/ann-1/cancel", json!({"tickets": "all"}))
        .await
        .problem(S::BAD_REQUEST, "bad_body");

    // Blocks and prices.
    let blocked = api.post("/occurrences/gig/blocks", json!({"block": "desk", "seats": 1})).await;
    assert_eq!(blocked.ok(S::OK)["status"], "blocked");
    api.post("/occurrences/gig/blocks", json!({"block": "desk2"})).await.problem(S::BAD_REQUEST, "bad_body");
    assert_eq!(api.post("/occurrences/gig/blocks/desk/unblock", json!({})).await.ok(S::OK)["status"], "unblocked");
    api.post("/occurrences/gig/blocks/nope/unblock", json!({})).await.problem(S::NOT_FOUND, "not_found");
    // Prices and seats: a tiered, seated occurrence. A price changes while nobody pays for
    // the tier, and is locked (409) while a live hold has its seats.
    let hall = json!({"occ_key": "hall", "capacity": 4, "hold_ttl_secs": 600,
        "tiers": [{"tier": "stalls", "price": {"amount": "30.00", "currency": "EUR"}, "lock_price_while_held": true}],
        "seating": {"sections": [{"section": "A", "tier": "stalls", "rows": [{"row": "1", "seats": 4}]}], "no_single_gaps": true}});
    api.post("/occurrences", hall).await.ok(S::CREATED);
    let price = |amount: &str| json!({"tier": "stalls", "amount": amount, "currency": "EUR"});
    assert_eq!(api.post_keyed("/occurrences/hall/prices", "p1", price("35.00")).await.ok(S::OK)["ok"], true);
    assert_eq!(api.post_keyed("/occurrences/hall/prices", "p1", price("35.00")).await.ok(S::OK)["replayed"], true);
    api.post("/occurrences/hall/prices", json!({"tier": "balcony", "amount": "1.00", "currency": "EUR"}))
        .await
        .problem(S::UNPROCESSABLE_ENTITY, "unprocessable");
    let best = api
        .post(
            "/occurrences/hall/checkout",
            json!({"actor": "fay", "ref": "fay-1", "best": {"tier": "stalls", "quantity": 2}}),
        )
        .await;
    assert_eq!(best.ok(S::CREATED)["seat_ids"], json!(["A-1-1", "A-1-2"]), "the pair that strands no single seat");
    let taken =
        api.post("/occurrences/hall/checkout", json!({"actor": "gus", "ref": "gus-1", "seat_ids": ["A-1-2"]})).await;
    assert_eq!(taken.problem(S::CONFLICT, "seat_taken")["answer"]["seat"], "A-1-2");
    let unknown =
        api.post("/occurrences/hall/checkout", json!({"actor": "gus", "ref": "gus-2", "seat_ids": ["A-1-9"]})).await;
    assert!(unknown.problem(S::BAD_REQUEST, "bad_request")["detail"].as_str().unwrap().contains("A-1-9"));
    let gap =
        api.post("/occurrences/hall/checkout", json!({"actor": "gus", "ref": "gus-3", "seat_ids": ["A-1-4"]})).await;
    assert_eq!(gap.problem(S::CONFLICT, "single_gap")["answer"]["seat"], "A-1-3");
    api.post("/occurrences/hall/prices", price("40.00")).await.problem(S::CONFLICT, "conflict");
    assert_eq!(
        api.get("/occurrences/hall/seat-map").await.ok(S::OK)["sections"][0]["rows"][0],
        json!({"row": "1", "seats": "HH.."})
    );
    let desk = api.post("/occurrences/hall/blocks", json!({"block": "desk", "seat_ids": ["A-1-4"]})).await;
    assert_eq!(desk.ok(S::OK)["status"], "blocked");
    let clash = api.post("/occurrences/hall/blocks", json!({"block": "desk2", "seat_ids": ["A-1-1"]})).await;
    clash.problem(S::CONFLICT, "seat_taken");

    // The ledger: ann's payment and partial refund, eve's payment and its refund.
    let ledger = api.get("/occurrences/gig/ledger").await;
    assert_eq!(ledger.ok(S::OK)["entries"].as_array().map(Vec::len), Some(4), "{:?}", ledger.body);

    // Baskets: one hold per part, all or none; a keyed retry replays; a part that cannot
    // be placed releases the others (409, named by its answer).
    for (occ, cap) in [("sat", 2), ("sun", 1)] {
        let body = json!({"occ_key": occ, "capacity": cap, "hold_ttl_secs": 600, "seat_price": {"amount": "10.00", "currency": "EUR"}});
        api.post("/occurrences", body).await.ok(S::CREATED);
    }
    let trip =
        json!({"parts": [{"occ_key": "sat", "actor": "hal", "quantity": 2}, {"occ_key": "sun", "actor": "hal"}]});
    let placed = api.post_keyed("/baskets", "trip-1", trip.clone()).await;
    let placed = placed.ok(S::CREATED);
    assert_eq!((&placed["status"], &placed["parts"][1]["request"]["ref"]), (&json!("placed"), &json!("trip-1-1")));
    assert_eq!(api.post_keyed("/baskets", "trip-1", trip).await.ok(S::OK)["replayed"], true);
    let late =
        json!({"parts": [{"occ_key": "sun", "actor": "ivy", "ref": "ivy-sun"}, {"occ_key": "sat", "actor": "ivy"}]});
    let refused = api.post("/baskets", late).await;
    assert_eq!(refused.problem(S::CONFLICT, "full")["answer"]["part"], 0);
    let odd =
        json!({"parts": [{"occ_key": "sat", "actor": "jo"}, {"occ_key": "sun", "actor": "jo", "quantity": "two"}]});
    assert_eq!(api.post("/baskets", odd).await.problem(S::BAD_REQUEST, "bad_body")["field"], "parts[1].quantity");
    api.post("/baskets", json!({"parts": []})).await.problem(S::BAD_REQUEST, "bad_body");

    // The OpenAPI description: every path and method it names is a route of the router
    // (none answers the router's own 404 or 405), and it is frozen by a snapshot.
    let doc = api.get("/openapi.json").await;
    let doc = doc.ok(S::OK).clone();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete =
            path.replace("{occ}", "gig").replace("{ref}", "ann-1").replace("{actor}", "ann").replace("{block}", "desk");
        for method in item.as_object().expect("path item").keys() {
            let url = format!("{}{concrete}", api.base);
            let req = match method.as_str() {
                "get" => api.http.get(url),
                "post" => api.http.post(url).json(&json!({})),
                "put" => api.http.put(url).json(&json!({})),
                other => panic!("{other} {path}: a method the router has no route for"),
            };
            let got = api.send(req).await;
            let unrouted = got.body["type"] == "urn:seathold:problem:method_not_allowed"
                || (got.body["type"] == "urn:seathold:problem:not_found"
                    && got.body["detail"] == "no route has this path");
            let routed = !unrouted;
            assert!(routed, "{method} {path} is described but not routed: {got:?}");
            operations += 1;
        }
    }
    assert_eq!(operations, 24, "every route but `/openapi.json` itself is described once");
    insta::assert_json_snapshot!("openapi", doc);

    // Time passes: cat's offer (300 s) lapses; the list shows it nowhere.
    assert_eq!(api.get("/occurrences/gig/waitlist").await.ok(S::OK)["offers"][0]["actor"], "cat");
    api.clock.advance(Duration::minutes(10));
    let wl = api.get("/occurrences/gig/waitlist").await;
    assert_eq!((&wl.ok(S::OK)["offers"], &wl.body["entries"]), (&json!([]), &json!([])), "{:?}", wl.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_on_memory() {
    every_route(Api::start(MemoryStore::new()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_on_postgres() {
    let Some(url) = postgres_support::pg_url("every_route_on_postgres") else { return };
    let schema = postgres_support::fresh_schema("http_api");
    let store = postgres_support::store_in(&url, &schema, 4).await;
    every_route(Api::start(store).await).await;
    let store = PostgresStore::connect(&url, PostgresOptions::new(schema)).await.unwrap();
    store.drop_schema().await.unwrap();
}
