//! Clause 1: a commit applies whole — configuration, counters, records, events — or not at all.

use super::fixtures::*;
use crate::catalogue::Dim;
use crate::holds::{Cancellation, HoldState};
use crate::records::{Record, RecordKey, UsageDelta};
use crate::settlement::{PaidOutcome, PaymentRecord};
use crate::store::{AsyncStore, Commit, Conflict, OccurrenceGuard, RecordWrite, WriteOp};
use crate::waitlist::Waitlist;

const CLAUSE: &str = "store contract 1 (atomic commit)";

/// `Create` makes an occurrence at config version 1 with nothing counted; `Update` replaces
/// its configuration at version + 1 and keeps the counters of the dimensions that remain.
pub async fn check_configure_keeps_counters<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(5)), CLAUSE).await;
    let occ1 = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("{CLAUSE}: created occurrence not found"));
    assert_eq!(occ1.config, config(5), "{CLAUSE}: configuration read back differs");
    assert_eq!(occ1.config_version, 1, "{CLAUSE}: a new occurrence is at config version 1");
    assert_eq!(occ1.counters.get(&Dim::Total).total(), 0, "{CLAUSE}: a new occurrence counts nothing");

    let mut c = at(&o, 1);
    c.deltas = vec![(total(), held(3))].into();
    c.admits = vec![total()].into();
    commit_ok(s, c, CLAUSE).await;
    let c = Commit { occurrence: OccurrenceGuard::Update { expected: 1, config: config(8) }, ..Commit::new(o.clone()) };
    commit_ok(s, c, CLAUSE).await;
    let occ2 = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("{CLAUSE}: occurrence lost"));
    assert_eq!(occ2.config, config(8), "{CLAUSE}: Update did not store the new configuration");
    assert_eq!(occ2.config_version, 2, "{CLAUSE}: Update must bump the config version by one");
    assert_eq!(occ2.counters.get(&Dim::Total).held, 3, "{CLAUSE}: Update must keep the counters");
}

/// Records of every kind, seat deltas and events read back exactly as written, each record
/// at the version its commit answered.
pub async fn check_round_trip<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let records = every_kind(&o);
    let mut c = at(&o, 1);
    c.deltas = vec![
        (Dim::Total, UsageDelta { held: 2, confirmed: 1, blocked: 1, offered: 0 }),
        (Dim::Tier(tier("b")), UsageDelta { blocked: 1, ..UsageDelta::default() }),
    ]
    .into();
    c.admits = vec![Dim::Total, Dim::Tier(tier("b"))].into();
    c.records = records.iter().cloned().map(|r| put(r, None)).collect();
    c.events = vec![event(&o, "ann", "r1", 2), event(&o, "bob", "r2", 1)].into();
    let version = commit_ok(s, c, CLAUSE).await.version;

    let keys: Vec<RecordKey> = records.iter().map(Record::key).collect();
    let snap = load(s, &o, &keys).await;
    for (want, got) in records.iter().zip(&snap.records) {
        let got = got.as_ref().unwrap_or_else(|| panic!("{CLAUSE}: record {} not found after commit", want.key()));
        assert_eq!(&got.value, want, "{CLAUSE}: record {} read back differs", want.key());
        assert_eq!(got.version, version, "{CLAUSE}: a new record is at the version its commit answered");
    }
    let occ = snap.occurrence.unwrap_or_else(|| panic!("{CLAUSE}: occurrence lost"));
    let u = occ.counters.get(&Dim::Total);
    assert_eq!((u.held, u.confirmed, u.blocked, u.offered), (2, 1, 1, 0), "{CLAUSE}: counters read back differ");
    assert_eq!(occ.counters.get(&Dim::Tier(tier("b"))).blocked, 1, "{CLAUSE}: tier counter lost");
    let events = s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = events.into_iter().map(|e| e.event).collect();
    assert_eq!(got, vec![event(&o, "ann", "r1", 2), event(&o, "bob", "r2", 1)], "{CLAUSE}: events differ");
}

/// A commit whose last guard fails writes nothing: no configuration, counter, record or event.
pub async fn check_failed_guard_writes_nothing<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(5)), CLAUSE).await;
    let existing = Record::Actor(actor_record(&o, "zed"));
    commit_ok(s, Commit { records: vec![put(existing.clone(), None)], ..at(&o, 1) }, CLAUSE).await;

    let c = Commit {
        occurrence: OccurrenceGuard::Update { expected: 1, config: config(9) },
        deltas: vec![(total(), held(2))].into(),
        admits: vec![total()].into(),
        records: vec![
            put(Record::Booking(hold(&o, "ann", "r1", 2, T0)), None),
            // Expects `zed`'s record to be absent: it exists, so this guard fails.
            RecordWrite { key: existing.key(), expected: None, op: WriteOp::Check },
        ],
        events: vec![event(&o, "ann", "r1", 2)].into(),
        ..Commit::new(o.clone())
    };
    match commit_err(s, c, CLAUSE).await {
        crate::store::CommitError::Conflict(Conflict::Record { key }) => {
            assert_eq!(key, existing.key(), "{CLAUSE}: the conflict must name the record whose guard failed");
        }
        e => panic!("{CLAUSE}: expected a record conflict, got {e}"),
    }
    let snap = load(s, &o, &[RecordKey::Booking(r("r1"))]).await;
    let occ = snap.occurrence.unwrap_or_else(|| panic!("{CLAUSE}: occurrence lost"));
    assert_eq!(occ.config_version, 1, "{CLAUSE}: a refused commit changed the configuration");
    assert_eq!(occ.config, config(5), "{CLAUSE}: a refused commit changed the configuration");
    assert_eq!(occ.counters.get(&Dim::Total).total(), 0, "{CLAUSE}: a refused commit changed counters");
    assert!(snap.records[0].is_none(), "{CLAUSE}: a refused commit wrote a record");
    assert!(s.pending_events(10).await.unwrap_or_default().is_empty(), "{CLAUSE}: a refused commit wrote events");
}

/// One record of every kind (two bookings: one held, one confirmed), at occurrence `o` of
/// [`tiered`]'s configuration.
pub(crate) fn every_kind(o: &crate::contract::OccKey) -> Vec<Record> {
    let mut booking = hold(o, "ann", "r1", 2, T0 + time::Duration::minutes(10));
    booking.metadata = crate::contract::Metadata::from_value(&serde_json::json!({"seat": "12A", "n": 3})).ok();
    let mut confirmed = hold(o, "bob", "r2", 1, T0);
    confirmed.state = HoldState::Confirmed;
    confirmed.ended_at = Some(T0);
    confirmed.tickets = vec![crate::tickets::TicketState::Valid];
    let payment = PaymentRecord {
        occ_key: o.clone(),
        actor: actor("bob"),
        hold_ref: r("r2"),
        provider_ref: crate::contract::ProviderRef::new("pi_1").ok(),
        duplicate: false,
        amount: Some(eur("10.00").amount),
        currency: Some(eur("10.00").currency),
        outcome: PaidOutcome::Confirmed { revived: false },
        settled_at: T0,
    };
    let cancellation = Cancellation {
        occ_key: o.clone(),
        actor: actor("bob"),
        hold_ref: r("r2"),
        n: 1,
        seats: 1,
        share: Some(eur("20.00")),
        tickets: vec![0],
        refund: eur("10.00"),
        provider_ref: None,
        at: T0,
    };
    let block = crate::catalogue::Block {
        block: crate::contract::BlockName::new("press").unwrap_or_else(|e| panic!("{e}")),
        seats: 1,
        tier: Some(tier("b")),
        seat_ids: Vec::new(),
        at: T0,
    };
    let name = |s: &str| crate::contract::SectionName::new(s).unwrap_or_else(|e| panic!("{e}"));
    let row = crate::seating::SeatRow::with_claims(
        name("A"),
        crate::contract::RowName::new("1").unwrap_or_else(|e| panic!("{e}")),
        vec![
            crate::seating::Claim {
                owner: crate::seating::Owner::Hold(r("r1")),
                until: Some(T0 + time::Duration::minutes(10)),
                seats: vec![3, 4],
            },
            crate::seating::Claim { owner: crate::seating::Owner::Hold(r("r0")), until: None, seats: vec![1, 7] },
            crate::seating::Claim {
                owner: crate::seating::Owner::Block(
                    crate::contract::BlockName::new("desk").unwrap_or_else(|e| panic!("{e}")),
                ),
                until: None,
                seats: vec![9],
            },
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    vec![
        Record::Booking(booking),
        Record::Booking(confirmed),
        Record::Actor(actor_record(o, "ann")),
        Record::Payment(payment),
        Record::Cancellation(cancellation),
        Record::Block(block),
        Record::Waitlist(Waitlist::new(o.clone())),
        Record::SeatRow(row),
        Record::SoldOutRows(crate::seating::SoldOutRows { tier: tier("a"), rows: vec![0b101] }),
    ]
}
