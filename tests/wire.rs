//! The wire contract, frozen: the exact bytes of every message shape (insta snapshots, so field
//! ORDER is pinned as well as content), the README's wire-format examples and realistic
//! provider webhooks as golden inputs, round trips, and decimal semantics.
//!
//! A snapshot change here is a wire change: field names and `kind` strings are frozen, so it
//! needs a new contract version, not an accepted snapshot.

use std::collections::HashSet;
use std::str::FromStr;

use proptest::prelude::*;
use rust_decimal::Decimal;
use seathold::contract::{
    ActorId, Amount, CHECKOUT_KIND, CheckoutRequest, Currency, DomainEvent, EventId, EventKind, MAX_ID_BYTES,
    MAX_QUANTITY, Money, NoHoldReason, OccKey, OutboxEvent, PAYMENT_KIND, PaymentResult, PaymentStatus, ProviderRef,
    Ref,
};
use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn occ(s: &str) -> OccKey {
    OccKey::new(s).expect("valid occ_key")
}

fn actor(s: &str) -> ActorId {
    ActorId::new(s).expect("valid actor")
}

fn hold_ref(s: &str) -> Ref {
    Ref::new(s).expect("valid ref")
}

fn money(amount: &str, currency: &str) -> Money {
    Money::parse(amount, currency).expect("valid money")
}

fn amount(s: &str) -> Amount {
    Amount::parse(s).expect("valid amount")
}

fn currency(s: &str) -> Currency {
    Currency::parse(s).expect("valid currency")
}

fn provider_ref(s: &str) -> ProviderRef {
    ProviderRef::new(s).expect("valid provider_ref")
}

/// The checkout request of the README's wire-format example.
fn design_checkout() -> CheckoutRequest {
    CheckoutRequest::new(
        occ("gig-2026-12-01"),
        actor("user-42"),
        money("25.00", "EUR"),
        hold_ref("r-7f3a"),
        1,
        datetime!(2026-12-01 19:10:00 UTC),
    )
    .expect("valid checkout request")
}

/// The payment result of the README's wire-format example.
fn design_payment() -> PaymentResult {
    PaymentResult::paid(occ("gig-2026-12-01"), actor("user-42"), hold_ref("r-7f3a"))
}

/// A payment result with every optional field set.
fn full_payment() -> PaymentResult {
    let mut r = design_payment()
        .with_money(amount("25.00"), currency("EUR"))
        .with_provider_ref(provider_ref("pi_3PqRsT2eZvKYlo2C1xYz9AbC"));
    r.occurred_at = Some(datetime!(2026-12-01 19:05:12 UTC));
    r
}

fn outbox(id: u64, kind: EventKind) -> OutboxEvent {
    OutboxEvent {
        id: EventId(id),
        event: DomainEvent {
            occ_key: occ("gig-2026-12-01"),
            actor: actor("user-42"),
            hold_ref: Some(hold_ref("r-7f3a")),
            at: datetime!(2026-12-01 19:00:00 UTC),
            kind,
            metadata: None,
        },
    }
}

/// An example message written across lines, with its line breaks and indentation removed (there
/// is no whitespace inside any of its string values).
fn compact(design_text: &str) -> String {
    design_text.split('\n').map(str::trim).collect()
}

/// The keys of a JSON object, in the order they appear in `json`.
fn key_order(json: &str) -> Vec<String> {
    // serde_json's `preserve_order` is off, so read the keys in text order by hand: every
    // top-level key is a string directly after `{` or `,`.
    let v: serde_json::Value = serde_json::from_str(json).expect("to_json emits JSON");
    let obj = v.as_object().expect("to_json emits an object");
    let mut keys: Vec<(usize, String)> = obj
        .keys()
        .map(|k| {
            let needle = format!("{}:", serde_json::to_string(k).expect("key"));
            (json.find(&needle).expect("key in text"), k.clone())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

// ---------------------------------------------------------------------------------------------
// Snapshots: checkout requests
// ---------------------------------------------------------------------------------------------

#[test]
fn checkout_quantity_one_snapshot() {
    insta::assert_snapshot!("checkout_quantity_one", design_checkout().to_json());
}

#[test]
fn checkout_quantity_many_snapshot() {
    let c = CheckoutRequest::new(
        occ("gig-2026-12-01"),
        actor("user-43"),
        money("100.00", "EUR"),
        hold_ref("r-9b1c"),
        4,
        datetime!(2026-12-01 19:10:00 UTC),
    )
    .expect("valid checkout request");
    insta::assert_snapshot!("checkout_quantity_many", c.to_json());
}

#[test]
fn checkout_max_quantity_fraction_and_offset_snapshot() {
    // Non-UTC offsets and sub-second precision are echoed as given, not normalised.
    let c = CheckoutRequest::new(
        occ("listing-9f2c"),
        actor("seller:buyer/77"),
        money("1234.500000000", "BHD"),
        hold_ref("0190c0de-7e57-7000-8000-00000000beef"),
        MAX_QUANTITY,
        datetime!(2026-06-30 23:59:59.123456789 -07:00),
    )
    .expect("valid checkout request");
    insta::assert_snapshot!("checkout_max_quantity_fraction_offset", c.to_json());
}

#[test]
fn checkout_matches_design_example_byte_for_byte() {
    let design = r#"{"kind":"events.checkout","occ_key":"gig-2026-12-01","actor":"user-42",
 "amount":"25.00","currency":"EUR","ref":"r-7f3a","quantity":1,
 "expires_at":"2026-12-01T19:10:00Z"}"#;
    assert_eq!(design_checkout().to_json(), compact(design));
    assert_eq!(
        key_order(&design_checkout().to_json()),
        ["kind", "occ_key", "actor", "amount", "currency", "ref", "quantity", "expires_at"]
    );
    assert_eq!(CHECKOUT_KIND, "events.checkout");
}

// ---------------------------------------------------------------------------------------------
// Snapshots: payment results
// ---------------------------------------------------------------------------------------------

#[test]
fn payment_required_only_snapshots() {
    insta::assert_snapshot!("payment_paid_required_only", design_payment().to_json());
    let failed = PaymentResult::failed(occ("gig-2026-12-01"), actor("user-42"), hold_ref("r-7f3a"));
    insta::assert_snapshot!("payment_failed_required_only", failed.to_json());
    let expired =
        PaymentResult::new(occ("gig-2026-12-01"), actor("user-42"), hold_ref("r-7f3a"), PaymentStatus::Expired);
    insta::assert_snapshot!("payment_expired_required_only", expired.to_json());
}

#[test]
fn payment_every_optional_field_snapshot() {
    insta::assert_snapshot!("payment_paid_all_optional", full_payment().to_json());
}

#[test]
fn payment_each_optional_field_alone_snapshots() {
    // Each optional field is omitted (not `null`) when absent, and keeps its slot when present.
    let money_only = design_payment().with_money(amount("25.0"), currency("EUR"));
    insta::assert_snapshot!("payment_paid_money_only", money_only.to_json());
    let provider_only = design_payment().with_provider_ref(provider_ref("pi_123"));
    insta::assert_snapshot!("payment_paid_provider_ref_only", provider_only.to_json());
    let mut at_only = design_payment();
    at_only.occurred_at = Some(datetime!(2026-12-01 20:05:00.5 +01:00));
    insta::assert_snapshot!("payment_paid_occurred_at_only", at_only.to_json());
}

#[test]
fn payment_matches_design_example_byte_for_byte() {
    let design = r#"{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-42",
 "ref":"r-7f3a","status":"paid"}"#;
    assert_eq!(design_payment().to_json(), compact(design));
    assert_eq!(
        key_order(&full_payment().to_json()),
        ["kind", "occ_key", "actor", "ref", "status", "amount", "currency", "provider_ref", "occurred_at"]
    );
    assert_eq!(PAYMENT_KIND, "events.payment");
    let statuses: Vec<&str> =
        [PaymentStatus::Paid, PaymentStatus::Failed, PaymentStatus::Expired].iter().map(|s| s.as_str()).collect();
    assert_eq!(statuses, ["paid", "failed", "expired"]);
}

#[test]
fn payment_wire_has_no_nulls() {
    for r in [design_payment(), full_payment()] {
        assert!(!r.to_json().contains("null"), "{}", r.to_json());
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots: outbox events
// ---------------------------------------------------------------------------------------------

#[test]
fn outbox_hold_placed_snapshot() {
    let e = outbox(
        1,
        EventKind::HoldPlaced {
            quantity: 2,
            price: money("50.00", "EUR"),
            expires_at: datetime!(2026-12-01 19:10 UTC),
            lines: Default::default(),
        },
    );
    insta::assert_snapshot!("outbox_hold_placed", e.to_json());
}

#[test]
fn outbox_hold_confirmed_snapshot() {
    insta::assert_snapshot!(
        "outbox_hold_confirmed",
        outbox(2, EventKind::HoldConfirmed { quantity: 2, revived: false }).to_json()
    );
}

#[test]
fn outbox_hold_released_snapshot() {
    insta::assert_snapshot!("outbox_hold_released", outbox(3, EventKind::HoldReleased { quantity: 1 }).to_json());
}

#[test]
fn outbox_hold_expired_snapshot() {
    insta::assert_snapshot!("outbox_hold_expired", outbox(4, EventKind::HoldExpired { quantity: 3 }).to_json());
}

#[test]
fn outbox_refund_required_full_snapshot() {
    let e = outbox(
        5,
        EventKind::RefundRequired {
            reason: NoHoldReason::Expired,
            amount: Some(amount("25.00")),
            currency: Some(currency("EUR")),
            provider_ref: Some(provider_ref("pi_3PqRsT2eZvKYlo2C1xYz9AbC")),
        },
    );
    insta::assert_snapshot!("outbox_refund_required_full", e.to_json());
}

#[test]
fn outbox_refund_required_bare_snapshot() {
    let e = outbox(
        6,
        EventKind::RefundRequired { reason: NoHoldReason::NoHold, amount: None, currency: None, provider_ref: None },
    );
    insta::assert_snapshot!("outbox_refund_required_bare", e.to_json());
}

#[test]
fn outbox_refund_required_partial_snapshots() {
    let money_only = outbox(
        7,
        EventKind::RefundRequired {
            reason: NoHoldReason::RefMismatch,
            amount: Some(amount("25.0")),
            currency: Some(currency("EUR")),
            provider_ref: None,
        },
    );
    insta::assert_snapshot!("outbox_refund_required_money_only", money_only.to_json());
    let provider_only = outbox(
        8,
        EventKind::RefundRequired {
            reason: NoHoldReason::AlreadyPaid,
            amount: None,
            currency: None,
            provider_ref: Some(provider_ref("pi_999")),
        },
    );
    insta::assert_snapshot!("outbox_refund_required_provider_ref_only", provider_only.to_json());
}

#[test]
fn outbox_refund_reasons_match_design() {
    // The refund reasons of the settlement truth table (`seathold::settlement`): no_hold,
    // expired, released, ref_mismatch, already_paid (amount_mismatch / currency_mismatch are
    // rejections, never refund signals).
    let reasons = [
        NoHoldReason::NoHold,
        NoHoldReason::Expired,
        NoHoldReason::Released,
        NoHoldReason::RefMismatch,
        NoHoldReason::AlreadyPaid,
    ];
    let wire: Vec<String> = reasons
        .iter()
        .map(|&reason| {
            let e = outbox(9, EventKind::RefundRequired { reason, amount: None, currency: None, provider_ref: None });
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
            v["reason"].as_str().expect("reason is a string").to_owned()
        })
        .collect();
    assert_eq!(wire, ["no_hold", "expired", "released", "ref_mismatch", "already_paid"]);
    for r in reasons {
        assert_eq!(NoHoldReason::parse(r.as_str()), Some(r));
    }
    insta::assert_snapshot!("outbox_refund_reasons", wire.join("\n"));
}

#[test]
fn outbox_events_carry_design_fields_in_frozen_order() {
    let common = ["id", "type", "occ_key", "actor", "ref", "at"];
    let cases: Vec<(EventKind, &str, Vec<&str>)> = vec![
        (
            EventKind::HoldPlaced {
                quantity: 1,
                price: money("25.00", "EUR"),
                expires_at: datetime!(2026-12-01 19:10 UTC),
                lines: Default::default(),
            },
            "hold_placed",
            vec!["quantity", "amount", "currency", "expires_at"],
        ),
        (EventKind::HoldConfirmed { quantity: 1, revived: false }, "hold_confirmed", vec!["quantity"]),
        (EventKind::HoldReleased { quantity: 1 }, "hold_released", vec!["quantity"]),
        (EventKind::HoldExpired { quantity: 1 }, "hold_expired", vec!["quantity"]),
        (
            EventKind::RefundRequired {
                reason: NoHoldReason::Released,
                amount: Some(amount("1")),
                currency: Some(currency("USD")),
                provider_ref: Some(provider_ref("p")),
            },
            "refund_required",
            vec!["reason", "amount", "currency", "provider_ref"],
        ),
    ];
    for (kind, type_str, own) in cases {
        assert_eq!(kind.type_str(), type_str);
        let json = outbox(10, kind).to_json();
        let expected: Vec<&str> = common.iter().copied().chain(own).collect();
        assert_eq!(key_order(&json), expected, "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["type"], type_str);
        assert_eq!(v["id"], 10, "event id is a JSON number");
    }
}

// ---------------------------------------------------------------------------------------------
// Golden inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn golden_design_checkout() {
    let parsed = CheckoutRequest::from_json(include_bytes!("golden/design_checkout.json")).expect("parses");
    assert_eq!(parsed, design_checkout());
    assert_eq!(parsed.to_json(), design_checkout().to_json());
}

#[test]
fn golden_design_payment() {
    let parsed = PaymentResult::from_json(include_bytes!("golden/design_payment.json")).expect("parses");
    assert_eq!(parsed, design_payment());
    assert_eq!(parsed.status, PaymentStatus::Paid);
    assert_eq!((parsed.amount, parsed.currency, &parsed.provider_ref, parsed.occurred_at), (None, None, &None, None));
}

#[test]
fn golden_provider_webhook_paid_with_everything() {
    // A Stripe-like envelope: unknown scalars, nested objects and arrays (some of them holding
    // keys that collide with ours, one level down), all ignored.
    let parsed = PaymentResult::from_json(include_bytes!("golden/webhook_paid_full.json")).expect("parses");
    let mut expected = full_payment();
    expected.occurred_at = Some(datetime!(2026-12-01 19:05:12.345 UTC));
    assert_eq!(parsed, expected);
    assert_eq!(parsed.occurred_at.map(OffsetDateTime::nanosecond), Some(345_000_000));
}

#[test]
fn golden_provider_webhook_failed_unicode() {
    let parsed = PaymentResult::from_json(include_bytes!("golden/webhook_failed_unicode.json")).expect("parses");
    let mut expected =
        PaymentResult::failed(occ("konzert-münchen-2026-12-01"), actor("用户-42"), hold_ref("r-ß-🎟\u{fe0f}-7f3a"))
            .with_provider_ref(provider_ref("zahlung/ÄÖÜ-123"));
    expected.occurred_at = Some(datetime!(2026-12-01 20:05:00 +01:00));
    assert_eq!(parsed, expected);
    // Same instant as 19:05Z; the parsed value keeps the offset, the wire is always UTC.
    assert_eq!(parsed.occurred_at, Some(datetime!(2026-12-01 19:05:00 UTC)));
    assert_eq!(parsed.occurred_at.map(OffsetDateTime::offset), Some(UtcOffset::from_hms(1, 0, 0).expect("offset")));
    assert!(parsed.to_json().contains(r#""occurred_at":"2026-12-01T19:05:00Z""#), "{}", parsed.to_json());
    // Unicode ids go out as UTF-8, not as escapes, and come back equal.
    assert!(parsed.to_json().contains("用户-42"));
    assert_eq!(PaymentResult::from_json(parsed.to_json().as_bytes()), Ok(parsed));
}

#[test]
fn golden_provider_webhook_expired_with_null_optionals() {
    // Keys in a different order, `\u` escapes in an id, optional fields explicitly null.
    let parsed = PaymentResult::from_json(include_bytes!("golden/webhook_expired_nulls.json")).expect("parses");
    let expected =
        PaymentResult::new(occ("gig-2026-12-01"), actor("user-42"), hold_ref("r-Aß"), PaymentStatus::Expired);
    assert_eq!(parsed, expected);
}

#[test]
fn golden_checkout_with_extras_and_default_quantity() {
    let parsed = CheckoutRequest::from_json(include_bytes!("golden/checkout_with_extras.json")).expect("parses");
    let expected = CheckoutRequest::new(
        occ("listing-9f2c"),
        actor("seller:buyer/77"),
        money("1234.5", "BHD"),
        hold_ref("0190c0de-7e57-7000-8000-00000000beef"),
        1,
        datetime!(2026-06-30 23:59:59.999999999 -07:00),
    )
    .expect("valid checkout request");
    assert_eq!(parsed, expected);
    assert_eq!(parsed.quantity, 1, "quantity defaults to 1 when absent");
    assert_eq!(parsed.price(), money("1234.50", "BHD"));
}

#[test]
fn golden_checkout_quantity_four() {
    let parsed = CheckoutRequest::from_json(include_bytes!("golden/checkout_quantity_four.json")).expect("parses");
    let expected = CheckoutRequest::new(
        occ("gig-2026-12-01"),
        actor("user-43"),
        money("100.000", "USD"),
        hold_ref("r-9b1c"),
        4,
        datetime!(2026-12-01 19:10:00 UTC),
    )
    .expect("valid checkout request");
    assert_eq!(parsed, expected);
    assert!(parsed.to_json().contains(r#""amount":"100.000""#), "scale kept: {}", parsed.to_json());
}

#[test]
fn golden_messages_are_not_accepted_by_the_other_parser() {
    // Each kind is only accepted at its own endpoint.
    for body in [&include_bytes!("golden/design_payment.json")[..], include_bytes!("golden/webhook_paid_full.json")] {
        assert!(CheckoutRequest::from_json(body).is_err());
    }
    for body in [&include_bytes!("golden/design_checkout.json")[..], include_bytes!("golden/checkout_with_extras.json")]
    {
        assert!(PaymentResult::from_json(body).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_fixed_messages() {
    let checkouts = [
        design_checkout(),
        CheckoutRequest::new(
            occ("k"),
            actor("a"),
            money("0", "XXX"),
            hold_ref("r"),
            MAX_QUANTITY,
            datetime!(0000-01-01 00:00:00 UTC),
        )
        .expect("valid checkout request"),
        CheckoutRequest::new(
            occ(&"o".repeat(MAX_ID_BYTES)),
            actor(&"é".repeat(MAX_ID_BYTES / 2)),
            money("999999999999999999.999999999", "XAU"),
            hold_ref("\"quoted\" \\ back/slash"),
            7,
            datetime!(9999-12-31 23:59:59.999999999 +23:59),
        )
        .expect("valid checkout request"),
    ];
    for c in checkouts {
        let json = c.to_json();
        let back = CheckoutRequest::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, c);
        assert_eq!(back.to_json(), json, "serialization is stable");
    }
    let mut with_offset = full_payment();
    with_offset.occurred_at = Some(datetime!(2026-12-01 19:05:12.000001 -09:30));
    for r in [
        design_payment(),
        full_payment(),
        with_offset,
        PaymentResult::failed(occ("k"), actor("a"), hold_ref("r")),
        PaymentResult::new(occ("k"), actor("a"), hold_ref("r"), PaymentStatus::Expired)
            .with_provider_ref(provider_ref(&"p".repeat(256))),
    ] {
        let json = r.to_json();
        let back = PaymentResult::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, r);
        assert_eq!(back.to_json(), json, "serialization is stable");
    }
}

/// Every value the contract types let a caller build must serialize to bytes the contract's
/// own parser accepts, or the booking side emits checkout requests (and refund signals) that
/// the payment side refuses.
#[test]
fn amount_from_decimal_never_emits_an_amount_the_wire_refuses() {
    let third = Decimal::from(100) / Decimal::from(3); // 33.333…, scale 27: ordinary arithmetic
    let candidates = [
        third,
        Decimal::from_str("0.0000000001").expect("decimal"), // 10 fraction digits
        Decimal::from_str("1000000000000000000").expect("decimal"), // 19 integer digits
        Decimal::MAX,
    ];
    for d in candidates {
        let Ok(a) = Amount::from_decimal(d) else { continue }; // refusing it is fine
        let c = CheckoutRequest::new(
            occ("gig"),
            actor("a"),
            Money { amount: a, currency: currency("EUR") },
            hold_ref("r"),
            1,
            datetime!(2026-12-01 19:10 UTC),
        )
        .expect("valid checkout request");
        let json = c.to_json();
        assert_eq!(CheckoutRequest::from_json(json.as_bytes()), Ok(c), "Amount::from_decimal({d}) emits {json}");
    }
}

#[test]
fn timestamps_with_sub_minute_offsets_serialize_as_rfc3339() {
    // RFC 3339 offsets are whole minutes; `time` allows seconds (historic local mean times,
    // `to_offset` with a computed offset). The wire must still carry RFC 3339.
    let at = datetime!(2026-12-01 19:10:00 +01:00:30);
    let c = CheckoutRequest::new(occ("gig"), actor("a"), money("25.00", "EUR"), hold_ref("r"), 1, at)
        .expect("valid checkout request");
    let json = c.to_json();
    let back = CheckoutRequest::from_json(json.as_bytes());
    assert_eq!(back.map(|b| b.expires_at), Ok(at), "expires_at emitted as {json}");
    let mut r = design_payment();
    r.occurred_at = Some(at);
    let json = r.to_json();
    let back = PaymentResult::from_json(json.as_bytes());
    assert_eq!(back.map(|b| b.occurred_at), Ok(Some(at)), "occurred_at emitted as {json}");
}

/// Identifiers: printable characters including non-ASCII, quotes and backslashes.
fn id_strategy(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9_:/.\"\\\\ üß€用🎟-]{{1,{max_chars}}}"))
        .expect("regex")
        .prop_filter("fits the byte limit", |s| s.len() <= MAX_ID_BYTES)
}

fn amount_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9]{1,18}(\\.[0-9]{1,9})?").expect("regex")
}

/// An ISO 4217 currency and an amount within its minor unit (XAU has none: any decimals).
fn money_strategy() -> impl Strategy<Value = (String, String)> {
    (amount_strategy(), proptest::sample::select(vec!["EUR", "JPY", "BHD", "USD", "XAU", "CLF"]))
        .prop_map(|(a, c)| (a, c.to_owned()))
        .prop_filter("within the currency's minor unit", |(a, c)| Money::parse(a, c).is_ok())
}

fn timestamp_strategy() -> impl Strategy<Value = OffsetDateTime> {
    // Years 0001..=9998 so that any offset keeps the local date within RFC 3339's 0000..=9999.
    (-62_135_596_800i64..=253_370_764_800i64, 0u32..1_000_000_000, -(23 * 60 + 59)..=(23 * 60 + 59i32)).prop_map(
        |(secs, nanos, offset_min)| {
            let offset = UtcOffset::from_whole_seconds(offset_min * 60).expect("offset");
            (OffsetDateTime::from_unix_timestamp(secs).expect("in range") + time::Duration::nanoseconds(nanos.into()))
                .to_offset(offset)
        },
    )
}

fn status_strategy() -> impl Strategy<Value = PaymentStatus> {
    prop_oneof![Just(PaymentStatus::Paid), Just(PaymentStatus::Failed), Just(PaymentStatus::Expired)]
}

proptest! {
    #[test]
    fn round_trip_any_checkout(
        o in id_strategy(40), a in id_strategy(40), r in id_strategy(40),
        (amt, cur) in money_strategy(), q in 1..=MAX_QUANTITY, at in timestamp_strategy(),
    ) {
        let c = CheckoutRequest::new(occ(&o), actor(&a), money(&amt, &cur), hold_ref(&r), q, at).expect("valid checkout request");
        let json = c.to_json();
        let back = CheckoutRequest::from_json(json.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&c), "{}", json);
        prop_assert_eq!(back.map(|b| b.to_json()), Ok(json));
    }

    #[test]
    fn round_trip_any_payment(
        o in id_strategy(40), a in id_strategy(40), r in id_strategy(40), status in status_strategy(),
        money_opt in proptest::option::of(money_strategy()),
        p in proptest::option::of(id_strategy(40)), at in proptest::option::of(timestamp_strategy()),
    ) {
        let mut res = PaymentResult::new(occ(&o), actor(&a), hold_ref(&r), status);
        if let Some((amt, cur)) = money_opt {
            res = res.with_money(amount(&amt), currency(&cur));
        }
        if let Some(p) = p {
            res = res.with_provider_ref(provider_ref(&p));
        }
        res.occurred_at = at;
        let json = res.to_json();
        let back = PaymentResult::from_json(json.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&res), "{}", json);
        prop_assert_eq!(back.map(|b| b.to_json()), Ok(json));
    }

    #[test]
    fn amount_display_keeps_the_written_scale(amt in amount_strategy()) {
        // Leading zeros are not part of the scale; everything after the point is.
        let a = amount(&amt);
        let (int, frac) = amt.split_once('.').map_or((amt.as_str(), None), |(i, f)| (i, Some(f)));
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let expected = match frac {
            Some(f) => format!("{int}.{f}"),
            None => int.to_owned(),
        };
        prop_assert_eq!(a.to_string(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Decimal semantics
// ---------------------------------------------------------------------------------------------

#[test]
fn amounts_compare_as_decimals() {
    assert_eq!(amount("25.0"), amount("25.00"));
    assert_eq!(amount("25"), amount("25.000000000"));
    assert_eq!(amount("0"), amount("0.00"));
    assert_eq!(amount("007.50"), amount("7.5"));
    assert_ne!(amount("25.01"), amount("25.00"));
    assert_ne!(amount("2.5"), amount("25"));
    assert!(amount("9.99") < amount("10.0"));
    // Hash agrees with Eq.
    let set: HashSet<Amount> = ["25", "25.0", "25.00", "25.000000000"].into_iter().map(amount).collect();
    assert_eq!(set.len(), 1);
    assert_eq!(money("25.0", "EUR"), money("25.00", "EUR"));
    assert_ne!(money("25.00", "EUR"), money("25.00", "USD"));
}

#[test]
fn to_json_keeps_the_scale_it_was_given() {
    for (given, wire) in [
        ("25", r#""amount":"25""#),
        ("25.0", r#""amount":"25.0""#),
        ("25.00", r#""amount":"25.00""#),
        ("25.000000000", r#""amount":"25.000000000""#),
        ("0.00", r#""amount":"0.00""#),
        ("0.000000000", r#""amount":"0.000000000""#),
        ("0000.10", r#""amount":"0.10""#),
        ("999999999999999999.999999999", r#""amount":"999999999999999999.999999999""#),
    ] {
        let c = CheckoutRequest::new(
            occ("gig"),
            actor("a"),
            money(given, "XAU"),
            hold_ref("r"),
            1,
            datetime!(2026-12-01 19:10 UTC),
        )
        .expect("valid checkout request");
        assert!(c.to_json().contains(wire), "{given}: {}", c.to_json());
        let p = design_payment().with_money(amount(given), currency("EUR"));
        assert!(p.to_json().contains(wire), "{given}: {}", p.to_json());
        let e = outbox(
            1,
            EventKind::RefundRequired {
                reason: NoHoldReason::NoHold,
                amount: Some(amount(given)),
                currency: Some(currency("EUR")),
                provider_ref: None,
            },
        );
        assert!(e.to_json().contains(wire), "{given}: {}", e.to_json());
    }
}

#[test]
fn parsed_amount_echoes_its_scale_and_equals_other_scales() {
    let body = |amt: &str| {
        format!(
            r#"{{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-42","ref":"r-7f3a","status":"paid","amount":"{amt}","currency":"EUR"}}"#
        )
    };
    let one = PaymentResult::from_json(body("25.0").as_bytes()).expect("parses");
    let two = PaymentResult::from_json(body("25.00").as_bytes()).expect("parses");
    assert_eq!(one, two, "25.0 and 25.00 are the same result");
    assert_eq!(one.to_json(), body("25.0"));
    assert_eq!(two.to_json(), body("25.00"));
}
