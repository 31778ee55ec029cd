//! The catalogue's operations, as the engine runs them ([`crate::operation`]): opening an
//! occurrence, a tier's price, blocks. Each names its occurrence, the records it loads first
//! and the decision it calls; nothing here decides anything.

use time::OffsetDateTime;

use super::{
    BlockOutcome, BlockRefusal, ConfigError, Dim, OccurrenceConfig, SetPriceError, decide_block, decide_block_seats,
    decide_configure, decide_set_price, decide_unblock, live_held,
};
use crate::contract::{BlockName, Money, OccKey, TierName};
use crate::kind::{Classify, ErrorKind};
use crate::operation::{Command, Operation, sealed::Sealed};
use crate::records::{Change, Keys, Loaded, RecordKey, Step};
use crate::seating::SeatId;

/// Open an occurrence or change its configuration
/// ([`AsyncEngine::open`](crate::AsyncEngine::open), [`create`](crate::AsyncEngine::create)).
#[derive(Debug, Clone, Copy)]
pub struct Configure<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// Its configuration.
    pub config: &'a OccurrenceConfig,
    /// Refuse with [`OpenRefusal::Exists`] if the occurrence exists already.
    pub create_only: bool,
}

impl Sealed for Configure<'_> {}

impl Operation for Configure<'_> {
    type Output = bool;
    type Refusal = OpenRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Waitlist]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<bool>, OpenRefusal> {
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

impl Classify for OpenRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(c) => c.kind(),
            Self::Exists => ErrorKind::Conflict,
        }
    }
}

/// Change a tier's price ([`AsyncEngine::set_price`](crate::AsyncEngine::set_price)).
#[derive(Debug, Clone, Copy)]
pub struct SetPrice<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The tier.
    pub tier: &'a TierName,
    /// Its new price.
    pub price: Money,
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

impl Classify for PriceRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::Price(p) => p.kind(),
        }
    }
}

impl Sealed for SetPrice<'_> {}

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
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<()>, PriceRefusal> {
        let occ = view.occurrence().ok_or(PriceRefusal::UnknownOccurrence)?;
        let locking = occ.config.tier(self.tier).is_some_and(|t| t.lock_price_while_held);
        let live = if locking {
            match live_held(view, occ, self.tier, now) {
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
        let mut change = Change { config: Some(config), ..Default::default() };
        if locking {
            // The price may change only while no live hold has the tier: guard the counters
            // read (the lapsed holds counted out were loaded, so their versions are guarded
            // too). A configuration change alone would not notice a hold placed since.
            let dim = Dim::Tier(self.tier.clone());
            change.unchanged.push((dim.clone(), occ.counters.get(&dim)));
        }
        Ok(Step::Write(change, ()))
    }
}

/// Take a count of seats (of a tier) out of sale under a name
/// ([`AsyncEngine::block`](crate::AsyncEngine::block)).
#[derive(Debug, Clone, Copy)]
pub struct BlockCount<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The block's name.
    pub block: &'a BlockName,
    /// How many seats.
    pub seats: u32,
    /// Of which tier (`None`: plain seats).
    pub tier: Option<&'a TierName>,
}

/// Take the named seats out of sale under a name
/// ([`AsyncEngine::block_seats`](crate::AsyncEngine::block_seats)).
#[derive(Debug, Clone, Copy)]
pub struct BlockSeats<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The block's name.
    pub block: &'a BlockName,
    /// The seats.
    pub seats: &'a [SeatId],
}

/// Give a block's seats back ([`AsyncEngine::unblock`](crate::AsyncEngine::unblock)).
#[derive(Debug, Clone, Copy)]
pub struct Unblock<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The block's name.
    pub block: &'a BlockName,
}

/// The three block operations load the same records and answer the same way.
macro_rules! block_operation {
    ($op:ident, |$s:ident| $command:expr, |$v:ident, $now:ident| $decide:expr) => {
        impl Sealed for $op<'_> {}

        impl Command for $op<'_> {
            fn command(&self) -> String {
                let $s = self;
                $command
            }
        }

        impl Operation for $op<'_> {
            type Output = BlockOutcome;
            type Refusal = BlockRefusal;
            fn occ_key(&self) -> &OccKey {
                self.occ_key
            }
            fn keys(&self) -> Keys {
                smallvec::smallvec![RecordKey::Block(self.block.clone()), RecordKey::Waitlist]
            }
            fn decide<L: Loaded>(&self, $v: &L, $now: OffsetDateTime) -> Result<Step<BlockOutcome>, BlockRefusal> {
                let $s = self;
                $decide
            }
        }
    };
}

block_operation!(
    BlockCount,
    |s| format!("block {} x{} tier={:?}", s.block, s.seats, s.tier),
    |view, now| decide_block(view, s.block, s.seats, s.tier, now)
);
block_operation!(
    BlockSeats,
    |s| {
        let ids: Vec<String> = s.seats.iter().map(ToString::to_string).collect();
        format!("block {} seats={}", s.block, ids.join(","))
    },
    |view, now| decide_block_seats(view, s.block, s.seats, now)
);
block_operation!(Unblock, |s| format!("unblock {}", s.block), |view, now| decide_unblock(view, s.block, now));
