//! Every engine operation, written once: load -> decide (pure) -> commit, with a bounded
//! retry when a commit loses a race. Generic over [`AsyncStore`]; the blocking engine runs
//! these same futures through `block_on`.

use time::OffsetDateTime;

use super::error::{AvailabilityError, OpenError, RequestError, SettleError, SweepError};
use crate::contract::{MAX_QUANTITY, OccKey, PaymentResult, PaymentStatus};
use crate::holds::{
    Availability, HoldRequest, Occurrence, OccurrenceConfig, RequestDecision, RequestOutcome, RequestRefusal,
    decide_expiry, decide_request,
};
use crate::settlement::{Settlement, decide_settlement};
use crate::store::{AsyncStore, Commit, CommitError, HoldWrite, LoadRequest, Versioned};

pub(crate) async fn open<S: AsyncStore>(
    store: &S,
    occ_key: &OccKey,
    config: OccurrenceConfig,
) -> Result<(), OpenError> {
    let mut commit = Commit::new(occ_key.clone());
    commit.configure = Some(config);
    match store.commit(commit).await {
        Ok(()) => Ok(()),
        Err(CommitError::Store(e)) => Err(e.into()),
        // A configure-only commit has no guard to lose; a store that reports one anyway is
        // answered as unavailable rather than trusted.
        Err(CommitError::Conflict(c)) => {
            Err(crate::store::StoreError::Corrupt(format!("configure reported {c}")).into())
        }
    }
}

pub(crate) async fn request<S: AsyncStore>(
    store: &S,
    req: &HoldRequest,
    now: OffsetDateTime,
    attempts: u32,
) -> Result<RequestOutcome, RequestError> {
    if !(1..=MAX_QUANTITY).contains(&req.quantity) {
        return Err(RequestError::BadQuantity { got: req.quantity, max: MAX_QUANTITY });
    }
    let load = LoadRequest { occ_key: &req.occ_key, actor: Some(&req.actor), settlement_ref: Some(&req.hold_ref) };
    for _ in 0..attempts {
        let snap = store.load(load).await?;
        let own_version = snap.hold.as_ref().map(|h| h.version);
        let mut lapsed: Option<Vec<Versioned<_>>> = None;
        let decision = loop {
            let d = decide_request(
                snap.occurrence.as_ref(),
                snap.hold.as_ref().map(|h| &h.value),
                snap.settlement.is_some(),
                req,
                now,
                lapsed.as_deref(),
            )
            .map_err(|refusal| match refusal {
                RequestRefusal::UnknownOccurrence => RequestError::UnknownOccurrence { occ_key: req.occ_key.clone() },
                RequestRefusal::RefReused => RequestError::RefReused { hold_ref: req.hold_ref.clone() },
            })?;
            match d {
                // The actor's own lapsed hold may be among those loaded; ask for one more.
                RequestDecision::NeedLapsed { up_to } if lapsed.is_none() => {
                    lapsed = Some(store.lapsed_holds(Some(&req.occ_key), now, up_to + 1).await?);
                }
                d => break d,
            }
        };
        let placement = match decision {
            // Full after loading lapsed holds: if something (a sweep, a settlement) expired
            // some of them between the two loads, the lapsed list came back short against
            // stale counters. If the fresh counters show more room than the ones decided on,
            // decide again rather than answer Full with seats free (invariant 2); otherwise
            // (the common case on a busy sold-out occurrence) Full stands.
            RequestDecision::Answer(outcome @ RequestOutcome::Full { .. }) if lapsed.is_some() => {
                let fresh =
                    store.load(LoadRequest { occ_key: &req.occ_key, actor: None, settlement_ref: None }).await?;
                if room(fresh.occurrence.as_ref()) <= room(snap.occurrence.as_ref()) {
                    return Ok(outcome);
                }
                continue;
            }
            RequestDecision::Answer(outcome) => return Ok(outcome),
            RequestDecision::Place(p) => p,
            // decide_request asks for lapsed holds only once; answer as full rather than loop.
            RequestDecision::NeedLapsed { .. } => {
                let capacity = snap.occurrence.map_or(0, |o| o.config.capacity());
                return Ok(RequestOutcome::Full { capacity });
            }
        };
        let mut commit = Commit::new(req.occ_key.clone());
        commit.seats = placement.seats;
        commit.holds.reserve(1 + placement.reclaimed.len());
        commit.holds.push(HoldWrite { expected: own_version, hold: placement.hold });
        let loaded = lapsed.as_deref().unwrap_or_default();
        for (i, hold) in placement.reclaimed {
            commit.holds.push(HoldWrite { expected: loaded.get(i).map(|h| h.version), hold });
        }
        commit.events = placement.events;
        match store.commit(commit).await {
            Ok(()) => return Ok(placement.outcome),
            Err(CommitError::Conflict(_)) => continue,
            Err(CommitError::Store(e)) => return Err(e.into()),
        }
    }
    Err(RequestError::Contention { attempts })
}

pub(crate) async fn settle<S: AsyncStore>(
    store: &S,
    result: &PaymentResult,
    now: OffsetDateTime,
    attempts: u32,
) -> Result<Settlement, SettleError> {
    let load = LoadRequest {
        occ_key: &result.occ_key,
        actor: Some(&result.actor),
        settlement_ref: (result.status == PaymentStatus::Paid).then_some(&result.hold_ref),
    };
    for _ in 0..attempts {
        let snap = store.load(load).await?;
        let decision = decide_settlement(snap.hold.as_ref().map(|h| &h.value), snap.settlement.as_ref(), result, now);
        let Some(write) = decision.write else {
            return Ok(decision.outcome);
        };
        let mut commit = Commit::new(result.occ_key.clone());
        commit.seats = write.seats;
        commit.holds.reserve_exact(1);
        if let Some(hold) = write.hold {
            commit.holds.push(HoldWrite { expected: snap.hold.as_ref().map(|h| h.version), hold });
        }
        commit.settlement = write.record;
        commit.events = write.events;
        match store.commit(commit).await {
            Ok(()) => return Ok(decision.outcome),
            Err(CommitError::Conflict(_)) => continue,
            Err(CommitError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SettleError::Contention { attempts })
}

pub(crate) async fn expire_due<S: AsyncStore>(
    store: &S,
    now: OffsetDateTime,
    limit: usize,
) -> Result<usize, SweepError> {
    let due = store.lapsed_holds(None, now, limit).await.map_err(|source| SweepError::Store { expired: 0, source })?;
    let mut expired = 0;
    for h in due {
        let Some((hold, seats, event)) = decide_expiry(&h.value, now) else {
            continue;
        };
        let mut commit = Commit::new(hold.occ_key.clone());
        commit.seats = seats;
        commit.holds = vec![HoldWrite { expected: Some(h.version), hold }];
        commit.events = vec![event];
        match store.commit(commit).await {
            Ok(()) => expired += 1,
            // Someone else (a request, a settlement, another sweeper) got to it first.
            Err(CommitError::Conflict(_)) => {}
            Err(CommitError::Store(source)) => return Err(SweepError::Store { expired, source }),
        }
    }
    Ok(expired)
}

pub(crate) async fn availability<S: AsyncStore>(
    store: &S,
    occ_key: &OccKey,
    now: OffsetDateTime,
) -> Result<Availability, AvailabilityError> {
    let snap = store.load(LoadRequest { occ_key, actor: None, settlement_ref: None }).await?;
    let occ = snap.occurrence.ok_or_else(|| AvailabilityError::UnknownOccurrence { occ_key: occ_key.clone() })?;
    let lapsed = store.lapsed_seats(occ_key, now).await?;
    Ok(occ.availability(lapsed))
}

/// Seats free by the counters (capacity minus held and confirmed, lapsed holds included);
/// lowest for a missing occurrence.
fn room(occ: Option<&Occurrence>) -> i128 {
    occ.map_or(i128::MIN, |o| i128::from(o.config.capacity()) - i128::from(o.in_use()))
}
