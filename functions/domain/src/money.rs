//! Money and quantities are integers: minor units of an asset (cents for cash,
//! whole shares for shares). JSON carries them as decimal strings, parsed here
//! without ever passing through a float.

use serde::{Deserialize, Serialize};

/// Largest amount of any asset, in its minor units (10^15 cents = 10 trillion
/// dollars). Keeps every product below `u64::MAX` and every delta inside `i64`.
pub const MAX_AMOUNT_UNITS: u64 = 1_000_000_000_000_000;
/// Largest order or fill quantity, in whole shares.
pub const MAX_QUANTITY: u64 = 1_000_000;
/// Largest price per share, in cents ($1,000,000.00). With [`MAX_QUANTITY`]
/// the largest notional is 10^14 cents, inside [`MAX_AMOUNT_UNITS`].
pub const MAX_PRICE_CENTS: u64 = 100_000_000;
/// Cash is held in cents.
pub const CASH_SCALE: u32 = 2;
/// Longest decimal string accepted, so parsing cost is bounded.
const MAX_DECIMAL_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("not a decimal number: expected digits with an optional '.' and fraction")]
    NotDecimal,
    #[error("too many decimal places: at most {max} allowed")]
    TooManyDecimals { max: u32 },
    #[error("must be greater than zero")]
    NotPositive,
    #[error("too large: at most {max}")]
    TooLarge { max: String },
    #[error("arithmetic overflow")]
    Overflow,
}

/// Parses a non-negative decimal string such as `"187.25"` into units of
/// `10^-scale`. Rejects signs, exponents, blanks, and more than `scale`
/// decimals (never rounds).
pub fn parse_units(text: &str, scale: u32) -> Result<u64, MoneyError> {
    if text.is_empty() || text.len() > MAX_DECIMAL_LEN {
        return Err(MoneyError::NotDecimal);
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(MoneyError::NotDecimal);
    }
    let fraction = fraction.unwrap_or("");
    // Trailing zeros beyond the scale carry no value ("10.500" is 10.50).
    let significant = fraction.trim_end_matches('0');
    if significant.len() > scale as usize {
        return Err(MoneyError::TooManyDecimals { max: scale });
    }
    let mut units: u64 = 0;
    let padded = significant
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(scale as usize);
    for digit in whole.bytes().chain(padded) {
        units = units
            .checked_mul(10)
            .and_then(|u| u.checked_add(u64::from(digit - b'0')))
            .ok_or(MoneyError::Overflow)?;
    }
    Ok(units)
}

/// Formats units of `10^-scale` as a decimal string with exactly `scale` decimals.
pub fn format_units(units: u64, scale: u32) -> String {
    if scale == 0 {
        return units.to_string();
    }
    let divisor = 10u64.pow(scale);
    format!(
        "{}.{:0width$}",
        units / divisor,
        units % divisor,
        width = scale as usize
    )
}

fn bounded_positive(units: u64, max: u64, scale: u32) -> Result<u64, MoneyError> {
    if units == 0 {
        return Err(MoneyError::NotPositive);
    }
    if units > max {
        return Err(MoneyError::TooLarge {
            max: format_units(max, scale),
        });
    }
    Ok(units)
}

/// A positive quantity of some asset, in that asset's minor units. Which asset
/// (and so which scale) is carried beside it, never inside: an `Amount` alone
/// is just a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Amount(u64);

impl Amount {
    /// An amount of at least one unit and at most [`MAX_AMOUNT_UNITS`].
    pub fn new(units: u64) -> Result<Self, MoneyError> {
        bounded_positive(units, MAX_AMOUNT_UNITS, 0).map(Amount)
    }

    pub fn parse(text: &str, scale: u32) -> Result<Self, MoneyError> {
        let units = parse_units(text, scale)?;
        bounded_positive(units, MAX_AMOUNT_UNITS, scale).map(Amount)
    }

    pub fn units(self) -> u64 {
        self.0
    }

    pub fn format(self, scale: u32) -> String {
        format_units(self.0, scale)
    }
}

/// A number of whole shares, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Quantity(u64);

impl Quantity {
    pub fn new(shares: u64) -> Result<Self, MoneyError> {
        bounded_positive(shares, MAX_QUANTITY, 0).map(Quantity)
    }

    /// Parses `"100"`; fractional shares are refused ("too many decimals").
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        Self::new(parse_units(text, 0)?)
    }

    pub fn shares(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A price per share in cents, at least one cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Price(u64);

impl Price {
    pub fn from_cents(cents: u64) -> Result<Self, MoneyError> {
        bounded_positive(cents, MAX_PRICE_CENTS, CASH_SCALE).map(Price)
    }

    /// Parses `"187.25"`; sub-cent prices are refused, never rounded.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        Self::from_cents(parse_units(text, CASH_SCALE)?)
    }

    pub fn cents(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Price {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_units(self.0, CASH_SCALE))
    }
}

/// The cash value of `quantity` shares at `price`, in cents.
///
/// Exact: whole shares times whole cents needs no rounding. The bounds on
/// price and quantity keep it below [`MAX_AMOUNT_UNITS`]; the checks stay
/// because this is the one place every notional is computed.
pub fn notional(price: Price, quantity: Quantity) -> Result<Amount, MoneyError> {
    let cents = price
        .cents()
        .checked_mul(quantity.shares())
        .ok_or(MoneyError::Overflow)?;
    Amount::new(cents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(parse_units("187.25", 2), Ok(18725));
        assert_eq!(parse_units("187.2", 2), Ok(18720));
        assert_eq!(parse_units("187", 2), Ok(18700));
        assert_eq!(parse_units("0.01", 2), Ok(1));
        assert_eq!(parse_units("10.500", 2), Ok(1050));
        assert_eq!(parse_units("42", 0), Ok(42));
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in [
            "", "-1", "+1", "1e3", " 1", "1 ", ".5", "5.", "1.2.3", "0x10", "١٢",
        ] {
            assert_eq!(parse_units(bad, 2), Err(MoneyError::NotDecimal), "{bad:?}");
        }
        assert_eq!(
            parse_units("1.001", 2),
            Err(MoneyError::TooManyDecimals { max: 2 })
        );
        assert_eq!(
            parse_units("1.5", 0),
            Err(MoneyError::TooManyDecimals { max: 0 })
        );
        assert_eq!(
            parse_units("99999999999999999999", 0),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn bounds_amounts_prices_and_quantities() {
        assert_eq!(Amount::parse("0.00", 2), Err(MoneyError::NotPositive));
        assert!(matches!(
            Amount::parse("10000000000000.01", 2),
            Err(MoneyError::TooLarge { .. })
        ));
        assert_eq!(Quantity::parse("0"), Err(MoneyError::NotPositive));
        assert!(matches!(
            Quantity::parse("1000001"),
            Err(MoneyError::TooLarge { .. })
        ));
        assert_eq!(
            Price::parse("0.001"),
            Err(MoneyError::TooManyDecimals { max: 2 })
        );
    }

    #[test]
    fn notional_is_exact() {
        let price = Price::parse("187.25").unwrap();
        let quantity = Quantity::parse("3").unwrap();
        assert_eq!(notional(price, quantity).unwrap().units(), 56175);
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(units in 0u64..=MAX_AMOUNT_UNITS, scale in 0u32..=4) {
            prop_assert_eq!(parse_units(&format_units(units, scale), scale), Ok(units));
        }

        #[test]
        fn notional_never_exceeds_the_amount_bound(cents in 1..=MAX_PRICE_CENTS, shares in 1..=MAX_QUANTITY) {
            let value = notional(Price::from_cents(cents).unwrap(), Quantity::new(shares).unwrap());
            prop_assert_eq!(value.map(Amount::units), Ok(cents * shares));
        }
    }
}
