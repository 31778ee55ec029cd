//! Amounts and currencies: decimals carried as strings, never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::MoneyError;

/// A non-negative decimal amount, as it travels on the wire (`"25.00"`).
///
/// Equality is numeric: `"25.0"` equals `"25.00"`. Display keeps the scale it was written
/// with, so what was sent is what is echoed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(Decimal);

impl Amount {
    /// Parse a wire amount: 1 to 18 integer digits, optionally `.` and 1 to 9 fraction
    /// digits. No sign, exponent, spaces or thousands separators.
    ///
    /// # Errors
    /// [`MoneyError::Negative`] for a leading `-`, [`MoneyError::Malformed`] otherwise.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let malformed = || MoneyError::Malformed(super::error::clip(s));
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int, 18) || frac.is_some_and(|f| !digits(f, 9)) {
            return Err(malformed());
        }
        Decimal::from_str(s).map(Self).map_err(|_| malformed())
    }

    /// Wrap a decimal, under the same limits as [`Amount::parse`] so that every `Amount`
    /// prints as a wire amount its own parser accepts. Trailing fraction zeros beyond nine
    /// places are dropped (`1.0000000000` becomes `1`); any other tenth fraction digit is
    /// refused rather than rounded — rounding money is the caller's decision.
    ///
    /// # Errors
    /// [`MoneyError::Negative`] below zero; [`MoneyError::Malformed`] with more than 18
    /// integer digits or more than 9 significant fraction digits.
    pub fn from_decimal(d: Decimal) -> Result<Self, MoneyError> {
        if d.is_sign_negative() && !d.is_zero() {
            return Err(MoneyError::Negative);
        }
        let d = if d.scale() > 9 { d.normalize() } else { d };
        if d.scale() > 9 || d.abs() >= Decimal::from(1_000_000_000_000_000_000u64) {
            return Err(MoneyError::Malformed(super::error::clip(&d.to_string())));
        }
        // Zero may carry a negative sign ("-0"); print it as "0".
        Ok(Self(if d.is_zero() { d.abs() } else { d }))
    }

    /// The amount as a decimal.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, MoneyError> {
        Self::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    /// `self × n` (a unit price times a quantity), or `None` past the wire limits.
    pub fn checked_mul(self, n: u32) -> Option<Amount> {
        self.0.checked_mul(Decimal::from(n)).and_then(|d| Amount::from_decimal(d).ok())
    }

    /// `self + other`, or `None` past the wire limits.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).and_then(|d| Amount::from_decimal(d).ok())
    }

    /// `self - other`, or `None` if it would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).and_then(|d| Amount::from_decimal(d).ok())
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self × num / den`, rounded down to `scale` fraction digits (a share of a total, in a
    /// currency's minor unit). `None` when `den` is zero.
    pub fn share(self, num: u32, den: u32, scale: u32) -> Option<Amount> {
        if den == 0 {
            return None;
        }
        let d = self.0.checked_mul(Decimal::from(num))?.checked_div(Decimal::from(den))?;
        let d = d.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToZero);
        Amount::from_decimal(d).ok()
    }

    /// The number of fraction digits written (`"25.00"` has 2).
    pub fn scale(&self) -> u32 {
        self.0.scale()
    }
}

/// A currency: an ISO 4217 alphabetic code in the current table (from the maintained
/// `iso_currency` crate), with its minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parse a currency code.
    ///
    /// # Errors
    /// [`MoneyError::BadCurrency`] unless it is exactly three ASCII upper-case letters;
    /// [`MoneyError::UnknownCurrency`] if ISO 4217 has no such code.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => {
                if iso_currency::Currency::from_code(s).is_none() {
                    return Err(MoneyError::UnknownCurrency(super::error::clip(s)));
                }
                Ok(Self([a, b, c]))
            }
            _ => Err(MoneyError::BadCurrency(super::error::clip(s))),
        }
    }

    /// The number of decimals of the currency's minor unit (2 for EUR, 0 for JPY, 3 for
    /// BHD), or `None` for codes without one (XAU, XXX, …).
    pub fn minor_unit(&self) -> Option<u32> {
        iso_currency::Currency::from_code(self.as_str()).and_then(|c| c.exponent()).map(u32::from)
    }

    /// Check that `amount` has no more significant decimals than this currency's minor unit
    /// (`"25.001"` EUR and `"100.5"` JPY are refused; `"25.000"` EUR is 25).
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`].
    pub fn check_amount(&self, amount: Amount) -> Result<(), MoneyError> {
        match self.minor_unit() {
            Some(unit) if amount.as_decimal().normalize().scale() > unit => {
                Err(MoneyError::TooPrecise { currency: self.as_str().to_owned(), minor_unit: unit })
            }
            _ => Ok(()),
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Invariant: three ASCII upper-case letters, so always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, MoneyError> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency: the price of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// How much.
    pub amount: Amount,
    /// In what currency.
    pub currency: Currency,
}

impl Money {
    /// Parse an amount and a currency code, the amount within the currency's minor unit.
    ///
    /// # Errors
    /// [`MoneyError`] if either is not acceptable, or the amount is more precise than the
    /// currency's minor unit.
    pub fn parse(amount: &str, currency: &str) -> Result<Self, MoneyError> {
        Self::new(Amount::parse(amount)?, Currency::parse(currency)?)
    }

    /// An amount in a currency, checked against its minor unit.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`].
    pub fn new(amount: Amount, currency: Currency) -> Result<Self, MoneyError> {
        currency.check_amount(amount)?;
        Ok(Self { amount, currency })
    }
}

impl Money {
    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { amount: Amount::ZERO, currency }
    }

    /// `self × n`, or `None` past the wire limits.
    pub fn checked_mul(self, n: u32) -> Option<Money> {
        Some(Money { amount: self.amount.checked_mul(n)?, currency: self.currency })
    }

    /// `self + other` in the same currency; `None` for different currencies or past the
    /// wire limits.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_add(other.amount))
            .flatten()
            .map(|amount| Money { amount, currency: self.currency })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}
