//! Every operation the engine runs through its one loop: which occurrence, which records to
//! load first, and which pure decision to call. Nothing here decides anything.

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::run::{Operation, View};
use crate::catalogue::{
    BlockOutcome, BlockRefusal, ConfigError, OccurrenceConfig, SetPriceError, decide_block, decide_block_seats,
    decide_configure, decide_set_price, decide_unblock,
};
use crate::contract::{ActorId, BlockName, CheckoutRequest, Money, OccKey, OpKey, PaymentResult, Ref, TierName};
use crate::holds::{
    AbandonOutcome, CancelOutcome, CancelRefusal, ExtendRefusal, HoldRequest, RequestOutcome, RequestRefusal,
    decide_abandon, decide_cancel, decide_expiry, decide_extend, decide_request, request_keys,
};
use crate::opkeys::{KeyedRefusal, Replayed, decide_keyed};
use crate::records::{Keys, Loaded, RecordKey, Step};
use crate::settlement::{Settlement, decide_settlement, settle_keys};
use crate::tickets::{CheckIn, decide_check_in};
use crate::waitlist::{Joined, WaitlistRefusal, decide_join, decide_leave};

/// Never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("never")]
pub enum Never {}

/// A write that may run under an operation key: it names itself, so that a key used for
/// another command is told apart from a retry of the same one.
pub(crate) trait Command: Operation {
    /// The operation and its arguments, as text (never a secret: a ticket by its id).
    fn command(&self) -> String;
}

/// Any [`Command`] under an operation key ([`crate::opkeys`]).
pub(crate) struct Keyed<'a, O> {
    pub(crate) op: &'a O,
    pub(crate) op_key: &'a OpKey,
}

impl<O> Operation for Keyed<'_, O>
where
    O: Command,
    O::Output: Serialize + DeserializeOwned,
{
    type Output = Replayed<O::Output>;
    type Refusal = KeyedRefusal<O::Refusal>;
    fn occ_key(&self) -> &OccKey {
        self.op.occ_key()
    }
    fn keys(&self) -> Keys {
        let mut keys = self.op.keys();
        keys.push(RecordKey::Op(self.op_key.clone()));
        keys
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<Self::Output>, Self::Refusal> {
        decide_keyed(view, self.op.occ_key(), self.op_key, &self.op.command(), now, || self.op.decide(view, now))
    }
}

pub(crate) struct Configure<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) config: &'a OccurrenceConfig,
    pub(crate) create_only: bool,
}

impl Operation for Configure<'_> {
    type Output = bool;
    type Refusal = OpenRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Waitlist]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<bool>, OpenRefusal> {
        if self.create_only && view.occurrence().is_some() {
            return Err(OpenRefusal::Exists);
        }
        decide_configure(view, self.config, now).map_err(OpenRefusal::Config)
    }
}

/// Why opening or configuring an occurrence was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenRefusal {
    /// The configuration is inconsistent, or would strand seats (see the variant).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// [`create`](crate::Engine::create) found the occurrence already there: use
    /// [`open`](crate::Engine::open) to change it.
    #[error("the occurrence exists already")]
    Exists,
}

pub(crate) struct Request<'a>(pub(crate) &'a HoldRequest);

impl Operation for Request<'_> {
    type Output = RequestOutcome;
    type Refusal = RequestRefusal;
    fn occ_key(&self) -> &OccKey {
        &self.0.occ_key
    }
    fn keys(&self) -> Keys {
        request_keys(self.0)
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<RequestOutcome>, RequestRefusal> {
        decide_request(view, self.0, now)
    }
}

pub(crate) struct Settle<'a>(pub(crate) &'a PaymentResult);

impl Operation for Settle<'_> {
    type Output = Settlement;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        &self.0.occ_key
    }
    fn keys(&self) -> Keys {
        settle_keys(self.0)
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<Settlement>, Never> {
        Ok(decide_settlement(view, self.0, now))
    }
}

pub(crate) struct Expire<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) key: &'a RecordKey,
}

impl Operation for Expire<'_> {
    type Output = u32;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        let mut keys = smallvec::smallvec![self.key.clone()];
        if self.key != &RecordKey::Waitlist {
            keys.push(RecordKey::Waitlist);
        }
        keys
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<u32>, Never> {
        Ok(decide_expiry(view, self.key, now))
    }
}

pub(crate) struct SetPrice<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) tier: &'a TierName,
    pub(crate) price: Money,
}

/// Why a price change failed: no occurrence, or the change itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceRefusal {
    /// No occurrence has this key.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// The change was refused.
    #[error(transparent)]
    Price(#[from] SetPriceError),
}

impl Command for SetPrice<'_> {
    fn command(&self) -> String {
        format!("set_price {} {}", self.tier, self.price)
    }
}

impl Operation for SetPrice<'_> {
    type Output = ();
    type Refusal = PriceRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        Keys::new()
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<()>, PriceRefusal> {
        let occ = view.occurrence().ok_or(PriceRefusal::UnknownOccurrence)?;
        let locking = occ.config.tier(self.tier).is_some_and(|t| t.lock_price_while_held);
        let live = if locking {
            match crate::catalogue::live_held(view, occ, self.tier, now) {
                Ok(live) => live,
                Err(n) => return Ok(Step::LoadDue(n)),
            }
        } else {
            0
        };
        let config = decide_set_price(&occ.config, self.tier, self.price, live)?;
        if config == occ.config {
            return Ok(Step::Answer(()));
        }
        let mut change = crate::records::Change { config: Some(config), ..Default::default() };
        if locking {
            // The price may change only while no live hold has the tier: guard the counters
            // read (the lapsed holds counted out were loaded, so their versions are guarded
            // too). A configuration change alone would not notice a hold placed since.
            let dim = crate::catalogue::Dim::Tier(self.tier.clone());
            change.unchanged.push((dim.clone(), occ.counters.get(&dim)));
        }
        Ok(Step::Write(change, ()))
    }
}

pub(crate) struct BlockOp<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) block: &'a BlockName,
    pub(crate) what: BlockWhat<'a>,
}

/// What a [`BlockOp`] does.
pub(crate) enum BlockWhat<'a> {
    /// Block a count of seats (of a tier).
    Count(u32, Option<&'a TierName>),
    /// Block these named seats.
    Seats(&'a [crate::seating::SeatId]),
    /// Give the block's seats back.
    Unblock,
}

impl Command for BlockOp<'_> {
    fn command(&self) -> String {
        match self.what {
            BlockWhat::Count(seats, tier) => format!("block {} x{seats} tier={tier:?}", self.block),
            BlockWhat::Seats(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                format!("block {} seats={}", self.block, ids.join(","))
            }
            BlockWhat::Unblock => format!("unblock {}", self.block),
        }
    }
}

impl Operation for BlockOp<'_> {
    type Output = BlockOutcome;
    type Refusal = BlockRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Block(self.block.clone()), RecordKey::Waitlist]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<BlockOutcome>, BlockRefusal> {
        match self.what {
            BlockWhat::Count(seats, tier) => decide_block(view, self.block, seats, tier, now),
            BlockWhat::Seats(ids) => decide_block_seats(view, self.block, ids, now),
            BlockWhat::Unblock => decide_unblock(view, self.block, now),
        }
    }
}

pub(crate) struct CheckInOp<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) hold_ref: &'a Ref,
    pub(crate) index: u32,
}

impl Command for CheckInOp<'_> {
    fn command(&self) -> String {
        format!("check_in {}", crate::tickets::ticket_id(self.hold_ref, self.index))
    }
}

impl Operation for CheckInOp<'_> {
    type Output = CheckIn;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Booking(self.hold_ref.clone())]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<CheckIn>, Never> {
        Ok(decide_check_in(view, self.hold_ref, self.index, now))
    }
}

pub(crate) struct Cancel<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) hold_ref: &'a Ref,
    pub(crate) tickets: Option<&'a [u32]>,
    pub(crate) refund: Option<Money>,
}

impl Command for Cancel<'_> {
    fn command(&self) -> String {
        let refund = self.refund.map(|m| m.to_string());
        format!("cancel {} tickets={:?} refund={refund:?}", self.hold_ref, self.tickets)
    }
}

impl Operation for Cancel<'_> {
    type Output = CancelOutcome;
    type Refusal = CancelRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Booking(self.hold_ref.clone()), RecordKey::Waitlist]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<CancelOutcome>, CancelRefusal> {
        decide_cancel(view, self.hold_ref, self.tickets, self.refund, now)
    }
}

pub(crate) struct Wait<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) actor: &'a ActorId,
    pub(crate) tier: Option<&'a TierName>,
    /// `None`: leave.
    pub(crate) seats: Option<u32>,
}

impl Command for Wait<'_> {
    fn command(&self) -> String {
        match self.seats {
            Some(seats) => format!("join {} tier={:?} x{seats}", self.actor, self.tier),
            None => format!("leave {} tier={:?}", self.actor, self.tier),
        }
    }
}

/// What joining or leaving answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WaitOutcome {
    Joined(Joined),
    Left(bool),
}

impl Operation for Wait<'_> {
    type Output = WaitOutcome;
    type Refusal = WaitlistRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Waitlist]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<WaitOutcome>, WaitlistRefusal> {
        Ok(match self.seats {
            Some(seats) => map_step(decide_join(view, self.actor, self.tier, seats, now)?, WaitOutcome::Joined),
            None => map_step(decide_leave(view, self.actor, self.tier, now)?, WaitOutcome::Left),
        })
    }
}

pub(crate) struct Extend<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) hold_ref: &'a Ref,
    pub(crate) by: Duration,
}

impl Command for Extend<'_> {
    fn command(&self) -> String {
        format!("extend {} by={}", self.hold_ref, self.by)
    }
}

impl Operation for Extend<'_> {
    type Output = CheckoutRequest;
    type Refusal = ExtendRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Booking(self.hold_ref.clone())]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<CheckoutRequest>, ExtendRefusal> {
        decide_extend(view, self.hold_ref, self.by, now)
    }
}

pub(crate) struct Abandon<'a> {
    pub(crate) occ_key: &'a OccKey,
    pub(crate) actor: &'a ActorId,
    pub(crate) hold_ref: &'a Ref,
}

impl Command for Abandon<'_> {
    fn command(&self) -> String {
        format!("abandon {} {}", self.actor, self.hold_ref)
    }
}

impl Operation for Abandon<'_> {
    type Output = AbandonOutcome;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![
            RecordKey::Booking(self.hold_ref.clone()),
            RecordKey::Actor(self.actor.clone()),
            RecordKey::Waitlist
        ]
    }
    fn decide(&self, view: &View, now: OffsetDateTime) -> Result<Step<AbandonOutcome>, Never> {
        Ok(decide_abandon(view, self.actor, self.hold_ref, now))
    }
}

fn map_step<T, U>(s: Step<T>, f: impl FnOnce(T) -> U) -> Step<U> {
    match s {
        Step::Answer(t) => Step::Answer(f(t)),
        Step::Write(c, t) => Step::Write(c, f(t)),
        Step::Load(k) => Step::Load(k),
        Step::LoadDue(n) => Step::LoadDue(n),
    }
}
