//! Invariant 8: bad input returns a typed error, the exact variant for what is wrong, and
//! changes nothing. No input panics.
//!
//! One table of concrete bodies, each with the exact [`ParseError`] it must produce; a check
//! that the table reaches every `ParseError`, `MoneyError` and `IdError` variant; property
//! tests that nothing panics; and an engine-level test that `settle_json` of each bad body
//! answers `OpError::Refused` with the parse error, without touching the store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use rust_decimal::Decimal;
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{
    ActorId, Amount, CheckoutRequest, Currency, IdError, MAX_ID_BYTES, MAX_MESSAGE_BYTES, MAX_PROVIDER_REF_BYTES,
    MAX_QUANTITY, Money, MoneyError, OccKey, ParseError, PaymentResult, ProviderRef, Ref,
};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::store::{Call, Intercept, Intercepted, StoreError};
use seathold::{Engine, ManualClock, MemoryStore, OpError};
use serde_json::{Map, Value, json};
use time::macros::datetime;

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// A valid payment result for the hold the engine test places, with every optional field.
fn payment_map() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "kind": "events.payment",
        "occ_key": "gig-2026-12-01",
        "actor": "user-42",
        "ref": "r-7f3a",
        "status": "paid",
        "amount": "50.00",
        "currency": "EUR",
        "provider_ref": "pi_1",
        "occurred_at": "2026-01-01T00:01:00Z",
    }) else {
        unreachable!()
    };
    m
}

/// A valid checkout request, with every optional field.
fn checkout_map() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "kind": "events.checkout",
        "occ_key": "gig-2026-12-01",
        "actor": "user-42",
        "amount": "50.00",
        "currency": "EUR",
        "ref": "r-7f3a",
        "quantity": 2,
        "expires_at": "2026-01-01T00:10:00Z",
    }) else {
        unreachable!()
    };
    m
}

fn with(mut m: Map<String, Value>, field: &str, value: Option<Value>) -> Vec<u8> {
    match value {
        Some(v) => m.insert(field.to_owned(), v),
        None => m.remove(field),
    };
    serde_json::to_vec(&m).expect("serializable")
}

/// The valid payment body with `field` set to `value` (`None`: removed).
fn payment(field: &str, value: Option<Value>) -> Vec<u8> {
    with(payment_map(), field, value)
}

/// The valid checkout body with `field` set to `value` (`None`: removed).
fn checkout(field: &str, value: Option<Value>) -> Vec<u8> {
    with(checkout_map(), field, value)
}

/// A valid payment body padded (with an unknown field) to exactly `len` bytes.
fn payment_of_len(len: usize) -> Vec<u8> {
    let base = payment("pad", Some(json!(""))).len();
    let body = payment("pad", Some(json!("x".repeat(len - base))));
    assert_eq!(body.len(), len);
    body
}

/// A payment body with valid kind, occ_key, actor and status, then the raw JSON `tail`, for bytes `json!` cannot
/// express (invalid UTF-8, raw escapes).
fn raw_payment(tail: &[u8]) -> Vec<u8> {
    let mut b = br#"{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-42","status":"paid","#.to_vec();
    b.extend_from_slice(tail);
    b.push(b'}');
    b
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    /// `PaymentResult::from_json` (and `Engine::settle_json`).
    Payment,
    /// `CheckoutRequest::from_json`.
    Checkout,
    /// Both parsers.
    Both,
}

type Check = Box<dyn Fn(&ParseError) -> bool>;

struct Case {
    name: String,
    target: Target,
    body: Vec<u8>,
    check: Check,
}

struct Table(Vec<Case>);

impl Table {
    fn add(
        &mut self,
        target: Target,
        name: impl Into<String>,
        body: Vec<u8>,
        check: impl Fn(&ParseError) -> bool + 'static,
    ) {
        self.0.push(Case { name: name.into(), target, body, check: Box::new(check) });
    }
}

use Target::{Both, Checkout, Payment};

fn is_missing(f: &'static str) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::MissingField { field } if *field == f)
}

fn is_wrong_type(f: &'static str) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::WrongType { field, .. } if *field == f)
}

fn is_bad_id(f: &'static str, want: IdError) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::BadId { field, source } if *field == f && *source == want)
}

fn is_malformed(f: &'static str, s: String) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::BadMoney { field, source: MoneyError::Malformed(m) } if *field == f && *m == s)
}

fn is_bad_currency(s: String) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::BadMoney { field: "currency", source: MoneyError::BadCurrency(c) } if *c == s)
}

fn is_bad_timestamp(f: &'static str) -> impl Fn(&ParseError) -> bool {
    move |e| matches!(e, ParseError::BadTimestamp { field } if *field == f)
}

fn is_not_json(e: &ParseError) -> bool {
    matches!(e, ParseError::NotJson { detail } if !detail.is_empty())
}

/// Wrong-typed JSON values for a string field.
fn non_strings() -> Vec<(&'static str, Value)> {
    vec![
        ("integer", json!(42)),
        ("float", json!(1.5)),
        ("bool", json!(true)),
        ("object", json!({"value": "x"})),
        ("array", json!(["x"])),
    ]
}

#[allow(clippy::too_many_lines)]
fn table() -> Table {
    let mut t = Table(Vec::new());

    // --- not JSON -------------------------------------------------------------------------
    for (name, body) in [
        ("empty body", &b""[..]),
        ("whitespace only", b"  \n\t "),
        ("plain text", b"not json"),
        ("unterminated object", b"{"),
        ("truncated after key", br#"{"kind":"#),
        ("trailing comma", br#"{"kind":"events.payment",}"#),
        ("single quotes", b"{'kind':'events.payment'}"),
        ("unquoted key", br#"{kind:"events.payment"}"#),
        ("two objects", br#"{}{}"#),
        ("trailing garbage", br#"{"kind":"events.payment"} x"#),
        ("comment", br#"{"kind":"events.payment" /* hi */}"#),
        ("NaN literal", br#"{"amount":NaN}"#),
        ("number out of range", br#"{"amount":1e400}"#),
        ("form encoded", b"kind=events.payment&status=paid"),
    ] {
        t.add(Both, format!("not JSON: {name}"), body.to_vec(), is_not_json);
    }

    // --- not UTF-8 --------------------------------------------------------------------------
    t.add(Both, "not UTF-8: lone 0xff", b"\xff".to_vec(), is_not_json);
    t.add(Both, "not UTF-8: UTF-16LE body", "{}".encode_utf16().flat_map(u16::to_le_bytes).collect(), is_not_json);
    t.add(Both, "not UTF-8: BOM prefix", b"\xef\xbb\xbf{}".to_vec(), is_not_json);
    t.add(Payment, "not UTF-8: invalid byte in ref", raw_payment(b"\"ref\":\"r-\xff\""), is_not_json);
    t.add(Payment, "not UTF-8: encoded surrogate in ref", raw_payment(b"\"ref\":\"r-\xed\xa0\x80\""), is_not_json);
    t.add(Payment, "not UTF-8: overlong encoding in ref", raw_payment(b"\"ref\":\"r-\xc0\xaf\""), is_not_json);
    t.add(Payment, "not UTF-8: lone surrogate escape in ref", raw_payment(br#""ref":"r-\ud800""#), is_not_json);
    t.add(
        Payment,
        "not UTF-8: invalid byte in an unknown field",
        raw_payment(b"\"ref\":\"r-7f3a\",\"extra\":\"\xfe\""),
        is_not_json,
    );

    // --- not an object ----------------------------------------------------------------------
    for (name, body) in [
        ("empty array", &b"[]"[..]),
        ("array of the message", br#"[{"kind":"events.payment"}]"#),
        ("string", br#""events.payment""#),
        ("integer", b"42"),
        ("float", b"-1.5e3"),
        ("null", b"null"),
        ("true", b"true"),
        ("padded null", b"  null\n"),
    ] {
        t.add(Both, format!("not an object: {name}"), body.to_vec(), |e| matches!(e, ParseError::NotAnObject));
    }

    // --- kind ---------------------------------------------------------------------------------
    t.add(
        Payment,
        "wrong kind: a checkout sent to the payment parser",
        checkout("x", None),
        |e| matches!(e, ParseError::WrongKind { expected: "events.payment", found } if found == "events.checkout"),
    );
    t.add(
        Checkout,
        "wrong kind: a payment sent to the checkout parser",
        payment("x", None),
        |e| matches!(e, ParseError::WrongKind { expected: "events.checkout", found } if found == "events.payment"),
    );
    for found in ["EVENTS.PAYMENT", "events.payment ", "payment", "", "events.payment.v2", "events.payments"] {
        t.add(
            Payment,
            format!("wrong kind: {found:?}"),
            payment("kind", Some(json!(found))),
            move |e| matches!(e, ParseError::WrongKind { expected: "events.payment", found: f } if f == found),
        );
    }
    t.add(
        Payment,
        "wrong kind: 200 chars, clipped to 64",
        payment("kind", Some(json!("é".repeat(200)))),
        |e| matches!(e, ParseError::WrongKind { found, .. } if *found == "é".repeat(64)),
    );
    for target in [Payment, Checkout] {
        let body = |v| if target == Payment { payment("kind", v) } else { checkout("kind", v) };
        t.add(target, "kind missing", body(None), is_missing("kind"));
        t.add(target, "kind null", body(Some(Value::Null)), is_missing("kind"));
        for (what, v) in non_strings() {
            t.add(target, format!("kind not a string: {what}"), body(Some(v)), is_wrong_type("kind"));
        }
    }

    // --- required fields: missing / null / wrong type ---------------------------------------
    for field in ["occ_key", "actor", "ref", "status"] {
        t.add(Payment, format!("{field} missing"), payment(field, None), is_missing(field));
        t.add(Payment, format!("{field} null"), payment(field, Some(Value::Null)), is_missing(field));
        for (what, v) in non_strings() {
            t.add(Payment, format!("{field} {what}"), payment(field, Some(v)), is_wrong_type(field));
        }
    }
    for field in ["occ_key", "actor", "ref", "amount", "currency", "expires_at"] {
        t.add(Checkout, format!("checkout {field} missing"), checkout(field, None), is_missing(field));
        t.add(Checkout, format!("checkout {field} null"), checkout(field, Some(Value::Null)), is_missing(field));
        for (what, v) in non_strings() {
            if field == "amount" && v.is_number() {
                continue; // numbers are their own error (NotAString), below
            }
            t.add(Checkout, format!("checkout {field} {what}"), checkout(field, Some(v)), is_wrong_type(field));
        }
    }
    // Optional payment fields: absent and null are fine (see `optional_fields_may_be_absent_or_null`),
    // a wrong type is not.
    for field in ["amount", "currency", "provider_ref", "occurred_at"] {
        for (what, v) in non_strings() {
            if field == "amount" && v.is_number() {
                continue;
            }
            t.add(Payment, format!("optional {field} {what}"), payment(field, Some(v)), is_wrong_type(field));
        }
    }

    // --- identifiers --------------------------------------------------------------------------
    let too_long = IdError::TooLong { len: MAX_ID_BYTES + 1, max: MAX_ID_BYTES };
    for field in ["occ_key", "actor", "ref"] {
        t.add(Payment, format!("{field} empty"), payment(field, Some(json!(""))), is_bad_id(field, IdError::Empty));
        t.add(
            Checkout,
            format!("checkout {field} empty"),
            checkout(field, Some(json!(""))),
            is_bad_id(field, IdError::Empty),
        );
        let long = "a".repeat(MAX_ID_BYTES + 1);
        t.add(
            Payment,
            format!("{field} 129 bytes"),
            payment(field, Some(json!(long))),
            is_bad_id(field, too_long.clone()),
        );
        t.add(
            Checkout,
            format!("checkout {field} 129 bytes"),
            checkout(field, Some(json!(long))),
            is_bad_id(field, too_long.clone()),
        );
        // 43 three-byte characters: 43 chars but 129 bytes; the limit is in bytes.
        let long_utf8 = "€".repeat(43);
        t.add(
            Payment,
            format!("{field} 43 x 3-byte chars"),
            payment(field, Some(json!(long_utf8))),
            is_bad_id(field, too_long.clone()),
        );
        t.add(
            Payment,
            format!("{field} of 60,000 bytes (within the body limit)"),
            payment(field, Some(json!("a".repeat(60_000)))),
            is_bad_id(field, IdError::TooLong { len: 60_000, max: MAX_ID_BYTES }),
        );
        for (what, ctl) in [
            ("newline", "\n"),
            ("carriage return", "\r"),
            ("NUL", "\u{0}"),
            ("tab", "\t"),
            ("escape", "\u{1b}"),
            ("DEL", "\u{7f}"),
            ("C1 NEL", "\u{85}"),
        ] {
            let id = format!("user{ctl}42");
            t.add(
                Payment,
                format!("{field} with {what}"),
                payment(field, Some(json!(id))),
                is_bad_id(field, IdError::ControlCharacter),
            );
            t.add(
                Checkout,
                format!("checkout {field} with {what}"),
                checkout(field, Some(json!(id))),
                is_bad_id(field, IdError::ControlCharacter),
            );
        }
    }
    t.add(
        Payment,
        "provider_ref empty",
        payment("provider_ref", Some(json!(""))),
        is_bad_id("provider_ref", IdError::Empty),
    );
    t.add(
        Payment,
        "provider_ref 257 bytes",
        payment("provider_ref", Some(json!("p".repeat(MAX_PROVIDER_REF_BYTES + 1)))),
        is_bad_id("provider_ref", IdError::TooLong { len: MAX_PROVIDER_REF_BYTES + 1, max: MAX_PROVIDER_REF_BYTES }),
    );
    t.add(
        Payment,
        "provider_ref with newline",
        payment("provider_ref", Some(json!("pi_1\nX-Injected: yes"))),
        is_bad_id("provider_ref", IdError::ControlCharacter),
    );
    // The escaped form on the wire is the same character once parsed.
    t.add(
        Payment,
        "ref with escaped NUL",
        raw_payment(br#""ref":"r\u0000""#),
        is_bad_id("ref", IdError::ControlCharacter),
    );

    // --- duplicate keys: two parsers could disagree on which one counts ------------------------
    t.add(
        Payment,
        "status given twice (failed, then paid)",
        raw_payment(br#""ref":"r-7f3a","status":"failed","status":"paid""#),
        |e| matches!(e, ParseError::DuplicateField { field } if field == "status"),
    );
    t.add(
        Payment,
        "ref given twice with the same value",
        raw_payment(br#""ref":"r-7f3a","ref":"r-7f3a""#),
        |e| matches!(e, ParseError::DuplicateField { field } if field == "ref"),
    );

    // --- status -------------------------------------------------------------------------------
    for found in ["PAID", "Paid", "paid ", " paid", "succeeded", "refunded", "", "pending", "canceled"] {
        t.add(
            Payment,
            format!("unknown status {found:?}"),
            payment("status", Some(json!(found))),
            move |e| matches!(e, ParseError::UnknownStatus { found: f } if f == found),
        );
    }
    t.add(
        Payment,
        "unknown status, 300 chars clipped to 64",
        payment("status", Some(json!("x".repeat(300)))),
        |e| matches!(e, ParseError::UnknownStatus { found } if found.len() == 64),
    );

    // --- amounts ------------------------------------------------------------------------------
    for (what, v) in [
        ("integer", json!(25)),
        ("float", json!(25.5)),
        ("zero", json!(0)),
        ("negative", json!(-1)),
        ("exponent", serde_json::from_str::<Value>("2.5e1").expect("number")),
    ] {
        let not_a_string =
            |e: &ParseError| matches!(e, ParseError::BadMoney { field: "amount", source: MoneyError::NotAString });
        t.add(Payment, format!("amount as JSON number: {what}"), payment("amount", Some(v.clone())), not_a_string);
        t.add(Checkout, format!("checkout amount as JSON number: {what}"), checkout("amount", Some(v)), not_a_string);
    }
    for neg in ["-1", "-25.00", "-0", "-0.01", "-1e5"] {
        let negative =
            |e: &ParseError| matches!(e, ParseError::BadMoney { field: "amount", source: MoneyError::Negative });
        t.add(Payment, format!("negative amount {neg:?}"), payment("amount", Some(json!(neg))), negative);
        t.add(Checkout, format!("checkout negative amount {neg:?}"), checkout("amount", Some(json!(neg))), negative);
    }
    let nineteen = "1".repeat(19);
    let ten_frac = format!("1.{}", "1".repeat(10));
    for bad in [
        "1e5",
        "1E5",
        "2.5e1",
        "+5",
        " 5",
        "5 ",
        "5.",
        ".5",
        ".",
        "",
        "1,000.00",
        "1 000",
        "1_000",
        "25,00",
        "1.2.3",
        nineteen.as_str(),
        ten_frac.as_str(),
        "NaN",
        "nan",
        "Infinity",
        "inf",
        "0x10",
        "25.00 EUR",
        "€25",
        "٣",
        "１",
        "25\u{0}",
    ] {
        t.add(
            Payment,
            format!("malformed amount {bad:?}"),
            payment("amount", Some(json!(bad))),
            is_malformed("amount", bad.to_owned()),
        );
        t.add(
            Checkout,
            format!("checkout malformed amount {bad:?}"),
            checkout("amount", Some(json!(bad))),
            is_malformed("amount", bad.to_owned()),
        );
    }
    t.add(Payment, "malformed amount, 200 chars clipped to 64", payment("amount", Some(json!("9".repeat(200)))), |e| {
        matches!(e, ParseError::BadMoney { field: "amount", source: MoneyError::Malformed(m) } if *m == "9".repeat(64))
    });

    // --- currency -----------------------------------------------------------------------------
    for bad in ["eur", "Eur", "EURO", "EU", "E", "E1R", "", " EUR", "EUR ", "ÉUR", "€", "E\u{0}R", "XXXX"] {
        t.add(
            Payment,
            format!("bad currency {bad:?}"),
            payment("currency", Some(json!(bad))),
            is_bad_currency(bad.to_owned()),
        );
        t.add(
            Checkout,
            format!("checkout bad currency {bad:?}"),
            checkout("currency", Some(json!(bad))),
            is_bad_currency(bad.to_owned()),
        );
    }

    // --- quantity -----------------------------------------------------------------------------
    for (what, v) in [
        ("0", json!(0)),
        ("-1", json!(-1)),
        ("10001", json!(MAX_QUANTITY + 1)),
        ("u32::MAX + 1", json!(u64::from(u32::MAX) + 1)),
        ("u64::MAX", json!(u64::MAX)),
        ("1.5", json!(1.5)),
        ("1.0", json!(1.0)),
        ("1e3", serde_json::from_str::<Value>("1e3").expect("number")),
        ("string \"1\"", json!("1")),
        ("bool", json!(true)),
        ("array", json!([1])),
        ("object", json!({"n": 1})),
    ] {
        t.add(
            Checkout,
            format!("bad quantity {what}"),
            checkout("quantity", Some(v)),
            |e| matches!(e, ParseError::BadQuantity { max } if *max == MAX_QUANTITY),
        );
    }

    // --- timestamps ---------------------------------------------------------------------------
    for bad in [
        "",
        "now",
        "2026-12-01",
        "19:10:00Z",
        "2026-12-01T19:10:00",
        "2026-12-01T19:10Z",
        "2026-12-01T19:10:00+0100",
        "2026-13-01T19:10:00Z",
        "2026-02-30T19:10:00Z",
        "2026-12-01T24:00:01Z",
        "2026-12-01T19:61:00Z",
        "2026-12-01T19:10:00+24:00",
        "1764616200",
        "Tue, 01 Dec 2026 19:10:00 GMT",
        "2026-12-01T19:10:00.Z",
        "+12026-12-01T19:10:00Z",
        "2026-12-01T19:10:00Z trailing",
    ] {
        t.add(
            Checkout,
            format!("bad expires_at {bad:?}"),
            checkout("expires_at", Some(json!(bad))),
            is_bad_timestamp("expires_at"),
        );
        t.add(
            Payment,
            format!("bad occurred_at {bad:?}"),
            payment("occurred_at", Some(json!(bad))),
            is_bad_timestamp("occurred_at"),
        );
    }

    // --- size and depth -----------------------------------------------------------------------
    let max = MAX_MESSAGE_BYTES;
    t.add(
        Both,
        "valid body one byte over the limit",
        payment_of_len(max + 1),
        move |e| matches!(e, ParseError::TooLarge { len, max: m } if *len == max + 1 && *m == max),
    );
    t.add(
        Both,
        "garbage over the limit is TooLarge, not NotJson",
        vec![0xff; max + 1],
        move |e| matches!(e, ParseError::TooLarge { len, .. } if *len == max + 1),
    );
    t.add(
        Both,
        "4 MiB body",
        vec![b' '; 4 << 20],
        |e| matches!(e, ParseError::TooLarge { len, .. } if *len == 4 << 20),
    );
    t.add(Both, "100k '[' (over the limit)", vec![b'['; 100_000], |e| {
        matches!(e, ParseError::TooLarge { len: 100_000, .. })
    });
    t.add(Both, "64 Ki '[' (at the limit)", vec![b'['; max], is_not_json);
    // A top-level array is skipped without recursion and refused for what it is.
    t.add(Both, "balanced nesting 30k deep", [vec![b'['; 30_000], vec![b']'; 30_000]].concat(), |e| {
        matches!(e, ParseError::NotAnObject)
    });
    t.add(
        Both,
        "nested objects 10k deep",
        [br#"{"a":"#.repeat(10_000), b"1".to_vec(), b"}".repeat(10_000)].concat(),
        is_not_json,
    );
    let mut deep_field = raw_payment(br#""ref":"r-7f3a","extra":"#);
    deep_field.pop();
    deep_field.extend([vec![b'['; 20_000], vec![b']'; 20_000], b"}".to_vec()].concat());
    t.add(Payment, "valid message with a 20k-deep unknown field", deep_field, is_not_json);

    t
}

fn variant(e: &ParseError) -> String {
    match e {
        ParseError::TooLarge { .. } => "ParseError::TooLarge".into(),
        ParseError::NotJson { .. } => "ParseError::NotJson".into(),
        ParseError::NotAnObject => "ParseError::NotAnObject".into(),
        ParseError::WrongKind { .. } => "ParseError::WrongKind".into(),
        ParseError::MissingField { .. } => "ParseError::MissingField".into(),
        ParseError::WrongType { .. } => "ParseError::WrongType".into(),
        ParseError::BadId { source, .. } => format!("IdError::{}", id_variant(source)),
        ParseError::UnknownStatus { .. } => "ParseError::UnknownStatus".into(),
        ParseError::BadMoney { source, .. } => format!("MoneyError::{}", money_variant(source)),
        ParseError::BadQuantity { .. } => "ParseError::BadQuantity".into(),
        ParseError::BadTimestamp { .. } => "ParseError::BadTimestamp".into(),
        ParseError::DuplicateField { .. } => "ParseError::DuplicateField".into(),
        other => format!("unlisted ParseError {other:?}"),
    }
}

fn id_variant(e: &IdError) -> &'static str {
    match e {
        IdError::Empty => "Empty",
        IdError::TooLong { .. } => "TooLong",
        IdError::ControlCharacter => "ControlCharacter",
        _ => "unlisted",
    }
}

fn money_variant(e: &MoneyError) -> &'static str {
    match e {
        MoneyError::NotAString => "NotAString",
        MoneyError::Negative => "Negative",
        MoneyError::Malformed(_) => "Malformed",
        MoneyError::BadCurrency(_) => "BadCurrency",
        _ => "unlisted",
    }
}

fn parse(target: Target, body: &[u8]) -> Vec<(&'static str, Result<(), ParseError>)> {
    let p = || ("PaymentResult::from_json", PaymentResult::from_json(body).map(drop));
    let c = || ("CheckoutRequest::from_json", CheckoutRequest::from_json(body).map(drop));
    match target {
        Payment => vec![p()],
        Checkout => vec![c()],
        Both => vec![p(), c()],
    }
}

#[test]
fn every_bad_body_gets_its_exact_error() {
    let table = table();
    let mut failures = Vec::new();
    let mut hit = BTreeSet::new();
    for case in &table.0 {
        for (parser, got) in parse(case.target, &case.body) {
            match got {
                Err(e) if (case.check)(&e) => {
                    hit.insert(variant(&e));
                    // Every error explains itself.
                    assert!(!e.to_string().is_empty());
                }
                other => failures.push(format!("{parser} / {}: got {other:?}", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.0.len(), failures.join("\n"));
    let parses: usize = table.0.iter().map(|c| if c.target == Both { 2 } else { 1 }).sum();
    assert!(table.0.len() >= 360 && parses >= 400, "table shrank: {} cases, {parses} parses", table.0.len());

    let all: BTreeSet<String> = [
        "ParseError::TooLarge",
        "ParseError::NotJson",
        "ParseError::NotAnObject",
        "ParseError::WrongKind",
        "ParseError::MissingField",
        "ParseError::WrongType",
        "ParseError::UnknownStatus",
        "ParseError::BadQuantity",
        "ParseError::BadTimestamp",
        "ParseError::DuplicateField",
        "IdError::Empty",
        "IdError::TooLong",
        "IdError::ControlCharacter",
        "MoneyError::NotAString",
        "MoneyError::Negative",
        "MoneyError::Malformed",
        "MoneyError::BadCurrency",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(hit, all, "the table must reach every variant");
}

#[test]
fn the_valid_bases_parse() {
    // Otherwise every case above could fail for the wrong reason.
    let p = PaymentResult::from_json(&payment("x", None)).expect("valid payment");
    assert_eq!(p.hold_ref.as_str(), "r-7f3a");
    let c = CheckoutRequest::from_json(&checkout("x", None)).expect("valid checkout");
    assert_eq!(c.quantity, 2);
    // The already-parsed entry point agrees with the raw one.
    assert_eq!(PaymentResult::from_value(&Value::Object(payment_map())), Ok(p));
    for v in [json!([]), json!(null), json!("events.payment"), json!(1)] {
        assert_eq!(PaymentResult::from_value(&v), Err(ParseError::NotAnObject), "{v}");
    }
    let mut m = payment_map();
    m.insert("amount".into(), json!(25));
    assert!(matches!(
        PaymentResult::from_value(&Value::Object(m)),
        Err(ParseError::BadMoney { field: "amount", source: MoneyError::NotAString })
    ));
}

#[test]
fn boundaries_that_are_accepted() {
    // Exactly 128-byte ids (ASCII and multi-byte), a 256-byte provider_ref.
    for field in ["occ_key", "actor", "ref"] {
        for id in ["a".repeat(MAX_ID_BYTES), "é".repeat(MAX_ID_BYTES / 2), format!("{}€", "a".repeat(125))] {
            assert_eq!(id.len(), MAX_ID_BYTES);
            assert!(PaymentResult::from_json(&payment(field, Some(json!(id)))).is_ok(), "{field} {id}");
            assert!(CheckoutRequest::from_json(&checkout(field, Some(json!(id)))).is_ok(), "{field} {id}");
        }
        // Non-ASCII that is not a control character is fine (U+2028 is a separator, not Cc).
        for id in ["用户-42", "🎟", "a b", "a\u{2028}b", "\u{a0}"] {
            assert!(PaymentResult::from_json(&payment(field, Some(json!(id)))).is_ok(), "{field} {id:?}");
        }
    }
    let p = "p".repeat(MAX_PROVIDER_REF_BYTES);
    assert!(PaymentResult::from_json(&payment("provider_ref", Some(json!(p)))).is_ok());
    // Amount extremes.
    for ok in ["0", "0.0", "000", "1", "25.00", "999999999999999999", "999999999999999999.990000000", "0.010"] {
        assert!(PaymentResult::from_json(&payment("amount", Some(json!(ok)))).is_ok(), "{ok}");
        assert!(CheckoutRequest::from_json(&checkout("amount", Some(json!(ok)))).is_ok(), "{ok}");
    }
    // Nine decimals, in a currency without a minor unit (gold).
    for ok in ["999999999999999999.999999999", "0.000000001"] {
        let mut p: Value = serde_json::from_slice(&payment("amount", Some(json!(ok)))).unwrap();
        p["currency"] = json!("XAU");
        assert!(PaymentResult::from_json(p.to_string().as_bytes()).is_ok(), "{ok}");
    }
    // Quantity 1 and MAX_QUANTITY; absent defaults to 1.
    for (v, want) in [(Some(json!(1)), 1), (Some(json!(MAX_QUANTITY)), MAX_QUANTITY), (None, 1)] {
        assert_eq!(CheckoutRequest::from_json(&checkout("quantity", v)).map(|c| c.quantity), Ok(want));
    }
    // Timestamps: offsets, fractions, lower-case separators are RFC 3339.
    for ts in ["2026-12-01T19:10:00Z", "2026-12-01T19:10:00.123456789+05:30", "2026-12-01T19:10:00-00:00"] {
        assert!(CheckoutRequest::from_json(&checkout("expires_at", Some(json!(ts)))).is_ok(), "{ts}");
    }
    // Exactly MAX_MESSAGE_BYTES is accepted.
    assert!(PaymentResult::from_json(&payment_of_len(MAX_MESSAGE_BYTES)).is_ok());
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    for field in ["amount", "currency", "provider_ref", "occurred_at"] {
        for v in [None, Some(Value::Null)] {
            let r =
                PaymentResult::from_json(&payment(field, v.clone())).unwrap_or_else(|e| panic!("{field} {v:?}: {e}"));
            let absent = match field {
                "amount" => r.amount.is_none(),
                "currency" => r.currency.is_none(),
                "provider_ref" => r.provider_ref.is_none(),
                _ => r.occurred_at.is_none(),
            };
            assert!(absent, "{field} {v:?}");
        }
    }
}

#[test]
fn the_field_constructors_refuse_the_same_values() {
    // IdError, straight from the constructors.
    assert_eq!(OccKey::new(""), Err(IdError::Empty));
    assert_eq!(ActorId::new("a".repeat(129)), Err(IdError::TooLong { len: 129, max: 128 }));
    assert!(ActorId::new("a".repeat(128)).is_ok());
    assert_eq!(Ref::new("r\n"), Err(IdError::ControlCharacter));
    assert_eq!(Ref::new("r\u{0}"), Err(IdError::ControlCharacter));
    assert_eq!(ProviderRef::new("p".repeat(257)), Err(IdError::TooLong { len: 257, max: 256 }));
    assert!(ProviderRef::new("p".repeat(256)).is_ok());
    // MoneyError, straight from the constructors.
    assert_eq!(Amount::parse("-1"), Err(MoneyError::Negative));
    assert_eq!(Amount::parse("1e5"), Err(MoneyError::Malformed("1e5".into())));
    assert_eq!(Amount::parse("1".repeat(19).as_str()), Err(MoneyError::Malformed("1".repeat(19))));
    assert_eq!(Amount::parse("NaN"), Err(MoneyError::Malformed("NaN".into())));
    assert_eq!(Currency::parse("eur"), Err(MoneyError::BadCurrency("eur".into())));
    assert_eq!(Currency::parse(""), Err(MoneyError::BadCurrency(String::new())));
    assert_eq!(Money::parse("25.00", "EURO"), Err(MoneyError::BadCurrency("EURO".into())));
    assert_eq!(Money::parse("x", "EURO"), Err(MoneyError::Malformed("x".into())));
    assert_eq!(Amount::from_decimal(Decimal::NEGATIVE_ONE), Err(MoneyError::Negative));
    assert!(Amount::from_decimal(Decimal::ZERO).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Nothing panics
// ---------------------------------------------------------------------------------------------

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        "[0-9]{0,20}(\\.[0-9]{0,12})?".prop_map(Value::String),
        "-?[0-9.eE+,]{0,8}".prop_map(Value::String),
        prop_oneof![Just("paid"), Just("failed"), Just("expired"), Just("EUR"), Just("events.payment")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "kind",
    "occ_key",
    "actor",
    "ref",
    "status",
    "amount",
    "currency",
    "provider_ref",
    "occurred_at",
    "quantity",
    "expires_at",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = PaymentResult::from_json(&bytes);
        let _ = CheckoutRequest::from_json(&bytes);
    }

    #[test]
    fn json_ish_strings_never_panic(s in "[\\[\\]{}\":,0-9a-z.\\-+eE \\\\/_\u{0}\u{7f}\u{e9}\u{1F39F}]{0,256}") {
        let _ = PaymentResult::from_json(s.as_bytes());
        let _ = CheckoutRequest::from_json(s.as_bytes());
    }

    #[test]
    fn mutated_valid_messages_never_panic_and_round_trip_when_accepted(
        edits in proptest::collection::vec((proptest::sample::select(FIELDS), proptest::option::of(json_value())), 1..4),
    ) {
        let mut p = payment_map();
        let mut c = checkout_map();
        for (field, v) in edits {
            match v {
                Some(v) => {
                    p.insert(field.to_owned(), v.clone());
                    c.insert(field.to_owned(), v);
                }
                None => {
                    p.remove(field);
                    c.remove(field);
                }
            }
        }
        let pb = serde_json::to_vec(&p).expect("json");
        if let Ok(r) = PaymentResult::from_json(&pb) {
            prop_assert_eq!(PaymentResult::from_json(r.to_json().as_bytes()), Ok(r));
        }
        let cb = serde_json::to_vec(&c).expect("json");
        if let Ok(r) = CheckoutRequest::from_json(&cb) {
            prop_assert_eq!(CheckoutRequest::from_json(r.to_json().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn truncations_of_a_valid_body_are_errors_not_panics(cut in 0usize..200) {
        let body = payment("x", None);
        let cut = cut.min(body.len().saturating_sub(1));
        prop_assert!(PaymentResult::from_json(&body[..cut]).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Engine: a bad body changes nothing and never reaches the store
// ---------------------------------------------------------------------------------------------

/// Counts every call the engine makes to the store but reading the outbox.
#[derive(Debug, Default)]
struct Calls(AtomicUsize);

impl Intercept for Calls {
    fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        if !matches!(call, Call::PendingEvents) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A [`MemoryStore`] that counts every call the engine makes to it.
type CountingStore = Intercepted<MemoryStore, Calls>;

fn calls_made(store: &CountingStore) -> usize {
    store.hook.0.load(Ordering::SeqCst)
}

#[test]
fn settle_json_of_a_bad_body_answers_parse_and_changes_nothing() {
    let engine = Engine::with_clock(CountingStore::default(), ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let gig = OccKey::new("gig-2026-12-01").expect("id");
    engine.open(&gig, OccurrenceConfig::new(10, 600).expect("config")).expect("open");
    let price = Money::parse("50.00", "EUR").expect("money");
    // The hold every bad body is aimed at (same occ_key, actor and ref as the bodies), and a
    // second, confirmed one.
    let req =
        HoldRequest::new(gig.clone(), ActorId::new("user-42").expect("id"), Ref::new("r-7f3a").expect("id"), price)
            .with_quantity(2);
    assert!(matches!(engine.request(&req), Ok(RequestOutcome::AwaitingPayment { replayed: false, .. })));
    let other = HoldRequest::new(gig.clone(), ActorId::new("user-7").expect("id"), Ref::new("r-1").expect("id"), price);
    assert!(matches!(engine.request(&other), Ok(RequestOutcome::AwaitingPayment { .. })));
    let paid_other = br#"{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-7","ref":"r-1","status":"paid","amount":"50.00","currency":"EUR"}"#;
    assert_eq!(engine.settle_json(paid_other).expect("settles"), Settlement::Confirmed { replayed: false });

    let availability = engine.availability(&gig).expect("availability");
    assert_eq!((availability.held, availability.confirmed, availability.available), (2, 1, 7));
    let outbox = engine.pending_events(usize::MAX).expect("outbox");
    assert_eq!(outbox.len(), 3, "{outbox:?}");
    let store_dump = format!("{:?}", engine.store().inner);

    let mut cases = 0;
    let mut failures = Vec::new();
    for case in table().0.into_iter().filter(|c| c.target != Checkout) {
        let calls = calls_made(engine.store());
        match engine.settle_json(&case.body) {
            Err(OpError::Refused(e)) if (case.check)(&e) => {}
            other => failures.push(format!("{}: got {other:?}", case.name)),
        }
        if calls_made(engine.store()) != calls {
            failures.push(format!("{}: the engine touched the store", case.name));
        }
        cases += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases > 100, "only {cases} payment cases");

    assert_eq!(engine.availability(&gig).expect("availability"), availability);
    assert_eq!(engine.pending_events(usize::MAX).expect("outbox"), outbox);
    assert_eq!(format!("{:?}", engine.store().inner), store_dump, "store state changed");

    // And the hold is still there to be paid: the bodies were aimed at a live target.
    let good = serde_json::to_vec(&payment_map()).expect("json");
    assert_eq!(engine.settle_json(&good).expect("settles"), Settlement::Confirmed { replayed: false });
    assert_eq!(engine.availability(&gig).expect("availability").confirmed, 3);
}
