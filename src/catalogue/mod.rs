//! The catalogue: what an occurrence sells and under which limits.
//!
//! Owns: [`OccurrenceConfig`] (capacity, hold TTL, [`Tier`]s with prices and caps, shared
//! pools, `max_per_actor`, the late-payment policy, waiting-list and ticket options), the
//! capacity [`Dim`]ensions a seat counts against, server-side pricing of an order's lines,
//! price changes ([`decide_set_price`]) and [`Block`]s (seats taken out of sale).
//!
//! May not touch: holds, payments, storage, the clock. Every function is pure; the engine
//! loads what it needs and commits what these functions return.
//!
//! A seat of tier `T` counts against the occurrence's `capacity` ([`Dim::Total`]), `T`'s own
//! cap ([`Dim::Tier`]) and every pool `T` names ([`Dim::Pool`]); `T` is available only while
//! all of them have room (pretix's quotas). A seat of an occurrence without tiers counts
//! against `capacity` only.

mod ops;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

pub use ops::{BlockCount, BlockSeats, Configure, OpenRefusal, PriceRefusal, SetPrice, Unblock};

use crate::contract::{BlockName, CheckoutLine, Currency, Money, PoolName, TierName};
use crate::holds::{Need, Room, make_room, offer_before_deciding};
use crate::kind::{Classify, ErrorKind};
use crate::records::{Change, Deltas, Loaded, LoadedExt, Occurrence, Record, RecordKey, Step, UsageDelta};
use crate::seating::{SeatError, SeatId, SeatMap, SeatMapError};
use crate::waitlist;

/// The longest hold TTL accepted: 30 days.
pub const MAX_HOLD_TTL_SECS: u32 = 30 * 24 * 60 * 60;

/// The most tiers one occurrence may declare.
pub const MAX_TIERS: usize = 64;

/// The most pools one occurrence may declare, and the most pools one tier may name.
pub const MAX_POOLS: usize = 64;

/// Why an occurrence configuration (or a change to it) was refused. Nothing was changed; fix
/// the value the variant names.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The hold TTL is zero or longer than [`MAX_HOLD_TTL_SECS`].
    #[error("hold TTL must be from 1 to {max} seconds, got {got}")]
    BadHoldTtl {
        /// The TTL given, in seconds.
        got: u64,
        /// The maximum, in seconds.
        max: u32,
    },
    /// The waiting-list offer TTL is zero or longer than [`MAX_HOLD_TTL_SECS`].
    #[error("offer TTL must be from 1 to {max} seconds, got {got}")]
    BadOfferTtl {
        /// The TTL given, in seconds.
        got: u64,
        /// The maximum, in seconds.
        max: u32,
    },
    /// The maximum extension of a hold is longer than [`MAX_HOLD_TTL_SECS`].
    #[error("max extension must be at most {max} seconds, got {got}")]
    BadMaxExtension {
        /// The value given, in seconds.
        got: u64,
        /// The maximum, in seconds.
        max: u32,
    },
    /// A tier's price has more decimals than its currency's minor unit.
    #[error("tier {0}'s price is more precise than its currency allows")]
    BadPrice(TierName),
    /// `max_per_actor` is zero (nobody could buy anything). Leave it unset for no limit.
    #[error("max_per_actor must be at least 1")]
    BadMaxPerActor,
    /// A seat price ([`OccurrenceConfig::with_seat_price`]) on an occurrence with tiers
    /// (their prices are the tiers'), or more precise than its currency allows.
    #[error("a seat price is for an occurrence without tiers, within its currency's decimals")]
    BadSeatPrice,
    /// Two tiers have the same name.
    #[error("tier {0} is declared twice")]
    DuplicateTier(TierName),
    /// Two pools have the same name.
    #[error("pool {0} is declared twice")]
    DuplicatePool(PoolName),
    /// A tier names a pool the occurrence does not declare.
    #[error("tier {tier} names pool {pool}, which is not declared")]
    UnknownPool {
        /// The tier.
        tier: TierName,
        /// The pool it names.
        pool: PoolName,
    },
    /// More than [`MAX_TIERS`] tiers, or more than [`MAX_POOLS`] pools.
    #[error("at most {max_tiers} tiers and {max_pools} pools")]
    TooMany {
        /// [`MAX_TIERS`].
        max_tiers: usize,
        /// [`MAX_POOLS`].
        max_pools: usize,
    },
    /// Reconfiguring would strand seats: this tier has seats held, sold, blocked or offered,
    /// and the change removes it or changes the pools it draws on. Wait until they are gone
    /// (or cancel them), or keep the tier as it is.
    #[error("tier {0} is in use: it cannot be removed or moved to other pools")]
    TierInUse(TierName),
    /// Reconfiguring would strand seats: this pool still counts seats. Keep it while any
    /// tier's seats count against it.
    #[error("pool {0} is in use: it cannot be removed")]
    PoolInUse(PoolName),
    /// The occurrence sells without tiers and still has seats of that kind in use; it cannot
    /// change to tiers until they are gone (or the other way round).
    #[error("the occurrence still has seats sold without tiers")]
    PlainSeatsInUse,
    /// The change reprices a tier opened with `lock_price_while_held` while a live hold has
    /// seats of it (as [`set_price`](crate::Engine::set_price) would answer `Locked`). Keep
    /// its price, or try again once those holds are paid or gone.
    #[error("tier {0}'s price is locked while a live hold has seats of it")]
    PriceLocked(TierName),
    /// The seat map is inconsistent (see [`SeatMapError`]).
    #[error(transparent)]
    Seating(#[from] SeatMapError),
    /// The change replaces or removes the seat map while seats of a seated tier are held,
    /// sold, blocked or offered. Keep the map until they are gone (or cancel them).
    #[error("the seat map is in use: it cannot change while its seats are taken")]
    SeatingInUse,
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TierInUse(_)
            | Self::PoolInUse(_)
            | Self::PlainSeatsInUse
            | Self::PriceLocked(_)
            | Self::SeatingInUse => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// What happens to a `paid` result that arrives for a hold that lapsed or was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePayment {
    /// Refund it (`PaidButNoHold`): the Part 1 rule, and the default.
    #[default]
    Refund,
    /// Confirm the booking after all if every capacity it touches still has room at settle
    /// time; refund it otherwise (pretix and Hi.Events do this).
    Revive,
}

/// One ticket tier: a price, and optionally its own cap and the pools it also draws on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The tier's name.
    pub tier: TierName,
    /// The price of one seat. Zero makes the tier free: an order of free tiers only confirms
    /// at once, without payment.
    pub price: Money,
    /// A cap for this tier alone, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// The shared pools a seat of this tier also counts against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolName>,
    /// Refuse price changes while a live hold has seats of this tier (a resale listing
    /// whose price may change only while nobody is paying for it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lock_price_while_held: bool,
}

impl Tier {
    /// A tier with a price, no cap of its own and no pools.
    pub fn new(tier: TierName, price: Money) -> Self {
        Self { tier, price, capacity: None, pools: Vec::new(), lock_price_while_held: false }
    }

    /// The same tier, capped at `capacity` seats.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The same tier, also counting against `pools`.
    pub fn with_pools(mut self, pools: Vec<PoolName>) -> Self {
        self.pools = pools;
        self
    }

    /// The same tier, refusing price changes while a live hold has seats of it.
    pub fn locking_price_while_held(mut self) -> Self {
        self.lock_price_while_held = true;
        self
    }

    /// Whether seats of this tier need no payment.
    pub fn is_free(&self) -> bool {
        self.price.amount.is_zero()
    }
}

/// A named shared capacity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// The pool's name.
    pub pool: PoolName,
    /// Its capacity.
    pub capacity: u32,
}

/// How an occurrence sells: its capacity and hold TTL (Part 1), and optionally tiers, pools,
/// a per-actor limit, the late-payment policy, the waiting list's offer TTL, tickets, and
/// hold extensions.
///
/// Build with [`OccurrenceConfig::new`] and the `with_*` methods; [`OccurrenceConfig::check`]
/// (run by the engine on every `open`/`configure`) refuses an inconsistent one. Read from
/// JSON, an unknown field is an error naming it (a misspelt `"tickets": true` never passes
/// silently as a configuration without tickets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceConfig {
    capacity: u32,
    hold_ttl_secs: u32,
    // Shared, so copying a configuration (every load of an occurrence does) costs a
    // reference count, not an allocation per tier.
    #[serde(default, skip_serializing_if = "is_empty")]
    tiers: Arc<Vec<Tier>>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pools: Arc<Vec<Pool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_per_actor: Option<u32>,
    #[serde(default)]
    late_payment: LatePayment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offer_ttl_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    issue_tickets: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    max_extension_secs: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rejection_alarm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seat_price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seating: Option<Arc<SeatMap>>,
}

fn is_empty<T>(v: &Arc<Vec<T>>) -> bool {
    v.is_empty()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn ttl(secs: u64) -> Option<u32> {
    u32::try_from(secs).ok().filter(|t| (1..=MAX_HOLD_TTL_SECS).contains(t))
}

impl OccurrenceConfig {
    /// A configuration without tiers. A capacity of 0 is allowed (nothing can be held: a
    /// closed sale).
    ///
    /// # Errors
    /// [`ConfigError::BadHoldTtl`] if the TTL is not from 1 second to 30 days.
    pub fn new(capacity: u32, hold_ttl_secs: u64) -> Result<Self, ConfigError> {
        let hold_ttl_secs =
            ttl(hold_ttl_secs).ok_or(ConfigError::BadHoldTtl { got: hold_ttl_secs, max: MAX_HOLD_TTL_SECS })?;
        Ok(Self {
            capacity,
            hold_ttl_secs,
            tiers: Arc::default(),
            pools: Arc::default(),
            max_per_actor: None,
            late_payment: LatePayment::Refund,
            offer_ttl_secs: None,
            issue_tickets: false,
            rejection_alarm: false,
            max_extension_secs: 0,
            seat_price: None,
            seating: None,
        })
    }

    /// The same configuration (without tiers), selling each seat at `price`: the seller's
    /// price. A request's amount is then `price × quantity`, computed by the library; a
    /// request may omit it ([`HoldRequest::seats`](crate::holds::HoldRequest::seats)), and
    /// one that carries another amount or currency answers `PriceChanged` and changes
    /// nothing. Without a seat price (the default, Part 1) the request's amount is the
    /// hold's, as the caller priced it.
    pub fn with_seat_price(mut self, price: Money) -> Self {
        self.seat_price = Some(price);
        self
    }

    /// The same configuration with assigned seating ([`seating`](crate::seating)): seats are
    /// places of `map`, each of its section's tier. A seated tier's cap is its seat count; requests for
    /// it name seats or ask for the best available
    /// ([`Order::Seated`](crate::holds::Order::Seated)).
    pub fn with_seating(mut self, map: SeatMap) -> Self {
        self.seating = Some(Arc::new(map));
        self
    }

    /// The seat map, if the occurrence has assigned seating.
    pub fn seating(&self) -> Option<&SeatMap> {
        self.seating.as_deref()
    }

    /// Whether `tier` is sold as places of the seat map.
    pub fn is_seated(&self, tier: &TierName) -> bool {
        self.seating.as_ref().is_some_and(|m| m.is_seated(tier))
    }

    /// The price of one seat, if the occurrence sets one ([`with_seat_price`](Self::with_seat_price)).
    pub fn seat_price(&self) -> Option<Money> {
        self.seat_price
    }

    /// The same configuration with these tiers (requests must then name tiers in lines).
    pub fn with_tiers(mut self, tiers: Vec<Tier>) -> Self {
        self.tiers = Arc::new(tiers);
        self
    }

    /// The same configuration with these shared pools.
    pub fn with_pools(mut self, pools: Vec<Pool>) -> Self {
        self.pools = Arc::new(pools);
        self
    }

    /// The same configuration with a per-actor limit: an actor's live holds plus confirmed
    /// seats never exceed `max` — and repeat purchases are allowed up to it.
    pub fn with_max_per_actor(mut self, max: u32) -> Self {
        self.max_per_actor = Some(max);
        self
    }

    /// The same configuration with this late-payment policy.
    pub fn with_late_payment(mut self, policy: LatePayment) -> Self {
        self.late_payment = policy;
        self
    }

    /// The same configuration with this waiting-list offer TTL (default: the hold TTL).
    ///
    /// # Errors
    /// [`ConfigError::BadOfferTtl`] if it is not from 1 second to 30 days.
    pub fn with_offer_ttl_secs(mut self, secs: u64) -> Result<Self, ConfigError> {
        self.offer_ttl_secs = Some(ttl(secs).ok_or(ConfigError::BadOfferTtl { got: secs, max: MAX_HOLD_TTL_SECS })?);
        Ok(self)
    }

    /// The same configuration, issuing tickets (one per seat) when a booking is confirmed.
    pub fn with_tickets(mut self, issue: bool) -> Self {
        self.issue_tickets = issue;
        self
    }

    /// The same configuration, raising a `payment_rejected` event in the outbox (once per
    /// payment) when a `paid` result is [`Rejected`](crate::settlement::Settlement::Rejected)
    /// for its money, so the alert reaches whatever consumes the outbox, not only the
    /// webhook handler's logs. Off by default: a rejection changes nothing, and an
    /// occurrence opened without this option keeps that exactly (its outbox too).
    pub fn with_rejection_alarm(mut self, alarm: bool) -> Self {
        self.rejection_alarm = alarm;
        self
    }

    /// The same configuration, letting a live hold be extended by up to `secs` in all.
    ///
    /// # Errors
    /// [`ConfigError::BadMaxExtension`] past 30 days.
    pub fn with_max_extension_secs(mut self, secs: u64) -> Result<Self, ConfigError> {
        self.max_extension_secs = u32::try_from(secs)
            .ok()
            .filter(|s| *s <= MAX_HOLD_TTL_SECS)
            .ok_or(ConfigError::BadMaxExtension { got: secs, max: MAX_HOLD_TTL_SECS })?;
        Ok(self)
    }

    /// Check the configuration is consistent on its own: TTLs and the extension limit within
    /// range (again: a configuration read with serde skipped the constructors), unique tier
    /// and pool names, every pool a tier names declared, prices within their currencies'
    /// minor units, sizes within [`MAX_TIERS`] and [`MAX_POOLS`], a `max_per_actor` of at
    /// least 1.
    ///
    /// # Errors
    /// The [`ConfigError`] naming the first problem found.
    pub fn check(&self) -> Result<(), ConfigError> {
        // A configuration read with serde skipped the constructors' checks: repeat them.
        if !(1..=MAX_HOLD_TTL_SECS).contains(&self.hold_ttl_secs) {
            return Err(ConfigError::BadHoldTtl { got: u64::from(self.hold_ttl_secs), max: MAX_HOLD_TTL_SECS });
        }
        if let Some(t) = self.offer_ttl_secs.filter(|t| !(1..=MAX_HOLD_TTL_SECS).contains(t)) {
            return Err(ConfigError::BadOfferTtl { got: u64::from(t), max: MAX_HOLD_TTL_SECS });
        }
        if self.max_extension_secs > MAX_HOLD_TTL_SECS {
            return Err(ConfigError::BadMaxExtension {
                got: u64::from(self.max_extension_secs),
                max: MAX_HOLD_TTL_SECS,
            });
        }
        if self.tiers.len() > MAX_TIERS
            || self.pools.len() > MAX_POOLS
            || self.tiers.iter().any(|t| t.pools.len() > MAX_POOLS)
        {
            return Err(ConfigError::TooMany { max_tiers: MAX_TIERS, max_pools: MAX_POOLS });
        }
        if self.max_per_actor == Some(0) {
            return Err(ConfigError::BadMaxPerActor);
        }
        if let Some(p) = self.seat_price {
            if !self.tiers.is_empty() || p.currency.check_amount(p.amount).is_err() {
                return Err(ConfigError::BadSeatPrice);
            }
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if self.tiers[..i].iter().any(|o| o.tier == t.tier) {
                return Err(ConfigError::DuplicateTier(t.tier.clone()));
            }
            if t.price.currency.check_amount(t.price.amount).is_err() {
                return Err(ConfigError::BadPrice(t.tier.clone()));
            }
            for p in &t.pools {
                if !self.pools.iter().any(|d| &d.pool == p) {
                    return Err(ConfigError::UnknownPool { tier: t.tier.clone(), pool: p.clone() });
                }
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            if self.pools[..i].iter().any(|o| o.pool == p.pool) {
                return Err(ConfigError::DuplicatePool(p.pool.clone()));
            }
        }
        if let Some(map) = &self.seating {
            map.check(|t| self.tier(t).is_some())?;
        }
        Ok(())
    }

    /// Seats for sale.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How long an unpaid hold lasts, in seconds.
    pub fn hold_ttl_secs(&self) -> u32 {
        self.hold_ttl_secs
    }

    /// How long an unpaid hold lasts.
    pub fn hold_ttl(&self) -> Duration {
        Duration::seconds(i64::from(self.hold_ttl_secs))
    }

    /// The tiers (empty: the occurrence sells plain seats, priced by the request).
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The shared pools.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The per-actor limit, if any (and with it, repeat purchases).
    pub fn max_per_actor(&self) -> Option<u32> {
        self.max_per_actor
    }

    /// The late-payment policy.
    pub fn late_payment(&self) -> LatePayment {
        self.late_payment
    }

    /// How long a waiting-list offer lasts (the hold TTL unless set).
    pub fn offer_ttl(&self) -> Duration {
        Duration::seconds(i64::from(self.offer_ttl_secs.unwrap_or(self.hold_ttl_secs)))
    }

    /// Whether a payment refused for its money raises `payment_rejected`
    /// ([`OccurrenceConfig::with_rejection_alarm`]).
    pub fn rejection_alarm(&self) -> bool {
        self.rejection_alarm
    }

    /// Whether confirming a booking issues tickets.
    pub fn issue_tickets(&self) -> bool {
        self.issue_tickets
    }

    /// How much a live hold may be extended, in all.
    pub fn max_extension(&self) -> Duration {
        Duration::seconds(i64::from(self.max_extension_secs))
    }

    /// Whether the occurrence sells tiers.
    pub fn has_tiers(&self) -> bool {
        !self.tiers.is_empty()
    }

    /// The tier named `name`.
    pub fn tier(&self, name: &TierName) -> Option<&Tier> {
        self.tiers.iter().find(|t| &t.tier == name)
    }

    /// When a hold placed at `now` lapses.
    pub fn expiry_for(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.saturating_add(self.hold_ttl())
    }

    /// Every capacity dimension of the occurrence with its cap (`None`: unbounded — a tier
    /// without a cap of its own is still counted, so that its use can be seen).
    pub fn dims(&self) -> Vec<(Dim, Option<u64>)> {
        let mut out = Vec::with_capacity(1 + self.tiers.len() + self.pools.len());
        out.push((Dim::Total, Some(u64::from(self.capacity))));
        out.extend(self.tiers.iter().map(|t| (Dim::Tier(t.tier.clone()), self.tier_cap(t))));
        out.extend(self.pools.iter().map(|p| (Dim::Pool(p.pool.clone()), Some(u64::from(p.capacity)))));
        out
    }

    /// A tier's own cap: its declared capacity, and for a seated tier at most its seats.
    fn tier_cap(&self, t: &Tier) -> Option<u64> {
        let declared = t.capacity.map(u64::from);
        match &self.seating {
            Some(m) if m.is_seated(&t.tier) => {
                let seats = m.seats_of(&t.tier);
                Some(declared.map_or(seats, |d| d.min(seats)))
            }
            _ => declared,
        }
    }

    /// The cap of `dim`: `None` if the occurrence has no such dimension, `Some(None)` if it
    /// is unbounded.
    pub fn capacity_of(&self, dim: &Dim) -> Option<Option<u64>> {
        match dim {
            Dim::Total => Some(Some(u64::from(self.capacity))),
            Dim::Tier(t) => self.tier(t).map(|t| self.tier_cap(t)),
            Dim::Pool(p) => self.pools.iter().find(|d| &d.pool == p).map(|d| Some(u64::from(d.capacity))),
        }
    }

    /// The dimensions a seat of `tier` counts against (`None`: a plain seat, the total only).
    pub fn dims_of(&self, tier: Option<&TierName>) -> Vec<Dim> {
        self.seat_dims(tier).into_vec()
    }

    /// [`OccurrenceConfig::dims_of`], without allocating for the usual few.
    pub(crate) fn seat_dims(&self, tier: Option<&TierName>) -> Dims {
        let mut out = Dims::new();
        out.push(Dim::Total);
        if let Some(t) = tier.and_then(|t| self.tier(t)) {
            out.push(Dim::Tier(t.tier.clone()));
            out.extend(t.pools.iter().cloned().map(Dim::Pool));
        }
        out
    }

    /// This configuration with `tier`'s price set to `price` (`None` if there is no such
    /// tier). Used by [`decide_set_price`].
    fn with_price(&self, tier: &TierName, price: Money) -> Option<Self> {
        let mut next = self.clone();
        Arc::make_mut(&mut next.tiers).iter_mut().find(|t| &t.tier == tier)?.price = price;
        Some(next)
    }
}

/// The dimensions one seat counts against (the total, a tier, its pools), inline.
pub(crate) type Dims = smallvec::SmallVec<[Dim; 4]>;

/// A capacity dimension: something with a cap that seats count against. Serialized as its
/// [`Dim::to_key`] text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The occurrence's `capacity`.
    Total,
    /// One tier's own cap (or, uncapped, its count).
    Tier(TierName),
    /// A shared pool.
    Pool(PoolName),
}

impl Dim {
    /// A stable text form for storage: `total`, `tier:NAME`, `pool:NAME`.
    pub fn to_key(&self) -> String {
        match self {
            Self::Total => "total".to_owned(),
            Self::Tier(t) => format!("tier:{t}"),
            Self::Pool(p) => format!("pool:{p}"),
        }
    }

    /// Parse [`Dim::to_key`]'s form.
    pub fn from_key(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "total" => Some(Self::Total),
            Some(("tier", t)) => TierName::new(t).ok().map(Self::Tier),
            Some(("pool", p)) => PoolName::new(p).ok().map(Self::Pool),
            _ => None,
        }
    }
}

impl Serialize for Dim {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_key())
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dim::from_key(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown dimension {s:?}")))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

/// One line of an order: `quantity` seats of `tier`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    /// The tier.
    pub tier: TierName,
    /// Seats of it.
    pub quantity: u32,
}

/// Why an order's lines cannot be priced. Nothing was changed; fix the request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PricingError {
    /// A line names a tier the occurrence does not sell.
    #[error("unknown tier {0}")]
    UnknownTier(TierName),
    /// The order mixes tiers priced in different currencies: split it into one order per
    /// currency.
    #[error("tiers of different currencies ({0} and {1}) in one order")]
    MixedCurrencies(Currency, Currency),
    /// The total is larger than an amount can be.
    #[error("the order's total is too large")]
    TotalTooLarge,
    /// The order has no lines.
    #[error("an order needs at least one line")]
    NoLines,
}

impl Classify for PricingError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoLines => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// The price of an order's lines at the current tier prices: the total, and each line with
/// its unit price (for the checkout request).
///
/// # Errors
/// [`PricingError`] for an unknown tier, mixed currencies or an overflowing total.
pub fn price_lines(config: &OccurrenceConfig, lines: &[Line]) -> Result<(Money, Vec<CheckoutLine>), PricingError> {
    let mut total: Option<Money> = None;
    let mut priced = Vec::with_capacity(lines.len());
    for line in lines {
        let tier = config.tier(&line.tier).ok_or_else(|| PricingError::UnknownTier(line.tier.clone()))?;
        let cost = tier.price.checked_mul(line.quantity).ok_or(PricingError::TotalTooLarge)?;
        total = Some(match total {
            None => cost,
            Some(t) if t.currency != cost.currency => {
                return Err(PricingError::MixedCurrencies(t.currency, cost.currency));
            }
            Some(t) => t.checked_add(cost).ok_or(PricingError::TotalTooLarge)?,
        });
        // The configuration's name, not the request's: every hold of a tier shares one copy.
        priced.push(CheckoutLine { tier: tier.tier.clone(), quantity: line.quantity, unit_price: tier.price.amount });
    }
    Ok((total.ok_or(PricingError::NoLines)?, priced))
}

/// Why a price change was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SetPriceError {
    /// The occurrence does not sell this tier.
    #[error("unknown tier {0}")]
    UnknownTier(TierName),
    /// The tier is opened with `lock_price_while_held` and a live hold has seats of it: try
    /// again once nobody is paying for it.
    #[error("tier {0} is locked: a live hold has seats of it")]
    Locked(TierName),
}

impl Classify for SetPriceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownTier(_) => ErrorKind::Unprocessable,
            Self::Locked(_) => ErrorKind::Conflict,
        }
    }
}

/// Decide a price change: the new configuration, or why not. `live_held` is the number of
/// seats of `tier` in live holds (lapsed ones excluded: they never block).
///
/// Changing a price never changes the amount of an existing hold: holds carry their own.
///
/// # Errors
/// [`SetPriceError`].
pub fn decide_set_price(
    config: &OccurrenceConfig,
    tier: &TierName,
    price: Money,
    live_held: u64,
) -> Result<OccurrenceConfig, SetPriceError> {
    let t = config.tier(tier).ok_or_else(|| SetPriceError::UnknownTier(tier.clone()))?;
    if t.lock_price_while_held && live_held > 0 && t.price != price {
        return Err(SetPriceError::Locked(tier.clone()));
    }
    config.with_price(tier, price).ok_or_else(|| SetPriceError::UnknownTier(tier.clone()))
}

/// Seats of `tier` in live holds: its held seats with the lapsed holds counted out. `Err(n)`:
/// load up to `n` of the occurrence's due records first. Only a price lock needs to know
/// (lapsed holds never lock a price); a commit decided on it guards the tier's counters
/// ([`Change::unchanged`]), and the due records it read are guarded by their versions.
pub(crate) fn live_held(
    view: &impl Loaded,
    occ: &Occurrence,
    tier: &TierName,
    now: OffsetDateTime,
) -> Result<u64, usize> {
    let held = occ.counters.get(&Dim::Tier(tier.clone())).held;
    if held == 0 {
        return Ok(0);
    }
    let Some((due, complete)) = view.due() else {
        return Err(usize::try_from(held).unwrap_or(usize::MAX).saturating_add(16));
    };
    let lapsed: u64 = due
        .iter()
        .filter_map(|r| match r {
            Record::Booking(h) if h.view(now) == crate::holds::HoldView::Lapsed => {
                Some(h.lines.iter().filter(|l| &l.tier == tier).map(|l| u64::from(l.quantity)).sum::<u64>())
            }
            _ => None,
        })
        .sum();
    let live = held.saturating_sub(lapsed);
    if live > 0 && !complete {
        // Some lapsed holds may be past what was loaded: look further before saying locked.
        return Err(due.len().saturating_mul(2).saturating_add(16));
    }
    Ok(live)
}

/// Check that replacing `old` by `new` strands nothing, given how many seats each dimension
/// has in use (`in_use(dim)`: held, sold, blocked or offered).
///
/// # Errors
/// [`ConfigError::TierInUse`], [`ConfigError::PoolInUse`] or
/// [`ConfigError::PlainSeatsInUse`].
pub fn check_reconfigure(
    old: &OccurrenceConfig,
    new: &OccurrenceConfig,
    in_use: impl Fn(&Dim) -> u64,
) -> Result<(), ConfigError> {
    for t in old.tiers.iter() {
        let used = in_use(&Dim::Tier(t.tier.clone())) > 0;
        match new.tier(&t.tier) {
            None if used => return Err(ConfigError::TierInUse(t.tier.clone())),
            Some(n) if used && n.pools != t.pools => return Err(ConfigError::TierInUse(t.tier.clone())),
            _ => {}
        }
    }
    for p in old.pools.iter() {
        if !new.pools.iter().any(|n| n.pool == p.pool) && in_use(&Dim::Pool(p.pool.clone())) > 0 {
            return Err(ConfigError::PoolInUse(p.pool.clone()));
        }
    }
    // The rows' claims name seats of the old map: it stays while any seated tier counts seats.
    if old.seating != new.seating {
        let seated_in_use =
            old.tiers.iter().filter(|t| old.is_seated(&t.tier)).any(|t| in_use(&Dim::Tier(t.tier.clone())) > 0);
        if seated_in_use {
            return Err(ConfigError::SeatingInUse);
        }
    }
    Ok(())
}

/// Seats an organiser took out of sale. A block counts like a sold seat for every capacity
/// it touches and never expires; [`unblock`](crate::Engine::unblock) gives them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The block's name.
    pub block: BlockName,
    /// Seats blocked.
    pub seats: u32,
    /// The tier they are taken from, if any (they then count against its cap and pools too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// The seats blocked, for a block of named seats (each counts against its section's
    /// tier); empty for a counted block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seat_ids: Vec<SeatId>,
    /// When it was placed.
    #[serde(with = "crate::records::nanos")]
    pub at: OffsetDateTime,
}

impl Block {
    /// The seat changes of `per_seat` for every seat of this block.
    pub fn deltas(&self, config: &OccurrenceConfig, per_seat: UsageDelta) -> Deltas {
        let mut d = Deltas::new();
        if self.seat_ids.is_empty() {
            let n = i64::from(self.seats);
            let u = UsageDelta {
                held: per_seat.held * n,
                confirmed: per_seat.confirmed * n,
                blocked: per_seat.blocked * n,
                offered: per_seat.offered * n,
            };
            d.add(&config.seat_dims(self.tier.as_ref()), u);
        } else {
            for s in &self.seat_ids {
                let tier = config.seating().and_then(|m| m.tier_of(s));
                d.add(&config.seat_dims(tier), per_seat);
            }
        }
        d
    }
}

/// Why a block or unblock was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlockRefusal {
    /// No occurrence has this key.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// The block names a tier the occurrence does not sell.
    #[error("unknown tier {0}")]
    UnknownTier(TierName),
    /// A block of this name exists with other seats or another tier: unblock it first, or
    /// use another name. (Repeating the same block is answered `Ok`.)
    #[error("block {0} exists with other seats")]
    Exists(BlockName),
    /// No block of this name exists.
    #[error("no block named {0}")]
    Unknown(BlockName),
    /// Zero seats, or more than [`MAX_QUANTITY`](crate::contract::MAX_QUANTITY).
    #[error("a block must take 1 to {max} seats")]
    BadSeats {
        /// The maximum.
        max: u32,
    },
    /// Named seats the map does not have, named twice, at an occurrence without a map; or a
    /// counted block of a seated tier (name its seats instead).
    #[error(transparent)]
    Seat(#[from] SeatError),
}

impl Classify for BlockRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::Unknown(_) => ErrorKind::NotFound,
            Self::Exists(_) => ErrorKind::Conflict,
            Self::BadSeats { .. } => ErrorKind::BadRequest,
            Self::Seat(s) => s.kind(),
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// What a block answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlockOutcome {
    /// The seats are blocked (or were already, by this same block).
    Blocked,
    /// Not enough seats are free for the block.
    Full,
    /// The block's seats were given back.
    Unblocked,
    /// A named seat is held, sold or blocked: nothing was blocked.
    SeatTaken {
        /// The first such seat, in the order named.
        seat: SeatId,
    },
}

/// Decide blocking `seats` seats (of `tier`) under the name `block`. Lapsed holds and offers
/// are counted out as for a request; the waiting list's offers are counted in.
///
/// # Errors
/// [`BlockRefusal`].
pub fn decide_block(
    view: &impl Loaded,
    block: &BlockName,
    seats: u32,
    tier: Option<&TierName>,
    now: OffsetDateTime,
) -> Result<Step<BlockOutcome>, BlockRefusal> {
    let occ = view.occurrence().ok_or(BlockRefusal::UnknownOccurrence)?;
    if !(1..=crate::contract::MAX_QUANTITY).contains(&seats) {
        return Err(BlockRefusal::BadSeats { max: crate::contract::MAX_QUANTITY });
    }
    if let Some(t) = tier {
        if occ.config.tier(t).is_none() {
            return Err(BlockRefusal::UnknownTier(t.clone()));
        }
        if occ.config.is_seated(t) {
            return Err(SeatError::SeatedTier(t.clone()).into());
        }
    }
    if let Some(existing) = view.block(block) {
        if existing.seats == seats && existing.tier.as_ref() == tier && existing.seat_ids.is_empty() {
            return Ok(Step::Answer(BlockOutcome::Blocked));
        }
        return Err(BlockRefusal::Exists(block.clone()));
    }
    let b = Block { block: block.clone(), seats, tier: tier.cloned(), seat_ids: Vec::new(), at: now };
    place_block(view, occ, b, now)
}

/// Decide blocking the named seats `seat_ids` (the sound desk) under the name `block`:
/// all of them or none (`SeatTaken` names the first that is held, sold or blocked).
///
/// # Errors
/// [`BlockRefusal`].
pub fn decide_block_seats(
    view: &impl Loaded,
    block: &BlockName,
    seat_ids: &[SeatId],
    now: OffsetDateTime,
) -> Result<Step<BlockOutcome>, BlockRefusal> {
    let occ = view.occurrence().ok_or(BlockRefusal::UnknownOccurrence)?;
    let map = occ.config.seating().ok_or(SeatError::NotSeated)?;
    let seats = u32::try_from(seat_ids.len()).unwrap_or(u32::MAX);
    if !(1..=crate::contract::MAX_QUANTITY).contains(&seats) {
        return Err(BlockRefusal::BadSeats { max: crate::contract::MAX_QUANTITY });
    }
    if let Some(existing) = view.block(block) {
        if existing.seat_ids == seat_ids {
            return Ok(Step::Answer(BlockOutcome::Blocked));
        }
        return Err(BlockRefusal::Exists(block.clone()));
    }
    match crate::seating::choose_named(view, map, seat_ids, false, now)? {
        crate::seating::Chosen::Seats(_) => {}
        crate::seating::Chosen::Load(keys) => return Ok(Step::Load(keys)),
        crate::seating::Chosen::Taken(seat) | crate::seating::Chosen::Gap(seat) => {
            return Ok(Step::Answer(BlockOutcome::SeatTaken { seat }));
        }
        crate::seating::Chosen::Full(_) => return Ok(Step::Answer(BlockOutcome::Full)),
    }
    let b = Block { block: block.clone(), seats, tier: None, seat_ids: seat_ids.to_vec(), at: now };
    place_block(view, occ, b, now)
}

fn place_block(
    view: &impl Loaded,
    occ: &Occurrence,
    b: Block,
    now: OffsetDateTime,
) -> Result<Step<BlockOutcome>, BlockRefusal> {
    let mut change = Change::default();
    // Seats the waiting list is owed are offered before a block may take any.
    let offered_first = match offer_before_deciding(view, occ, &mut change, now) {
        Ok(offered) => offered,
        Err(n) => return Ok(Step::LoadDue(n)),
    };
    let needs: Vec<Need> = b
        .deltas(&occ.config, UsageDelta::blocked(1))
        .iter()
        .map(|(dim, d)| (smallvec::smallvec![dim.clone()], *d))
        .collect();
    match make_room(view, occ, &mut change, &needs, None, now) {
        Room::Fits => {}
        Room::NeedDue(n) => return Ok(Step::LoadDue(n)),
        Room::Full { offered, .. } => {
            return Ok(if offered || offered_first {
                Step::Write(change, BlockOutcome::Full)
            } else {
                Step::Answer(BlockOutcome::Full)
            });
        }
    }
    change.put(Record::Block(b));
    Ok(Step::Write(change, BlockOutcome::Blocked))
}

/// Decide giving a block's seats back; they go to the waiting list first, in the same
/// commit (the engine's cross-cutting step settles the list at `_now` for every change that
/// frees seats; the decision itself needs no clock).
///
/// # Errors
/// [`BlockRefusal::Unknown`] if there is no such block.
pub fn decide_unblock(
    view: &impl Loaded,
    block: &BlockName,
    _now: OffsetDateTime,
) -> Result<Step<BlockOutcome>, BlockRefusal> {
    let occ = view.occurrence().ok_or(BlockRefusal::UnknownOccurrence)?;
    let b = view.block(block).ok_or_else(|| BlockRefusal::Unknown(block.clone()))?;
    let mut change = Change::default();
    change.deltas.extend(&b.deltas(&occ.config, UsageDelta::blocked(1).negated()));
    change.deletes.push(RecordKey::Block(block.clone()));
    Ok(Step::Write(change, BlockOutcome::Unblocked))
}

/// Decide (re)configuring an occurrence: create it, or replace its configuration if that
/// strands nothing ([`check_reconfigure`]). Seats a larger capacity frees go to the waiting
/// list in the same commit. Answers whether anything changed.
///
/// # Errors
/// [`ConfigError`].
pub fn decide_configure(
    view: &impl Loaded,
    config: &OccurrenceConfig,
    now: OffsetDateTime,
) -> Result<Step<bool>, ConfigError> {
    config.check()?;
    let mut change = Change::default();
    let Some(occ) = view.occurrence() else {
        change.config = Some(config.clone());
        return Ok(Step::Write(change, true));
    };
    if &occ.config == config {
        return Ok(Step::Answer(false));
    }
    // A tier locked while held keeps its price while a live hold has seats of it, whichever
    // way the price would change; the decision guards the tier's counters it read.
    for t in occ.config.tiers.iter().filter(|t| t.lock_price_while_held) {
        if config.tier(&t.tier).is_some_and(|n| n.price != t.price) {
            match live_held(view, occ, &t.tier, now) {
                Err(n) => return Ok(Step::LoadDue(n)),
                Ok(0) => {}
                Ok(_) => return Err(ConfigError::PriceLocked(t.tier.clone())),
            }
            let dim = Dim::Tier(t.tier.clone());
            change.unchanged.push((dim.clone(), occ.counters.get(&dim)));
        }
    }
    if let Err(e) = check_reconfigure(&occ.config, config, |d| occ.counters.get(d).total()) {
        if !matches!(e, ConfigError::TierInUse(_) | ConfigError::PoolInUse(_) | ConfigError::SeatingInUse) {
            return Err(e);
        }
        // Lapsed holds and offers do not keep a tier or pool in use (invariant 2): end them
        // in this commit and look again.
        let Some((due, complete)) = view.due() else {
            let held: u64 = occ.counters.iter().map(|(_, u)| u.held + u.offered).max().unwrap_or(0);
            return Ok(Step::LoadDue(usize::try_from(held).unwrap_or(usize::MAX).saturating_add(16)));
        };
        for rec in due {
            if let Record::Booking(h) = rec {
                if let Some((expired, freed, event)) = h.lapse(&occ.config, now) {
                    change.deltas.extend(&freed);
                    change.put(Record::Booking(expired));
                    change.events.push(event);
                }
            }
        }
        if let Some(w) = view.waitlist() {
            let mut w = w.clone();
            if waitlist::lapse_offers(occ, &mut w, &mut change, now) {
                change.put(Record::Waitlist(w));
            }
        }
        let in_use = |d: &Dim| {
            u64::try_from(i128::from(occ.counters.get(d).total()) + i128::from(change.deltas.get(d).net())).unwrap_or(0)
        };
        if check_reconfigure(&occ.config, config, in_use).is_err() {
            if !complete {
                return Ok(Step::LoadDue(due.len().saturating_mul(2).saturating_add(16)));
            }
            return Err(e);
        }
    }
    // A tier whose pools change was found counting nothing (lapsed seats counted out):
    // guard that reading, since seats placed on the tier meanwhile would not change the
    // occurrence's version. (Dropped tiers and pools are checked by the store itself.)
    for t in occ.config.tiers.iter() {
        if config.tier(&t.tier).is_some_and(|n| n.pools != t.pools) {
            let dim = Dim::Tier(t.tier.clone());
            if !change.unchanged.iter().any(|(d, _)| *d == dim) {
                change.unchanged.push((dim.clone(), occ.counters.get(&dim)));
            }
        }
    }
    change.config = Some(config.clone());
    // A larger capacity frees seats no delta shows, so the engine's step would not see it:
    // the waiting list is settled here, under the new configuration.
    let next = Occurrence { config: config.clone(), ..occ.clone() };
    waitlist::settle_waitlist(&next, view.waitlist(), &mut change, now, None);
    Ok(Step::Write(change, true))
}

/// What an occurrence has left, in seats (quantity-weighted), as a reader sees it at one
/// instant: lapsed holds and lapsed offers never show (invariant 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Seats for sale (the occurrence's capacity).
    pub capacity: u32,
    /// Seats in live holds.
    pub held: u64,
    /// Seats sold.
    pub confirmed: u64,
    /// Seats blocked by the organiser.
    pub blocked: u64,
    /// Seats set aside for live waiting-list offers.
    pub offered: u64,
    /// Seats a new hold could take now (never negative, even after the capacity was lowered
    /// below what is taken).
    pub available: u64,
    /// Per tier, for an occurrence with tiers.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tiers: std::collections::BTreeMap<TierName, TierAvailability>,
}

/// What one tier has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierAvailability {
    /// Seats of this tier a new request could take now: the least room over every capacity
    /// it touches.
    pub available: u64,
    /// Seats of this tier in live holds.
    pub held: u64,
    /// Seats of this tier sold.
    pub confirmed: u64,
}

/// Availability of `occ` at `now`, given its due records (lapsed holds and offers, from the
/// expiry index; all of them) and its waiting list: seats lapsed holds and offers would
/// free go to waiting entries first (as the next writing operation will give them), so they
/// do not show as available to a walk-in.
pub fn availability(
    occ: &Occurrence,
    due: &[Record],
    waitlist: Option<&crate::waitlist::Waitlist>,
    now: OffsetDateTime,
) -> Availability {
    let cfg = &occ.config;
    let mut lapsed = Deltas::new();
    for r in due {
        match r {
            Record::Booking(h) if h.view(now) == crate::holds::HoldView::Lapsed => {
                lapsed.extend(&h.deltas(cfg, UsageDelta::held(1).negated()));
            }
            Record::Waitlist(w) => {
                for e in w.entries.iter() {
                    if let Some(o) = e.offer.as_ref().filter(|o| o.expires_at <= now) {
                        lapsed.add(&cfg.seat_dims(e.tier.as_ref()), UsageDelta::offered(o.seats).negated());
                    }
                }
            }
            _ => {}
        }
    }
    // The seats the waiting list is owed once lapsed offers pass on and lapsed holds end.
    if let Some(w) = waitlist {
        let mut w = w.clone();
        // Entries whose offers lapsed leave (their seats are already counted out above).
        if w.entries.iter().any(|e| e.offer.as_ref().is_some_and(|o| o.expires_at <= now)) {
            Arc::make_mut(&mut w.entries).retain(|e| e.offer.as_ref().is_none_or(|o| o.expires_at > now));
        }
        let mut change = Change { deltas: lapsed, ..Change::default() };
        crate::waitlist::offer_free_seats(occ, &mut w, &mut change, now, None);
        lapsed = change.deltas;
    }
    let usage = |d: &Dim| occ.counters.get(d).plus(&lapsed.get(d)).unwrap_or_default();
    let room = |d: &Dim| occ.room(d, &lapsed).map(|r| u64::try_from(r.max(0)).unwrap_or(0));
    let total = usage(&Dim::Total);
    let tiers = cfg
        .tiers
        .iter()
        .map(|t| {
            let dims = cfg.seat_dims(Some(&t.tier));
            let available = dims.iter().filter_map(&room).min().unwrap_or(0);
            let u = usage(&Dim::Tier(t.tier.clone()));
            (t.tier.clone(), TierAvailability { available, held: u.held, confirmed: u.confirmed })
        })
        .collect();
    Availability {
        capacity: cfg.capacity,
        held: total.held,
        confirmed: total.confirmed,
        blocked: total.blocked,
        offered: total.offered,
        available: room(&Dim::Total).unwrap_or(0),
        tiers,
    }
}

/// A block is stored under its name.
impl crate::records::RecordBody for Block {
    fn key(&self) -> RecordKey {
        RecordKey::Block(self.block.clone())
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::Block(b) if *b == self.block)
    }
}
