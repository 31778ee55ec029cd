//! Signed payment results (Standard Webhooks), the provider adapter, ISO 4217 currencies, and
//! the error classification a web layer maps to HTTP statuses. Every new parser gets a typed
//! error per way its input can be wrong, changes nothing, and never panics on arbitrary bytes.

use std::sync::Arc;

use proptest::prelude::*;
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{
    ActorId, Amount, Currency, DomainEvent, Money, MoneyError, OccKey, OutboxEvent, ParseError, PaymentResult,
    PaymentStatus, Ref,
};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::tickets::TicketKey;
use seathold::webhooks::{
    AdapterError, Headers, ProviderAdapter, SignatureError, Signer, StatusCodeAdapter, Verifier, WebhookSecret,
};
use seathold::{Engine, ErrorKind, ManualClock, MemoryStore, OpError, WebhookRefusal};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

fn secret(b: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(vec![b; 32]).expect("a 32-byte secret")
}

fn headers<'a>(h: &'a seathold::webhooks::SignedHeaders) -> Headers<'a> {
    Headers { id: Some(&h.id), timestamp: Some(&h.timestamp), signature: Some(&h.signature) }
}

#[test]
fn the_standard_webhooks_test_vector_verifies() {
    // The specification's published example.
    let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("the spec's secret");
    let body = br#"{"test": 2432232314}"#;
    let at = OffsetDateTime::from_unix_timestamp(1_614_265_330).expect("time");
    let signed = Signer::new(s.clone()).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", at, body);
    assert_eq!(signed.signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let v = Verifier::new([s]).expect("verifier");
    assert_eq!(v.verify(&headers(&signed), body, at), Ok(()));
}

#[test]
fn each_way_a_signature_can_be_wrong_has_its_error() {
    let body = br#"{"kind":"events.payment"}"#;
    let good = Signer::new(secret(1)).sign("msg_1", NOW, body);
    let v = Verifier::new([secret(1)]).expect("verifier");
    assert_eq!(v.verify(&headers(&good), body, NOW), Ok(()));
    // Another secret, a tampered body, another id.
    let forged = Signer::new(secret(2)).sign("msg_1", NOW, body);
    assert_eq!(v.verify(&headers(&forged), body, NOW), Err(SignatureError::NoMatch));
    assert_eq!(v.verify(&headers(&good), br#"{"kind":"events.paymenT"}"#, NOW), Err(SignatureError::NoMatch));
    let mut other_id = good.clone();
    other_id.id = "msg_2".into();
    assert_eq!(v.verify(&headers(&other_id), body, NOW), Err(SignatureError::NoMatch));
    // Timestamps: exactly at the tolerance is accepted, a second past it is not.
    let edge = Signer::new(secret(1)).sign("m", NOW - Duration::minutes(5), body);
    assert_eq!(v.verify(&headers(&edge), body, NOW), Ok(()));
    let old = Signer::new(secret(1)).sign("m", NOW - Duration::minutes(5) - Duration::seconds(1), body);
    assert_eq!(v.verify(&headers(&old), body, NOW), Err(SignatureError::TooOld));
    let future = Signer::new(secret(1)).sign("m", NOW + Duration::minutes(6), body);
    assert_eq!(v.verify(&headers(&future), body, NOW), Err(SignatureError::TooNew));
    // Missing and malformed headers.
    for (h, name) in [
        (Headers { id: None, ..headers(&good) }, "webhook-id"),
        (Headers { timestamp: None, ..headers(&good) }, "webhook-timestamp"),
        (Headers { signature: None, ..headers(&good) }, "webhook-signature"),
    ] {
        assert_eq!(v.verify(&h, body, NOW), Err(SignatureError::MissingHeader { name }));
    }
    let bad_ts = Headers { timestamp: Some("12e3"), ..headers(&good) };
    assert_eq!(v.verify(&bad_ts, body, NOW), Err(SignatureError::BadHeader { name: "webhook-timestamp" }));
    let no_v1 = Headers { signature: Some("v2,abc"), ..headers(&good) };
    assert_eq!(v.verify(&no_v1, body, NOW), Err(SignatureError::BadHeader { name: "webhook-signature" }));
    let huge = "v1,".to_owned() + &"A".repeat(5000);
    let too_long = Headers { signature: Some(&huge), ..headers(&good) };
    assert_eq!(v.verify(&too_long, body, NOW), Err(SignatureError::BadHeader { name: "webhook-signature" }));
    // Several signatures, one valid (a sender mid-rotation), are accepted.
    let several = format!("v1,AAAA {} v1,!!!", good.signature);
    assert_eq!(v.verify(&Headers { signature: Some(&several), ..headers(&good) }, body, NOW), Ok(()));
}

#[test]
fn key_rotation_accepts_every_configured_secret() {
    let body = b"{}";
    let both = Verifier::new([secret(2), secret(1)]).expect("verifier");
    for s in [secret(1), secret(2)] {
        let signed = Signer::new(s).sign("m", NOW, body);
        assert_eq!(both.verify(&headers(&signed), body, NOW), Ok(()));
    }
    let new_only = Verifier::new([secret(2)]).expect("verifier");
    let old = Signer::new(secret(1)).sign("m", NOW, body);
    assert_eq!(new_only.verify(&headers(&old), body, NOW), Err(SignatureError::NoMatch));
}

#[test]
fn secrets_are_whsec_base64_of_at_least_16_bytes() {
    assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SignatureError::BadSecret));
    assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(SignatureError::BadSecret));
    assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(SignatureError::BadSecret));
    assert_eq!(Verifier::new(Vec::new()).map(|_| ()), Err(SignatureError::NoSecret));
    let s = secret(9);
    assert_eq!(WebhookSecret::parse(&s.to_whsec()), Ok(s.clone()));
    assert_eq!(format!("{s:?}"), "WebhookSecret(..)", "a secret never shows in logs");
}

#[test]
fn a_bad_signature_changes_nothing_and_a_good_one_settles() {
    let clock = Arc::new(ManualClock::new(NOW));
    let engine = Engine::with_clock(MemoryStore::new(), clock.clone());
    let gig = OccKey::new("gig").expect("key");
    engine.open(&gig, OccurrenceConfig::new(1, 600).expect("config")).expect("open");
    let req = HoldRequest::new(gig.clone(), ActorId::new("ann").expect("a"), Ref::new("r1").expect("r"), eur("10.00"));
    assert!(matches!(engine.request(&req).expect("request"), RequestOutcome::AwaitingPayment { .. }));
    engine.drain_events(100).expect("drain");
    let body = br#"{"kind":"events.payment","occ_key":"gig","actor":"ann","ref":"r1","status":"paid"}"#;
    let v = Verifier::new([secret(1)]).expect("verifier");
    let forged = Signer::new(secret(2)).sign("m1", NOW, body);
    match engine.settle_signed(&v, &headers(&forged), body) {
        Err(e @ OpError::Refused(WebhookRefusal::Signature(SignatureError::NoMatch))) => {
            assert_eq!(e.kind(), ErrorKind::Unauthorized);
            assert_eq!(e.kind().http_status(), 401);
        }
        other => panic!("a forged webhook must be refused: {other:?}"),
    }
    assert!(engine.drain_events(100).expect("drain").is_empty(), "a refused webhook wrote nothing");
    assert_eq!(engine.availability(&gig).expect("a").held, 1);
    // Signed right but not a payment result: refused before settling.
    let junk = b"not json";
    let signed_junk = Signer::new(secret(1)).sign("m2", NOW, junk);
    match engine.settle_signed(&v, &headers(&signed_junk), junk) {
        Err(e @ OpError::Refused(WebhookRefusal::Parse(_))) => assert_eq!(e.kind(), ErrorKind::BadRequest),
        other => panic!("{other:?}"),
    }
    let good = Signer::new(secret(1)).sign("m3", NOW, body);
    assert!(matches!(engine.settle_signed(&v, &headers(&good), body), Ok(Settlement::Confirmed { replayed: false })));
}

fn eur(a: &str) -> Money {
    Money::parse(a, "EUR").expect("money")
}

#[test]
fn the_provider_adapter_maps_codes_numbers_and_strings_alike() {
    let body = |status: &str| {
        format!(
            r#"{{"id":"pay_1","status":{status},"occ_key":"gig","actor":"ann","ref":"r1","amount":"10.00","currency":"EUR"}}"#
        )
    };
    let a = StatusCodeAdapter;
    for (code, want) in [
        ("0", None),
        ("\"0\"", None),
        ("1", Some(PaymentStatus::Paid)),
        ("\"1\"", Some(PaymentStatus::Paid)),
        ("3", Some(PaymentStatus::Expired)),
        ("4", Some(PaymentStatus::Failed)),
        ("\"5\"", Some(PaymentStatus::Failed)),
    ] {
        let adapted = a.adapt(body(code).as_bytes()).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(adapted.result.as_ref().map(|r| r.status), want, "{code}");
        let plain = code.trim_matches('"');
        assert_eq!(adapted.event_id, format!("provider:pay_1:{plain}"), "a number and its string are one event");
        if let Some(r) = adapted.result {
            assert_eq!(r.provider_ref.map(|p| p.to_string()), Some("pay_1".to_owned()));
            assert_eq!(r.amount, Some(Amount::parse("10.00").expect("a")));
        }
    }
    for bad in ["2", "\"paid\"", "1.0", "true", "null"] {
        let got = a.adapt(body(bad).as_bytes());
        assert!(
            matches!(
                got,
                Err(AdapterError::UnknownStatus(_)) | Err(AdapterError::Parse(ParseError::MissingField { .. }))
            ),
            "{bad}: {got:?}"
        );
    }
    assert!(matches!(a.adapt(b"[]"), Err(AdapterError::Parse(ParseError::NotAnObject))));
    let no_ref = br#"{"id":"pay_1","status":1,"occ_key":"gig","actor":"ann"}"#;
    assert!(matches!(a.adapt(no_ref), Err(AdapterError::Parse(ParseError::MissingField { field: "ref" }))));
    // Pending changes nothing: the engine answers Noop.
    let engine = Engine::with_clock(MemoryStore::new(), Arc::new(ManualClock::new(NOW)));
    assert_eq!(engine.settle_provider(&a, body("0").as_bytes()).ok(), Some(Settlement::Noop));
    assert!(engine.drain_events(10).expect("drain").is_empty());
}

#[test]
fn currencies_are_iso_4217_and_amounts_fit_their_minor_unit() {
    assert!(matches!(Currency::parse("XYZ"), Err(MoneyError::UnknownCurrency(_))));
    assert!(matches!(Currency::parse("eur"), Err(MoneyError::BadCurrency(_))));
    assert_eq!(Currency::parse("JPY").expect("jpy").minor_unit(), Some(0));
    assert_eq!(Currency::parse("BHD").expect("bhd").minor_unit(), Some(3));
    assert!(matches!(Money::parse("25.001", "EUR"), Err(MoneyError::TooPrecise { minor_unit: 2, .. })));
    assert!(matches!(Money::parse("10.5", "JPY"), Err(MoneyError::TooPrecise { minor_unit: 0, .. })));
    assert!(Money::parse("25.000", "EUR").is_ok(), "trailing zeros are not precision");
    assert!(Money::parse("10", "JPY").is_ok());
    assert!(Money::parse("1.234", "BHD").is_ok());
    // On the wire: a payment result or checkout request with such money is refused, typed.
    let wire = br#"{"kind":"events.payment","occ_key":"g","actor":"a","ref":"r","status":"paid","amount":"100.5","currency":"JPY"}"#;
    match PaymentResult::from_json(wire) {
        Err(e @ ParseError::BadMoney { source: MoneyError::TooPrecise { .. }, .. }) => {
            assert_eq!(seathold::Classify::kind(&e), ErrorKind::Unprocessable);
        }
        other => panic!("{other:?}"),
    }
    let wire = br#"{"kind":"events.payment","occ_key":"g","actor":"a","ref":"r","status":"paid","amount":"1","currency":"XYZ"}"#;
    assert!(matches!(
        PaymentResult::from_json(wire),
        Err(ParseError::BadMoney { source: MoneyError::UnknownCurrency(_), .. })
    ));
    // Arithmetic without reaching for Decimal.
    let unit = eur("12.50");
    assert_eq!(unit.checked_mul(3), Some(eur("37.50")));
    assert_eq!(eur("1.00").checked_add(unit), Some(eur("13.50")));
    assert_eq!(eur("1.00").checked_add(Money::parse("1", "USD").expect("usd")), None, "different currencies");
}

#[test]
fn the_ticket_key_must_be_long_enough_and_never_shows() {
    assert!(TicketKey::new(vec![1u8; 31]).is_err());
    let k = TicketKey::new(vec![1u8; 32]).expect("key");
    assert_eq!(format!("{k:?}"), "TicketKey(..)");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No header and no body makes the verifier panic; garbage never verifies.
    #[test]
    fn the_verifier_never_panics(id in ".{0,40}", ts in ".{0,20}", sig in ".{0,120}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let v = Verifier::new([secret(1)]).expect("verifier");
        let h = Headers { id: Some(&id), timestamp: Some(&ts), signature: Some(&sig) };
        prop_assert!(v.verify(&h, &body, NOW).is_err());
    }

    /// The provider adapter answers a typed error for any bytes that are not its shape.
    #[test]
    fn the_adapter_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = StatusCodeAdapter.adapt(&body);
    }

    /// Money and events parse or refuse, never panic.
    #[test]
    fn money_and_events_never_panic(a in ".{0,30}", c in ".{0,5}", body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Money::parse(&a, &c);
        let _ = OutboxEvent::from_json(&body);
        let _ = DomainEvent::from_json(&body);
    }

    /// Credentials: anything that is not a real one is refused, never panics.
    #[test]
    fn credentials_never_panic(c in ".{0,200}") {
        let k = TicketKey::new(vec![3u8; 32]).expect("key");
        prop_assert!(k.verify(&c).is_err());
    }
}
