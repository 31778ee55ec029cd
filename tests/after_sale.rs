//! After the sale (Part 2 of the README; issue "After the sale"): tickets
//! issued exactly once in the confirming commit, credentials, check-in (and concurrent scans),
//! cancellation and its refunds, late payments (revive or refund), the waiting list and its
//! offers, the ledger, hold extensions, abandoned checkouts, and the named regressions
//! (Hi.Events #466, pretix #74, a late `failed` after a cancellation).
//!
//! Every generic body runs on MemoryStore and, with `SEATHOLD_PG_URL` (feature `postgres`),
//! on PostgreSQL. Fault injection and the thread race run on memory; the two-process scan
//! race and the raw-SQL check for credentials run on PostgreSQL.

use crate::part2_support;

use std::sync::{Arc, Barrier};

use part2_support::*;
use seathold::catalogue::{BlockOutcome, Dim, LatePayment, OccurrenceConfig};
use seathold::contract::{Amount, EventId, EventKind, NoHoldReason, OutboxEvent};
use seathold::holds::{AbandonOutcome, CancelOutcome, CancelRefusal, ExtendRefusal, HoldState, RequestOutcome};
use seathold::ledger::EntryKind;
use seathold::records::Record;
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::tickets::{CheckIn, Ticket, TicketKey, TicketRef, TicketState, TicketStatus};
use seathold::{MemoryStore, OpError, TicketRefusal};
use time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers

/// `std` 10 EUR and `vip` 30 EUR on `capacity` seats, issuing tickets.
fn hall(capacity: u32) -> OccurrenceConfig {
    cfg(capacity, 600).with_tiers(vec![tier("std", "10.00"), tier("vip", "30.00")]).with_tickets(true)
}

fn std_tier(capacity: u32, ttl: u64) -> OccurrenceConfig {
    cfg(capacity, ttl).with_tiers(vec![tier("std", "10.00")])
}

fn refused<T: std::fmt::Debug, R: std::fmt::Debug + PartialEq>(res: Result<T, OpError<R>>, want: R) {
    match res {
        Err(OpError::Refused(got)) => assert_eq!(got, want),
        other => panic!("expected the refusal {want:?}, got {other:?}"),
    }
}

fn types(events: &[OutboxEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.kind.type_str()).collect()
}

fn ids(events: &[OutboxEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn cancelled(amount: &str, seats: u32) -> CancelOutcome {
    CancelOutcome::Cancelled { refund: eur(amount), seats, provider_ref: None }
}

impl<S: AsyncStore> H<S> {
    async fn tickets(&self, occ: &str, hold_ref: &str) -> Vec<Ticket> {
        self.e.tickets(&k(occ), &r(hold_ref)).await.unwrap()
    }

    async fn credentials(&self, occ: &str, hold_ref: &str) -> Vec<String> {
        self.tickets(occ, hold_ref).await.into_iter().map(|t| t.credential).collect()
    }

    /// Scan at the door of the ticket's own occurrence.
    async fn scan(&self, credential: &str) -> CheckIn {
        let door = TicketKey::new(TICKET_KEY.to_vec()).unwrap().verify(credential).map(|(o, _, _)| o);
        self.e.check_in(&door.unwrap_or_else(|_| k("door")), credential).await.unwrap()
    }

    async fn cancel(&self, occ: &str, hold_ref: &str, tickets: Option<&[u32]>) -> CancelOutcome {
        self.e.cancel(&k(occ), &r(hold_ref), tickets).await.unwrap()
    }

    /// Tickets of the occurrence (not cancelled) == its sold seats, always; and the counters
    /// equal the sums over the records.
    async fn check_tickets(&self, occ: &str) {
        self.check_dims(occ).await;
        let o = self.e.occurrence(&k(occ)).await.unwrap();
        if !o.config.issue_tickets() {
            return;
        }
        let mut standing = 0u64;
        for (o, rec) in self.all_records().await {
            if let Record::Booking(b) = &rec.value {
                if o.as_str() == occ {
                    let sold = b.state == HoldState::Confirmed || b.state == HoldState::Cancelled;
                    assert_eq!(b.tickets.len(), if sold { b.quantity as usize } else { 0 }, "{b:?}");
                    standing += b.tickets.iter().filter(|t| !matches!(t, TicketState::Cancelled { .. })).count() as u64;
                }
            }
        }
        assert_eq!(
            standing,
            o.counters.get(&seathold::catalogue::Dim::Total).confirmed,
            "{occ}: tickets != sold seats"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tickets

/// One ticket per seat, issued in the commit that confirms the booking (events
/// `hold_confirmed` then one `ticket_issued` per ticket, consecutive ids); nothing before
/// payment; a replayed `paid` issues nothing; occurrences without `issue_tickets` issue none.
async fn tickets_are_issued_once_per_seat_by_the_confirming_commit<S: AsyncStore>(h: H<S>) {
    h.open("hall", hall(10)).await;
    h.hold(&order("hall", "ann", "a1", &[("std", 2), ("vip", 1)])).await;
    assert!(h.tickets("hall", "a1").await.is_empty(), "no ticket before payment");
    h.drain().await;
    h.pay("hall", "ann", "a1").await;
    let events = h.drain().await;
    assert_eq!(types(&events), ["hold_confirmed", "ticket_issued", "ticket_issued", "ticket_issued"]);
    assert!(consecutive(&ids(&events)), "one commit");
    let tickets = h.tickets("hall", "a1").await;
    let issued: Vec<(String, Option<String>)> = events[1..]
        .iter()
        .map(|e| match &e.event.kind {
            EventKind::TicketIssued { ticket, tier } => (ticket.clone(), tier.as_ref().map(|t| t.to_string())),
            other => panic!("{other:?}"),
        })
        .collect();
    let listed: Vec<(String, Option<String>)> =
        tickets.iter().map(|t| (t.id.clone(), t.tier.as_ref().map(|t| t.to_string()))).collect();
    assert_eq!(issued, listed);
    let tiers: Vec<Option<&str>> = tickets.iter().map(|t| t.tier.as_ref().map(|t| t.as_str())).collect();
    assert_eq!(tiers, [Some("std"), Some("std"), Some("vip")]);
    assert!(
        tickets.iter().all(|t| t.status == TicketStatus::Valid
            && t.at.is_none()
            && t.hold_ref == r("a1")
            && t.occ_key == k("hall"))
    );
    let distinct: std::collections::BTreeSet<&str> = tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(distinct.len(), 3);

    // Redelivered: nothing new, the same tickets and credentials.
    assert_eq!(h.settle(&paid("hall", "ann", "a1")).await, Settlement::Confirmed { replayed: true });
    assert!(h.drain().await.is_empty());
    assert_eq!(h.tickets("hall", "a1").await, tickets);

    // A free order issues its tickets at once.
    h.open("free", cfg(5, 600).with_tiers(vec![tier("crew", "0")]).with_tickets(true)).await;
    let free = order("free", "cat", "c1", &[("crew", 2)]);
    assert_eq!(
        h.request(&free).await,
        RequestOutcome::Confirmed { hold_ref: r("c1"), replayed: false, seat_ids: Vec::new() }
    );
    assert_eq!(types(&h.drain().await), ["hold_placed", "hold_confirmed", "ticket_issued", "ticket_issued"]);
    assert_eq!(h.tickets("free", "c1").await.len(), 2);

    // Plain seats get tickets too (without a tier).
    h.open("plainhall", cfg(5, 600).with_tickets(true)).await;
    h.buy(&plain("plainhall", "dan", "d1", "40.00", 2)).await;
    let plain_tickets = h.tickets("plainhall", "d1").await;
    assert_eq!(plain_tickets.len(), 2);
    assert!(plain_tickets.iter().all(|t| t.tier.is_none()));

    // Without issue_tickets: no tickets, no ticket events (Part 1 outboxes unchanged).
    h.open("quiet", std_tier(5, 600)).await;
    h.drain().await;
    h.buy(&order("quiet", "eve", "e1", &[("std", 2)])).await;
    assert_eq!(types(&h.drain().await), ["hold_placed", "hold_confirmed"]);
    assert!(h.tickets("quiet", "e1").await.is_empty());
    refused(h.e.tickets(&k("hall"), &r("nope")).await, TicketRefusal::UnknownBooking);
    for occ in ["hall", "free", "plainhall", "quiet"] {
        h.check_tickets(occ).await;
    }
}

/// A revived late payment issues the booking's tickets once; its redelivery issues nothing.
async fn a_revived_late_payment_issues_tickets_once<S: AsyncStore>(h: H<S>) {
    h.open("late", std_tier(3, 60).with_late_payment(LatePayment::Revive).with_tickets(true)).await;
    h.hold(&order("late", "ann", "a1", &[("std", 2)])).await;
    h.advance(60);
    assert_eq!(h.e.expire_due(usize::MAX).await.unwrap(), 1);
    h.drain().await;
    h.pay("late", "ann", "a1").await;
    let events = h.drain().await;
    assert_eq!(types(&events), ["hold_confirmed", "ticket_issued", "ticket_issued"]);
    assert!(matches!(events[0].event.kind, EventKind::HoldConfirmed { revived: true, .. }));
    let b = h.booking("late", "a1").await;
    assert!(b.revived && b.state == HoldState::Confirmed);
    assert_eq!(h.settle(&paid("late", "ann", "a1")).await, Settlement::Confirmed { replayed: true });
    assert!(h.drain().await.is_empty());
    assert_eq!(h.tickets("late", "a1").await.len(), 2);

    // Lapsed but never swept: revived the same way.
    h.hold(&order("late", "bob", "b1", &[("std", 1)])).await;
    h.advance(60);
    h.pay("late", "bob", "b1").await;
    assert_eq!(h.tickets("late", "b1").await.len(), 1);
    assert_eq!(h.avail("late").await.confirmed, 3);
    h.check_tickets("late").await;
}

/// A lost acknowledgement of the confirming commit (of a payment, and of a revival), or a
/// commit that failed before it was written: the retry issues nothing twice.
#[test]
fn tickets_are_not_issued_twice_when_a_confirmation_is_retried() {
    seathold::conformance::block_on(async {
        let h = H::new(FaultyStore::default());
        h.open("hall", hall(10)).await;
        h.open("late", std_tier(5, 60).with_late_payment(LatePayment::Revive).with_tickets(true)).await;
        h.hold(&order("hall", "ann", "a1", &[("std", 2)])).await;
        h.hold(&order("hall", "bob", "b1", &[("vip", 1)])).await;
        h.hold(&order("late", "cat", "c1", &[("std", 2)])).await;
        h.advance(60);
        h.drain().await;

        h.store().hook.plan(&[Fault::After]);
        assert!(is_unavailable(&h.e.settle(&paid("hall", "ann", "a1")).await.unwrap_err()));
        assert_eq!(h.settle(&paid("hall", "ann", "a1")).await, Settlement::Confirmed { replayed: true });

        h.store().hook.plan(&[Fault::Before]);
        assert!(is_unavailable(&h.e.settle(&paid("hall", "bob", "b1")).await.unwrap_err()));
        assert_eq!(h.settle(&paid("hall", "bob", "b1")).await, Settlement::Confirmed { replayed: false });

        h.store().hook.plan(&[Fault::After]);
        assert!(is_unavailable(&h.e.settle(&paid("late", "cat", "c1")).await.unwrap_err()));
        assert_eq!(h.settle(&paid("late", "cat", "c1")).await, Settlement::Confirmed { replayed: true });

        let events = h.drain().await;
        for (rf, seats) in [("a1", 2), ("b1", 1), ("c1", 2)] {
            let of = |ty: &str| {
                events.iter().filter(|e| e.event.hold_ref == Some(r(rf)) && e.event.kind.type_str() == ty).count()
            };
            assert_eq!((of("hold_confirmed"), of("ticket_issued")), (1, seats), "{rf}: {events:?}");
        }
        assert_eq!(h.tickets("hall", "a1").await.len(), 2);
        assert_eq!(h.tickets("late", "c1").await.len(), 2);
        h.check_tickets("hall").await;
        h.check_tickets("late").await;
    });
}

#[test]
fn an_engine_without_a_ticket_key_refuses_ticket_operations() {
    let e = seathold::Engine::new(MemoryStore::new());
    refused(e.tickets(&k("x"), &r("y")), TicketRefusal::NoTicketKey);
    refused(e.check_in(&k("x"), "anything"), TicketRefusal::NoTicketKey);
    assert!(TicketKey::new(vec![7u8; 31]).is_err(), "a ticket key needs 32 bytes");
}

// ---------------------------------------------------------------------------------------
// Credentials and check-in

const URL_SAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

/// Credentials are URL- and QR-safe, distinct, carry a MAC of at least 128 bits, and are
/// unguessable: every one-character change is `Invalid` (and changes nothing), as are
/// credentials made with another key, for a missing seat or for an unpaid hold. The store
/// holds no credential (nor the key): a database reader learns nothing to admit anyone with.
async fn credentials_are_url_safe_unguessable_and_never_stored<S: AsyncStore>(h: H<S>) {
    h.open("hall", hall(10)).await;
    h.buy(&order("hall", "ann", "a1", &[("std", 2), ("vip", 1)])).await;
    let creds = h.credentials("hall", "a1").await;
    assert_eq!(creds.len(), 3);
    assert_eq!(creds.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "distinct");
    for c in &creds {
        assert!(c.chars().all(|ch| URL_SAFE.contains(ch)), "{c:?} is not URL/QR-safe");
        assert!(c.len() <= 512, "{c:?} is too long for a QR code");
        let (_, mac) = c.rsplit_once('.').expect("PAYLOAD.MAC");
        assert!(mac.len() * 6 >= 128, "{c:?}: a MAC of at least 128 bits");
    }

    let before = h.fingerprint().await;
    let c0 = &creds[0];
    let mut forged = 0;
    for (i, ch) in c0.char_indices() {
        for sub in ['A', 'b', '0', '9', '-', '_', '.', 'Z'] {
            if sub == ch {
                continue;
            }
            let mut f = c0.clone();
            f.replace_range(i..i + ch.len_utf8(), &sub.to_string());
            assert_eq!(h.scan(&f).await, CheckIn::Invalid, "one character changed: {f:?}");
            forged += 1;
        }
    }
    let odd = [
        String::new(),
        "not-a-credential".to_owned(),
        c0[..c0.len() - 1].to_owned(),
        format!("{c0}A"),
        format!("{c0}.{c0}"),
        c0.to_uppercase(),
        c0.replace('.', ""),
        "x".repeat(5_000),
    ];
    for f in &odd {
        assert_eq!(h.scan(f).await, CheckIn::Invalid, "{f:?}");
    }
    assert!(forged > 100);
    assert_eq!(h.fingerprint().await, before, "forged scans change nothing");
    let other = TicketKey::new(b"another-key-another-key-32-bytes".to_vec()).unwrap();
    let mine = TicketKey::new(TICKET_KEY.to_vec()).unwrap();
    h.hold(&order("hall", "bob", "b1", &[("std", 1)])).await;
    let before_b1 = h.fingerprint().await;
    for f in [
        other.credential(&k("hall"), &r("a1"), 0),
        mine.credential(&k("hall"), &r("a1"), 3),
        mine.credential(&k("hall"), &r("b1"), 0), // unpaid: no ticket
        mine.credential(&k("nowhere"), &r("a1"), 0),
    ] {
        assert_eq!(h.scan(&f).await, CheckIn::Invalid, "{f:?}");
    }
    assert_eq!(h.fingerprint().await, before_b1);
    // The forgeries changed nothing: the real credential still admits, once.
    assert!(matches!(h.scan(c0).await, CheckIn::Admitted { .. }));
    assert_eq!(mine.credential(&k("hall"), &r("a1"), 1), creds[1], "credentials derive from the key alone");

    // What a database reader sees holds no credential, no MAC and no key.
    let stored = h.stored_text().await;
    assert!(!stored.is_empty());
    for c in &creds {
        let (_, mac) = c.rsplit_once('.').unwrap();
        assert!(!stored.contains(c.as_str()) && !stored.contains(mac), "the store holds a credential");
    }
    assert!(!stored.contains(std::str::from_utf8(TICKET_KEY).unwrap()));
}

/// `Admitted` once, then `AlreadyCheckedIn { at }` (the first admission's time); `Invalid`;
/// `Cancelled` for a cancelled ticket; one `checked_in` event.
async fn check_in_admits_once_and_tells_why_not<S: AsyncStore>(h: H<S>) {
    h.open("hall", hall(10)).await;
    h.buy(&order("hall", "ann", "a1", &[("std", 3)])).await;
    let creds = h.credentials("hall", "a1").await;
    h.drain().await;
    h.advance(10);
    let admitted_at = h.now();
    let seat = |i: u32| TicketRef { id: format!("a1#{i}"), index: i, tier: Some(t("std")) };
    assert_eq!(h.scan(&creds[0]).await, CheckIn::Admitted { ticket: seat(0) });
    h.advance(5);
    assert_eq!(h.scan(&creds[0]).await, CheckIn::AlreadyCheckedIn { ticket: seat(0), at: admitted_at });
    assert_eq!(h.scan("garbage").await, CheckIn::Invalid);
    assert_eq!(h.cancel("hall", "a1", Some(&[2])).await, cancelled("10.00", 1));
    assert_eq!(h.scan(&creds[2]).await, CheckIn::Cancelled { ticket: seat(2) });
    let events = h.drain().await;
    let checked: Vec<&EventKind> =
        events.iter().map(|e| &e.event.kind).filter(|k| k.type_str() == "checked_in").collect();
    assert_eq!(checked, [&EventKind::CheckedIn { ticket: "a1#0".into() }]);
    let states: Vec<(TicketStatus, Option<time::OffsetDateTime>)> =
        h.tickets("hall", "a1").await.iter().map(|t| (t.status, t.at)).collect();
    assert_eq!(
        states,
        [
            (TicketStatus::CheckedIn, Some(admitted_at)),
            (TicketStatus::Valid, None),
            (TicketStatus::Cancelled, Some(admitted_at + Duration::seconds(5))),
        ]
    );
    h.check_tickets("hall").await;
}

/// Eight door scanners scan the same credential at once, for each of 20 tickets: each ticket
/// is admitted exactly once.
#[test]
fn concurrent_scans_of_one_credential_admit_exactly_once() {
    let h = Arc::new(H::new(MemoryStore::new()));
    let creds = seathold::conformance::block_on(async {
        h.open("hall", hall(40)).await;
        h.buy(&order("hall", "ann", "a1", &[("std", 20)])).await;
        h.drain().await;
        h.credentials("hall", "a1").await
    });
    for c in &creds {
        let barrier = Barrier::new(8);
        let answers: Vec<CheckIn> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (h, barrier) = (&h, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        seathold::conformance::block_on(h.e.check_in(&k("hall"), c)).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let admitted = answers.iter().filter(|a| matches!(a, CheckIn::Admitted { .. })).count();
        let again = answers.iter().filter(|a| matches!(a, CheckIn::AlreadyCheckedIn { .. })).count();
        assert_eq!((admitted, again), (1, 7), "{answers:?}");
    }
    seathold::conformance::block_on(async {
        let events = h.drain().await;
        assert_eq!(events.iter().filter(|e| e.event.kind.type_str() == "checked_in").count(), 20);
        h.check_tickets("hall").await;
    });
}

// ---------------------------------------------------------------------------------------
// Cancellation

/// Cancelling frees the seats on every dimension in the same commit, voids the tickets and
/// emits `refund_required { reason: cancelled, amount, currency }`; again, it is a no-op; a
/// booking with a checked-in ticket to cancel is refused whole (`CheckedIn`).
async fn cancellation_frees_seats_voids_tickets_and_signals_the_refund<S: AsyncStore>(h: H<S>) {
    let config = cfg(5, 600)
        .with_tiers(vec![
            tier("std", "10.00").with_pools(vec![p("stalls")]),
            tier("vip", "30.00").with_pools(vec![p("stalls")]),
        ])
        .with_pools(vec![pool("stalls", 3)])
        .with_tickets(true)
        .with_max_per_actor(4);
    h.open("hall", config).await;
    h.buy(&order("hall", "ann", "a1", &[("std", 1), ("vip", 1)])).await;
    let pay_bob = paid_with("hall", "bob", "b1", eur("10.00"), "pi_bob");
    h.hold(&order("hall", "bob", "b1", &[("std", 1)])).await;
    assert_eq!(h.settle(&pay_bob).await, Settlement::Confirmed { replayed: false });
    assert_eq!(
        h.request(&order("hall", "eve", "e1", &[("std", 1)])).await,
        RequestOutcome::Full { capacity: 3, tier: Some(t("std")), short: Dim::Pool(p("stalls")) }
    );
    h.drain().await;

    assert_eq!(h.cancel("hall", "a1", None).await, cancelled("40.00", 2));
    // Freed in the same commit: the counters already say so.
    let c = h.counters("hall").await;
    use seathold::catalogue::Dim;
    assert_eq!(c[&Dim::Pool(p("stalls"))].confirmed, 1);
    assert_eq!((c[&Dim::Tier(t("vip"))].confirmed, c[&Dim::Tier(t("std"))].confirmed), (0, 1));
    let events = h.drain().await;
    assert_eq!(types(&events), ["ticket_cancelled", "ticket_cancelled", "refund_required"]);
    assert!(consecutive(&ids(&events)));
    assert_eq!(refunds(&events), [("a1".to_owned(), "cancelled".to_owned(), Some(amt("40.00")), Some(cur("EUR")))]);
    let a1 = h.booking("hall", "a1").await;
    assert_eq!(a1.state, HoldState::Cancelled);
    assert!(a1.tickets.iter().all(|t| matches!(t, TicketState::Cancelled { .. })));
    let a1_creds = h.credentials("hall", "a1").await;
    assert!(matches!(h.scan(&a1_creds[0]).await, CheckIn::Cancelled { .. }));

    let before = h.fingerprint().await;
    assert_eq!(h.cancel("hall", "a1", None).await, CancelOutcome::Noop);
    assert_eq!(h.cancel("hall", "a1", Some(&[0])).await, CancelOutcome::Noop);
    assert_eq!(h.fingerprint().await, before, "cancelling again changes nothing");

    // Some tickets of a booking.
    h.buy(&order("hall", "cat", "c1", &[("std", 2)])).await;
    assert_eq!(h.cancel("hall", "c1", Some(&[1])).await, cancelled("10.00", 1));
    assert_eq!(h.cancel("hall", "c1", Some(&[1])).await, CancelOutcome::Noop);
    assert_eq!(h.booking("hall", "c1").await.state, HoldState::Confirmed);
    assert_eq!(h.cancel("hall", "c1", Some(&[0, 1])).await, cancelled("10.00", 1), "only what is left");
    assert_eq!(h.booking("hall", "c1").await.state, HoldState::Cancelled);

    // A checked-in ticket: the cancellation is refused whole.
    h.buy(&order("hall", "dan", "d1", &[("std", 2)])).await;
    let d1 = h.credentials("hall", "d1").await;
    assert!(matches!(h.scan(&d1[0]).await, CheckIn::Admitted { .. }));
    let before = h.fingerprint().await;
    assert_eq!(h.cancel("hall", "d1", None).await, CancelOutcome::CheckedIn { ticket: "d1#0".into() });
    assert_eq!(h.cancel("hall", "d1", Some(&[1, 0])).await, CancelOutcome::CheckedIn { ticket: "d1#0".into() });
    assert_eq!(h.fingerprint().await, before, "a refused cancellation changes nothing");
    assert_eq!(h.cancel("hall", "d1", Some(&[1])).await, cancelled("10.00", 1));

    // The limit counts what is still owned: ann may buy again.
    h.buy(&order("hall", "ann", "a2", &[("vip", 1)])).await;

    // The refund names the payment to refund.
    h.drain().await;
    let want = CancelOutcome::Cancelled { refund: eur("10.00"), seats: 1, provider_ref: Some(pr("pi_bob")) };
    assert_eq!(h.cancel("hall", "b1", None).await, want, "the answer names the payment too");
    let events = h.drain().await;
    let Some(EventKind::RefundRequired { provider_ref, .. }) =
        events.iter().map(|e| &e.event.kind).find(|k| k.type_str() == "refund_required")
    else {
        panic!("{events:?}")
    };
    assert_eq!(provider_ref.as_ref(), Some(&pr("pi_bob")));

    // What cannot be cancelled.
    h.hold(&order("hall", "eve", "e2", &[("std", 1)])).await;
    let before = h.fingerprint().await;
    refused(h.e.cancel(&k("hall"), &r("e2"), None).await, CancelRefusal::NotConfirmed);
    refused(h.e.cancel(&k("hall"), &r("zz"), None).await, CancelRefusal::UnknownBooking);
    refused(h.e.cancel(&k("nowhere"), &r("a1"), None).await, CancelRefusal::UnknownOccurrence);
    refused(h.e.cancel(&k("hall"), &r("a2"), Some(&[5])).await, CancelRefusal::BadTicket { index: 5 });
    refused(h.e.cancel(&k("hall"), &r("a2"), Some(&[0, 0])).await, CancelRefusal::BadTicket { index: 0 });
    assert_eq!(h.fingerprint().await, before);

    // A booking without tickets is cancelled whole.
    h.open("plain", cfg(3, 600)).await;
    h.buy(&plain("plain", "ann", "p1", "30.00", 2)).await;
    refused(h.e.cancel(&k("plain"), &r("p1"), Some(&[0])).await, CancelRefusal::NoTickets);
    assert_eq!(h.cancel("plain", "p1", None).await, cancelled("30.00", 2));
    assert_eq!(h.avail("plain").await.available, 3);

    h.check_tickets("hall").await;
    h.check_dims("plain").await;
}

// ---------------------------------------------------------------------------------------
// Late payments

/// `late_payment: revive` confirms an expired or released booking when every capacity it
/// touches has room at settle time, else refunds it; `refund` (the default) always refunds.
async fn late_payments_are_revived_when_there_is_room_else_refunded<S: AsyncStore>(h: H<S>) {
    let revive = |cap| std_tier(cap, 60).with_late_payment(LatePayment::Revive);
    h.open("revive", revive(2)).await;
    h.hold(&order("revive", "ann", "a1", &[("std", 1)])).await;
    h.advance(60);
    h.pay("revive", "ann", "a1").await; // lapsed, never swept
    h.hold(&order("revive", "bob", "b1", &[("std", 1)])).await;
    assert_eq!(h.settle(&failed("revive", "bob", "b1")).await, Settlement::Released);
    h.pay("revive", "bob", "b1").await; // released
    assert_eq!(h.avail("revive").await.confirmed, 2);
    let ledger = h.e.ledger(&k("revive")).await.unwrap();
    assert_eq!(ledger.net(cur("EUR")), Some(amt("20.00")));

    // No room left at settle time: refunded, with the amount.
    let full = RequestOutcome::Full { capacity: 2, tier: Some(t("std")), short: Dim::Total };
    assert_eq!(h.request(&order("revive", "cat", "c1", &[("std", 1)])).await, full, "both seats were revived");
    h.open("revive2", revive(1)).await;
    h.hold(&order("revive2", "ann", "a1", &[("std", 1)])).await;
    h.advance(60);
    h.buy(&order("revive2", "bob", "b1", &[("std", 1)])).await;
    let Settlement::PaidButNoHold { refund, replayed: false } = h.settle(&paid("revive2", "ann", "a1")).await else {
        panic!()
    };
    assert_eq!(
        (refund.reason, refund.amount, refund.currency),
        (NoHoldReason::Expired, Some(amt("10.00")), Some(cur("EUR")))
    );
    assert_eq!(h.avail("revive2").await.confirmed, 1);

    // A block can leave no room either.
    h.open("revive3", revive(1)).await;
    h.hold(&order("revive3", "ann", "a1", &[("std", 1)])).await;
    h.advance(60);
    assert_eq!(h.e.block(&k("revive3"), &b("press"), 1, None).await.unwrap(), BlockOutcome::Blocked);
    assert!(matches!(h.settle(&paid("revive3", "ann", "a1")).await, Settlement::PaidButNoHold { .. }));

    // The default policy refunds even with room.
    h.open("refund", std_tier(2, 60)).await;
    h.hold(&order("refund", "ann", "a1", &[("std", 1)])).await;
    h.advance(60);
    let Settlement::PaidButNoHold { refund, .. } = h.settle(&paid("refund", "ann", "a1")).await else { panic!() };
    assert_eq!(refund.reason, NoHoldReason::Expired);
    assert_eq!(h.avail("refund").await.confirmed, 0);
    for occ in ["revive", "revive2", "revive3", "refund"] {
        h.check_dims(occ).await;
    }
}

// ---------------------------------------------------------------------------------------
// The waiting list

fn waiting(cap: u32) -> OccurrenceConfig {
    cfg(cap, 600)
        .with_tiers(vec![tier("std", "10.00"), tier("vip", "30.00")])
        .with_offer_ttl_secs(300)
        .unwrap()
        .with_tickets(true)
}

fn offered(events: &[OutboxEvent]) -> Vec<(String, u32)> {
    events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::WaitlistOffered { seats, .. } => Some((e.event.actor.to_string(), *seats)),
            _ => None,
        })
        .collect()
}

/// Join (positions), offers made in the commit that frees the seats, only the offered actor
/// takes them, a walk-in never does, a lapsed offer passes on.
async fn the_waiting_list_gets_offers_in_the_freeing_commit<S: AsyncStore>(h: H<S>) {
    h.open("wl", waiting(2)).await;
    h.hold(&order("wl", "ann", "a1", &[("std", 2)])).await;
    let full = RequestOutcome::Full { capacity: 2, tier: Some(t("std")), short: Dim::Total };
    assert_eq!(h.request(&order("wl", "bob", "b1", &[("std", 1)])).await, full);
    let join = |actor: &str, seats: u32| {
        let e = &h.e;
        let actor = a(actor);
        async move { e.join_waitlist(&k("wl"), &actor, Some(&t("std")), seats).await.unwrap() }
    };
    let pos = |j: seathold::waitlist::Joined| (j.position, j.offered);
    assert_eq!(pos(join("bob", 1).await), (1, false));
    assert_eq!(pos(join("cat", 1).await), (2, false));
    assert_eq!(pos(join("bob", 1).await), (1, false), "joining again keeps the place");
    assert_eq!(pos(join("dan", 1).await), (3, false));
    h.drain().await;

    // Ann's payment fails: her seats go to bob and cat in that same commit.
    assert_eq!(h.settle(&failed("wl", "ann", "a1")).await, Settlement::Released);
    let events = h.drain().await;
    assert_eq!(types(&events), ["hold_released", "waitlist_offered", "waitlist_offered"]);
    assert!(consecutive(&ids(&events)), "offered in the commit that freed the seats");
    assert_eq!(offered(&events), [("bob".to_owned(), 1), ("cat".to_owned(), 1)]);
    let EventKind::WaitlistOffered { expires_at, tier, .. } = &events[1].event.kind else { panic!() };
    assert_eq!((*expires_at, tier.clone()), (h.now() + Duration::seconds(300), Some(t("std"))));
    let av = h.avail("wl").await;
    assert_eq!((av.held, av.offered, av.available), (0, 2, 0));

    // Nobody else takes them: a walk-in, nor dan (waiting, not offered).
    assert_eq!(h.request(&order("wl", "eve", "e1", &[("std", 1)])).await, full);
    assert_eq!(h.request(&order("wl", "dan", "d1", &[("std", 1)])).await, full);
    // Bob takes his.
    h.hold(&order("wl", "bob", "b1", &[("std", 1)])).await;
    let av = h.avail("wl").await;
    assert_eq!((av.held, av.offered), (1, 1));

    // Cat lets hers lapse: the sweep passes it on to dan.
    h.advance(300);
    let av = h.avail("wl").await;
    assert_eq!((av.offered, av.available), (1, 0), "a lapsed offer shows as the next entry's (dan's), not as free");
    h.drain().await;
    h.e.expire_due(usize::MAX).await.unwrap();
    assert_eq!(offered(&h.drain().await), [("dan".to_owned(), 1)]);
    assert_eq!(h.request(&order("wl", "cat", "c1", &[("std", 1)])).await, full, "cat had her turn");
    assert_eq!(h.request(&order("wl", "eve", "e1", &[("std", 1)])).await, full);
    h.hold(&order("wl", "dan", "d1", &[("std", 1)])).await;
    assert_eq!(h.avail("wl").await.offered, 0);
    h.check_dims("wl").await;
}

/// Every way seats free up makes its offers in its own commit: expiry by the sweep, a
/// writing operation meeting a lapsed hold (before it decides: the walk-in gets `Full`),
/// abandon, cancellation, unblock, a larger capacity, leaving the list with an offer; and
/// joining with seats free is offered at once. Offers are per tier.
async fn every_way_seats_free_up_offers_them_first<S: AsyncStore>(h: H<S>) {
    let first_offer = |events: &[OutboxEvent]| offered(events).first().map(|(a, _)| a.clone());
    let commit_of_offer = |events: &[OutboxEvent], freeing: &str| {
        let i = events.iter().position(|e| e.event.kind.type_str() == freeing).expect(freeing);
        let j = events.iter().position(|e| e.event.kind.type_str() == "waitlist_offered").expect("an offer");
        assert!(j > i && consecutive(&ids(&events[i..=j])), "{freeing} and its offer in one commit: {events:?}");
    };
    h.open("wl", waiting(1)).await;
    let join = |occ: &str, actor: &str, tier: &str| {
        let (e, occ, actor, tier) = (&h.e, k(occ), a(actor), t(tier));
        async move { e.join_waitlist(&occ, &actor, Some(&tier), 1).await.unwrap() }
    };

    // The sweep.
    h.hold(&order("wl", "ann", "a1", &[("std", 1)])).await;
    join("wl", "w1", "std").await;
    h.advance(600);
    h.drain().await;
    assert_eq!(h.e.expire_due(usize::MAX).await.unwrap(), 1);
    let events = h.drain().await;
    commit_of_offer(&events, "hold_expired");
    assert_eq!(first_offer(&events).as_deref(), Some("w1"));
    h.hold(&order("wl", "w1", "w1r", &[("std", 1)])).await;

    // A walk-in meeting a lapsed hold: the offer is made first, the walk-in is refused.
    join("wl", "w2", "std").await;
    h.advance(600);
    h.drain().await;
    let walk_in = h.request(&order("wl", "eve", "e1", &[("std", 1)])).await;
    assert_eq!(walk_in, RequestOutcome::Full { capacity: 1, tier: Some(t("std")), short: Dim::Total });
    let events = h.drain().await;
    commit_of_offer(&events, "hold_expired");
    assert_eq!(first_offer(&events).as_deref(), Some("w2"));
    h.hold(&order("wl", "w2", "w2r", &[("std", 1)])).await;

    // Abandon.
    join("wl", "w3", "std").await;
    h.drain().await;
    assert_eq!(h.e.abandon(&k("wl"), &a("w2"), &r("w2r")).await.unwrap(), AbandonOutcome::Released);
    let events = h.drain().await;
    commit_of_offer(&events, "hold_released");
    assert_eq!(first_offer(&events).as_deref(), Some("w3"));
    h.buy(&order("wl", "w3", "w3r", &[("std", 1)])).await;

    // Cancellation.
    join("wl", "w4", "std").await;
    h.drain().await;
    assert_eq!(h.cancel("wl", "w3r", None).await, cancelled("10.00", 1));
    let events = h.drain().await;
    commit_of_offer(&events, "refund_required");
    assert_eq!(first_offer(&events).as_deref(), Some("w4"));
    h.buy(&order("wl", "w4", "w4r", &[("std", 1)])).await;

    // A larger capacity.
    join("wl", "w5", "std").await;
    h.drain().await;
    h.open("wl", waiting(2)).await;
    assert_eq!(first_offer(&h.drain().await).as_deref(), Some("w5"));
    h.hold(&order("wl", "w5", "w5r", &[("std", 1)])).await;

    // Unblock.
    h.open("blk", waiting(1)).await;
    h.e.block(&k("blk"), &b("press"), 1, None).await.unwrap();
    join("blk", "w6", "std").await;
    h.drain().await;
    h.e.unblock(&k("blk"), &b("press")).await.unwrap();
    assert_eq!(first_offer(&h.drain().await).as_deref(), Some("w6"));

    // Leaving with an offer passes it on; joining with seats free is offered at once.
    join("blk", "w7", "std").await;
    h.drain().await;
    assert!(h.e.leave_waitlist(&k("blk"), &a("w6"), Some(&t("std"))).await.unwrap());
    assert_eq!(first_offer(&h.drain().await).as_deref(), Some("w7"));
    assert!(!h.e.leave_waitlist(&k("blk"), &a("w6"), Some(&t("std"))).await.unwrap());
    h.open("free", waiting(3)).await;
    let j = join("free", "w8", "std").await;
    assert_eq!((j.position, j.offered), (1, true));

    // Per tier: a vip entry is not offered the std seats of a vip-capped occurrence.
    let capped = cfg(2, 600)
        .with_tiers(vec![tier("std", "10.00"), tier("vip", "30.00").with_capacity(1)])
        .with_offer_ttl_secs(300)
        .unwrap();
    h.open("tiers", capped).await;
    h.buy(&order("tiers", "ann", "t1", &[("vip", 1)])).await;
    h.hold(&order("tiers", "bob", "t2", &[("std", 1)])).await;
    join("tiers", "v1", "vip").await;
    join("tiers", "s1", "std").await;
    h.drain().await;
    assert_eq!(h.settle(&failed("tiers", "bob", "t2")).await, Settlement::Released);
    assert_eq!(offered(&h.drain().await), [("s1".to_owned(), 1)], "the std seat goes to the std entry");
    for occ in ["wl", "blk", "free", "tiers"] {
        h.check_dims(occ).await;
    }
}

// ---------------------------------------------------------------------------------------
// Ledger, extension, abandon

/// A ledger entry as (kind, ref, provider ref, amount, reason).
type EntryRow = (EntryKind, String, Option<String>, Option<Amount>, Option<String>);

/// Every accounted payment and refund signal is an entry (ref, provider ref, amount,
/// currency, kind, time); the net equals the confirmed amounts minus the refunds.
async fn the_ledger_nets_confirmed_payments_minus_refunds<S: AsyncStore>(h: H<S>) {
    h.open("led", std_tier(10, 60).with_max_per_actor(10)).await;
    let m = |actor: &str, rf: &str, s: &str, pi: &str| paid_with("led", actor, rf, eur(s), pi);
    h.hold(&order("led", "ann", "a1", &[("std", 2)])).await;
    assert_eq!(h.settle(&m("ann", "a1", "20.00", "pi_1")).await, Settlement::Confirmed { replayed: false });
    h.buy(&order("led", "bob", "b1", &[("std", 1)])).await;
    h.hold(&order("led", "cat", "c1", &[("std", 1)])).await;
    h.advance(60);
    assert!(matches!(h.settle(&m("cat", "c1", "10.00", "pi_2")).await, Settlement::PaidButNoHold { .. }));
    h.hold(&order("led", "ann", "a2", &[("std", 1)])).await;
    assert_eq!(h.settle(&m("ann", "a2", "10.00", "pi_3")).await, Settlement::Confirmed { replayed: false });
    assert!(matches!(h.settle(&m("ann", "a2", "10.00", "pi_4")).await, Settlement::PaidButNoHold { .. }));
    let want = CancelOutcome::Cancelled { refund: eur("20.00"), seats: 2, provider_ref: Some(pr("pi_1")) };
    assert_eq!(h.cancel("led", "a1", None).await, want);

    let ledger = h.e.ledger(&k("led")).await.unwrap();
    let eur_ = cur("EUR");
    assert_eq!((ledger.received[&eur_], ledger.refunded[&eur_]), (amt("60.00"), amt("40.00")));
    assert_eq!(ledger.net(eur_), Some(amt("20.00")));
    let mut entries: Vec<EntryRow> = ledger
        .entries
        .iter()
        .map(|e| {
            assert_eq!(e.currency, Some(eur_));
            (
                e.kind,
                e.hold_ref.to_string(),
                e.provider_ref.as_ref().map(|p| p.to_string()),
                e.amount,
                e.reason.map(|r| r.as_str().to_owned()),
            )
        })
        .collect();
    entries.sort_by_key(|x| (x.1.clone(), x.0, x.2.clone()));
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        entries,
        [
            (EntryKind::Payment, "a1".into(), s("pi_1"), Some(amt("20.00")), None),
            (EntryKind::Refund, "a1".into(), s("pi_1"), Some(amt("20.00")), s("cancelled")),
            (EntryKind::Payment, "a2".into(), s("pi_3"), Some(amt("10.00")), None),
            (EntryKind::Payment, "a2".into(), s("pi_4"), Some(amt("10.00")), None),
            (EntryKind::Refund, "a2".into(), s("pi_4"), Some(amt("10.00")), s("duplicate_payment")),
            (EntryKind::Payment, "b1".into(), None, Some(amt("10.00")), None),
            (EntryKind::Payment, "c1".into(), s("pi_2"), Some(amt("10.00")), None),
            (EntryKind::Refund, "c1".into(), s("pi_2"), Some(amt("10.00")), s("expired")),
        ]
    );
    assert!(ledger.entries.windows(2).all(|w| w[0].at <= w[1].at), "in time order");

    // Net == what the sold bookings were paid, minus what their cancellations refund.
    let mut kept = Amount::ZERO;
    for (_, rec) in h.all_records().await {
        match &rec.value {
            Record::Booking(b) if matches!(b.state, HoldState::Confirmed | HoldState::Cancelled) => {
                kept = kept.checked_add(b.price.amount).unwrap();
            }
            _ => {}
        }
    }
    for (_, rec) in h.all_records().await {
        if let Record::Cancellation(c) = &rec.value {
            kept = kept.checked_sub(c.refund.amount).unwrap();
        }
    }
    assert_eq!(ledger.net(eur_), Some(kept));
}

/// A live hold may be extended by up to `max_extension` in all, never past it; a lapsed,
/// paid or unknown hold may not; nor at an occurrence without `max_extension`.
async fn holds_are_extended_up_to_max_extension<S: AsyncStore>(h: H<S>) {
    h.open("ext", std_tier(2, 600).with_max_extension_secs(300).unwrap()).await;
    h.hold(&order("ext", "ann", "a1", &[("std", 1)])).await;
    h.advance(100);
    h.drain().await;
    let ext = |rf: &str, secs: i64| {
        let (e, rf) = (&h.e, r(rf));
        async move { e.extend(&k("ext"), &rf, Duration::seconds(secs)).await }
    };
    assert_eq!(ext("a1", 120).await.unwrap().expires_at, START + Duration::seconds(720));
    assert_eq!(h.booking("ext", "a1").await.expires_at, START + Duration::seconds(720));
    assert_eq!(types(&h.drain().await), ["hold_extended"]);
    assert_eq!(ext("a1", 1_000).await.unwrap().expires_at, START + Duration::seconds(900), "capped");
    let before = h.fingerprint().await;
    assert_eq!(ext("a1", 60).await.unwrap().expires_at, START + Duration::seconds(900));
    assert_eq!(h.fingerprint().await, before, "at the cap nothing changes");

    // Live past its first expiry, and paid then.
    h.advance(750); // START + 850
    assert_eq!(h.avail("ext").await.held, 1);
    h.pay("ext", "ann", "a1").await;
    refused(ext("a1", 10).await, ExtendRefusal::NotLive);

    h.hold(&order("ext", "bob", "b1", &[("std", 1)])).await;
    refused(ext("b1", 0).await, ExtendRefusal::NotAllowed);
    refused(ext("b1", -5).await, ExtendRefusal::NotAllowed);
    h.advance(600);
    refused(ext("b1", 10).await, ExtendRefusal::NotLive);
    refused(ext("zz", 10).await, ExtendRefusal::UnknownHold);
    h.open("noext", std_tier(2, 600)).await;
    h.hold(&order("noext", "cat", "c1", &[("std", 1)])).await;
    refused(h.e.extend(&k("noext"), &r("c1"), Duration::seconds(10)).await, ExtendRefusal::NotAllowed);
    h.check_dims("ext").await;
}

/// A buyer abandons a checkout: the live hold is released (`hold_released`, seats offered to
/// the waiting list in that commit), without a forged payment result; a later payment is
/// refunded; abandoning someone else's, an ended or a lapsed hold answers `Noop`.
async fn abandoning_a_checkout_releases_the_hold<S: AsyncStore>(h: H<S>) {
    h.open("ab", waiting(1)).await;
    h.hold(&order("ab", "ann", "a1", &[("std", 1)])).await;
    h.e.join_waitlist(&k("ab"), &a("bob"), Some(&t("std")), 1).await.unwrap();
    let abandon = |actor: &str, rf: &str| {
        let (e, actor, rf) = (&h.e, a(actor), r(rf));
        async move { e.abandon(&k("ab"), &actor, &rf).await.unwrap() }
    };
    h.drain().await;
    let before = h.fingerprint().await;
    assert_eq!(abandon("bob", "a1").await, AbandonOutcome::Noop, "not bob's");
    assert_eq!(abandon("ann", "zz").await, AbandonOutcome::Noop);
    assert_eq!(h.fingerprint().await, before);
    assert_eq!(abandon("ann", "a1").await, AbandonOutcome::Released);
    let events = h.drain().await;
    assert_eq!(types(&events), ["hold_released", "waitlist_offered"]);
    assert!(consecutive(&ids(&events)));
    assert_eq!(abandon("ann", "a1").await, AbandonOutcome::Noop);
    assert_eq!(h.settle(&failed("ab", "ann", "a1")).await, Settlement::Noop);
    let Settlement::PaidButNoHold { refund, .. } = h.settle(&paid("ab", "ann", "a1")).await else { panic!() };
    assert_eq!((refund.reason, refund.amount), (NoHoldReason::Released, Some(amt("10.00"))));

    h.hold(&order("ab", "bob", "b1", &[("std", 1)])).await;
    h.advance(600);
    h.drain().await;
    assert_eq!(abandon("bob", "b1").await, AbandonOutcome::Noop, "a lapsed hold");
    assert_eq!(types(&h.drain().await), ["hold_expired"], "met lapsed, it is expired");
    assert_eq!(h.booking("ab", "b1").await.state, HoldState::Expired);
    h.check_dims("ab").await;
}

// ---------------------------------------------------------------------------------------
// Named regressions

/// Hi.Events #466: cancelling an order did not free its capacity. Here every dimension the
/// booking touched is free again at once, and the next buyer gets the seat.
async fn hi_events_466_cancelling_frees_capacity<S: AsyncStore>(h: H<S>) {
    let config = cfg(1, 600)
        .with_tiers(vec![tier("std", "10.00").with_capacity(1).with_pools(vec![p("floor")])])
        .with_pools(vec![pool("floor", 1)])
        .with_tickets(true);
    h.open("gig", config).await;
    h.buy(&order("gig", "ann", "a1", &[("std", 1)])).await;
    let full = RequestOutcome::Full { capacity: 1, tier: Some(t("std")), short: Dim::Total };
    assert_eq!(h.request(&order("gig", "bob", "b1", &[("std", 1)])).await, full);
    assert_eq!(h.cancel("gig", "a1", None).await, cancelled("10.00", 1));
    assert_eq!(h.avail("gig").await.available, 1);
    assert_eq!(h.tier_avail("gig", "std").await, 1);
    assert!(h.counters("gig").await.values().all(|u| u.total() == 0), "every dimension freed");
    h.buy(&order("gig", "bob", "b1", &[("std", 1)])).await;
    assert_eq!(h.avail("gig").await.confirmed, 1);
    h.check_tickets("gig").await;
}

/// pretix #74: money that arrives after the quota filled up must be refunded, never kept
/// silently. Under `revive` (and under the default), the late payment is a refund signal with
/// its amount — an event and a ledger entry — and the quota is never exceeded.
async fn pretix_74_money_after_the_quota_filled_is_refunded_never_kept<S: AsyncStore>(h: H<S>) {
    for (occ, policy) in [("revive", LatePayment::Revive), ("refund", LatePayment::Refund)] {
        h.open(occ, std_tier(1, 60).with_late_payment(policy).with_tickets(true)).await;
        h.hold(&order(occ, "ann", "a1", &[("std", 1)])).await;
        h.advance(60);
        h.buy(&order(occ, "bob", "b1", &[("std", 1)])).await;
        h.drain().await;
        let late = paid_with(occ, "ann", "a1", eur("10.00"), "pi_ann");
        let Settlement::PaidButNoHold { refund, replayed: false } = h.settle(&late).await else {
            panic!("{occ}: the late payment must be refunded")
        };
        assert_eq!(
            (refund.reason, refund.amount, refund.currency),
            (NoHoldReason::Expired, Some(amt("10.00")), Some(cur("EUR")))
        );
        assert_eq!(
            refunds(&h.drain().await),
            [("a1".to_owned(), "expired".to_owned(), Some(amt("10.00")), Some(cur("EUR")))]
        );
        let ledger = h.e.ledger(&k(occ)).await.unwrap();
        let ann: Vec<EntryKind> = ledger.entries.iter().filter(|e| e.hold_ref == r("a1")).map(|e| e.kind).collect();
        assert_eq!(ann, [EntryKind::Payment, EntryKind::Refund]);
        assert_eq!(ledger.net(cur("EUR")), Some(amt("10.00")), "only bob's money is kept");
        let av = h.avail(occ).await;
        assert_eq!((av.confirmed, av.available), (1, 0));
        assert_ne!(h.booking(occ, "a1").await.state, HoldState::Confirmed);
        assert!(h.tickets(occ, "a1").await.is_empty());
        // Redelivered: the same signal, marked replayed, nothing new.
        assert!(matches!(h.settle(&late).await, Settlement::PaidButNoHold { replayed: true, .. }));
        assert!(h.drain().await.is_empty());
        h.check_tickets(occ).await;
    }
}

/// A `failed` (or `expired`) result arriving after the booking was cancelled changes nothing;
/// nor does a redelivered `paid` (a replay, not a second refund).
async fn a_late_failed_after_a_cancellation_changes_nothing<S: AsyncStore>(h: H<S>) {
    h.open("hall", hall(3)).await;
    h.buy(&order("hall", "ann", "a1", &[("std", 2)])).await;
    assert_eq!(h.cancel("hall", "a1", None).await, cancelled("20.00", 2));
    h.drain().await;
    let before = h.fingerprint().await;
    assert_eq!(h.settle(&failed("hall", "ann", "a1")).await, Settlement::Noop);
    let expired = seathold::contract::PaymentResult::new(
        k("hall"),
        a("ann"),
        r("a1"),
        seathold::contract::PaymentStatus::Expired,
    );
    assert_eq!(h.settle(&expired).await, Settlement::Noop);
    assert_eq!(h.settle(&paid("hall", "ann", "a1")).await, Settlement::Confirmed { replayed: true });
    assert_eq!(h.fingerprint().await, before, "nothing changed, nothing emitted");
    assert_eq!(h.avail("hall").await.available, 3);
    h.check_tickets("hall").await;
}

/// `available` counts what a new request could take: with a hold lapsed and someone waiting,
/// the seat is the waiting list's, not a walk-in's.
async fn availability_never_shows_seats_the_waiting_list_is_owed<S: AsyncStore>(h: H<S>) {
    h.open("wl", waiting(1)).await;
    h.hold(&order("wl", "ann", "a1", &[("std", 1)])).await;
    h.e.join_waitlist(&k("wl"), &a("bob"), Some(&t("std")), 1).await.unwrap();
    h.advance(600);
    let shown = h.avail("wl").await;
    let walk_in = h.request(&order("wl", "eve", "e1", &[("std", 1)])).await;
    assert!(matches!(walk_in, RequestOutcome::Full { .. }), "{walk_in:?}");
    assert_eq!((shown.available, shown.tiers[&t("std")].available), (0, 0), "shown {shown:?}, but a walk-in got Full");
}

/// `Store::scan` lists every record of a kind; the waiting list is one record, under an
/// empty key, and must be listed too (MemoryStore does; a store comparing keys with
/// `key > ''` for "from the start" skips it).
async fn scan_lists_the_waiting_list_record<S: AsyncStore>(h: H<S>) {
    h.open("wl", waiting(1)).await;
    h.e.join_waitlist(&k("wl"), &a("bob"), Some(&t("std")), 1).await.unwrap();
    let loaded = h.store().load(&k("wl"), &[seathold::store::RecordKey::Waitlist]).await.unwrap();
    assert!(loaded.records[0].is_some(), "the waiting list exists");
    let listed = h.store().scan(&k("wl"), seathold::store::RecordKind::Waitlist, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "scan of kind waitlist lists the waiting list");
}

on_both_stores!(
    scan_lists_the_waiting_list_record,
    tickets_are_issued_once_per_seat_by_the_confirming_commit,
    a_revived_late_payment_issues_tickets_once,
    credentials_are_url_safe_unguessable_and_never_stored,
    check_in_admits_once_and_tells_why_not,
    cancellation_frees_seats_voids_tickets_and_signals_the_refund,
    late_payments_are_revived_when_there_is_room_else_refunded,
    the_waiting_list_gets_offers_in_the_freeing_commit,
    every_way_seats_free_up_offers_them_first,
    the_ledger_nets_confirmed_payments_minus_refunds,
    holds_are_extended_up_to_max_extension,
    abandoning_a_checkout_releases_the_hold,
    hi_events_466_cancelling_frees_capacity,
    pretix_74_money_after_the_quota_filled_is_refunded_never_kept,
    a_late_failed_after_a_cancellation_changes_nothing,
    availability_never_shows_seats_the_waiting_list_is_owed,
);

// ---------------------------------------------------------------------------------------
// PostgreSQL only: what a database reader sees, and two door scanners in two processes

/// A reader of the database (every table, as text) finds no credential and no key.
#[cfg(feature = "postgres")]
#[test]
fn the_database_holds_no_credential() {
    on_postgres("the_database_holds_no_credential", |h| async move {
        h.open("hall", hall(10)).await;
        h.buy(&order("hall", "ann", "a1", &[("std", 2)])).await;
        let creds = h.credentials("hall", "a1").await;
        assert!(matches!(h.scan(&creds[0]).await, CheckIn::Admitted { .. }));
        let s = h.store().schema().to_owned();
        let client = h.store().pool().get().await.unwrap();
        let mut text = String::new();
        for table in ["occurrences", "records", "outbox", "seathold_meta"] {
            let row = client
                .query_one(&format!(r#"SELECT coalesce(string_agg(t::text, E'\n'), '') FROM "{s}".{table} t"#), &[])
                .await
                .unwrap();
            text.push_str(&row.get::<_, String>(0));
        }
        assert!(text.contains("a1"), "the dump reads the bookings");
        for c in &creds {
            let (_, mac) = c.rsplit_once('.').unwrap();
            assert!(!text.contains(c.as_str()) && !text.contains(mac), "the database holds a credential");
        }
        assert!(!text.contains(std::str::from_utf8(TICKET_KEY).unwrap()));
    });
}

/// Two scanner processes (`examples/postgres_scan_worker.rs`), eight concurrent scans each
/// per credential, at the same instant: every ticket is admitted exactly once, with one
/// `checked_in` event.
#[cfg(feature = "postgres")]
#[test]
fn two_scanner_processes_admit_each_ticket_exactly_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{SystemTime, UNIX_EPOCH};

    on_postgres("two_scanner_processes_admit_each_ticket_exactly_once", |h| async move {
        h.open("door", hall(20)).await;
        h.buy(&order("door", "ann", "a1", &[("std", 10)])).await;
        let creds = h.credentials("door", "a1").await;
        h.drain().await;
        let url = std::env::var("SEATHOLD_PG_URL").unwrap();
        let exe = std::env::current_exe().unwrap();
        let worker = exe
            .parent()
            .and_then(|d| d.parent())
            .unwrap()
            .join("examples")
            .join(format!("postgres_scan_worker{}", std::env::consts::EXE_SUFFIX));
        assert!(
            worker.exists(),
            "{} is missing: `cargo build --features postgres --example postgres_scan_worker` \
             (`cargo test --all-features` builds it)",
            worker.display()
        );
        let key_hex: String = TICKET_KEY.iter().map(|b| format!("{b:02x}")).collect();
        let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 2_500;
        let spec = format!("{};{key_hex};{start};8;{}", h.store().schema(), creds.join(","));
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(&worker)
                    .env("SEATHOLD_SCAN_WORKER", &spec)
                    .env("SEATHOLD_PG_URL", &url)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("spawn a scanner")
            })
            .collect();
        let mut admitted = vec![0usize; creds.len()];
        let mut scans = 0;
        for mut child in children {
            let out = child.stdout.take().unwrap();
            let mut done = false;
            for line in BufReader::new(out).lines() {
                let line = line.unwrap();
                if line == "SCANNER DONE" {
                    done = true;
                } else if let Some(rest) = line.strip_prefix("SCAN\t") {
                    let (i, status) = rest.split_once('\t').unwrap();
                    let i: usize = i.parse().unwrap();
                    scans += 1;
                    match status {
                        "admitted" => admitted[i] += 1,
                        "already_checked_in" => {}
                        other => panic!("ticket {i}: {other}"),
                    }
                }
            }
            assert!(child.wait().unwrap().success() && done, "a scanner failed");
        }
        assert_eq!(scans, 2 * 8 * creds.len());
        assert_eq!(admitted, vec![1; creds.len()], "each ticket admitted exactly once across both processes");
        let events = h.drain().await;
        assert_eq!(events.iter().filter(|e| e.event.kind.type_str() == "checked_in").count(), creds.len());
        assert!(h.tickets("door", "a1").await.iter().all(|t| t.status == TicketStatus::CheckedIn));
        h.check_tickets("door").await;
    });
}
