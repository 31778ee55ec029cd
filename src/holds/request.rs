//! The request decision: place a hold (or, for a free order, a confirmed booking), answer
//! `Already`, `PriceChanged`, `LimitReached` or `Full`, or refuse.

use crate::kind::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use super::room::{Need, Room, make_room, offer_before_deciding};
use super::{ActorRecord, Hold, HoldState, HoldView, LiveHold};
use crate::catalogue::{Dim, Line, PricingError, price_lines};
use crate::contract::{
    ActorId, CheckoutLine, CheckoutRequest, MAX_LINES, MAX_QUANTITY, Metadata, Money, OccKey, Ref, TierName,
};
use crate::records::{Change, Loaded, LoadedExt, Record, RecordKey, Step, UsageDelta};
use crate::seating::{self, Chosen, SeatChoice, SeatError, SeatId};
use crate::waitlist;

/// What is ordered: plain seats priced by the caller (Part 1), or lines of tiers priced by
/// the occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// `quantity` seats of an occurrence without tiers, for `price` in all: the caller's
    /// price (Part 1) — or, at an occurrence with a seat price, the total the buyer was
    /// shown, checked against the seller's (`PriceChanged` if it differs).
    Plain {
        /// The total.
        price: Money,
        /// Seats wanted.
        quantity: u32,
    },
    /// `quantity` seats of an occurrence without tiers at the seller's seat price
    /// ([`OccurrenceConfig::with_seat_price`](crate::catalogue::OccurrenceConfig::with_seat_price));
    /// never priced by the caller.
    Seats {
        /// Seats wanted.
        quantity: u32,
        /// The total the buyer was shown, if the caller wants it checked.
        expected: Option<Money>,
    },
    /// Places of a seat map (an occurrence with [seating](crate::seating)): named seats, or
    /// the best available block of a tier.
    Seated {
        /// Which seats.
        choice: SeatChoice,
        /// The total the buyer was shown, if the caller wants it checked.
        expected: Option<Money>,
    },
    /// Seats of tiers; all lines are placed in one hold, or none.
    Lines {
        /// The lines.
        lines: Vec<Line>,
        /// The total the buyer was shown, if the caller wants it checked: a different
        /// server-side total answers `PriceChanged`.
        expected: Option<Money>,
    },
}

/// "Hold these seats of `occ_key` for `actor`, to be paid under `hold_ref`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Who books.
    pub actor: ActorId,
    /// A fresh ref for this checkout attempt (see [`Ref`]): single-use per occurrence.
    pub hold_ref: Ref,
    /// What is ordered.
    pub order: Order,
    /// The caller's metadata, kept with the booking and carried on its events.
    pub metadata: Option<Metadata>,
}

impl HoldRequest {
    /// A request for one plain seat at `price` (an occurrence without tiers).
    pub fn new(occ_key: OccKey, actor: ActorId, hold_ref: Ref, price: Money) -> Self {
        Self { occ_key, actor, hold_ref, order: Order::Plain { price, quantity: 1 }, metadata: None }
    }

    /// A request for `quantity` plain seats at the occurrence's own seat price
    /// ([`OccurrenceConfig::with_seat_price`](crate::catalogue::OccurrenceConfig::with_seat_price)):
    /// the buyer never names the amount ([`expecting`](Self::expecting) checks the one they
    /// were shown). At an occurrence without a seat price it is refused
    /// ([`RequestRefusal::PriceRequired`]), never priced by the caller.
    pub fn seats(occ_key: OccKey, actor: ActorId, hold_ref: Ref, quantity: u32) -> Self {
        Self { occ_key, actor, hold_ref, order: Order::Seats { quantity, expected: None }, metadata: None }
    }

    /// A request for lines of tiers (an occurrence with tiers).
    pub fn lines(occ_key: OccKey, actor: ActorId, hold_ref: Ref, lines: Vec<Line>) -> Self {
        Self { occ_key, actor, hold_ref, order: Order::Lines { lines, expected: None }, metadata: None }
    }

    /// A request for places of the occurrence's seat map: the seats named, all or none, or
    /// the best available block ([`SeatChoice`]).
    pub fn seated(occ_key: OccKey, actor: ActorId, hold_ref: Ref, choice: SeatChoice) -> Self {
        Self { occ_key, actor, hold_ref, order: Order::Seated { choice, expected: None }, metadata: None }
    }

    /// The same plain request for `quantity` seats (checked by the engine: 1 to
    /// [`MAX_QUANTITY`]). No effect on a request of lines.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        if let Order::Plain { quantity: q, .. } | Order::Seats { quantity: q, .. } = &mut self.order {
            *q = quantity;
        }
        self
    }

    /// The same request of lines or of seller-priced seats, checked against the total the
    /// buyer was shown. No effect on a plain request (whose price is the caller's).
    pub fn expecting(mut self, price: Money) -> Self {
        if let Order::Lines { expected, .. } | Order::Seats { expected, .. } | Order::Seated { expected, .. } =
            &mut self.order
        {
            *expected = Some(price);
        }
        self
    }

    /// The same request, carrying `metadata`.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Seats asked for, over all lines (saturating).
    pub fn quantity(&self) -> u32 {
        match &self.order {
            Order::Plain { quantity, .. } | Order::Seats { quantity, .. } => *quantity,
            Order::Lines { lines, .. } => lines.iter().fold(0u32, |a, l| a.saturating_add(l.quantity)),
            Order::Seated { choice: SeatChoice::Chosen(seats), .. } => u32::try_from(seats.len()).unwrap_or(u32::MAX),
            Order::Seated { choice: SeatChoice::Best { quantity, .. }, .. } => *quantity,
        }
    }

    /// Check what can be checked without the occurrence: quantities and line counts.
    ///
    /// # Errors
    /// [`RequestRefusal::BadQuantity`], [`RequestRefusal::NoLines`],
    /// [`RequestRefusal::TooManyLines`].
    pub fn validate(&self) -> Result<(), RequestRefusal> {
        if let Order::Lines { lines, .. } = &self.order {
            if lines.is_empty() {
                return Err(RequestRefusal::NoLines);
            }
            if lines.len() > MAX_LINES {
                return Err(RequestRefusal::TooManyLines { max: MAX_LINES });
            }
            if lines.iter().any(|l| !(1..=MAX_QUANTITY).contains(&l.quantity)) {
                return Err(RequestRefusal::BadQuantity { max: MAX_QUANTITY });
            }
        }
        if let Order::Seated { choice: SeatChoice::Chosen(seats), .. } = &self.order {
            if seats.is_empty() {
                return Err(SeatError::NoSeats.into());
            }
        }
        if !(1..=MAX_QUANTITY).contains(&self.quantity()) {
            return Err(RequestRefusal::BadQuantity { max: MAX_QUANTITY });
        }
        Ok(())
    }

    /// Whether `hold` was placed by this very request (same actor, same order): what makes a
    /// repeat a replay rather than a reuse of the ref.
    pub(crate) fn placed(&self, hold: &Hold) -> bool {
        if hold.actor != self.actor {
            return false;
        }
        match &self.order {
            Order::Plain { price, quantity } => {
                hold.lines.is_empty() && hold.price == *price && hold.quantity == *quantity
            }
            Order::Seats { quantity, expected } => {
                hold.lines.is_empty() && expected.is_none_or(|e| e == hold.price) && hold.quantity == *quantity
            }
            Order::Lines { lines, expected } => {
                hold.seat_ids.is_empty()
                    && hold.lines.len() == lines.len()
                    && hold.lines.iter().zip(lines).all(|(h, l)| h.tier == l.tier && h.quantity == l.quantity)
                    && expected.is_none_or(|e| e == hold.price)
            }
            Order::Seated { choice: SeatChoice::Chosen(seats), expected } => {
                hold.seat_ids.len() == seats.len()
                    && seats.iter().all(|s| hold.seat_ids.contains(s))
                    && expected.is_none_or(|e| e == hold.price)
            }
            Order::Seated { choice: SeatChoice::Best { tier, quantity }, expected } => {
                !hold.seat_ids.is_empty()
                    && hold.lines.len() == 1
                    && hold.lines[0].tier == *tier
                    && hold.quantity == *quantity
                    && expected.is_none_or(|e| e == hold.price)
            }
        }
    }
}

/// What a request answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestOutcome {
    /// A hold was placed: send `checkout` to the payment side. `replayed` is true when this
    /// exact request had already placed this hold — a retried click or a retry after a lost
    /// acknowledgement — and nothing new was written.
    AwaitingPayment {
        /// The checkout request to send.
        #[serde(rename = "request")]
        checkout: CheckoutRequest,
        /// Whether the hold already existed under this ref.
        replayed: bool,
        /// The seats held, for a seated order (in ticket order).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seat_ids: Vec<SeatId>,
    },
    /// Every line was free: the booking is confirmed at once, without payment.
    Confirmed {
        /// The booking's ref.
        #[serde(rename = "ref")]
        hold_ref: Ref,
        /// Whether this exact request had already confirmed it.
        replayed: bool,
        /// The seats sold, for a seated order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seat_ids: Vec<SeatId>,
    },
    /// The actor has a live hold here under another ref (or, at an occurrence without
    /// `max_per_actor`, a booking): resume that checkout instead of starting a second one.
    Already {
        /// The existing hold's ref.
        #[serde(rename = "ref")]
        hold_ref: Ref,
        /// Whether it is already paid.
        confirmed: bool,
        /// The checkout request to resume a live hold with.
        #[serde(rename = "request", default, skip_serializing_if = "Option::is_none")]
        checkout: Option<CheckoutRequest>,
    },
    /// Not enough seats are free.
    Full {
        /// The capacity that was short: of [`short`](RequestOutcome::Full::short), the
        /// total, a tier's cap or a pool's.
        capacity: u32,
        /// The tier of the first line that does not fit (tiered orders).
        #[serde(skip_serializing_if = "Option::is_none")]
        tier: Option<TierName>,
        /// Which capacity was short (`total`, `tier:NAME` or `pool:NAME`).
        #[serde(default = "total_dim")]
        short: Dim,
    },
    /// The server-side total differs from the one the buyer was shown: show them this one.
    PriceChanged {
        /// The current total.
        #[serde(flatten)]
        price: Money,
    },
    /// The actor would hold or own more than `max_per_actor` seats here.
    #[serde(rename = "limit")]
    LimitReached {
        /// The limit.
        max_per_actor: u32,
    },
    /// A named seat is held (live), sold or blocked: choose others. Nothing changed.
    SeatTaken {
        /// The first such seat, in the order named.
        seat: SeatId,
    },
    /// The named seats would leave this single free seat stranded, at an occurrence that
    /// refuses single gaps: include it, or choose others. Nothing changed.
    SingleGap {
        /// The first stranded seat, in map order.
        seat: SeatId,
    },
}

fn total_dim() -> Dim {
    Dim::Total
}

/// Why a request is refused outright. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// No occurrence has this key: open it first.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// The ref was used before at this occurrence (by a hold, whoever's, or by a payment
    /// accounted under it). Refs are single-use: a late result for that attempt would be
    /// taken for this one. Use a fresh ref per attempt.
    #[error("ref already used at this occurrence")]
    RefUsed,
    /// The ref names the actor's live hold, but this request orders something else (an
    /// idempotency key reused with a different request). Resume that hold, or use a fresh ref.
    #[error("ref names a live hold with a different order")]
    RequestChanged,
    /// A quantity is 0 or above [`MAX_QUANTITY`] (per line, or in all).
    #[error("quantity must be from 1 to {max}")]
    BadQuantity {
        /// The maximum.
        max: u32,
    },
    /// A request of lines has none.
    #[error("an order needs at least one line")]
    NoLines,
    /// A request has more than [`MAX_LINES`] lines.
    #[error("at most {max} lines per order")]
    TooManyLines {
        /// The maximum.
        max: usize,
    },
    /// A request of lines at an occurrence without tiers.
    #[error("this occurrence sells no tiers: request a quantity with a price")]
    LinesNeedTiers,
    /// A plain request at an occurrence with tiers.
    #[error("this occurrence sells tiers: request lines")]
    TiersNeedLines,
    /// A plain request without a price, at an occurrence without a seat price: name the
    /// amount, or give the occurrence a seat price.
    #[error("this occurrence has no seat price: the request must carry its amount")]
    PriceRequired,
    /// The lines cannot be priced (unknown tier, mixed currencies, total too large).
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The seats cannot be considered: unknown or repeated seats, a seated tier ordered in
    /// lines, best available for a tier without seats, seats at an occurrence without a map.
    #[error(transparent)]
    Seat(#[from] SeatError),
}

impl Classify for RequestRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::RefUsed | Self::RequestChanged => ErrorKind::Conflict,
            Self::BadQuantity { .. } | Self::NoLines | Self::TooManyLines { .. } => ErrorKind::BadRequest,
            Self::LinesNeedTiers | Self::TiersNeedLines | Self::PriceRequired => ErrorKind::Unprocessable,
            Self::Pricing(p) => p.kind(),
            Self::Seat(s) => s.kind(),
        }
    }
}

/// The keys a request loads first.
pub(crate) fn request_keys(req: &HoldRequest) -> crate::records::Keys {
    smallvec::smallvec![
        RecordKey::Booking(req.hold_ref.clone()),
        RecordKey::Actor(req.actor.clone()),
        RecordKey::Payment { hold_ref: req.hold_ref.clone(), actor: req.actor.clone(), provider_ref: None },
        RecordKey::Waitlist,
    ]
}

/// Decide a request, in this precedence: a typed error for malformed input; the
/// replay of the live hold's own request; `Already`; a typed error for a used ref;
/// `PriceChanged`; `LimitReached`; `Full`.
///
/// # Errors
/// [`RequestRefusal`] when the request cannot be considered at all.
pub fn decide_request(
    view: &impl Loaded,
    req: &HoldRequest,
    now: OffsetDateTime,
) -> Result<Step<RequestOutcome>, RequestRefusal> {
    req.validate()?;
    let occ = view.occurrence().ok_or(RequestRefusal::UnknownOccurrence)?;
    let cfg = &occ.config;
    // The seller's price, if it has one, and the total the buyer was shown (checked below).
    let (price, lines, shown): (Money, Vec<CheckoutLine>, Option<Money>) = match (&req.order, cfg.has_tiers()) {
        (Order::Plain { price, quantity }, false) => match cfg.seat_price() {
            Some(unit) => (unit.checked_mul(*quantity).ok_or(PricingError::TotalTooLarge)?, Vec::new(), Some(*price)),
            None => (*price, Vec::new(), None),
        },
        (Order::Seats { quantity, expected }, false) => match cfg.seat_price() {
            Some(unit) => (unit.checked_mul(*quantity).ok_or(PricingError::TotalTooLarge)?, Vec::new(), *expected),
            None => return Err(RequestRefusal::PriceRequired),
        },
        (Order::Lines { lines, expected }, true) => {
            let (price, lines) = price_lines(cfg, lines)?;
            (price, lines, *expected)
        }
        (Order::Seated { choice, expected }, _) => {
            let map = cfg.seating().ok_or(SeatError::NotSeated)?;
            let lines = seated_lines(map, choice)?;
            let (price, lines) = price_lines(cfg, &lines)?;
            (price, lines, *expected)
        }
        (Order::Lines { .. }, false) => return Err(RequestRefusal::LinesNeedTiers),
        (Order::Plain { .. } | Order::Seats { .. }, true) => return Err(RequestRefusal::TiersNeedLines),
    };
    if let (Order::Lines { lines, .. }, Some(map)) = (&req.order, cfg.seating()) {
        if let Some(l) = lines.iter().find(|l| map.is_seated(&l.tier)) {
            return Err(SeatError::SeatedTier(l.tier.clone()).into());
        }
    }
    let quantity = req.quantity();
    let booking = view.booking(&req.hold_ref);
    let actor = view.actor(&req.actor);

    // The replay of this very request.
    if let Some(b) = booking.filter(|b| b.actor == req.actor) {
        match b.view(now) {
            HoldView::Live if req.placed(b) => {
                return Ok(Step::Answer(RequestOutcome::AwaitingPayment {
                    checkout: b.checkout_request(),
                    replayed: true,
                    seat_ids: b.seat_ids.to_vec(),
                }));
            }
            HoldView::Live => return Err(RequestRefusal::RequestChanged),
            // A free order (tiers only: a plain hold is always paid for) repeated.
            HoldView::Confirmed
                if !b.lines.is_empty()
                    && b.price.amount.is_zero()
                    && b.ended_at == Some(b.placed_at)
                    && req.placed(b) =>
            {
                return Ok(Step::Answer(RequestOutcome::Confirmed {
                    hold_ref: b.hold_ref.clone(),
                    replayed: true,
                    seat_ids: b.seat_ids.to_vec(),
                }));
            }
            _ => {}
        }
    }

    // Already: the actor's live hold under another ref.
    let mut own_lapsed: Option<&Hold> = None;
    if let Some(live) = actor.and_then(|a| a.live.as_ref()).filter(|l| l.hold_ref != req.hold_ref) {
        let key = RecordKey::Booking(live.hold_ref.clone());
        if !view.is_loaded(&key) {
            return Ok(Step::Load(vec![key]));
        }
        match view.booking(&live.hold_ref) {
            Some(h) if h.is_live(now) => {
                return Ok(Step::Answer(RequestOutcome::Already {
                    hold_ref: h.hold_ref.clone(),
                    confirmed: false,
                    checkout: Some(h.checkout_request()),
                }));
            }
            Some(h) if h.view(now) == HoldView::Lapsed => own_lapsed = Some(h),
            _ => {}
        }
    }
    if cfg.max_per_actor().is_none() {
        if let Some(c) = actor.and_then(|a| a.confirmed_ref.as_ref()) {
            return Ok(Step::Answer(RequestOutcome::Already { hold_ref: c.clone(), confirmed: true, checkout: None }));
        }
    }

    // A used ref.
    let paid_key = RecordKey::Payment { hold_ref: req.hold_ref.clone(), actor: req.actor.clone(), provider_ref: None };
    if booking.is_some() || view.get(&paid_key).is_some() {
        return Err(RequestRefusal::RefUsed);
    }

    if shown.is_some_and(|e| e != price) {
        return Ok(Step::Answer(RequestOutcome::PriceChanged { price }));
    }
    if let Some(max) = cfg.max_per_actor() {
        let have = actor.map_or(0, |a| a.confirmed_seats);
        if u64::from(have) + u64::from(quantity) > u64::from(max) {
            return Ok(Step::Answer(RequestOutcome::LimitReached { max_per_actor: max }));
        }
    }

    // Which places: checked or picked on the rows (loaded here), before any room is made.
    let seat_ids = match &req.order {
        Order::Seated { choice, .. } => {
            let map = cfg.seating().ok_or(SeatError::NotSeated)?;
            match seating::choose(view, map, choice, now)? {
                Chosen::Seats(seats) => in_line_order(map, seats, &lines),
                Chosen::Load(keys) => return Ok(Step::Load(keys)),
                Chosen::Taken(seat) => return Ok(Step::Answer(RequestOutcome::SeatTaken { seat })),
                Chosen::Gap(seat) => return Ok(Step::Answer(RequestOutcome::SingleGap { seat })),
                Chosen::Full(tier) => {
                    let dim = Dim::Tier(tier.clone());
                    let capacity = cfg.capacity_of(&dim).flatten().map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX));
                    return Ok(Step::Answer(RequestOutcome::Full { capacity, tier: Some(tier), short: dim }));
                }
            }
        }
        _ => Vec::new(),
    };

    let mut change = Change::default();
    if let Some(h) = own_lapsed {
        if let Some((expired, freed, event)) = h.lapse(cfg, now) {
            change.deltas.extend(&freed);
            change.put(Record::Booking(expired));
            change.events.push(event);
        }
    }
    let needs: smallvec::SmallVec<[Need; 4]> = if lines.is_empty() {
        smallvec::smallvec![(smallvec::smallvec![Dim::Total], UsageDelta::held(quantity))]
    } else {
        lines.iter().map(|l| (cfg.seat_dims(Some(&l.tier)), UsageDelta::held(l.quantity))).collect()
    };
    // Seats the waiting list is owed are offered before this request may take any.
    let offered_first = match offer_before_deciding(view, occ, &mut change, now) {
        Ok(offered) => offered,
        Err(n) => return Ok(Step::LoadDue(n)),
    };
    // The actor's live offer is taken only by a request that is placed: a refused one
    // leaves it standing (nobody else may take offered seats).
    let without_offer = change.clone();
    let mut took_offer = false;
    let current_wl = match change.put_of(&RecordKey::Waitlist) {
        Some(Record::Waitlist(w)) => Some(w),
        _ => view.waitlist(),
    };
    if let Some(wl) = current_wl {
        let mut wl = wl.clone();
        if waitlist::take_offer(occ, &mut wl, &mut change, &req.actor, now).is_some() {
            change.put(Record::Waitlist(wl));
            took_offer = true;
        }
    }
    let mut room = make_room(view, occ, &mut change, &needs, Some(&req.actor), now);
    if let (true, Room::Full { need, dim, .. }) = (took_offer, room.clone()) {
        // The answer names what did not fit with the offer counted in; the commit (if any)
        // is the one without taking it.
        change = without_offer;
        room = match make_room(view, occ, &mut change, &needs, Some(&req.actor), now) {
            Room::Full { offered, .. } => Room::Full { need, dim, offered },
            other => other,
        };
    }
    match room {
        Room::Fits => {}
        Room::NeedDue(n) => return Ok(Step::LoadDue(n)),
        Room::Full { need, dim, offered } => {
            // The capacity that was short: the tier's cap, a pool's, or the total.
            let capacity =
                cfg.capacity_of(&dim).flatten().map_or(cfg.capacity(), |c| u32::try_from(c).unwrap_or(u32::MAX));
            let full = RequestOutcome::Full { capacity, tier: lines.get(need).map(|l| l.tier.clone()), short: dim };
            return Ok(if offered || offered_first { Step::Write(change, full) } else { Step::Answer(full) });
        }
    }

    let hold = Hold {
        occ_key: req.occ_key.clone(),
        actor: req.actor.clone(),
        hold_ref: req.hold_ref.clone(),
        quantity,
        price,
        lines: crate::contract::lines_of(lines),
        metadata: req.metadata.clone(),
        placed_at: now,
        expires_at: cfg.expiry_for(now),
        state: HoldState::Held,
        ended_at: None,
        tickets: Vec::new(),
        revived: false,
        first_expires_at: None,
        cancelled_seats: 0,
        cancellations: 0,
        refunded: None,
        seat_ids: seat_ids.into(),
    };
    change.events.push(hold.placed_event());
    let hold_tiers: smallvec::SmallVec<[TierName; 4]> = hold.lines.iter().map(|l| l.tier.clone()).collect();
    let mut summary = actor.cloned().unwrap_or_else(|| ActorRecord::new(req.occ_key.clone(), req.actor.clone()));
    summary.current = Some(hold.hold_ref.clone());
    summary.holds = summary.holds.saturating_add(1);
    let free = !hold.lines.is_empty() && hold.price.amount.is_zero();
    let outcome = if free {
        let (confirmed, deltas) = hold.confirm(cfg, now, false, &mut change.events);
        change.deltas.extend(&deltas);
        summary.live = None;
        summary = summary.confirmed(&hold.hold_ref, quantity);
        let seat_ids = hold.seat_ids.to_vec();
        change.put(Record::Booking(confirmed));
        RequestOutcome::Confirmed { hold_ref: hold.hold_ref.clone(), replayed: false, seat_ids }
    } else {
        summary.live = Some(LiveHold { hold_ref: hold.hold_ref.clone(), quantity, expires_at: hold.expires_at });
        let checkout = hold.checkout_request();
        let seat_ids = hold.seat_ids.to_vec();
        change.put(Record::Booking(hold));
        RequestOutcome::AwaitingPayment { checkout, replayed: false, seat_ids }
    };
    change.put(Record::Actor(summary));
    // The requester got seats: their entries still waiting (for a tier of this order, or
    // for any seat) leave the list, so seats freed later are not offered to them again.
    waitlist::leave_on_placement(view.waitlist(), &mut change, &req.actor, &hold_tiers);
    // Seats an offer set aside beyond what this request took go on down the list.
    waitlist::settle_waitlist(occ, view.waitlist(), &mut change, now, Some(&req.actor));
    Ok(Step::Write(change, outcome))
}

/// The lines of a seated order: named seats grouped by their tier (in the order the tiers
/// first appear), or the best-available tier.
fn seated_lines(map: &seating::SeatMap, choice: &SeatChoice) -> Result<Vec<Line>, RequestRefusal> {
    match choice {
        SeatChoice::Best { tier, quantity } => {
            if !map.is_seated(tier) {
                return Err(SeatError::UnseatedTier(tier.clone()).into());
            }
            Ok(vec![Line { tier: tier.clone(), quantity: *quantity }])
        }
        SeatChoice::Chosen(seats) => {
            let mut lines: Vec<Line> = Vec::new();
            for s in seats {
                let tier = map.tier_of(s).ok_or_else(|| SeatError::UnknownSeat(s.clone()))?;
                match lines.iter_mut().find(|l| &l.tier == tier) {
                    Some(l) => l.quantity = l.quantity.saturating_add(1),
                    None => lines.push(Line { tier: tier.clone(), quantity: 1 }),
                }
            }
            Ok(lines)
        }
    }
}

/// The seats in ticket order: grouped by line, each group in the order chosen.
fn in_line_order(map: &seating::SeatMap, mut seats: Vec<SeatId>, lines: &[CheckoutLine]) -> Vec<SeatId> {
    let line_of = |s: &SeatId| map.tier_of(s).and_then(|t| lines.iter().position(|l| &l.tier == t)).unwrap_or(0);
    seats.sort_by_key(|s| line_of(s));
    seats
}

/// Ask for a hold ([`AsyncEngine::request`](crate::AsyncEngine::request)): the operation
/// around [`decide_request`].
#[derive(Debug, Clone, Copy)]
pub struct Request<'a>(pub &'a HoldRequest);

impl crate::operation::sealed::Sealed for Request<'_> {}

impl crate::operation::Operation for Request<'_> {
    type Output = RequestOutcome;
    type Refusal = RequestRefusal;
    fn occ_key(&self) -> &OccKey {
        &self.0.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        request_keys(self.0)
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<RequestOutcome>, RequestRefusal> {
        decide_request(view, self.0, now)
    }
}
