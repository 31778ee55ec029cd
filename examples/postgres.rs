//! A service-shaped use of the PostgreSQL store: connect and migrate at start-up, open an
//! occurrence, take a checkout request, receive the payment provider's raw webhook body,
//! settle it, and drain the outbox to a publisher.
//!
//! ```text
//! scripts/with-postgres.sh cargo run --features postgres --example postgres
//! SEATHOLD_PG_URL=postgres://user@host/db cargo run --features postgres --example postgres
//! ```
//!
//! It works in a schema of its own (`seathold_example_…`) and drops it at the end.

use seathold::AsyncEngine;
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, OccKey, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::store::postgres::{PostgresOptions, PostgresStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("SEATHOLD_PG_URL") else {
        eprintln!(
            "set SEATHOLD_PG_URL (or run: scripts/with-postgres.sh cargo run --features postgres --example postgres)"
        );
        std::process::exit(2);
    };

    // Start-up: one pool per service instance; migrate() is idempotent and safe to run from
    // every instance at once.
    let schema = format!("seathold_example_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = PostgresStore::connect(&url, PostgresOptions::new(&schema).with_pool_size(4)).await?;
    store.migrate().await?;
    let engine = AsyncEngine::new(store.clone());

    let gig = OccKey::new("gig-2026-12-01")?;
    engine.open(&gig, OccurrenceConfig::new(100, 600)?).await?;

    // A user clicks "buy": hold a seat and send the checkout request to the payment side.
    let user = ActorId::new("user-42")?;
    let attempt = Ref::random();
    let req = HoldRequest::new(gig.clone(), user.clone(), attempt.clone(), Money::parse("25.00", "EUR")?);
    match engine.request(&req).await? {
        RequestOutcome::AwaitingPayment { checkout, .. } => println!("-> payments: {}", checkout.to_json()),
        RequestOutcome::Already { hold_ref, .. } => println!("resume checkout {hold_ref}"),
        RequestOutcome::Full { capacity, .. } => println!("sold out ({capacity} seats)"),
        other => println!("not placed: {other:?}"),
    }

    // Later, the provider's webhook arrives: settle its raw body. Answer 2xx once settled; on
    // an error, answer 5xx and let the provider redeliver (settling is idempotent).
    let body = format!(
        r#"{{"kind":"events.payment","occ_key":"{gig}","actor":"{user}","ref":"{attempt}","status":"paid",
            "amount":"25.00","currency":"EUR","provider_ref":"pi_3Nx"}}"#
    );
    match engine.settle_json(body.as_bytes()).await? {
        Settlement::Confirmed { replayed } => println!("<- payments: paid, seat confirmed (replay: {replayed})"),
        Settlement::PaidButNoHold { refund, replayed: false } => println!("refund {refund:?}"),
        other => println!("settled: {other:?}"),
    }
    // The provider redelivers: answered as a replay, nothing written twice.
    println!("redelivery: {:?}", engine.settle_json(body.as_bytes()).await?);

    // The outbox publisher: publish, then acknowledge (at-least-once; consumers deduplicate by
    // event id). Run it in a loop next to the sweep (`engine.expire_due`).
    loop {
        let events = engine.pending_events(100).await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            println!("publish {}", e.to_json());
        }
        let ids: Vec<_> = events.iter().map(|e| e.id).collect();
        engine.ack_events(&ids).await?;
    }
    let a = engine.availability(&gig).await?;
    println!("availability: {} of {} left, {} sold", a.available, a.capacity, a.confirmed);

    store.drop_schema().await?;
    Ok(())
}
