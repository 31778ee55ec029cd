//! The ticket service example (`examples/ticket_service/`) as its users meet it: the built
//! binary, started on a loopback port, driven over HTTP with a real client — on the in-memory
//! store, and on PostgreSQL (`--pg`, a fresh schema) when `SEATHOLD_PG_URL` is set.
//!
//! Its outbox is relayed, signed, to a small receiver in this test, so "nothing changed" is
//! checked against the events too, not only against availability and the booking.
//!
//! `cargo test --all-features` builds the binary first (examples are built for tests).

use crate::postgres_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use reqwest::{Client, StatusCode};
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::webhooks::{Headers, Signer, Verifier, WebhookSecret};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn secret(seed: &str) -> WebhookSecret {
    WebhookSecret::from_bytes(format!("{seed:-<32}")).unwrap()
}

/// The built example, beside this test binary: target/<profile>/examples/ticket_service.
fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(format!("ticket_service{}", std::env::consts::EXE_SUFFIX)))
        .expect("target/<profile>/examples");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test --all-features` builds it \
         (alone: `cargo build --features http,postgres --example ticket_service`)",
        bin.display()
    );
    // `cargo test --test suite -- ticket_service::` alone does not rebuild examples: refuse a stale one.
    let built = bin.metadata().and_then(|m| m.modified()).unwrap();
    for src in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ticket_service")).unwrap() {
        let changed = src.unwrap().metadata().and_then(|m| m.modified()).unwrap();
        assert!(
            changed <= built,
            "{} is stale: `cargo build --features http,postgres --example ticket_service`",
            bin.display()
        );
    }
    bin
}

/// One running service process. Dropping it kills the process.
struct Service {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    base: String,
    http: Client,
}

impl Service {
    fn start(pg: Option<(&str, &str)>, secrets: &[&WebhookSecret], relay_url: &str, relay: &WebhookSecret) -> Self {
        let mut cmd = Command::new(binary());
        if let Some((url, schema)) = pg {
            cmd.args(["--pg", url, "--schema", schema]);
        }
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_whsec()).collect();
        let mut child = cmd
            .env("SEATHOLD_WEBHOOK_SECRETS", secrets.join(", "))
            .env("SEATHOLD_TICKET_KEY", "a ticket key of thirty-two bytes or more")
            .env("SEATHOLD_RELAY_URL", relay_url)
            .env("SEATHOLD_RELAY_SECRET", relay.to_whsec())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the service");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the service's address");
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!("the service did not start: {line:?} (exit {:?})", child.wait());
        };
        Self { child, _stdout: stdout, base: addr.to_owned(), http: Client::new() }
    }

    /// SIGTERM, as a process manager stops it: it must finish and exit cleanly.
    fn stop(&mut self) {
        let term = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the service exits cleanly on SIGTERM: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the service did not stop within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("the service answers");
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        assert!(!status.is_server_error(), "never 5xx: {status} {}", String::from_utf8_lossy(&body));
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::answer(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::answer(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, String)]) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        Self::answer(req).await
    }

    async fn webhook(&self, delivery: &(Vec<u8>, Vec<(&'static str, String)>)) -> (StatusCode, Value) {
        self.post_raw("/webhooks/payment", &delivery.0, &delivery.1).await
    }

    /// What must not change when a request is refused.
    async fn state(&self, occ: &str, hold_ref: &str) -> Value {
        let (_, avail) = self.get(&format!("/occurrences/{occ}/availability")).await;
        let (_, booking) = self.get(&format!("/occurrences/{occ}/bookings/{hold_ref}")).await;
        json!({ "availability": avail, "booking": booking })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed delivery of `body` with Standard Webhooks headers.
fn signed(
    secret: &WebhookSecret,
    id: &str,
    at: OffsetDateTime,
    body: Vec<u8>,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let h = Signer::new(secret.clone()).sign(id, at, &body);
    (body, vec![("webhook-id", h.id), ("webhook-timestamp", h.timestamp), ("webhook-signature", h.signature)])
}

fn paid(occ: &str, actor: &str, hold_ref: &str, amount: &str, currency: &str) -> Vec<u8> {
    json!({"kind": "events.payment", "occ_key": occ, "actor": actor, "ref": hold_ref, "status": "paid",
           "amount": amount, "currency": currency, "provider_ref": format!("pay_{hold_ref}")})
    .to_string()
    .into_bytes()
}

/// The consumer of the relayed outbox: verifies each delivery and keeps it by event id.
#[derive(Clone)]
struct Sink {
    events: Arc<Mutex<BTreeMap<u64, Value>>>,
    forged: Arc<Mutex<usize>>,
    verifier: Arc<Verifier>,
}

impl Sink {
    async fn start(secret: &WebhookSecret) -> (Self, String) {
        let sink = Self {
            events: Arc::default(),
            forged: Arc::default(),
            verifier: Arc::new(Verifier::new([secret.clone()]).unwrap()),
        };
        let app = axum::Router::new().route("/events", axum::routing::post(Self::receive)).with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, url)
    }

    async fn receive(State(sink): State<Self>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let h = Headers::from_lookup(|n| headers.get(n).and_then(|v| v.to_str().ok()));
        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
        let id_ok = h.id == Some(format!("evt_{}", event["id"]).as_str()); // the event id names the delivery
        if sink.verifier.verify(&h, &body, OffsetDateTime::now_utc()).is_err() || !id_ok {
            *sink.forged.lock().unwrap() += 1;
            return StatusCode::UNAUTHORIZED;
        }
        sink.events.lock().unwrap().insert(event["id"].as_u64().unwrap(), event);
        StatusCode::NO_CONTENT
    }

    fn count(&self, kind: &str, occ: &str) -> usize {
        self.events.lock().unwrap().values().filter(|e| e["type"] == kind && e["occ_key"] == occ).count()
    }

    fn find(&self, kind: &str, occ: &str) -> Vec<Value> {
        self.events.lock().unwrap().values().filter(|e| e["type"] == kind && e["occ_key"] == occ).cloned().collect()
    }

    /// Wait until `n` events of `kind` at `occ` have arrived (the relay polls every 100 ms).
    async fn wait_for(&self, kind: &str, occ: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.count(kind, occ) < n {
            assert!(Instant::now() < deadline, "{n} {kind} at {occ}: only {} arrived", self.count(kind, occ));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(self.count(kind, occ), n, "exactly {n} {kind} at {occ}");
    }

    /// Every event relayed so far, once the relay has had time to pass on anything pending.
    async fn settled(&self) -> BTreeMap<u64, Value> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(*self.forged.lock().unwrap(), 0, "every relayed event was signed");
        self.events.lock().unwrap().clone()
    }
}

async fn scenario(pg: Option<(&str, &str)>) {
    let started = Instant::now();
    let (old, new, relay) = (secret("old"), secret("new"), secret("relay"));
    let (sink, relay_url) = Sink::start(&relay).await;
    let mut svc = Service::start(pg, &[&old, &new], &relay_url, &relay);
    assert_eq!(svc.get("/health").await, (StatusCode::OK, json!({"status": "ok"})));

    // Occurrences: create-only, readable, and priced by the seller (tiers or a seat price).
    let price = |amount: &str, currency: &str| json!({"amount": amount, "currency": currency});
    let gig = json!({"occ_key": "gig", "capacity": 10, "hold_ttl_secs": 600, "issue_tickets": true,
                     "seat_price": price("25.00", "EUR")});
    assert_eq!(svc.post("/occurrences", gig.clone()).await.0, StatusCode::CREATED);
    assert_eq!(svc.post("/occurrences", gig).await.1["type"], "urn:seathold:problem:conflict");
    let unpriced = json!({"occ_key": "free-for-all", "capacity": 5, "hold_ttl_secs": 600});
    assert_eq!(svc.post("/occurrences", unpriced).await.0, StatusCode::UNPROCESSABLE_ENTITY, "no seller's price");
    for (occ, ttl, p) in [("late", 1, price("40.00", "USD")), ("calm", 600, price("10.00", "EUR"))] {
        let body = json!({"occ_key": occ, "capacity": 5, "hold_ttl_secs": ttl, "seat_price": p});
        assert_eq!(svc.post("/occurrences", body).await.0, StatusCode::CREATED);
    }
    // The buyer never sets the price: a buyer-chosen amount is `price_changed`, no seat.
    let (_, before) = svc.get("/occurrences/calm/availability").await;
    for cheap in [
        json!({"actor": "chiseler", "amount": "0.01", "currency": "EUR"}),
        json!({"actor": "chiseler", "amount": "10.00", "currency": "USD"}),
    ] {
        let (s, v) = svc.post("/occurrences/calm/checkout", cheap).await;
        let answer = &v["answer"];
        assert_eq!(
            (s, &answer["status"], &answer["amount"]),
            (StatusCode::CONFLICT, &json!("price_changed"), &json!("10.00")),
            "{v}"
        );
    }
    assert_eq!(svc.get("/occurrences/calm/availability").await.1, before, "a price_changed answer holds nothing");
    let (s, occ) = svc.get("/occurrences/gig").await;
    assert_eq!((s, &occ["config"]["capacity"]), (StatusCode::OK, &json!(10)));
    assert_eq!(svc.get("/occurrences/nope").await.0, StatusCode::NOT_FOUND);

    // 200 buyers at once for 10 seats: exactly 10 holds, 190 `full`, no 5xx.
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (http, url) = (svc.http.clone(), format!("{}/occurrences/gig/checkout", svc.base));
        let body = json!({"actor": format!("fan-{i}"), "amount": "25.00", "currency": "EUR"});
        buyers.spawn(async move { Service::answer(http.post(url).json(&body)).await });
    }
    let (mut placed, mut full) = (Vec::new(), 0);
    while let Some(answer) = buyers.join_next().await {
        match answer.unwrap() {
            (StatusCode::CREATED, v) if v["status"] == "awaiting_payment" => {
                assert_eq!((&v["request"]["amount"], &v["request"]["currency"]), (&json!("25.00"), &json!("EUR")));
                let r = &v["request"];
                placed.push((r["actor"].as_str().unwrap().to_owned(), r["ref"].as_str().unwrap().to_owned()));
            }
            (StatusCode::CONFLICT, v) if v["answer"]["status"] == "full" => full += 1,
            other => panic!("a checkout answers a hold or `full`, not {other:?}"),
        }
    }
    assert_eq!((placed.len(), full), (10, 190), "exactly the capacity is held");
    let (_, a) = svc.get("/occurrences/gig/availability").await;
    assert_eq!((&a["held"], &a["available"]), (&json!(10), &json!(0)));
    sink.wait_for("hold_placed", "gig", 10).await;

    // Pay them with signed webhooks, half signed with the old secret (both are configured).
    let mut deliveries = Vec::new();
    for (i, (actor, r)) in placed.iter().enumerate() {
        let key = if i < 5 { &old } else { &new };
        let d = signed(key, &format!("msg_{i}"), OffsetDateTime::now_utc(), paid("gig", actor, r, "25.00", "EUR"));
        assert_eq!(svc.webhook(&d).await, (StatusCode::OK, json!({"status": "confirmed", "replayed": false})));
        deliveries.push(d);
    }
    sink.wait_for("hold_confirmed", "gig", 10).await;
    sink.wait_for("ticket_issued", "gig", 10).await;
    let events = sink.settled().await;
    // Redelivered: the same answer, marked a replay, and nothing new.
    for d in &deliveries {
        assert_eq!(svc.webhook(d).await, (StatusCode::OK, json!({"status": "confirmed", "replayed": true})));
    }
    let (_, a) = svc.get("/occurrences/gig/availability").await;
    assert_eq!((&a["confirmed"], &a["held"]), (&json!(10), &json!(0)));
    assert_eq!(sink.settled().await, events, "a redelivery emits nothing");

    // A payment for a hold that lapsed: a refund signal carrying the amount, once.
    let hold = json!({"actor": "slow", "ref": "slow-1", "amount": "40.00", "currency": "USD"});
    assert_eq!(svc.post("/occurrences/late/checkout", hold).await.0, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = signed(&new, "msg_late", OffsetDateTime::now_utc(), paid("late", "slow", "slow-1", "40.00", "USD"));
    for replayed in [false, true] {
        let (s, v) = svc.webhook(&late).await;
        assert_eq!((s, &v["status"], &v["replayed"]), (StatusCode::OK, &json!("paid_but_no_hold"), &json!(replayed)));
        let refund = &v["refund"];
        assert_eq!(
            (&refund["reason"], &refund["amount"], &refund["currency"]),
            (&json!("expired"), &json!("40.00"), &json!("USD"))
        );
        assert_eq!(refund["provider_ref"], "pay_slow-1");
    }
    sink.wait_for("refund_required", "late", 1).await;
    let refund = &sink.find("refund_required", "late")[0];
    assert_eq!((&refund["amount"], &refund["currency"]), (&json!("40.00"), &json!("USD")));

    // Bad input, bad signatures: refused with its status, and nothing changes.
    let hold = json!({"actor": "carol", "ref": "carol-1", "amount": "10.00", "currency": "EUR"});
    assert_eq!(svc.post("/occurrences/calm/checkout", hold).await.0, StatusCode::CREATED);
    sink.wait_for("hold_placed", "calm", 1).await;
    let (before, gig_before, events) =
        (svc.state("calm", "carol-1").await, svc.state("gig", "x").await, sink.settled().await);
    assert_eq!(before["booking"]["state"], "live");
    let now = OffsetDateTime::now_utc();
    let good = paid("calm", "carol", "carol-1", "10.00", "EUR");
    let sign = |key: &WebhookSecret, at: OffsetDateTime, body: &[u8]| signed(key, "msg_bad", at, body.to_vec());
    let wrong_kind = String::from_utf8(good.clone()).unwrap().replace("events.payment", "events.checkout");
    let huge = json!({"kind": "events.payment", "pad": "x".repeat(70 * 1024)}).to_string();
    let (_, valid) = sign(&new, now, &good);
    let unknown_status = String::from_utf8(good.clone()).unwrap().replace("\"paid\"", "\"won\"");
    let garbage = vec![valid[0].clone(), valid[1].clone(), ("webhook-signature", "v1,!!".to_owned())];
    let (bad, large, unauthorized) = (StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE, StatusCode::UNAUTHORIZED);
    let mut cases = vec![
        ("malformed JSON", sign(&new, now, b"{\"kind\":"), bad),
        ("wrong kind", sign(&new, now, wrong_kind.as_bytes()), bad),
        ("an unknown status", sign(&new, now, unknown_status.as_bytes()), bad),
        ("a signed body over 64 KiB", sign(&new, now, huge.as_bytes()), large),
        ("an unknown secret", sign(&secret("stranger"), now, &good), unauthorized),
        ("a signature of another body", (good.clone(), sign(&new, now, b"{}").1), unauthorized),
        ("an old timestamp", sign(&new, now - time::Duration::minutes(6), &good), unauthorized),
        ("a future timestamp", sign(&new, now + time::Duration::minutes(6), &good), unauthorized),
        ("no headers", (good.clone(), vec![]), unauthorized),
        ("a garbage signature", (good.clone(), garbage), unauthorized),
    ];
    for missing in 0..3 {
        let mut headers = valid.clone();
        headers.remove(missing);
        cases.push(("a missing header", (good.clone(), headers), unauthorized));
    }
    for (what, delivery, expect) in &cases {
        let (s, v) = svc.webhook(delivery).await;
        assert_eq!(s, *expect, "{what}: {v}");
        let name = if s == bad {
            "bad_request"
        } else if s == large {
            "payload_too_large"
        } else {
            "unauthorized"
        };
        assert_eq!(v["type"], format!("urn:seathold:problem:{name}"), "{what}: {v}");
    }
    let checkout = "/occurrences/calm/checkout";
    let json_type = [("content-type", "application/json".to_owned())];
    assert_eq!(svc.post_raw(checkout, b"{\"actor\":", &json_type).await.1["type"], "urn:seathold:problem:bad_body");
    assert_eq!(
        svc.post_raw(checkout, b"{\"actor\":\"dan\"}", &[]).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a body that is not labelled JSON"
    );
    assert_eq!(svc.post_raw(checkout, huge.as_bytes(), &[]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, v) = svc.post(checkout, json!({"actor": "dan", "amount": "10.001", "currency": "EUR"})).await;
    assert_eq!((s, &v["type"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("urn:seathold:problem:unprocessable")));
    assert_eq!(svc.state("calm", "carol-1").await, before, "a refused request changes nothing");
    assert_eq!(svc.state("gig", "x").await, gig_before);
    assert_eq!(sink.settled().await, events, "a refused request emits nothing");

    // Tickets, check-in, cancellation.
    let (first, second) = (&placed[0].1, &placed[1].1);
    let (s, t) = svc.get(&format!("/occurrences/gig/bookings/{first}/tickets")).await;
    assert_eq!((s, t["tickets"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let scan = json!({"credential": t["tickets"][0]["credential"]});
    // Another show's door: named, not admitted.
    let (s, v) = svc.post("/occurrences/calm/check-in", scan.clone()).await;
    let answer = &v["answer"];
    assert_eq!(
        (s, &answer["status"], &answer["occ_key"]),
        (StatusCode::CONFLICT, &json!("wrong_occurrence"), &json!("gig")),
        "{v}"
    );
    // A scanner retrying after a lost answer, under its Idempotency-Key: admitted again.
    let body = serde_json::to_vec(&scan).unwrap();
    let key = [("content-type", "application/json".to_owned()), ("idempotency-key", "door-1/scan-1".to_owned())];
    let (s, v) = svc.post_raw("/occurrences/gig/check-in", &body, &key).await;
    assert_eq!(
        (s, &v["status"], &v["replayed"], &v["index"]),
        (StatusCode::OK, &json!("admitted"), &json!(false), &json!(0))
    );
    let (_, v) = svc.post_raw("/occurrences/gig/check-in", &body, &key).await;
    assert_eq!((&v["status"], &v["replayed"]), (&json!("admitted"), &json!(true)), "the retry: {v}");
    assert_eq!(svc.post("/occurrences/gig/check-in", scan).await.1["answer"]["status"], "already_checked_in");
    let forged = json!({"credential": "Zm9yZ2Vk.Zm9yZ2Vk"});
    let (s, v) = svc.post("/occurrences/gig/check-in", forged).await;
    assert_eq!((s, &v["answer"]["status"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid")));
    let (s, v) = svc.post(&format!("/occurrences/gig/bookings/{first}/cancel"), json!({})).await;
    assert_eq!((s, &v["answer"]["status"]), (StatusCode::CONFLICT, &json!("checked_in")));
    let (_, t2) = svc.get(&format!("/occurrences/gig/bookings/{second}/tickets")).await;
    let cancel = format!("/occurrences/gig/bookings/{second}/cancel");
    let (s, v) = svc.post(&cancel, json!({})).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"status": "cancelled", "amount": "25.00", "currency": "EUR", "seats": 1,
                   "provider_ref": format!("pay_{second}"), "replayed": false})
        )
    );
    assert_eq!(svc.post(&cancel, json!({})).await.1["status"], "noop");
    let scan = json!({"credential": t2["tickets"][0]["credential"]});
    assert_eq!(svc.post("/occurrences/gig/check-in", scan).await.1["answer"]["status"], "cancelled");
    let (_, a) = svc.get("/occurrences/gig/availability").await;
    assert_eq!((&a["confirmed"], &a["available"]), (&json!(9), &json!(1)));
    assert_eq!(svc.get("/occurrences/gig/bookings/nope/tickets").await.0, StatusCode::NOT_FOUND);
    sink.wait_for("refund_required", "gig", 1).await;
    assert_eq!(sink.find("refund_required", "gig")[0]["reason"], "cancelled");

    // Key rotation: restarted with only the new secret, the old one is refused.
    svc.stop();
    let mut svc = Service::start(pg, &[&new], &relay_url, &relay);
    let before = svc.state("gig", first).await;
    let body = deliveries[0].0.clone();
    let (s, v) = svc.webhook(&signed(&old, "msg_rot", OffsetDateTime::now_utc(), body.clone())).await;
    assert_eq!(
        (s, &v["type"]),
        (StatusCode::UNAUTHORIZED, &json!("urn:seathold:problem:unauthorized")),
        "a retired secret: {v}"
    );
    assert_eq!(svc.state("gig", first).await, before, "nothing changed");
    let (s, v) = svc.webhook(&signed(&new, "msg_rot", OffsetDateTime::now_utc(), body)).await;
    assert_eq!(s, StatusCode::OK, "the current secret is accepted: {v}");
    if pg.is_some() {
        // The database kept everything: the payment is recognised as a redelivery.
        assert_eq!(v, json!({"status": "confirmed", "replayed": true}));
        assert_eq!(before["availability"]["confirmed"], 9);
    }
    svc.stop();
    eprintln!(
        "ticket service scenario ({}): {:?}",
        if pg.is_some() { "postgres" } else { "memory" },
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_service_on_memory() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_service_on_postgres() {
    let Some(url) = postgres_support::pg_url("ticket_service_on_postgres") else { return };
    let schema = postgres_support::fresh_schema("ticket_service");
    scenario(Some((&url, &schema))).await;
    let store = PostgresStore::connect(&url, PostgresOptions::new(schema)).await.unwrap();
    store.drop_schema().await.unwrap();
}
