//! Tickets: one per confirmed seat, a credential for its QR code, and check-in at the door.
//!
//! Owns: [`TicketState`] (kept in the booking, one per seat, issued in the commit that
//! confirms it), ticket ids, [`TicketKey`] and credentials ([`TicketKey::credential`],
//! [`TicketKey::verify`]), the [`Ticket`] view, and the check-in decision
//! ([`decide_check_in`]).
//!
//! May not touch: payments, capacity, storage, the clock.
//!
//! # Credentials
//!
//! A credential is `PAYLOAD.MAC`, both unpadded URL-safe base64: `PAYLOAD` names the ticket
//! (occurrence, booking ref, seat index) and `MAC` is the first 128 bits of
//! HMAC-SHA256(key, ticket). It is URL- and QR-safe, unguessable without the key, and
//! checkable *without the database* by anyone holding the key — an offline scanner at the
//! door can tell a forged code from a real one. The store never holds a credential nor the
//! key: a database reader cannot forge one or recover one. The key is injected like the
//! clock (see [`Engine::with_ticket_key`](crate::Engine::with_ticket_key)); rotating it
//! invalidates every credential issued under the old one, so keep old keys in
//! [`TicketKey::with_previous`] until those shows are over.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use time::OffsetDateTime;

use crate::contract::{EventKind, OccKey, Ref, TierName};
use crate::holds::{Hold, HoldState};
use crate::records::{Change, Loaded, LoadedExt, Record, Step, nanos};

/// The state of one ticket, as the booking keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub enum TicketState {
    /// Issued, not yet used.
    Valid,
    /// Admitted at the door.
    CheckedIn {
        /// When.
        #[serde(with = "nanos")]
        at: OffsetDateTime,
    },
    /// Voided by a cancellation.
    Cancelled {
        /// When.
        #[serde(with = "nanos")]
        at: OffsetDateTime,
    },
}

/// The id of seat `index` of booking `hold_ref`: `REF#INDEX` (stable; unique within the
/// occurrence, since refs are).
pub fn ticket_id(hold_ref: &Ref, index: u32) -> String {
    format!("{hold_ref}#{index}")
}

/// A ticket's status, as a caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Issued, not yet used.
    Valid,
    /// Admitted at the door.
    CheckedIn,
    /// Voided by a cancellation.
    Cancelled,
}

/// A ticket as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id ([`ticket_id`]).
    pub id: String,
    /// The occurrence.
    pub occ_key: OccKey,
    /// The booking.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Its seat index within the booking.
    pub index: u32,
    /// Its tier, for a tiered booking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// Its seat, for a seated booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<crate::seating::SeatId>,
    /// Its status.
    pub status: TicketStatus,
    /// When it was checked in or cancelled.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub at: Option<OffsetDateTime>,
    /// The credential for its QR code.
    pub credential: String,
}

/// The tickets of a booking, with their credentials (empty if none were issued).
pub fn tickets_of(hold: &Hold, key: &TicketKey) -> Vec<Ticket> {
    (0u32..)
        .zip(&hold.tickets)
        .map(|(i, state)| Ticket {
            id: ticket_id(&hold.hold_ref, i),
            occ_key: hold.occ_key.clone(),
            hold_ref: hold.hold_ref.clone(),
            index: i,
            tier: hold.seat_tier(i).cloned(),
            seat: usize::try_from(i).ok().and_then(|i| hold.seat_ids.get(i)),
            status: match state {
                TicketState::Valid => TicketStatus::Valid,
                TicketState::CheckedIn { .. } => TicketStatus::CheckedIn,
                TicketState::Cancelled { .. } => TicketStatus::Cancelled,
            },
            at: match *state {
                TicketState::Valid => None,
                TicketState::CheckedIn { at } | TicketState::Cancelled { at } => Some(at),
            },
            credential: key.credential(&hold.occ_key, &hold.hold_ref, i),
        })
        .collect()
}

/// The shortest ticket key accepted, in bytes.
pub const MIN_TICKET_KEY_BYTES: usize = 32;

/// The secret that makes credentials: at least [`MIN_TICKET_KEY_BYTES`] random bytes, kept
/// out of the store (in the service's secret store). Debug output never shows it.
#[derive(Clone)]
pub struct TicketKey {
    current: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

/// Why a ticket key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TicketKeyError {
    /// The key is shorter than [`MIN_TICKET_KEY_BYTES`]: use 32 random bytes.
    #[error("a ticket key needs at least {min} bytes, got {got}")]
    TooShort {
        /// Its length.
        got: usize,
        /// [`MIN_TICKET_KEY_BYTES`].
        min: usize,
    },
}

/// Why a credential is not valid (check-in answers `Invalid` for all of them).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not of the form `PAYLOAD.MAC` in URL-safe base64, or names no ticket.
    #[error("not a ticket credential")]
    Malformed,
    /// Well formed, but no key in use made it: forged, or from a retired key.
    #[error("credential does not verify")]
    Forged,
}

const SEP: u8 = 0x1f;
const MAC_BYTES: usize = 16;
const DOMAIN: &[u8] = b"seathold-ticket-v1\0";
/// Credentials longer than this are refused unread.
const MAX_CREDENTIAL_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

impl TicketKey {
    /// A key from secret bytes.
    ///
    /// # Errors
    /// [`TicketKeyError::TooShort`] under [`MIN_TICKET_KEY_BYTES`].
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TicketKeyError> {
        let current = secret.into();
        if current.len() < MIN_TICKET_KEY_BYTES {
            return Err(TicketKeyError::TooShort { got: current.len(), min: MIN_TICKET_KEY_BYTES });
        }
        Ok(Self { current, previous: Vec::new() })
    }

    /// The same key, also accepting credentials made by `old` keys (during a rotation).
    pub fn with_previous(mut self, old: impl IntoIterator<Item = TicketKey>) -> Self {
        self.previous.extend(old.into_iter().map(|k| k.current));
        self
    }

    fn mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
        #[allow(clippy::expect_used)]
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }

    /// The credential of seat `index` of booking `hold_ref` at `occ_key`.
    pub fn credential(&self, occ_key: &OccKey, hold_ref: &Ref, index: u32) -> String {
        let payload = payload(occ_key, hold_ref, index);
        let tag = Self::mac(&self.current, &payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES]))
    }

    /// Check a credential (constant-time comparison) and say which ticket it names.
    ///
    /// # Errors
    /// [`CredentialError`].
    pub fn verify(&self, credential: &str) -> Result<(OccKey, Ref, u32), CredentialError> {
        if credential.len() > MAX_CREDENTIAL_BYTES {
            return Err(CredentialError::Malformed);
        }
        let (p, m) = credential.rsplit_once('.').ok_or(CredentialError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| CredentialError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(m).map_err(|_| CredentialError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(CredentialError::Malformed);
        }
        let named = parse_payload(&payload).ok_or(CredentialError::Malformed)?;
        let ok = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| Self::mac(k, &payload).verify_truncated_left(&tag).is_ok());
        if ok { Ok(named) } else { Err(CredentialError::Forged) }
    }
}

fn payload(occ_key: &OccKey, hold_ref: &Ref, index: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(occ_key.as_str().len() + hold_ref.as_str().len() + 12);
    p.extend_from_slice(occ_key.as_str().as_bytes());
    p.push(SEP);
    p.extend_from_slice(hold_ref.as_str().as_bytes());
    p.push(SEP);
    p.extend_from_slice(index.to_string().as_bytes());
    p
}

fn parse_payload(p: &[u8]) -> Option<(OccKey, Ref, u32)> {
    let s = std::str::from_utf8(p).ok()?;
    let mut parts = s.split(SEP as char);
    let occ = OccKey::new(parts.next()?).ok()?;
    let r = Ref::new(parts.next()?).ok()?;
    let i = parts.next()?;
    if parts.next().is_some() || i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((occ, r, i.parse().ok()?))
}

/// Which ticket a scan read, for the door to show: its id, its seat index in the booking and
/// its tier. Serialized flat into the answer (`"ticket"`, `"index"`, `"tier"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    /// The ticket's id ([`ticket_id`]).
    #[serde(rename = "ticket")]
    pub id: String,
    /// Its seat index within the booking (from 0).
    pub index: u32,
    /// Its tier, for a tiered booking (`None` at an occurrence without tiers, and in a
    /// [`CheckIn::WrongOccurrence`] answer, which reads nothing of the other occurrence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = &self.tier {
            write!(f, " ({t})")?;
        }
        Ok(())
    }
}

/// What a scan answers. Every answer but `Invalid` names the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckIn {
    /// Let them in: the ticket was valid and is now used.
    Admitted {
        /// The ticket.
        #[serde(flatten)]
        ticket: TicketRef,
    },
    /// The ticket was already used: do not let a second person in on it.
    AlreadyCheckedIn {
        /// The ticket.
        #[serde(flatten)]
        ticket: TicketRef,
        /// When it was first admitted.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Unknown, forged or unreadable.
    Invalid,
    /// The ticket was cancelled (and refunded).
    Cancelled {
        /// The ticket.
        #[serde(flatten)]
        ticket: TicketRef,
    },
    /// A genuine ticket for another occurrence (Tuesday's ticket at Wednesday's door): do not
    /// let them in here. Nothing was admitted or changed.
    WrongOccurrence {
        /// The occurrence the ticket is for.
        occ_key: OccKey,
        /// The ticket.
        #[serde(flatten)]
        ticket: TicketRef,
    },
}

impl CheckIn {
    /// The ticket the answer names (`None` for `Invalid`).
    pub fn ticket(&self) -> Option<&TicketRef> {
        match self {
            Self::Admitted { ticket }
            | Self::AlreadyCheckedIn { ticket, .. }
            | Self::Cancelled { ticket }
            | Self::WrongOccurrence { ticket, .. } => Some(ticket),
            Self::Invalid => None,
        }
    }
}

/// Read a credential scanned at the door of occurrence `door`: the booking and seat it names,
/// or the answer to give at once without touching the store — `Invalid` for an unknown,
/// forged or unreadable credential, `WrongOccurrence` for a genuine ticket of another
/// occurrence (it admits nothing and changes nothing).
///
/// # Errors
/// The answer to give instead of a check-in.
pub fn at_door(key: &TicketKey, door: &OccKey, credential: &str) -> Result<(Ref, u32), CheckIn> {
    let (occ_key, hold_ref, index) = key.verify(credential).map_err(|_| CheckIn::Invalid)?;
    if &occ_key != door {
        let ticket = TicketRef { id: ticket_id(&hold_ref, index), index, tier: None };
        return Err(CheckIn::WrongOccurrence { occ_key, ticket });
    }
    Ok((hold_ref, index))
}

/// Decide a scan of seat `index` of booking `hold_ref` (named by a verified credential).
pub fn decide_check_in(view: &impl Loaded, hold_ref: &Ref, index: u32, now: OffsetDateTime) -> Step<CheckIn> {
    let Some(hold) = view.booking(hold_ref) else { return Step::Answer(CheckIn::Invalid) };
    let Some(state) = hold.tickets.get(index as usize) else { return Step::Answer(CheckIn::Invalid) };
    let ticket = TicketRef { id: ticket_id(hold_ref, index), index, tier: hold.seat_tier(index).cloned() };
    match *state {
        TicketState::Cancelled { .. } => Step::Answer(CheckIn::Cancelled { ticket }),
        TicketState::CheckedIn { at } => Step::Answer(CheckIn::AlreadyCheckedIn { ticket, at }),
        TicketState::Valid if hold.state != HoldState::Confirmed => Step::Answer(CheckIn::Invalid),
        TicketState::Valid => {
            let mut next = hold.clone();
            next.tickets[index as usize] = TicketState::CheckedIn { at: now };
            let mut change = Change::default();
            change.events.push(hold.event(now, EventKind::CheckedIn { ticket: ticket.id.clone() }));
            change.put(Record::Booking(next));
            Step::Write(change, CheckIn::Admitted { ticket })
        }
    }
}

/// Scan a ticket at the door ([`AsyncEngine::check_in`](crate::AsyncEngine::check_in)): the
/// operation around [`decide_check_in`], made only from a credential verified at this door
/// ([`Scan::at_door`]), so no caller admits a seat without one.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    occ_key: &'a OccKey,
    hold_ref: Ref,
    index: u32,
}

impl<'a> Scan<'a> {
    /// The scan of `credential` at the door of `door` ([`at_door`]).
    ///
    /// # Errors
    /// The answer to give at once, without touching the store: `Invalid` or
    /// `WrongOccurrence`.
    pub fn at_door(key: &TicketKey, door: &'a OccKey, credential: &str) -> Result<Self, CheckIn> {
        let (hold_ref, index) = at_door(key, door, credential)?;
        Ok(Self { occ_key: door, hold_ref, index })
    }
}

impl crate::operation::sealed::Sealed for Scan<'_> {}

impl crate::operation::Command for Scan<'_> {
    fn command(&self) -> String {
        format!("check_in {}", ticket_id(&self.hold_ref, self.index))
    }
}

impl crate::operation::Operation for Scan<'_> {
    type Output = CheckIn;
    type Refusal = crate::Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        smallvec::smallvec![crate::records::RecordKey::Booking(self.hold_ref.clone())]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<CheckIn>, crate::Never> {
        Ok(decide_check_in(view, &self.hold_ref, self.index, now))
    }
}
