//! Prices and quantities as integers. Money is never a float here: a price is a
//! whole number of cents, a quantity a whole number of shares, and both travel
//! in JSON as strings so no client ever parses them into a binary float.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Cents per dollar; the tick of every symbol is one cent.
pub const CENTS_PER_DOLLAR: u64 = 100;
/// Largest accepted limit price: $1,000,000.00.
pub const MAX_PRICE_CENTS: u64 = 100_000_000;
/// Largest accepted order quantity, in shares.
pub const MAX_QUANTITY: u64 = 1_000_000;
/// Longest decimal string we try to parse; anything longer is rejected before
/// any arithmetic, so parsing cannot overflow.
const MAX_DECIMAL_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must not be empty")]
    Empty,
    #[error("must be a decimal string such as \"187.25\"")]
    NotDecimal,
    #[error("has more than 2 decimals (the tick is 0.01)")]
    TooManyDecimals,
    #[error("must be greater than zero")]
    Zero,
    #[error("must not be negative")]
    Negative,
    #[error("is above the maximum of {max}")]
    TooLarge { max: String },
    #[error("must be a whole number of shares")]
    Fractional,
    #[error("must be a string of digits such as \"100\"")]
    NotInteger,
}

/// A price in cents, `0 < cents <= MAX_PRICE_CENTS` when parsed from input.
/// Quotes may use any positive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(u64);

impl Price {
    /// A price from cents; `None` for zero (a price of nothing is a bug).
    pub fn from_cents(cents: u64) -> Option<Price> {
        (cents > 0).then_some(Price(cents))
    }

    pub fn cents(self) -> u64 {
        self.0
    }

    /// Parses `"187.25"`, `"187.2"` or `"187"`; rejects signs, exponents, more
    /// than two decimals, zero and anything above [`MAX_PRICE_CENTS`].
    pub fn parse(s: &str) -> Result<Price, MoneyError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if s.len() > MAX_DECIMAL_LEN {
            return Err(too_large_price());
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return Err(MoneyError::NotDecimal);
        }
        if s.contains('.') && frac.is_empty() {
            return Err(MoneyError::NotDecimal);
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        let whole: u64 = whole.parse().map_err(|_| too_large_price())?;
        let mut frac_cents: u64 = frac.parse().unwrap_or(0);
        if frac.len() == 1 {
            frac_cents *= 10;
        }
        let cents = whole
            .checked_mul(CENTS_PER_DOLLAR)
            .and_then(|c| c.checked_add(frac_cents))
            .ok_or_else(too_large_price)?;
        if cents == 0 {
            return Err(MoneyError::Zero);
        }
        if cents > MAX_PRICE_CENTS {
            return Err(too_large_price());
        }
        Ok(Price(cents))
    }
}

fn too_large_price() -> MoneyError {
    MoneyError::TooLarge {
        max: Price(MAX_PRICE_CENTS).to_string(),
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02}",
            self.0 / CENTS_PER_DOLLAR,
            self.0 % CENTS_PER_DOLLAR
        )
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Price::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A number of shares, `1..=MAX_QUANTITY` when parsed from input. Cumulative
/// and leaves quantities of an order reuse the type and may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(u64);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// An order quantity: rejects zero and anything above [`MAX_QUANTITY`].
    pub fn new(shares: u64) -> Result<Quantity, MoneyError> {
        if shares == 0 {
            return Err(MoneyError::Zero);
        }
        if shares > MAX_QUANTITY {
            return Err(MoneyError::TooLarge {
                max: MAX_QUANTITY.to_string(),
            });
        }
        Ok(Quantity(shares))
    }

    /// Any count of shares, zero included (cumulative and leaves quantities).
    pub(crate) fn from_shares(shares: u64) -> Quantity {
        Quantity(shares)
    }

    pub fn shares(self) -> u64 {
        self.0
    }

    /// Parses `"100"`; rejects signs, decimals, zero and values above the maximum.
    pub fn parse(s: &str) -> Result<Quantity, MoneyError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if s.contains('.') {
            return Err(MoneyError::Fractional);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotInteger);
        }
        if s.len() > MAX_DECIMAL_LEN {
            return Quantity::new(u64::MAX);
        }
        let n: u64 = s.parse().map_err(|_| MoneyError::TooLarge {
            max: MAX_QUANTITY.to_string(),
        })?;
        Quantity::new(n)
    }

    /// Accepts a JSON string of digits or a JSON integer; a JSON number with a
    /// fractional part (or in exponent form) is rejected.
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, MoneyError> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Quantity::new(u)
                } else if n.as_i64().is_some() || n.as_f64().is_some_and(|f| f < 0.0) {
                    Err(MoneyError::Negative)
                } else {
                    Err(MoneyError::Fractional)
                }
            }
            _ => Err(MoneyError::NotInteger),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            // Zero is valid for cumulative/leaves quantities read back from JSON.
            serde_json::Value::String(s) if s == "0" => Ok(Quantity::ZERO),
            _ => Quantity::from_json(&v).map_err(serde::de::Error::custom),
        }
    }
}

/// Price × quantity in cents, `None` on overflow. Exact: no rounding.
pub fn notional_cents(price: Price, quantity: Quantity) -> Option<u64> {
    price.cents().checked_mul(quantity.shares())
}

/// Decimal places of [`average_price`].
pub const AVERAGE_PRICE_DECIMALS: u32 = 4;

/// Volume-weighted average price as a decimal string with four decimals,
/// rounded half up (an average of cents can fall between ticks).
/// `None` when nothing is filled or on overflow.
pub fn average_price(notional_cents: u64, shares: u64) -> Option<String> {
    if shares == 0 {
        return None;
    }
    // Work in 1/10_000 of a dollar = 1/100 of a cent.
    let scaled = u128::from(notional_cents).checked_mul(100)?;
    let shares = u128::from(shares);
    let q = scaled.checked_add(shares / 2)? / shares;
    let unit = 10u128.pow(AVERAGE_PRICE_DECIMALS);
    Some(format!("{}.{:04}", q / unit, q % unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_to_cents_and_print_back() {
        assert_eq!(Price::parse("187.25").map(Price::cents), Ok(18725));
        assert_eq!(Price::parse("187.2").map(Price::cents), Ok(18720));
        assert_eq!(Price::parse("187").map(Price::cents), Ok(18700));
        assert_eq!(Price::parse("0.01").map(Price::cents), Ok(1));
        assert_eq!(
            Price::from_cents(18705).map(|p| p.to_string()).as_deref(),
            Some("187.05")
        );
    }

    #[test]
    fn bad_prices_are_rejected_with_a_reason() {
        assert_eq!(Price::parse("187.255"), Err(MoneyError::TooManyDecimals));
        assert_eq!(Price::parse("-1"), Err(MoneyError::Negative));
        assert_eq!(Price::parse("0"), Err(MoneyError::Zero));
        assert_eq!(Price::parse("0.00"), Err(MoneyError::Zero));
        assert_eq!(Price::parse(""), Err(MoneyError::Empty));
        assert_eq!(Price::parse("1e3"), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse(".5"), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse("5."), Err(MoneyError::NotDecimal));
        assert_eq!(Price::parse("+5"), Err(MoneyError::NotDecimal));
        assert!(matches!(
            Price::parse("1000000.01"),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Price::parse("99999999999999999999999999"),
            Err(MoneyError::TooLarge { .. })
        ));
    }

    #[test]
    fn quantities_accept_strings_and_integers_only() {
        use serde_json::json;
        assert_eq!(
            Quantity::from_json(&json!("100")).map(Quantity::shares),
            Ok(100)
        );
        assert_eq!(
            Quantity::from_json(&json!(100)).map(Quantity::shares),
            Ok(100)
        );
        assert_eq!(
            Quantity::from_json(&json!(1.5)),
            Err(MoneyError::Fractional)
        );
        assert_eq!(
            Quantity::from_json(&json!("1.5")),
            Err(MoneyError::Fractional)
        );
        assert_eq!(Quantity::from_json(&json!(-3)), Err(MoneyError::Negative));
        assert_eq!(Quantity::from_json(&json!("-3")), Err(MoneyError::Negative));
        assert_eq!(Quantity::from_json(&json!("0")), Err(MoneyError::Zero));
        assert!(matches!(
            Quantity::from_json(&json!("1000001")),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Quantity::from_json(&json!("184467440737095516160000")),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Quantity::from_json(&json!(1e30)),
            Err(MoneyError::Fractional)
        ));
        assert_eq!(
            Quantity::from_json(&json!(true)),
            Err(MoneyError::NotInteger)
        );
    }

    #[test]
    fn average_price_rounds_half_up_to_four_decimals() {
        assert_eq!(average_price(18725 * 3, 3).as_deref(), Some("187.2500"));
        // (187.25 + 187.26) / 2 = 187.255
        assert_eq!(average_price(18725 + 18726, 2).as_deref(), Some("187.2550"));
        // 100.00 + 100.01 + 100.01 = 300.02 / 3 = 100.00666..
        assert_eq!(average_price(30002, 3).as_deref(), Some("100.0067"));
        assert_eq!(average_price(0, 0), None);
    }
}
