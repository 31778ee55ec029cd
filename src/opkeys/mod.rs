//! Operation keys: every write safe to retry. A write made under an [`OpKey`] records its
//! first answer in the commit that carries it out; a later call with the same key and the
//! same command answers that first answer, marked replayed, and changes nothing; the same key
//! with another command is refused.
//!
//! Owns: the [`OpRecord`] (one per key and occurrence), the [`Replayed`] answer, and
//! [`decide_keyed`], the one pure wrapper that turns any decision into its keyed form —
//! written once, not per operation. May not touch: the rules of the operation it wraps,
//! storage, the clock.
//!
//! What is recorded, and what is not:
//! - every answer the wrapped decision gives (a write's, and one that writes nothing, such
//!   as `AlreadyCheckedIn`): the keyed call then always commits, so its retry meets the
//!   record whatever happened in between — a door scanner whose first answer was lost is told
//!   `Admitted` again, never `AlreadyCheckedIn`;
//! - not a refusal (a typed error): it changes nothing, so the key stays unused and a retry
//!   decides again (as Stripe does not keep a request that failed validation).
//!
//! The command a key was used for is kept as a short text that names the operation and its
//! arguments (a ticket by its id, never by its credential); a different text under the same
//! key is another command. Keys are scoped to the occurrence and retention-bound like
//! payment records: [`prune`](crate::Engine::prune) removes those older than its horizon,
//! after which a key may be used again.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::contract::{OccKey, OpKey};
use crate::records::{Change, Loaded, Record, RecordKey, Step, nanos};

/// The first answer of a write made under an operation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The occurrence (keys are scoped to it).
    pub occ_key: OccKey,
    /// The key.
    pub op_key: OpKey,
    /// What the key was used for: the operation and its arguments, as text.
    pub command: String,
    /// The first answer, as the operation's answer type serializes.
    pub answer: serde_json::Value,
    /// When.
    #[serde(with = "nanos")]
    pub at: OffsetDateTime,
}

/// An answer to a keyed write: the first answer, and whether this call only replayed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed<T> {
    /// The answer (the first call's, for a replay).
    pub answer: T,
    /// Whether this call found the key used for the same command and only answered again.
    pub replayed: bool,
}

impl<T> Replayed<T> {
    /// A first answer.
    pub fn first(answer: T) -> Self {
        Self { answer, replayed: false }
    }
}

/// Why a keyed decision was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedRefusal<R> {
    /// The wrapped decision refused.
    Refused(R),
    /// The key was used for another command.
    KeyReused {
        /// The command it was used for.
        first: String,
    },
    /// The recorded answer could not be read back as the operation's answer type.
    Corrupt(String),
}

/// Decide `decide` under `op_key`: replay the recorded answer if the key was used for
/// `command`, refuse if it was used for another, else decide and record the answer in the
/// same commit. The record under `op_key` must be among the keys loaded first.
///
/// # Errors
/// [`KeyedRefusal`].
pub fn decide_keyed<T, R>(
    view: &impl Loaded,
    occ_key: &OccKey,
    op_key: &OpKey,
    command: &str,
    now: OffsetDateTime,
    decide: impl FnOnce() -> Result<Step<T>, R>,
) -> Result<Step<Replayed<T>>, KeyedRefusal<R>>
where
    T: Serialize + DeserializeOwned,
{
    let key = RecordKey::Op(op_key.clone());
    if !view.is_loaded(&key) {
        return Ok(Step::Load(vec![key]));
    }
    if let Some(Record::Op(first)) = view.get(&key) {
        if first.command != command {
            return Err(KeyedRefusal::KeyReused { first: first.command.clone() });
        }
        let answer = serde_json::from_value(first.answer.clone())
            .map_err(|e| KeyedRefusal::Corrupt(format!("the answer recorded under {op_key}: {e}")))?;
        return Ok(Step::Answer(Replayed { answer, replayed: true }));
    }
    let record = |answer: &T| -> Result<Record, KeyedRefusal<R>> {
        let answer = serde_json::to_value(answer)
            .map_err(|e| KeyedRefusal::Corrupt(format!("an answer under {op_key} does not serialize: {e}")))?;
        Ok(Record::Op(OpRecord {
            occ_key: occ_key.clone(),
            op_key: op_key.clone(),
            command: command.to_owned(),
            answer,
            at: now,
        }))
    };
    Ok(match decide().map_err(KeyedRefusal::Refused)? {
        Step::Answer(answer) => {
            let mut change = Change::default();
            change.put(record(&answer)?);
            Step::Write(change, Replayed::first(answer))
        }
        Step::Write(mut change, answer) => {
            change.put(record(&answer)?);
            Step::Write(change, Replayed::first(answer))
        }
        Step::Load(keys) => Step::Load(keys),
        Step::LoadDue(n) => Step::LoadDue(n),
    })
}

/// An operation's first answer is stored under its operation key.
impl crate::records::RecordBody for OpRecord {
    fn key(&self) -> RecordKey {
        RecordKey::Op(self.op_key.clone())
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::Op(k) if *k == self.op_key)
    }
}

impl<R: crate::Classify> crate::Classify for KeyedRefusal<R> {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Refused(r) => r.kind(),
            Self::KeyReused { .. } => crate::ErrorKind::Unprocessable,
            Self::Corrupt(_) => crate::ErrorKind::Internal,
        }
    }
}

/// Any [`Command`](crate::operation::Command) under an operation key: the operation
/// [`WithOpKey::run`](crate::WithOpKey::run) runs, around [`decide_keyed`]. It loads the
/// key's record with the command's own keys, and answers [`Replayed`].
#[derive(Debug, Clone, Copy)]
pub struct Keyed<'a, O> {
    /// The command.
    pub op: &'a O,
    /// Its operation key.
    pub op_key: &'a OpKey,
}

impl<O> crate::operation::sealed::Sealed for Keyed<'_, O> {}

impl<O> crate::operation::Operation for Keyed<'_, O>
where
    O: crate::operation::Command,
    O::Output: Serialize + DeserializeOwned,
{
    type Output = Replayed<O::Output>;
    type Refusal = KeyedRefusal<O::Refusal>;
    fn occ_key(&self) -> &OccKey {
        self.op.occ_key()
    }
    fn keys(&self) -> crate::records::Keys {
        let mut keys = self.op.keys();
        keys.push(RecordKey::Op(self.op_key.clone()));
        keys
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<Self::Output>, Self::Refusal> {
        decide_keyed(view, self.op.occ_key(), self.op_key, &self.op.command(), now, || self.op.decide(view, now))
    }
}
