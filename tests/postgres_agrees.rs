//! A differential test: the PostgreSQL store's commit checks (PL/pgSQL, `seathold_apply`)
//! answer every commit as the shared `seathold::store::check_commit` does, as `MemoryStore`
//! applies it (clause 2 of the store contract, guard by guard, in its order).
//!
//! From fixed seeds (proptest's `TestRunner` with a seeded ChaCha generator), sequences of
//! commits are generated against a few occurrences — created, reconfigured (dimensions added
//! and dropped), checked at right and wrong config versions, left unchecked —, with record
//! writes at right, stale and absent versions, seat deltas that fit, overflow a cap or go
//! negative, counter (`unchanged`) and room (`at_least`) guards that hold or are stale, and
//! malformed commits. Each commit is applied to a fresh `MemoryStore` and a fresh PostgreSQL
//! schema in the same order, and both must answer the same: `Ok` or the same `Conflict`
//! (same key, same dimension) or `Invalid` (messages may differ). Then both must hold the same
//! occurrences (configuration, config version, counters) and the same records (values;
//! versions differ: `MemoryStore` numbers per occurrence, PostgreSQL store-wide), and the same
//! outbox.
//!
//! Record versions are the only thing the two stores answer differently, so a commit is
//! generated once with *symbolic* expected versions ("the one this store last answered for
//! the key", "none", "a stale one") and made concrete per store from the versions each store
//! answered.
//!
//! `SEATHOLD_AGREE_SEQUENCES` / `SEATHOLD_AGREE_COMMITS` change the 100 × 30 default.
//!
//! The named tests after the generated one pin each disagreement found, minimized.

use crate::postgres_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use postgres_support::{fresh_store, pg_url};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use seathold::catalogue::{Block, Dim, OccurrenceConfig, Pool, Tier};
use seathold::contract::{ActorId, BlockName, DomainEvent, EventKind, Money, OccKey, PoolName, Ref, TierName};
use seathold::holds::{ActorRecord, Hold, HoldState};
use seathold::records::{Usage, UsageDelta};
use seathold::store::postgres::PostgresStore;
use seathold::store::{
    AsyncStore, Commit, CommitError, Committed, Conflict, MemoryStore, Occurrence, OccurrenceGuard, Record, RecordKey,
    RecordWrite, Snapshot, Store, Version, WriteOp,
};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-01 19:00:00 UTC);
const SEED: u64 = 0x5ea7_401d;

// ---------------------------------------------------------------------------------------------
// The universe: occurrences, configurations, dimensions, records
// ---------------------------------------------------------------------------------------------

fn occ(s: &str) -> OccKey {
    OccKey::new(s).expect("occ key")
}

fn tier(s: &str) -> TierName {
    TierName::new(s).expect("tier")
}

fn pool(s: &str) -> PoolName {
    PoolName::new(s).expect("pool")
}

fn eur(a: &str) -> Money {
    Money::parse(a, "EUR").expect("money")
}

fn plain(cap: u32) -> OccurrenceConfig {
    OccurrenceConfig::new(cap, 600).expect("config")
}

/// The configurations commits create and switch between: without tiers; tiers `a` (capped,
/// in pool `p`) and `b` (uncapped); `a` alone (drops `b` and `p`); `b` in pool `q` (drops `a`
/// and `p`, adds `q`).
fn configs() -> Vec<OccurrenceConfig> {
    let tiered = |cap: u32, a_cap: u32, p_cap: u32| {
        plain(cap)
            .with_tiers(vec![
                Tier::new(tier("a"), eur("10.00")).with_capacity(a_cap).with_pools(vec![pool("p")]),
                Tier::new(tier("b"), eur("5.00")),
            ])
            .with_pools(vec![Pool { pool: pool("p"), capacity: p_cap }])
    };
    vec![
        plain(3),
        plain(5),
        tiered(10, 4, 3),
        tiered(6, 3, 2),
        plain(8).with_tiers(vec![Tier::new(tier("a"), eur("10.00")).with_capacity(4)]),
        plain(8)
            .with_tiers(vec![Tier::new(tier("b"), eur("5.00")).with_pools(vec![pool("q")])])
            .with_pools(vec![Pool { pool: pool("q"), capacity: 2 }]),
    ]
}

/// Every dimension any configuration has, and one none has.
fn all_dims() -> Vec<Dim> {
    vec![
        Dim::Total,
        Dim::Tier(tier("a")),
        Dim::Tier(tier("b")),
        Dim::Pool(pool("p")),
        Dim::Pool(pool("q")),
        Dim::Tier(tier("zz")),
    ]
}

const OCCS: [&str; 3] = ["plain", "tiered", "spare"];

fn record_keys() -> Vec<RecordKey> {
    vec![
        RecordKey::Actor(ActorId::new("ann").expect("actor")),
        RecordKey::Actor(ActorId::new("bob").expect("actor")),
        RecordKey::Booking(Ref::new("r1").expect("ref")),
        RecordKey::Booking(Ref::new("r2").expect("ref")),
        RecordKey::Block(BlockName::new("stage").expect("block")),
    ]
}

/// A record under `key` of `o`, its contents varied by `n` (so values can be told apart).
fn record(o: &OccKey, key: &RecordKey, n: u32) -> Record {
    match key {
        RecordKey::Actor(a) => {
            let mut r = ActorRecord::new(o.clone(), a.clone());
            r.holds = n;
            Record::Actor(r)
        }
        RecordKey::Booking(r) => Record::Booking(Hold {
            occ_key: o.clone(),
            actor: ActorId::new("ann").expect("actor"),
            hold_ref: r.clone(),
            quantity: n.max(1),
            price: eur("10.00"),
            lines: Default::default(),
            metadata: None,
            placed_at: T0,
            expires_at: T0 + time::Duration::seconds(600 + i64::from(n)),
            state: HoldState::Held,
            ended_at: None,
            tickets: Vec::new(),
            revived: false,
            first_expires_at: None,
            cancelled_seats: 0,
            cancellations: 0,
            refunded: None,
            seat_ids: seathold::seating::SeatList::new(),
        }),
        RecordKey::Block(b) => {
            Record::Block(Block { block: b.clone(), seats: n, tier: None, at: T0, seat_ids: Vec::new() })
        }
        other => panic!("no fixture record for {other}"),
    }
}

fn event(o: &OccKey, n: u32) -> DomainEvent {
    DomainEvent {
        occ_key: o.clone(),
        actor: ActorId::new("ann").expect("actor"),
        hold_ref: Some(Ref::new("r1").expect("ref")),
        at: T0,
        kind: EventKind::HoldReleased { quantity: n },
        metadata: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The generator: proptest strategies drawn from a seeded runner
// ---------------------------------------------------------------------------------------------

struct Gen(TestRunner);

impl Gen {
    fn new(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Self(TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)))
    }

    fn draw<S: Strategy>(&mut self, s: S) -> S::Value {
        s.new_tree(&mut self.0).expect("a strategy over a range").current()
    }

    fn below(&mut self, n: usize) -> usize {
        self.draw(0..n)
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// What a record write expects, before it is made concrete for one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The version this store last answered for the key (`None` if it holds none): holds.
    Current,
    /// No record: holds only if there is none.
    Absent,
    /// A version the key is not at in this store (one it had before, if any): never holds.
    Stale,
}

#[derive(Debug, Clone)]
struct WriteT {
    key: RecordKey,
    expect: Expect,
    op: WriteOp,
}

/// One commit, with symbolic record versions (everything else is the same for both stores:
/// config versions and counters are asserted equal after every commit).
#[derive(Debug, Clone)]
struct Template {
    commit: Commit,
    writes: Vec<WriteT>,
}

/// The record versions one store answered.
#[derive(Debug, Default)]
struct Versions {
    /// (occurrence, key) → the version it is at now (`None`: deleted), and those it had.
    keys: BTreeMap<(OccKey, RecordKey), (Option<Version>, Vec<Version>)>,
    /// The version the store answered for its latest commit that put something.
    last: Option<Version>,
}

impl Versions {
    fn current(&self, o: &OccKey, k: &RecordKey) -> Option<Version> {
        self.keys.get(&(o.clone(), k.clone())).and_then(|(c, _)| *c)
    }

    fn resolve(&self, o: &OccKey, w: &WriteT) -> (Option<Version>, bool) {
        let (current, old) = self.keys.get(&(o.clone(), w.key.clone())).cloned().unwrap_or_default();
        match w.expect {
            Expect::Current => (current, false),
            Expect::Absent => (None, false),
            Expect::Stale => {
                let from_history = old.last().copied().filter(|v| Some(*v) != current);
                let v = from_history
                    .or(self.last.filter(|v| Some(*v) != current))
                    .unwrap_or_else(|| current.unwrap_or(0) + 1_000_000);
                (Some(v), from_history.is_some())
            }
        }
    }

    /// The commit as this store must receive it; and whether a stale version came from the
    /// key's own history.
    fn concrete(&self, t: &Template) -> (Commit, bool) {
        let mut c = t.commit.clone();
        let mut historic = false;
        c.records = t
            .writes
            .iter()
            .map(|w| {
                let (expected, h) = self.resolve(&c.occ_key, w);
                historic |= h;
                RecordWrite { key: w.key.clone(), expected, op: w.op.clone() }
            })
            .collect();
        (c, historic)
    }

    fn applied(&mut self, c: &Commit, done: Committed) {
        let puts = c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_)));
        for w in &c.records {
            let entry = self.keys.entry((c.occ_key.clone(), w.key.clone())).or_default();
            let next = match w.op {
                WriteOp::Check => continue,
                WriteOp::Put(_) => Some(done.version),
                WriteOp::Delete => None,
            };
            if let Some(v) = entry.0 {
                entry.1.push(v);
            }
            entry.0 = next;
        }
        if puts {
            self.last = Some(done.version);
        }
    }
}

/// One commit for `o`, decided on `stored`: the occurrence as `MemoryStore` holds it
/// (PostgreSQL is asserted to hold the same after every commit), so guards meant to hold do.
fn generate(g: &mut Gen, o: &OccKey, stored: Option<&Occurrence>, counts: &mut Counts) -> Template {
    let cfgs = configs();
    let dims = all_dims();
    let mut c = Commit::new(o.clone());
    let roll = g.below(100);
    c.occurrence = match stored {
        Some(s) => {
            let v = s.config_version;
            match roll {
                0..58 => OccurrenceGuard::At(v),
                58..63 => OccurrenceGuard::At(if g.percent(50) { v + 1 } else { v - 1 }),
                63..76 => OccurrenceGuard::Update { expected: v, config: g.pick(&cfgs) },
                76..80 => OccurrenceGuard::Update { expected: v + 1, config: g.pick(&cfgs) },
                80..85 => OccurrenceGuard::Create(g.pick(&cfgs)),
                _ => OccurrenceGuard::Unchecked,
            }
        }
        None => match roll {
            0..55 => OccurrenceGuard::Create(g.pick(&cfgs)),
            55..65 => OccurrenceGuard::At(1),
            65..70 => OccurrenceGuard::Update { expected: 1, config: g.pick(&cfgs) },
            _ => OccurrenceGuard::Unchecked,
        },
    };
    let old_cfg = stored.map(|s| s.config.clone());
    let new_cfg = match &c.occurrence {
        OccurrenceGuard::Create(cfg) | OccurrenceGuard::Update { config: cfg, .. } => Some(cfg.clone()),
        _ => old_cfg.clone(),
    };
    let counter = |d: &Dim| match (&c.occurrence, stored) {
        (OccurrenceGuard::Create(_), _) | (_, None) => Usage::default(),
        (_, Some(s)) => s.counters.get(d),
    };
    let has = |cfg: &Option<OccurrenceConfig>, d: &Dim| cfg.as_ref().is_some_and(|c| c.capacity_of(d).is_some());
    let cap = |d: &Dim| new_cfg.as_ref().and_then(|c| c.capacity_of(d)).flatten().unwrap_or(5);
    // A dimension to act on: mostly one of the configuration the commit leaves, sometimes
    // one it drops, one it does not have, or one nobody has.
    let pick_dim = |g: &mut Gen| -> Dim {
        let leaving: Vec<Dim> = dims.iter().filter(|d| has(&new_cfg, d)).cloned().collect();
        if !leaving.is_empty() && g.percent(85) { g.pick(&leaving) } else { g.pick(&dims) }
    };
    let checked = !matches!(c.occurrence, OccurrenceGuard::Unchecked);

    // Seat deltas.
    if checked && g.percent(65) {
        for _ in 0..1 + g.below(2) {
            let d = pick_dim(g);
            if c.deltas.iter().any(|(o, _)| *o == d) {
                continue;
            }
            let u = counter(&d);
            let i = |v: u64| i64::try_from(v).expect("small counts");
            let delta = match g.below(100) {
                0..30 => UsageDelta::held(1 + g.below(2) as u32),
                30..40 => UsageDelta::held(cap(&d) as u32 + 1),
                40..48 => UsageDelta { held: -i(u.held) - 1, ..UsageDelta::default() },
                48..58 => UsageDelta { held: -i(u.held), ..UsageDelta::default() },
                58..70 if u.held > 0 => UsageDelta { held: -1, confirmed: 1, ..UsageDelta::default() },
                58..70 => UsageDelta::confirmed(1),
                70..80 => UsageDelta { blocked: 1 + g.below(3) as i64, ..UsageDelta::default() },
                80..90 => {
                    UsageDelta { offered: if u.offered > 0 { -i(u.offered) } else { 1 }, ..UsageDelta::default() }
                }
                _ => UsageDelta {
                    held: -i(u.held),
                    confirmed: -i(u.confirmed),
                    blocked: -i(u.blocked),
                    offered: -i(u.offered),
                },
            };
            c.deltas.push((d, delta));
        }
    }
    // A reconfiguration that drops dimensions with seats may empty them in the same commit.
    if let (OccurrenceGuard::Update { config, .. }, Some(s)) = (&c.occurrence, stored) {
        if g.percent(40) {
            for (d, u) in s.counters.iter() {
                if u.total() > 0 && config.capacity_of(d).is_none() && !c.deltas.iter().any(|(o, _)| o == d) {
                    let i = |v: u64| -i64::try_from(v).expect("small counts");
                    let delta = UsageDelta {
                        held: i(u.held),
                        confirmed: i(u.confirmed),
                        blocked: i(u.blocked),
                        offered: i(u.offered),
                    };
                    c.deltas.push((d.clone(), delta));
                }
            }
        }
    }
    // Admissions: the dimensions seats are added to, mostly; sometimes another.
    if checked {
        for (d, u) in &c.deltas {
            if u.net() > 0 && g.percent(80) {
                c.admits.push(d.clone());
            }
        }
        if g.percent(8) {
            let d = pick_dim(g);
            if !c.admits.contains(&d) {
                c.admits.push(d);
            }
        }
    }
    // Counter and room guards, holding or stale.
    for _ in 0..usize::from(checked && g.percent(25)) + usize::from(checked && g.percent(8)) {
        let d = pick_dim(g);
        let mut u = counter(&d);
        if stored.is_some() && g.percent(30) {
            u.held += 1;
        }
        c.unchanged.push((d, u));
    }
    for _ in 0..usize::from(checked && g.percent(20)) + usize::from(checked && g.percent(8)) {
        let d = pick_dim(g);
        let total = counter(&d).total();
        let n = match g.below(10) {
            0..6 => total,
            6..9 => total + 1,
            _ => 0,
        };
        c.at_least.push((d, n));
    }
    // Record writes, on distinct keys.
    let keys = record_keys();
    let mut writes = Vec::new();
    for _ in 0..[0, 1, 1, 1, 2, 2, 3][g.below(7)] {
        let key = g.pick(&keys);
        if writes.iter().any(|w: &WriteT| w.key == key) {
            continue;
        }
        let expect = match g.below(100) {
            0..75 => Expect::Current,
            75..87 => Expect::Absent,
            _ => Expect::Stale,
        };
        let op = match g.below(4) {
            0 | 1 => WriteOp::Put(record(o, &key, g.below(50) as u32)),
            2 => WriteOp::Check,
            _ => WriteOp::Delete,
        };
        writes.push(WriteT { key, expect, op });
    }
    if g.percent(30) {
        c.events.push(event(o, 1 + g.below(9) as u32));
    }
    // Malformed, now and then.
    if g.percent(7) {
        counts.malformed_made += 1;
        match g.below(7) {
            0 => {
                let key = g.pick(&keys);
                let op = WriteOp::Put(record(o, &key, 1));
                writes.push(WriteT { key: key.clone(), expect: Expect::Current, op: WriteOp::Check });
                writes.push(WriteT { key, expect: Expect::Current, op });
            }
            1 => {
                let (key, other) = (keys[0].clone(), keys[2].clone());
                writes.retain(|w| w.key != key);
                writes.push(WriteT { key, expect: Expect::Current, op: WriteOp::Put(record(o, &other, 1)) });
            }
            2 => {
                c.deltas = vec![(Dim::Total, UsageDelta::held(1)), (Dim::Total, UsageDelta::held(1))].into();
            }
            3 => {
                c.occurrence = OccurrenceGuard::Unchecked;
                c.deltas = vec![(Dim::Total, UsageDelta::held(1))].into();
            }
            4 => {
                c.occurrence = OccurrenceGuard::Unchecked;
                c.deltas.clear();
                c.admits = vec![Dim::Total].into();
            }
            5 => {
                // Deltas that change nothing, on an unchecked occurrence.
                c.occurrence = OccurrenceGuard::Unchecked;
                c.deltas = vec![(Dim::Total, UsageDelta::default())].into();
                c.admits.clear();
                c.unchanged.clear();
                c.at_least.clear();
            }
            _ => {
                c.occurrence = OccurrenceGuard::Unchecked;
                c.deltas.clear();
                c.admits.clear();
                c.unchanged = vec![(Dim::Total, Usage::default())];
            }
        }
    }
    Template { commit: c, writes }
}

// ---------------------------------------------------------------------------------------------
// Comparing answers and states
// ---------------------------------------------------------------------------------------------

/// A commit's answer, as far as the two stores must agree on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Ok,
    Occurrence,
    Record(RecordKey),
    Usage(Dim),
    Capacity(Dim),
    Invalid,
    Other(String),
}

fn answer(r: &Result<Committed, CommitError>) -> Answer {
    match r {
        Ok(_) => Answer::Ok,
        Err(CommitError::Conflict(Conflict::Occurrence)) => Answer::Occurrence,
        Err(CommitError::Conflict(Conflict::Record { key })) => Answer::Record(key.clone()),
        Err(CommitError::Conflict(Conflict::Usage { dim })) => Answer::Usage(dim.clone()),
        Err(CommitError::Conflict(Conflict::Capacity { dim })) => Answer::Capacity(dim.clone()),
        Err(CommitError::Invalid(_)) => Answer::Invalid,
        Err(e) => Answer::Other(e.to_string()),
    }
}

fn shown(r: &Result<Committed, CommitError>) -> String {
    match r {
        Ok(c) => format!("Ok(version {})", c.version),
        Err(e) => format!("Err({e})"),
    }
}

/// A commit in one line: guard, deltas, guards, writes (key, expected, op), events.
fn describe(c: &Commit) -> String {
    let mut s = format!("{} {:?}", c.occ_key, c.occurrence).replace("OccurrenceConfig ", "");
    if s.len() > 200 {
        // A configuration in full is long: its dimensions say what matters here.
        let cfg = match &c.occurrence {
            OccurrenceGuard::Create(cfg) | OccurrenceGuard::Update { config: cfg, .. } => Some(cfg),
            _ => None,
        };
        let dims: Vec<String> = cfg
            .map(|c| {
                c.dims().iter().map(|(d, cap)| format!("{d}≤{}", cap.map_or("∞".into(), |c| c.to_string()))).collect()
            })
            .unwrap_or_default();
        s = match &c.occurrence {
            OccurrenceGuard::Create(_) => format!("{} Create[{}]", c.occ_key, dims.join(",")),
            OccurrenceGuard::Update { expected, .. } => {
                format!("{} Update{{expected: {expected}, [{}]}}", c.occ_key, dims.join(","))
            }
            _ => s,
        };
    }
    for (d, u) in &c.deltas {
        let _ = write!(s, " Δ{d}(h{:+} c{:+} b{:+} o{:+})", u.held, u.confirmed, u.blocked, u.offered);
    }
    if !c.admits.is_empty() {
        let _ = write!(s, " admits{:?}", c.admits.iter().map(Dim::to_key).collect::<Vec<_>>());
    }
    for (d, u) in &c.unchanged {
        let _ = write!(s, " unchanged({d}: h{} c{} b{} o{})", u.held, u.confirmed, u.blocked, u.offered);
    }
    for (d, n) in &c.at_least {
        let _ = write!(s, " at_least({d}: {n})");
    }
    for w in &c.records {
        let op = match &w.op {
            WriteOp::Check => "Check".to_owned(),
            WriteOp::Put(r) if r.key() == w.key => "Put".to_owned(),
            WriteOp::Put(r) => format!("Put(record of {})", r.key()),
            WriteOp::Delete => "Delete".to_owned(),
        };
        let _ = write!(s, " [{} expected {:?} {op}]", w.key, w.expected);
    }
    if !c.events.is_empty() {
        let _ = write!(s, " +{} event(s)", c.events.len());
    }
    s
}

/// What must be equal between the stores: the occurrence (counters of zero left out: a
/// dimension never counted counts zero) and the record values.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    occurrence: Option<(OccurrenceConfig, Version, BTreeMap<Dim, Usage>)>,
    records: Vec<Option<Record>>,
}

fn seen(s: Snapshot) -> Seen {
    Seen {
        occurrence: s.occurrence.map(|o| {
            let counters = o.counters.iter().filter(|(_, u)| u.total() > 0).cloned().collect();
            (o.config, o.config_version, counters)
        }),
        records: s.records.into_iter().map(|r| r.map(|r| r.value)).collect(),
    }
}

/// The versions a store holds for `keys` of `o` match what it answered.
fn versions_match(name: &str, s: &Snapshot, v: &Versions, o: &OccKey, keys: &[RecordKey]) -> Result<(), String> {
    for (k, r) in keys.iter().zip(&s.records) {
        let held = r.as_ref().map(|r| r.version);
        let answered = v.current(o, k);
        if held != answered {
            return Err(format!("{name}: {o}/{k} is stored at {held:?}, but the store answered {answered:?}"));
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Counts {
    commits: usize,
    ok: usize,
    occurrence: usize,
    record: usize,
    usage: usize,
    capacity: usize,
    invalid: usize,
    /// Applied reconfigurations that dropped a dimension.
    dropped: usize,
    /// Record conflicts on a version the key had before (clause 7).
    historic_stale: usize,
    malformed_made: usize,
}

impl Counts {
    fn add(&mut self, a: &Answer) {
        self.commits += 1;
        match a {
            Answer::Ok => self.ok += 1,
            Answer::Occurrence => self.occurrence += 1,
            Answer::Record(_) => self.record += 1,
            Answer::Usage(_) => self.usage += 1,
            Answer::Capacity(_) => self.capacity += 1,
            Answer::Invalid => self.invalid += 1,
            Answer::Other(e) => panic!("a store failed: {e}"),
        }
    }
}

/// Which of the disagreements pinned by the named tests below this one is (or none).
fn class_of(c: &Commit, am: &Answer, ap: &Answer) -> &'static str {
    let zero_deltas_unchecked = matches!(c.occurrence, OccurrenceGuard::Unchecked)
        && !c.deltas.is_empty()
        && c.deltas.iter().all(|(_, d)| d.is_zero());
    match (am, ap) {
        (Answer::Record(_), Answer::Record(_)) => "record_conflict_names_the_same_stale_write_on_every_store",
        (_, Answer::Invalid) if zero_deltas_unchecked => "unchecked_commit_with_a_zero_delta",
        (Answer::Invalid, Answer::Usage(_)) => "stale_counter_guard_beside_a_guard_on_no_dimension",
        _ => "not pinned by a named test",
    }
}

struct Disagreement {
    class: &'static str,
    sequence: usize,
    step: usize,
    memory_commit: String,
    postgres_commit: String,
    memory: String,
    postgres: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sequence {} step {} ({}):", self.sequence, self.step, self.class)?;
        writeln!(f, "  MemoryStore commit: {}", self.memory_commit)?;
        if self.postgres_commit != self.memory_commit {
            writeln!(f, "  PostgresStore commit: {}", self.postgres_commit)?;
        }
        writeln!(f, "  MemoryStore answered:   {}", self.memory)?;
        write!(f, "  PostgresStore answered: {}", self.postgres)
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One sequence on fresh stores. Ends early at the first disagreement (the stores' states may
/// differ after it).
async fn run_sequence(
    url: &str,
    seq: usize,
    commits: usize,
    counts: &mut Counts,
    found: &mut Vec<Disagreement>,
) -> Result<(), String> {
    let mut g = Gen::new(SEED.wrapping_add(seq as u64));
    let mem = MemoryStore::new();
    let pg = fresh_store(url, "agree", 1).await;
    let (mut vm, mut vp) = (Versions::default(), Versions::default());
    let occs: Vec<OccKey> = OCCS.iter().map(|s| occ(s)).collect();
    let keys = record_keys();
    let result = async {
        for step in 0..commits {
            let o = g.pick(&occs);
            let stored = Store::load(&mem, &o, &[]).map_err(|e| e.to_string())?.occurrence;
            let t = generate(&mut g, &o, stored.as_ref(), counts);
            let (cm, historic) = vm.concrete(&t);
            let (cp, _) = vp.concrete(&t);
            let (dm, dp) = (describe(&cm), describe(&cp));
            let rm = Store::commit(&mem, cm.clone());
            let rp = AsyncStore::commit(&pg, cp.clone()).await;
            let (am, ap) = (answer(&rm), answer(&rp));
            if am != ap {
                found.push(Disagreement {
                    class: class_of(&cm, &am, &ap),
                    sequence: seq,
                    step,
                    memory_commit: dm,
                    postgres_commit: dp,
                    memory: shown(&rm),
                    postgres: shown(&rp),
                });
                if am == Answer::Ok || ap == Answer::Ok {
                    return Ok(());
                }
                continue;
            }
            counts.add(&am);
            if historic && matches!(am, Answer::Record(_)) {
                counts.historic_stale += 1;
            }
            if let (Ok(a), Ok(b)) = (&rm, &rp) {
                vm.applied(&cm, *a);
                vp.applied(&cp, *b);
                if let (OccurrenceGuard::Update { config, .. }, Some(s)) = (&cm.occurrence, &stored) {
                    counts.dropped += usize::from(s.config.dims().iter().any(|(d, _)| config.capacity_of(d).is_none()));
                }
            }
            // Both stores hold the same occurrence and records now, at the versions they
            // answered.
            let sm = Store::load(&mem, &o, &keys).map_err(|e| e.to_string())?;
            let sp = AsyncStore::load(&pg, &o, &keys).await.map_err(|e| e.to_string())?;
            versions_match("MemoryStore", &sm, &vm, &o, &keys)?;
            versions_match("PostgresStore", &sp, &vp, &o, &keys)?;
            let (sm, sp) = (seen(sm), seen(sp));
            if sm != sp {
                return Err(format!(
                    "sequence {seq} step {step}: after {dm} (both answered {am:?}) the stores differ:\n  \
                     MemoryStore:   {sm:?}\n  PostgresStore: {sp:?}"
                ));
            }
        }
        // Every occurrence and every key, and the outbox.
        for o in &occs {
            let sm = seen(Store::load(&mem, o, &keys).map_err(|e| e.to_string())?);
            let sp = seen(AsyncStore::load(&pg, o, &keys).await.map_err(|e| e.to_string())?);
            if sm != sp {
                return Err(format!(
                    "sequence {seq}, {o} at the end:\n  MemoryStore:   {sm:?}\n  PostgresStore: {sp:?}"
                ));
            }
        }
        let em: Vec<DomainEvent> =
            Store::pending_events(&mem, 100_000).map_err(|e| e.to_string())?.into_iter().map(|e| e.event).collect();
        let ep: Vec<DomainEvent> = AsyncStore::pending_events(&pg, 100_000)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| e.event)
            .collect();
        if em != ep {
            return Err(format!("sequence {seq}: outboxes differ: {} events vs {}", em.len(), ep.len()));
        }
        Ok(())
    }
    .await;
    pg.drop_schema().await.expect("drop the test schema");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_checks_agree_with_check_commit() {
    let Some(url) = pg_url("postgres_commit_checks_agree_with_check_commit") else {
        return;
    };
    let sequences = env_usize("SEATHOLD_AGREE_SEQUENCES", 100);
    let commits = env_usize("SEATHOLD_AGREE_COMMITS", 30);
    let started = Instant::now();
    let mut counts = Counts::default();
    let mut found = Vec::new();
    for seq in 0..sequences {
        if let Err(e) = run_sequence(&url, seq, commits, &mut counts, &mut found).await {
            panic!("{e}");
        }
    }
    println!(
        "postgres_agrees: {sequences} sequences (seed {SEED:#x}) in {:.1}s: {} commits applied to both stores, \
         {} answered alike — \
         Ok {}, Conflict::Occurrence {}, Conflict::Record {} ({} on a version the key had before), \
         Conflict::Usage {}, Conflict::Capacity {}, Invalid {}; {} reconfigurations dropping a dimension \
         applied; {} malformed commits generated; {} disagreements",
        started.elapsed().as_secs_f64(),
        counts.commits + found.len(),
        counts.commits,
        counts.ok,
        counts.occurrence,
        counts.record,
        counts.historic_stale,
        counts.usage,
        counts.capacity,
        counts.invalid,
        counts.dropped,
        counts.malformed_made,
        found.len(),
    );
    let mut classes = BTreeMap::<&str, usize>::new();
    for d in &found {
        println!("{d}");
        *classes.entry(d.class).or_default() += 1;
    }
    for (class, n) in &classes {
        println!("{n} disagreement(s): {class}");
    }
    assert!(found.is_empty(), "{} disagreements; the first:\n{}", found.len(), found[0]);
    let exercised = [
        ("Ok", counts.ok),
        ("Conflict::Occurrence", counts.occurrence),
        ("Conflict::Record", counts.record),
        ("Conflict::Record on a former version", counts.historic_stale),
        ("Conflict::Usage", counts.usage),
        ("Conflict::Capacity", counts.capacity),
        ("Invalid", counts.invalid),
        ("a reconfiguration dropping a dimension", counts.dropped),
    ];
    for (what, n) in exercised {
        assert!(n > 0, "no commit answered {what}: the generator no longer exercises it");
    }
}

// ---------------------------------------------------------------------------------------------
// Each disagreement found, minimized
// ---------------------------------------------------------------------------------------------

/// Applies `setup` to a fresh `MemoryStore` and a fresh schema (both must apply each), then
/// `probe`, and asserts both answer it alike.
async fn assert_probe_agrees(test: &str, setup: Vec<Commit>, probe: Commit) {
    let Some(url) = pg_url(test) else {
        return;
    };
    let mem = MemoryStore::new();
    let pg: PostgresStore = fresh_store(&url, "agree_min", 1).await;
    for c in setup {
        let what = describe(&c);
        let (rm, rp) = (Store::commit(&mem, c.clone()), AsyncStore::commit(&pg, c).await);
        assert!(rm.is_ok() && rp.is_ok(), "setup {what}: MemoryStore {}, PostgresStore {}", shown(&rm), shown(&rp));
    }
    let what = describe(&probe);
    let rm = Store::commit(&mem, probe.clone());
    let rp = AsyncStore::commit(&pg, probe).await;
    pg.drop_schema().await.expect("drop the test schema");
    assert_eq!(
        answer(&rm),
        answer(&rp),
        "{what}\n  MemoryStore (check_commit) answered: {}\n  PostgresStore answered:              {}",
        shown(&rm),
        shown(&rp)
    );
}

fn stale_check(key: RecordKey) -> RecordWrite {
    // No record exists and no store has issued this version: the guard fails in both.
    RecordWrite { key, expected: Some(1_000_000), op: WriteOp::Check }
}

/// Clause 2.3, found by the generated sequences: with several record guards failing, every
/// store names the same key — the first in (kind, key) order as text sorts (here
/// `actor:ann`, listed second), the order the PL/pgSQL check meets them in. `check_commit`
/// used to name the first in the commit's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_conflict_names_the_same_stale_write_on_every_store() {
    let o = occ("plain");
    let create = Commit { occurrence: OccurrenceGuard::Create(plain(3)), ..Commit::new(o.clone()) };
    let probe = Commit {
        occurrence: OccurrenceGuard::At(1),
        records: vec![
            stale_check(RecordKey::Booking(Ref::new("r1").expect("ref"))),
            stale_check(RecordKey::Actor(ActorId::new("ann").expect("actor"))),
        ],
        ..Commit::new(o)
    };
    assert_probe_agrees("record_conflict_names_the_same_stale_write_on_every_store", vec![create], probe).await;
}

/// Clause 2.1, found by the generated sequences: an `Unchecked` commit with a seat delta that
/// changes nothing is `Invalid` on every store, as the contract reads ("no deltas … with an
/// `Unchecked` occurrence"). `validate_commit` used to refuse only non-zero deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_commit_with_a_zero_delta() {
    let o = occ("plain");
    let create = Commit { occurrence: OccurrenceGuard::Create(plain(3)), ..Commit::new(o.clone()) };
    let probe = Commit { deltas: vec![(Dim::Total, UsageDelta::default())].into(), ..Commit::new(o) };
    assert_probe_agrees("unchecked_commit_with_a_zero_delta", vec![create], probe).await;
}

/// Clause 2.4, found by the generated sequences: a stale counter guard before a guard on a
/// dimension the occurrence does not have is `Conflict::Usage` on every store (guard by
/// guard, in order). `check_commit` used to refuse the whole commit as `Invalid` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_counter_guard_beside_a_guard_on_no_dimension() {
    let o = occ("plain");
    let create = Commit { occurrence: OccurrenceGuard::Create(plain(3)), ..Commit::new(o.clone()) };
    let probe = Commit {
        occurrence: OccurrenceGuard::At(1),
        unchanged: vec![(Dim::Total, Usage { held: 1, ..Usage::default() })],
        at_least: vec![(Dim::Tier(tier("zz")), 0)],
        ..Commit::new(o)
    };
    assert_probe_agrees("stale_counter_guard_beside_a_guard_on_no_dimension", vec![create], probe).await;
}
