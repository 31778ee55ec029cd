//! The request decision: place a hold, answer `Already`, or answer `Full`.

use std::borrow::Borrow;

use time::OffsetDateTime;

use crate::contract::DomainEvent;
use crate::contract::{ActorId, CheckoutRequest, EventKind, Money, OccKey, Ref};

use super::{Hold, HoldState, HoldView, Occurrence, SeatDelta};

/// "Hold `quantity` seats of `occ_key` for `actor`, to be paid under `hold_ref`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Who books.
    pub actor: ActorId,
    /// A fresh ref for this checkout attempt (see [`Ref`]).
    pub hold_ref: Ref,
    /// The total price the payment side will charge.
    pub price: Money,
    /// Seats wanted, 1 to [`MAX_QUANTITY`](crate::contract::MAX_QUANTITY).
    pub quantity: u32,
}

impl HoldRequest {
    /// A request for one seat.
    pub fn new(occ_key: OccKey, actor: ActorId, hold_ref: Ref, price: Money) -> Self {
        Self { occ_key, actor, hold_ref, price, quantity: 1 }
    }

    /// The same request for `quantity` seats (checked by the engine: 1 to
    /// [`MAX_QUANTITY`](crate::contract::MAX_QUANTITY)).
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = quantity;
        self
    }
}

/// What a request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A hold was placed: send `checkout` to the payment side. `replayed` is true when this
    /// exact request (same actor and ref) had already placed this hold — a retried click or a
    /// retry after a lost acknowledgement — and nothing new was written.
    AwaitingPayment {
        /// The checkout request to send.
        checkout: CheckoutRequest,
        /// Whether the hold already existed under this ref.
        replayed: bool,
    },
    /// The actor already holds (live) or bought seats here under another ref: resume that
    /// checkout instead of starting a second one.
    Already {
        /// The existing hold's ref.
        hold_ref: Ref,
        /// Whether that hold is already paid.
        confirmed: bool,
    },
    /// Not enough seats are free.
    Full {
        /// The occurrence's capacity.
        capacity: u32,
    },
}

/// Why a request is refused outright. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefusal {
    /// No occurrence has this key: open it first.
    UnknownOccurrence,
    /// The ref was already used by this actor's previous, ended hold, or a `paid` result was
    /// already accounted under it. A late result for that attempt would be taken for this
    /// one: use a fresh ref per attempt.
    RefReused,
}

/// A hold to place and everything that goes with it, committed as one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The answer once committed.
    pub outcome: RequestOutcome,
    /// The actor's new hold (replaces the actor's previous, ended or lapsed, hold record).
    pub hold: Hold,
    /// Other actors' lapsed holds this request expires to make room: index into the lapsed
    /// holds passed to [`decide_request`], and the hold's `Expired` form.
    pub reclaimed: Vec<(usize, Hold)>,
    /// The change to the occurrence's counters.
    pub seats: SeatDelta,
    /// `hold_expired` for every hold expired here, then `hold_placed`.
    pub events: Vec<DomainEvent>,
}

/// What [`decide_request`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDecision {
    /// Answer without writing anything.
    Answer(RequestOutcome),
    /// The counters say full, but lapsed holds may be holding seats: load up to `up_to` of
    /// this occurrence's lapsed holds (oldest first, from the expiry index) and decide again.
    NeedLapsed {
        /// How many lapsed holds are worth loading (each frees at least one seat).
        up_to: usize,
    },
    /// Place a hold.
    Place(Placement),
}

/// Decide a request.
///
/// `own` is the actor's hold record at this occurrence, if any. `ref_settled` says whether a
/// `paid` result was already accounted for (occurrence, actor, `req.hold_ref`) — a ref with
/// money behind it is never reused. `lapsed` is `None` on the first call; if the answer is
/// [`RequestDecision::NeedLapsed`], call again with the occurrence's lapsed holds. A request
/// that does not fit answers `Full` and writes nothing.
///
/// # Errors
/// [`RequestRefusal`] when the request cannot be considered at all.
pub fn decide_request<L: Borrow<Hold>>(
    occ: Option<&Occurrence>,
    own: Option<&Hold>,
    ref_settled: bool,
    req: &HoldRequest,
    now: OffsetDateTime,
    lapsed: Option<&[L]>,
) -> Result<RequestDecision, RequestRefusal> {
    let occ = occ.ok_or(RequestRefusal::UnknownOccurrence)?;
    let mut seats = SeatDelta::default();
    let mut events = Vec::with_capacity(2);
    let mut attempt = 1;
    if let Some(own) = own {
        match own.view(now) {
            HoldView::Live if own.hold_ref == req.hold_ref => {
                let checkout = own.checkout_request();
                return Ok(RequestDecision::Answer(RequestOutcome::AwaitingPayment { checkout, replayed: true }));
            }
            HoldView::Live | HoldView::Confirmed => {
                let confirmed = own.state == HoldState::Confirmed;
                return Ok(RequestDecision::Answer(RequestOutcome::Already {
                    hold_ref: own.hold_ref.clone(),
                    confirmed,
                }));
            }
            HoldView::Lapsed | HoldView::Released | HoldView::Expired if own.hold_ref == req.hold_ref => {
                return Err(RequestRefusal::RefReused);
            }
            HoldView::Lapsed => {
                // The actor's own lapsed hold ends here, in the same commit as the new one.
                if let Some((_, delta, event)) = own.lapse(now) {
                    seats = seats.plus(delta);
                    events.push(event);
                }
            }
            HoldView::Released | HoldView::Expired => {}
        }
        attempt = own.attempt.saturating_add(1);
    }
    if ref_settled {
        return Err(RequestRefusal::RefReused);
    }

    let mut reclaimed = Vec::new();
    if req.quantity > occ.config.capacity() {
        return Ok(RequestDecision::Answer(RequestOutcome::Full { capacity: occ.config.capacity() }));
    }
    if !occ.fits(seats, req.quantity) {
        let Some(lapsed) = lapsed else {
            let shortfall = occ.in_use() as i128 + i128::from(seats.net()) + i128::from(req.quantity)
                - i128::from(occ.config.capacity());
            // Each lapsed hold frees at least one seat. The shortfall can exceed the quantity
            // when the capacity was lowered below counters that still include lapsed holds;
            // load enough to cover it, or lapsed holds would block (invariant 2). Each hold
            // is expired once, so this work is amortized O(1) per hold.
            let up_to = usize::try_from(shortfall.max(1)).unwrap_or(usize::MAX);
            return Ok(RequestDecision::NeedLapsed { up_to });
        };
        for (i, h) in lapsed.iter().map(Borrow::borrow).enumerate() {
            if occ.fits(seats, req.quantity) {
                break;
            }
            if h.actor == req.actor || h.occ_key != req.occ_key {
                continue;
            }
            if let Some((expired, delta, event)) = h.lapse(now) {
                seats = seats.plus(delta);
                events.push(event);
                reclaimed.push((i, expired));
            }
        }
        if !occ.fits(seats, req.quantity) {
            return Ok(RequestDecision::Answer(RequestOutcome::Full { capacity: occ.config.capacity() }));
        }
    }

    let hold = Hold {
        occ_key: req.occ_key.clone(),
        actor: req.actor.clone(),
        hold_ref: req.hold_ref.clone(),
        quantity: req.quantity,
        price: req.price,
        attempt,
        placed_at: now,
        expires_at: occ.expiry_for(now),
        state: HoldState::Held,
        ended_at: None,
    };
    seats = seats.plus(SeatDelta { held: i64::from(req.quantity), confirmed: 0 });
    events.push(
        hold.event(
            now,
            EventKind::HoldPlaced { quantity: hold.quantity, price: hold.price, expires_at: hold.expires_at },
        ),
    );
    let outcome = RequestOutcome::AwaitingPayment { checkout: hold.checkout_request(), replayed: false };
    Ok(RequestDecision::Place(Placement { outcome, hold, reclaimed, seats, events }))
}
