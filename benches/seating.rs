//! Assigned seating at stadium scale on `MemoryStore` (issue "Assigned seating"): what a seat
//! costs to remember, and what best available costs at 90% sold, against a plain hold cycle.
//!
//! ```text
//! cargo bench --bench seating                          # 80,000 seats (40 x 50 rows x 40)
//! SEATHOLD_BENCH_QUICK=1 cargo bench --bench seating   # 8,000 seats, a smoke run
//! ```
//!
//! Bytes are counted by a wrapping global allocator (bytes allocated minus freed), as in
//! `benches/memory.rs`.
//!
//! 1. **The map at rest**: live bytes grown by opening the seated occurrence, per seat.
//! 2. **What seating adds per seat**: sell 90% of the map in paid holds of 4 named seats
//!    (rows filled from the front), acknowledge every event, and take the live bytes grown;
//!    do the same with as many plain holds of 4 on an unseated occurrence of the same size;
//!    the difference over the map's seats is what the rows and the bookings' seat ids cost.
//!    Target: at most 16 bytes a seat. The rows alone are measured as a copy of every row
//!    record read out of the store.
//! 3. **Best available at 90% sold vs a plain cycle**: a cycle is a request for 4 seats and
//!    its `failed` (so every cycle meets the map exactly 90% sold); best available on the map sold from the front (the free rows are the last
//!    10%: every full row before them is read), and on a map sold 90% in every row (each row
//!    has 4 free seats at its end); the plain cycle on the unseated occurrence at 90%.
//!    Medians of interleaved rounds. Target: at most 5x.
//!
//! A missed target prints FAIL and exits 0 (as the other benches); inconsistent counts exit
//! non-zero.

use std::sync::Arc;
use std::time::Instant;

use seathold::catalogue::{OccurrenceConfig, Tier};
use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref, RowName, SectionName, TierName};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::seating::{RowSpec, SeatChoice, SeatId, SeatMap, Section};
use seathold::settlement::Settlement;
use seathold::{Engine, ManualClock, MemoryStore};
use time::macros::datetime;

#[path = "support/live_bytes.rs"]
mod live_bytes;
use live_bytes::live;

type Eng = Engine<MemoryStore, Arc<ManualClock>>;

const ROW_SEATS: u16 = 40;
const ROWS_PER_SECTION: usize = 50;

fn fail(msg: &str) -> ! {
    eprintln!("seating bench: {msg}");
    std::process::exit(1);
}

fn tier() -> TierName {
    TierName::new("a").expect("tier")
}

fn price() -> Money {
    Money::parse("10.00", "EUR").expect("price")
}

fn map(sections: usize) -> SeatMap {
    SeatMap {
        sections: (0..sections)
            .map(|s| Section {
                section: SectionName::new(format!("S{s}")).expect("section"),
                tier: tier(),
                rows: (0..ROWS_PER_SECTION)
                    .map(|r| RowSpec { row: RowName::new(format!("{r}")).expect("row"), seats: ROW_SEATS })
                    .collect(),
            })
            .collect(),
        no_single_gaps: false,
    }
}

fn config(seats: u32, seated: Option<SeatMap>) -> OccurrenceConfig {
    let c = OccurrenceConfig::new(seats, 600)
        .expect("config")
        .with_tiers(vec![Tier::new(tier(), price()).with_capacity(seats)]);
    match seated {
        Some(m) => c.with_seating(m),
        None => c,
    }
}

fn drain(e: &Eng) {
    loop {
        let batch = e.pending_events(10_000).expect("pending");
        if batch.is_empty() {
            return;
        }
        let ids: Vec<_> = batch.iter().map(|ev| ev.id).collect();
        e.ack_events(&ids).expect("ack");
    }
}

/// Every row (in map order) as (section, row).
fn rows_of(m: &SeatMap) -> Vec<(SectionName, RowName)> {
    m.sections.iter().flat_map(|s| s.rows.iter().map(move |r| (s.section.clone(), r.row.clone()))).collect()
}

fn seat(s: &SectionName, r: &RowName, n: u16) -> SeatId {
    SeatId { section: s.clone(), row: r.clone(), n }
}

/// Request and pay: exits 1 on anything but a fresh hold and its confirmation.
fn cycle(e: &Eng, req: &HoldRequest) {
    hold(e, req);
    let paid = PaymentResult::paid(req.occ_key.clone(), req.actor.clone(), req.hold_ref.clone());
    match e.settle(&paid) {
        Ok(Settlement::Confirmed { replayed: false }) => {}
        other => fail(&format!("paying {}: {other:?}", req.hold_ref)),
    }
}

/// Request and fail (the seats come back: the map stays as sold): exits 1 on anything but a
/// fresh hold and its release.
fn released_cycle(e: &Eng, req: &HoldRequest) {
    hold(e, req);
    let failed = PaymentResult::failed(req.occ_key.clone(), req.actor.clone(), req.hold_ref.clone());
    match e.settle(&failed) {
        Ok(Settlement::Released) => {}
        other => fail(&format!("failing {}: {other:?}", req.hold_ref)),
    }
}

fn hold(e: &Eng, req: &HoldRequest) {
    match e.request(req) {
        Ok(RequestOutcome::AwaitingPayment { replayed: false, .. }) => {}
        other => fail(&format!("{req:?}: expected a hold, got {other:?}")),
    }
}

struct Ids {
    next: usize,
}

impl Ids {
    /// A fresh (actor, ref): the same length whatever the occurrence (`_tag` aside), so the
    /// seated and plain sales pay the same for their names and differ only by seating.
    fn next(&mut self, _tag: &str) -> (ActorId, Ref) {
        self.next += 1;
        let n = self.next;
        (ActorId::new(format!("u{n:07}")).expect("actor"), Ref::new(format!("r{n:07}")).expect("ref"))
    }
}

/// Sell `holds_per_row` holds of 4 named seats (from seat 1) in each of `rows`.
fn sell_rows(e: &Eng, key: &OccKey, rows: &[(SectionName, RowName)], holds_per_row: u16, ids: &mut Ids) {
    for (s, r) in rows {
        for h in 0..holds_per_row {
            let (actor, hold_ref) = ids.next(key.as_str());
            let seats = (1..=4).map(|i| seat(s, r, h * 4 + i)).collect();
            cycle(e, &HoldRequest::seated(key.clone(), actor, hold_ref, SeatChoice::Chosen(seats)));
        }
    }
}

fn plain(e: &Eng, key: &OccKey, n: usize, ids: &mut Ids) {
    for _ in 0..n {
        let (actor, hold_ref) = ids.next(key.as_str());
        cycle(
            e,
            &HoldRequest::lines(
                key.clone(),
                actor,
                hold_ref,
                vec![seathold::catalogue::Line { tier: tier(), quantity: 4 }],
            ),
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::var("SEATHOLD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let sections = if quick { 4 } else { 40 };
    let m = map(sections);
    let seats = u32::try_from(m.seat_count()).expect("seats");
    let rows = rows_of(&m);
    let full_rows = rows.len() * 9 / 10;
    let per_row = ROW_SEATS / 4;
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00:00 UTC)));
    let e: Eng = Engine::with_clock(MemoryStore::new(), clock);
    let mut ids = Ids { next: 0 };
    println!(
        "seating bench: {seats} seats ({sections} sections x {ROWS_PER_SECTION} rows x {ROW_SEATS}){}",
        if quick { " (quick)" } else { "" }
    );

    // 1. The map at rest.
    let front = OccKey::new("front").expect("key");
    let before = live();
    e.open(&front, config(seats, Some(m.clone()))).expect("open");
    let at_rest = (live() - before) as f64 / f64::from(seats);

    // 2. 90% sold from the front, against as many plain holds.
    let before = live();
    sell_rows(&e, &front, &rows[..full_rows], per_row, &mut ids);
    drain(&e);
    let seated_bytes = live() - before;
    let holds = full_rows * usize::from(per_row);
    let unseated = OccKey::new("unseated").expect("key");
    e.open(&unseated, config(seats, None)).expect("open");
    let before = live();
    plain(&e, &unseated, holds, &mut ids);
    drain(&e);
    let plain_bytes = live() - before;
    let added = (seated_bytes - plain_bytes) as f64 / f64::from(seats);
    // The rows alone: every row record read out of the store (a copy of what the store
    // keeps: each row boxed at its own size, its map entry aside), over the map's seats.
    let before = live();
    let keys = m.row_keys();
    let snap = seathold::store::Store::load(e.store(), &front, &keys).expect("rows");
    let loaded = snap.records.iter().filter(|r| r.is_some()).count();
    let slots =
        snap.records.capacity() * std::mem::size_of::<Option<seathold::store::Versioned<seathold::store::Record>>>();
    let boxes = loaded * std::mem::size_of::<seathold::seating::SeatRow>();
    let rows_bytes = (live() - before - slots as i64 + boxes as i64) as f64 / f64::from(seats);
    drop(snap);
    if loaded != full_rows {
        fail(&format!("{loaded} rows stored, {full_rows} sold"));
    }
    if seated_bytes <= 0 || plain_bytes <= 0 {
        fail(&format!("inconsistent counts: seated {seated_bytes}, plain {plain_bytes}"));
    }

    // 3. Best available at 90% sold: from the front, and spread (4 free seats in each row).
    let spread = OccKey::new("spread").expect("key");
    e.open(&spread, config(seats, Some(m.clone()))).expect("open");
    sell_rows(&e, &spread, &rows, per_row - 1, &mut ids);
    // Each cycle is released (`failed`), so every round meets the map 90% sold.
    let round = if quick { 20 } else { 100 };
    let rounds = 5;
    let best = |key: &OccKey, ids: &mut Ids| {
        let (actor, hold_ref) = ids.next(key.as_str());
        HoldRequest::seated(key.clone(), actor, hold_ref, SeatChoice::Best { tier: tier(), quantity: 4 })
    };
    let (mut t_front, mut t_spread, mut t_plain) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (key, out) in [(&front, &mut t_front), (&spread, &mut t_spread)] {
            let reqs: Vec<HoldRequest> = (0..round).map(|_| best(key, &mut ids)).collect();
            let t = Instant::now();
            reqs.iter().for_each(|r| released_cycle(&e, r));
            out.push(t.elapsed().as_nanos() as f64 / f64::from(round));
        }
        let reqs: Vec<HoldRequest> = (0..round)
            .map(|_| {
                let (actor, hold_ref) = ids.next("unseated");
                HoldRequest::lines(
                    unseated.clone(),
                    actor,
                    hold_ref,
                    vec![seathold::catalogue::Line { tier: tier(), quantity: 4 }],
                )
            })
            .collect();
        let t = Instant::now();
        reqs.iter().for_each(|r| released_cycle(&e, r));
        t_plain.push(t.elapsed().as_nanos() as f64 / f64::from(round));
        drain(&e);
    }
    let (front_ns, spread_ns, plain_ns) = (median(t_front), median(t_spread), median(t_plain));

    let verdict = |ok: bool| if ok { "ok" } else { "FAIL" };
    println!("{:<66} {:>10}", "measure", "value");
    println!("{:<66} {:>10.1}", "map at rest, bytes per seat", at_rest);
    println!("{:<66} {:>10.1}", "90% sold: bytes per seat, seated minus plain holds (target <= 16)", added);
    println!("{:<66} {:>10.1}", "  of which the rows (a copy of every row record, per seat)", rows_bytes);
    println!("{:<66} {:>10.0}", "  seated holds: bytes per hold of 4", seated_bytes as f64 / holds as f64);
    println!("{:<66} {:>10.0}", "  plain holds: bytes per hold of 4", plain_bytes as f64 / holds as f64);
    println!("{:<66} {:>10.0}", "plain cycle (hold of 4 + failed), ns", plain_ns);
    println!("{:<66} {:>10.0}", "best available of 4 + failed, sold from the front, ns", front_ns);
    println!("{:<66} {:>10.0}", "best available of 4 + failed, every row 90% sold, ns", spread_ns);
    println!("{:<66} {:>10.1}", "  front / plain (target <= 5)", front_ns / plain_ns);
    println!("{:<66} {:>10.1}", "  spread / plain (target <= 5)", spread_ns / plain_ns);
    println!(
        "bytes per seat {}; best available from the front {}; spread {}",
        verdict(added <= 16.0),
        verdict(front_ns / plain_ns <= 5.0),
        verdict(spread_ns / plain_ns <= 5.0)
    );
}
