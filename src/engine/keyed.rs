//! Writes under an operation key ([`crate::opkeys`]): [`AsyncEngine::with_op_key`] and
//! [`Engine::with_op_key`] lend a handle whose writes answer [`Replayed`]. One generic path
//! ([`WithOpKey::run`], over [`AsyncEngine::run`]) runs every write, keyed or not; the named
//! methods here and on the engines are thin sugar over it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::Duration;

use super::block_on::block_on;
use super::error::OpError;
use super::{
    AsyncEngine, BlockError, CancelError, Engine, ExtendError, PriceError, TicketError, TicketRefusal, WaitlistError,
};
use crate::catalogue::{BlockCount, BlockOutcome, BlockSeats, SetPrice, Unblock};
use crate::clock::Clock;
use crate::contract::{ActorId, BlockName, CheckoutRequest, Money, OccKey, OpKey, Ref, TierName};
use crate::holds::{Abandon, AbandonOutcome, Cancel, CancelOutcome, Extend};
use crate::operation::{Command, Never};
use crate::opkeys::{Keyed, KeyedRefusal, Replayed};
use crate::seating::SeatId;
use crate::store::{AsyncStore, Store, StoreError};
use crate::tickets::{CheckIn, Scan};
use crate::waitlist::{Join, Joined, Leave};

impl<S: AsyncStore, C: Clock> AsyncEngine<S, C> {
    /// The writes of this engine under the operation key `op_key` (every write is safe to
    /// retry): the first call is carried out and its answer recorded in
    /// the same commit; a later call with the same key and the same command answers that
    /// first answer with `replayed: true` and changes nothing; the same key with another
    /// command is [`OpError::OpKeyReused`]. A refusal (a typed error) is not recorded.
    /// Keys are scoped to the occurrence; see [`crate::opkeys`].
    ///
    /// ```
    /// # use seathold::{Engine, MemoryStore};
    /// # use seathold::catalogue::OccurrenceConfig;
    /// # use seathold::contract::{BlockName, OccKey, OpKey};
    /// let engine = Engine::new(MemoryStore::new());
    /// let gig = OccKey::new("gig")?;
    /// engine.open(&gig, OccurrenceConfig::new(10, 600)?)?;
    /// let key = OpKey::new("desk-7f3a")?;
    /// let first = engine.with_op_key(&key).block(&gig, &BlockName::new("press")?, 2, None)?;
    /// let retry = engine.with_op_key(&key).block(&gig, &BlockName::new("press")?, 2, None)?;
    /// assert_eq!((first.replayed, retry.replayed), (false, true));
    /// assert_eq!(first.answer, retry.answer);
    /// assert_eq!(engine.availability(&gig)?.blocked, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_op_key<'a>(&'a self, op_key: &'a OpKey) -> WithOpKey<'a, S, C> {
        WithOpKey { engine: self, op_key: Some(op_key) }
    }

    /// The same writes without an operation key, answering [`Replayed`] all the same (never
    /// replayed): for code that has a key only for some calls. The engine's named write
    /// methods run through it.
    pub fn without_op_key(&self) -> WithOpKey<'_, S, C> {
        WithOpKey { engine: self, op_key: None }
    }
}

/// An [`AsyncEngine`]'s writes under one operation key: see [`AsyncEngine::with_op_key`].
#[derive(Debug)]
pub struct WithOpKey<'a, S, C> {
    engine: &'a AsyncEngine<S, C>,
    op_key: Option<&'a OpKey>,
}

impl<S: AsyncStore, C: Clock> WithOpKey<'_, S, C> {
    /// Run any write ([`Command`]) under this handle's operation key, if it has one: its
    /// first answer is recorded in the same commit ([`Keyed`]) and replayed to every retry
    /// of the same command. The named methods below are this call with their operation.
    ///
    /// # Errors
    /// [`OpError`] over the command's refusal; [`OpError::OpKeyReused`] for a key used for
    /// another command.
    pub async fn run<O>(&self, op: &O) -> Result<Replayed<O::Output>, OpError<O::Refusal>>
    where
        O: Command,
        O::Output: Serialize + DeserializeOwned,
    {
        let Some(op_key) = self.op_key else { return self.engine.run(op).await.map(Replayed::first) };
        self.engine.run(&Keyed { op, op_key }).await.map_err(|e| {
            e.map_refused(|r| match r {
                KeyedRefusal::Refused(r) => OpError::Refused(r),
                KeyedRefusal::KeyReused { first } => OpError::OpKeyReused { op_key: op_key.clone(), first },
                KeyedRefusal::Corrupt(why) => OpError::Store(StoreError::Corrupt(why)),
            })
        })
    }

    /// As [`AsyncEngine::check_in`]. `Invalid` and `WrongOccurrence` are answered from the
    /// credential alone, before the store is touched, and are not recorded.
    ///
    /// # Errors
    /// As [`AsyncEngine::check_in`], and [`OpError::OpKeyReused`].
    pub async fn check_in(&self, occ_key: &OccKey, credential: &str) -> Result<Replayed<CheckIn>, TicketError> {
        let key = self.engine.ticket_key.as_ref().ok_or(OpError::Refused(TicketRefusal::NoTicketKey))?;
        let op = match Scan::at_door(key, occ_key, credential) {
            Ok(op) => op,
            Err(answer) => return Ok(Replayed::first(answer)),
        };
        self.run(&op).await.map_err(|e| e.map_refused(|never| match never {}))
    }

    /// As [`AsyncEngine::cancel`].
    ///
    /// # Errors
    /// As [`AsyncEngine::cancel`], and [`OpError::OpKeyReused`].
    pub async fn cancel(
        &self,
        occ_key: &OccKey,
        hold_ref: &Ref,
        tickets: Option<&[u32]>,
    ) -> Result<Replayed<CancelOutcome>, CancelError> {
        self.run(&Cancel { occ_key, hold_ref, tickets, refund: None }).await
    }

    /// As [`AsyncEngine::cancel_refunding`].
    ///
    /// # Errors
    /// As [`AsyncEngine::cancel_refunding`], and [`OpError::OpKeyReused`].
    pub async fn cancel_refunding(
        &self,
        occ_key: &OccKey,
        hold_ref: &Ref,
        tickets: Option<&[u32]>,
        refund: Money,
    ) -> Result<Replayed<CancelOutcome>, CancelError> {
        self.run(&Cancel { occ_key, hold_ref, tickets, refund: Some(refund) }).await
    }

    /// As [`AsyncEngine::block`].
    ///
    /// # Errors
    /// As [`AsyncEngine::block`], and [`OpError::OpKeyReused`].
    pub async fn block(
        &self,
        occ_key: &OccKey,
        block: &BlockName,
        seats: u32,
        tier: Option<&TierName>,
    ) -> Result<Replayed<BlockOutcome>, BlockError> {
        self.run(&BlockCount { occ_key, block, seats, tier }).await
    }

    /// As [`AsyncEngine::block_seats`].
    ///
    /// # Errors
    /// As [`AsyncEngine::block_seats`], and [`OpError::OpKeyReused`].
    pub async fn block_seats(
        &self,
        occ_key: &OccKey,
        block: &BlockName,
        seat_ids: &[SeatId],
    ) -> Result<Replayed<BlockOutcome>, BlockError> {
        self.run(&BlockSeats { occ_key, block, seats: seat_ids }).await
    }

    /// As [`AsyncEngine::unblock`].
    ///
    /// # Errors
    /// As [`AsyncEngine::unblock`], and [`OpError::OpKeyReused`].
    pub async fn unblock(&self, occ_key: &OccKey, block: &BlockName) -> Result<Replayed<BlockOutcome>, BlockError> {
        self.run(&Unblock { occ_key, block }).await
    }

    /// As [`AsyncEngine::set_price`].
    ///
    /// # Errors
    /// As [`AsyncEngine::set_price`], and [`OpError::OpKeyReused`].
    pub async fn set_price(&self, occ_key: &OccKey, tier: &TierName, price: Money) -> Result<Replayed<()>, PriceError> {
        self.run(&SetPrice { occ_key, tier, price }).await
    }

    /// As [`AsyncEngine::join_waitlist`].
    ///
    /// # Errors
    /// As [`AsyncEngine::join_waitlist`], and [`OpError::OpKeyReused`].
    pub async fn join_waitlist(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        tier: Option<&TierName>,
        seats: u32,
    ) -> Result<Replayed<Joined>, WaitlistError> {
        self.run(&Join { occ_key, actor, tier, seats }).await
    }

    /// As [`AsyncEngine::leave_waitlist`].
    ///
    /// # Errors
    /// As [`AsyncEngine::leave_waitlist`], and [`OpError::OpKeyReused`].
    pub async fn leave_waitlist(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        tier: Option<&TierName>,
    ) -> Result<Replayed<bool>, WaitlistError> {
        self.run(&Leave { occ_key, actor, tier }).await
    }

    /// As [`AsyncEngine::extend`].
    ///
    /// # Errors
    /// As [`AsyncEngine::extend`], and [`OpError::OpKeyReused`].
    pub async fn extend(
        &self,
        occ_key: &OccKey,
        hold_ref: &Ref,
        by: Duration,
    ) -> Result<Replayed<CheckoutRequest>, ExtendError> {
        self.run(&Extend { occ_key, hold_ref, by }).await
    }

    /// As [`AsyncEngine::abandon`].
    ///
    /// # Errors
    /// As [`AsyncEngine::abandon`], and [`OpError::OpKeyReused`].
    pub async fn abandon(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        hold_ref: &Ref,
    ) -> Result<Replayed<AbandonOutcome>, OpError<Never>> {
        self.run(&Abandon { occ_key, actor, hold_ref }).await
    }
}

impl<S: Store, C: Clock> Engine<S, C> {
    /// As [`AsyncEngine::with_op_key`], blocking.
    pub fn with_op_key<'a>(&'a self, op_key: &'a OpKey) -> BlockingWithOpKey<'a, S, C> {
        BlockingWithOpKey(self.as_async().with_op_key(op_key))
    }
}

/// An [`Engine`]'s writes under one operation key: see [`AsyncEngine::with_op_key`].
#[derive(Debug)]
pub struct BlockingWithOpKey<'a, S, C>(WithOpKey<'a, S, C>);

macro_rules! blocking_keyed {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("Blocking form of [`WithOpKey::", stringify!($name), "`].")]
            ///
            /// # Errors
            /// As the async form.
            pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                block_on(self.0.$name($($arg),*))
            }
        )*
    };
}

impl<S: Store, C: Clock> BlockingWithOpKey<'_, S, C> {
    /// Blocking form of [`WithOpKey::run`].
    ///
    /// # Errors
    /// As the async form.
    pub fn run<O>(&self, op: &O) -> Result<Replayed<O::Output>, OpError<O::Refusal>>
    where
        O: Command,
        O::Output: Serialize + DeserializeOwned,
    {
        block_on(self.0.run(op))
    }

    blocking_keyed! {
        fn check_in(&self, occ_key: &OccKey, credential: &str) -> Result<Replayed<CheckIn>, TicketError>;
        fn cancel(&self, occ_key: &OccKey, hold_ref: &Ref, tickets: Option<&[u32]>) -> Result<Replayed<CancelOutcome>, CancelError>;
        fn cancel_refunding(&self, occ_key: &OccKey, hold_ref: &Ref, tickets: Option<&[u32]>, refund: Money) -> Result<Replayed<CancelOutcome>, CancelError>;
        fn block(&self, occ_key: &OccKey, block: &BlockName, seats: u32, tier: Option<&TierName>) -> Result<Replayed<BlockOutcome>, BlockError>;
        fn block_seats(&self, occ_key: &OccKey, block: &BlockName, seat_ids: &[SeatId]) -> Result<Replayed<BlockOutcome>, BlockError>;
        fn unblock(&self, occ_key: &OccKey, block: &BlockName) -> Result<Replayed<BlockOutcome>, BlockError>;
        fn set_price(&self, occ_key: &OccKey, tier: &TierName, price: Money) -> Result<Replayed<()>, PriceError>;
        fn join_waitlist(&self, occ_key: &OccKey, actor: &ActorId, tier: Option<&TierName>, seats: u32) -> Result<Replayed<Joined>, WaitlistError>;
        fn leave_waitlist(&self, occ_key: &OccKey, actor: &ActorId, tier: Option<&TierName>) -> Result<Replayed<bool>, WaitlistError>;
        fn extend(&self, occ_key: &OccKey, hold_ref: &Ref, by: Duration) -> Result<Replayed<CheckoutRequest>, ExtendError>;
        fn abandon(&self, occ_key: &OccKey, actor: &ActorId, hold_ref: &Ref) -> Result<Replayed<AbandonOutcome>, OpError<Never>>;
    }
}
