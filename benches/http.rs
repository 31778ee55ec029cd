//! The HTTP router under load, over loopback, against a bare axum JSON handler as the ceiling:
//! one bounded load generator (32 clients, each sending its next request when the last one
//! answered) drives, in turn,
//!
//! - `checkout`: `POST /occurrences/gig/checkout` on the router over `MemoryStore` (a fresh
//!   actor and `Idempotency-Key` each time, so every request places a hold);
//! - `checkout + paid`: the same, then the signed `paid` webhook for it (a cycle is both);
//! - `bare`: `POST /json` on an axum handler that parses a JSON body of the same size and
//!   answers a small JSON object — what any axum service pays before it does any work.
//!
//! ```text
//! cargo bench --features http --bench http                           # 5 s per measurement
//! SEATHOLD_BENCH_QUICK=1 cargo bench --features http --bench http    # 1 s (CI smoke run)
//! ```
//!
//! Client and server share the machine (and its 2 cores here), as they would on one host;
//! the ratio to `bare` is what to read. Every request must answer its expected status, or the
//! bench exits non-zero; the figures themselves are advisory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use seathold::http::{HttpOptions, router};
use seathold::webhooks::{Signer, Verifier, WebhookSecret};
use seathold::{AsyncEngine, MemoryStore};
use serde_json::{Value, json};

const CLIENTS: usize = 32;

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Run `CLIENTS` clients for `secs`, each calling `one(client_index, n)` back to back;
/// latencies are of whole calls.
async fn load<F, Fut>(secs: f64, one: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for c in 0..CLIENTS {
        let (one, done) = (one.clone(), done.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                one(c, n).await;
                lat.push(t.elapsed());
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(lat) = tasks.join_next().await {
        all.extend(lat.expect("a client task"));
    }
    let elapsed = began.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Figures { per_sec: done.load(Ordering::Relaxed) as f64 / elapsed, p50: at(0.5), p99: at(0.99) }
}

async fn expect(req: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let resp = req.send().await.expect("the server answers");
    let got = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if got != status {
        eprintln!("FAIL: expected {status}, got {got}: {body}");
        std::process::exit(1);
    }
    body
}

fn print(what: &str, f: &Figures) {
    println!(
        "{what:<24} {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

fn main() {
    let quick = std::env::var_os("SEATHOLD_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let secs = if quick { 1.0 } else { 5.0 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        // The router on MemoryStore, one occurrence with room for every hold of the run.
        let secret = WebhookSecret::from_bytes(vec![5u8; 32]).expect("secret");
        let engine = Arc::new(AsyncEngine::new(MemoryStore::new()));
        let app = router(engine, HttpOptions::new(Verifier::new(vec![secret.clone()]).expect("verifier")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        // The ceiling: a bare axum JSON handler.
        let bare = axum::Router::new().route(
            "/json",
            axum::routing::post(|axum::Json(v): axum::Json<Value>| async move {
                axum::Json(json!({ "status": "ok", "actor": v["actor"] }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let bare_base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, bare).await });

        let http = Client::builder().pool_max_idle_per_host(CLIENTS).build().expect("client");
        let gig = json!({"occ_key": "gig", "capacity": 4_000_000, "hold_ttl_secs": 600,
                         "seat_price": {"amount": "25.00", "currency": "EUR"}});
        expect(http.post(format!("{base}/occurrences")).json(&gig), StatusCode::CREATED).await;

        let round = Arc::new(AtomicU64::new(0));
        let checkout = {
            let (http, base, round) = (http.clone(), base.clone(), round.clone());
            move |c: usize, n: u64| {
                let (http, base) = (http.clone(), base.clone());
                let r = round.load(Ordering::Relaxed);
                async move {
                    let key = format!("k{r}-{c}-{n}");
                    let body = json!({ "actor": format!("a{r}-{c}-{n}") });
                    let req = http
                        .post(format!("{base}/occurrences/gig/checkout"))
                        .header("idempotency-key", key)
                        .json(&body);
                    expect(req, StatusCode::CREATED).await;
                }
            }
        };
        let cycle = {
            let (http, base, round, secret) = (http.clone(), base.clone(), round.clone(), secret.clone());
            move |c: usize, n: u64| {
                let (http, base, secret) = (http.clone(), base.clone(), secret.clone());
                let r = round.load(Ordering::Relaxed);
                async move {
                    let (actor, key) = (format!("p{r}-{c}-{n}"), format!("pk{r}-{c}-{n}"));
                    let req = http
                        .post(format!("{base}/occurrences/gig/checkout"))
                        .header("idempotency-key", &key)
                        .json(&json!({ "actor": actor }));
                    expect(req, StatusCode::CREATED).await;
                    let paid = json!({"kind": "events.payment", "occ_key": "gig", "actor": actor, "ref": key,
                                      "status": "paid", "amount": "25.00", "currency": "EUR"})
                    .to_string();
                    let h = Signer::new(secret).sign(
                        &format!("msg_{key}"),
                        time::OffsetDateTime::now_utc(),
                        paid.as_bytes(),
                    );
                    let req = http
                        .post(format!("{base}/webhooks/payment"))
                        .header("webhook-id", h.id)
                        .header("webhook-timestamp", h.timestamp)
                        .header("webhook-signature", h.signature)
                        .body(paid);
                    let v = expect(req, StatusCode::OK).await;
                    if v["status"] != "confirmed" {
                        eprintln!("FAIL: a paid hold answered {v}");
                        std::process::exit(1);
                    }
                }
            }
        };
        let bare_call = {
            let (http, bare_base) = (http.clone(), bare_base.clone());
            move |c: usize, n: u64| {
                let (http, bare_base) = (http.clone(), bare_base.clone());
                async move {
                    let body = json!({ "actor": format!("b-{c}-{n}") });
                    expect(http.post(format!("{bare_base}/json")).json(&body), StatusCode::OK).await;
                }
            }
        };

        println!("HTTP over loopback, {CLIENTS} clients, {secs} s per measurement, 3 rounds interleaved (medians)");
        let (mut co, mut cy, mut ba) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..3 {
            round.store(r, Ordering::Relaxed);
            ba.push(load(secs, bare_call.clone()).await);
            co.push(load(secs, checkout.clone()).await);
            cy.push(load(secs, cycle.clone()).await);
        }
        let median = |v: &mut Vec<Figures>| {
            v.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
            v.remove(1)
        };
        let (co, cy, ba) = (median(&mut co), median(&mut cy), median(&mut ba));
        print("bare axum JSON handler", &ba);
        print("checkout", &co);
        print("checkout + signed paid", &cy);
        println!("checkout / bare: {:.2}x the ceiling's throughput", co.per_sec / ba.per_sec);
        println!("checkout + paid cycles / bare requests: {:.2}x", cy.per_sec / ba.per_sec);
    });
}
