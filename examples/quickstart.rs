//! The README's quickstart, runnable: `cargo run --example quickstart`.
//!
//! Open an occurrence, hold a seat, hand the checkout request to the payment side, settle the
//! provider's webhook (twice, as providers do), and publish what happened from the outbox.

use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, OccKey, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::{Engine, MemoryStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(MemoryStore::new());
    let gig = OccKey::new("gig-2026-12-01")?;
    engine.open(&gig, OccurrenceConfig::new(2, 600)?)?; // 2 seats, holds last 10 minutes

    // Someone clicks "buy": hold a seat and send the checkout request to the payment side.
    let req = HoldRequest::new(gig.clone(), ActorId::new("user-42")?, Ref::random(), Money::parse("25.00", "EUR")?);
    let checkout = match engine.request(&req)? {
        RequestOutcome::AwaitingPayment { checkout, .. } => checkout,
        RequestOutcome::Already { hold_ref, .. } => return Err(format!("resume checkout {hold_ref}").into()),
        RequestOutcome::Full { capacity, .. } => return Err(format!("sold out ({capacity} seats)").into()),
        other => return Err(format!("unexpected answer {other:?}").into()),
    };
    println!("checkout -> payments: {}", checkout.to_json());

    // The provider's webhook arrives as a raw body, and is delivered twice.
    let body = serde_json::json!({
        "kind": "events.payment", "occ_key": gig.as_str(), "actor": "user-42",
        "ref": checkout.hold_ref.as_str(), "status": "paid",
        "amount": "25.00", "currency": "EUR", "provider_ref": "pi_3Nx7",
    })
    .to_string();
    for delivery in 1..=2 {
        match engine.settle_json(body.as_bytes())? {
            Settlement::Confirmed { replayed } => println!("webhook #{delivery}: confirmed (replayed: {replayed})"),
            Settlement::PaidButNoHold { refund, replayed } if !replayed => println!("refund: {refund:?}"),
            other => println!("webhook #{delivery}: {}", other.status_str()),
        }
    }
    // A malformed body is refused with a typed error, and changes nothing.
    if let Err(e) = engine.settle_json(br#"{"kind":"events.payment","status":"paid"}"#) {
        println!("bad webhook refused: {e}");
    }

    let a = engine.availability(&gig)?;
    println!("availability: {} sold, {} held, {} of {} left", a.confirmed, a.held, a.available, a.capacity);
    // Publish what happened, then acknowledge it (here both at once).
    for event in engine.drain_events(100)? {
        println!("outbox: {}", event.to_json());
    }
    Ok(())
}
