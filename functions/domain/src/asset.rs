//! What an account can hold: cash (US dollars, in cents) or whole shares of a
//! listed instrument.

use serde::{Deserialize, Serialize};

use crate::money::{Price, CASH_SCALE};

/// The one cash currency, written as the asset code `USD`.
pub const CASH_CODE: &str = "USD";
const MAX_SYMBOL_LEN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetError {
    #[error("unknown asset {0:?}: expected USD or a listed symbol")]
    UnknownAsset(String),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("price {price} is not a multiple of the tick {tick} of {symbol}")]
    OffTick {
        symbol: String,
        price: String,
        tick: String,
    },
}

/// A listed instrument's ticker, e.g. `AAPL`. Only obtained from a [`Catalog`],
/// so holding one means the symbol is listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Symbol(String);

impl Symbol {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Asset {
    Cash,
    Shares(Symbol),
}

impl Asset {
    /// Decimal places of the asset's minor unit: cents for cash, whole shares.
    pub fn scale(&self) -> u32 {
        match self {
            Asset::Cash => CASH_SCALE,
            Asset::Shares(_) => 0,
        }
    }

    /// The asset code used in JSON and in storage keys: `USD` or the symbol.
    pub fn code(&self) -> &str {
        match self {
            Asset::Cash => CASH_CODE,
            Asset::Shares(symbol) => symbol.as_str(),
        }
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub symbol: Symbol,
    /// Smallest price increment, in cents.
    pub tick_cents: u64,
}

/// The instruments the platform trades. Parsing an asset or symbol goes
/// through here, so an unknown one is refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    instruments: Vec<Instrument>,
}

impl Catalog {
    /// Builds a catalog from `(symbol, tick in cents)` pairs. Symbols must be
    /// 1 to 10 upper-case letters or dots and must not collide with `USD`.
    pub fn new(entries: &[(&str, u64)]) -> Result<Self, AssetError> {
        let instruments = entries
            .iter()
            .map(|&(symbol, tick_cents)| {
                let valid = !symbol.is_empty()
                    && symbol.len() <= MAX_SYMBOL_LEN
                    && symbol.bytes().all(|b| b.is_ascii_uppercase() || b == b'.')
                    && symbol != CASH_CODE
                    && tick_cents > 0;
                if valid {
                    Ok(Instrument {
                        symbol: Symbol(symbol.to_owned()),
                        tick_cents,
                    })
                } else {
                    Err(AssetError::UnknownSymbol(symbol.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Catalog { instruments })
    }

    /// The US equities the platform lists by default (tick: one cent).
    pub fn us_equities() -> Self {
        let instruments = DEFAULT_SYMBOLS
            .iter()
            .map(|&symbol| Instrument {
                symbol: Symbol(symbol.to_owned()),
                tick_cents: 1,
            })
            .collect();
        Catalog { instruments }
    }

    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    pub fn instrument(&self, symbol: &str) -> Result<&Instrument, AssetError> {
        self.instruments
            .iter()
            .find(|i| i.symbol.as_str() == symbol)
            .ok_or_else(|| AssetError::UnknownSymbol(symbol.to_owned()))
    }

    pub fn symbol(&self, text: &str) -> Result<Symbol, AssetError> {
        self.instrument(text).map(|i| i.symbol.clone())
    }

    /// `USD` or a listed symbol.
    pub fn asset(&self, code: &str) -> Result<Asset, AssetError> {
        if code == CASH_CODE {
            return Ok(Asset::Cash);
        }
        self.symbol(code)
            .map(Asset::Shares)
            .map_err(|_| AssetError::UnknownAsset(code.to_owned()))
    }

    /// Refuses a price that is not a whole number of the instrument's ticks.
    pub fn check_tick(&self, symbol: &Symbol, price: Price) -> Result<(), AssetError> {
        let instrument = self.instrument(symbol.as_str())?;
        if price.cents().is_multiple_of(instrument.tick_cents) {
            Ok(())
        } else {
            Err(AssetError::OffTick {
                symbol: symbol.to_string(),
                price: price.to_string(),
                tick: crate::money::format_units(instrument.tick_cents, CASH_SCALE),
            })
        }
    }
}

/// Symbols listed by [`Catalog::us_equities`]; the exchange simulator lists the same.
pub const DEFAULT_SYMBOLS: [&str; 8] = [
    "AAPL", "MSFT", "AMZN", "GOOG", "TSLA", "NVDA", "META", "JPM",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalog_lists_every_default_symbol() {
        let catalog = Catalog::us_equities();
        let entries: Vec<(&str, u64)> = DEFAULT_SYMBOLS.iter().map(|&s| (s, 1)).collect();
        assert_eq!(Catalog::new(&entries), Ok(catalog.clone()));
        assert_eq!(catalog.instruments().len(), DEFAULT_SYMBOLS.len());
        assert_eq!(
            catalog.asset("AAPL"),
            Ok(Asset::Shares(catalog.symbol("AAPL").unwrap()))
        );
        assert_eq!(catalog.asset("USD"), Ok(Asset::Cash));
    }

    #[test]
    fn refuses_unknown_assets_and_bad_symbols() {
        let catalog = Catalog::us_equities();
        assert_eq!(
            catalog.asset("aapl"),
            Err(AssetError::UnknownAsset("aapl".into()))
        );
        assert_eq!(
            catalog.asset("EUR"),
            Err(AssetError::UnknownAsset("EUR".into()))
        );
        assert!(Catalog::new(&[("USD", 1)]).is_err());
        assert!(Catalog::new(&[("TOOLONGSYMBOL", 1)]).is_err());
        assert!(Catalog::new(&[("ZERO", 0)]).is_err());
    }

    #[test]
    fn checks_price_ticks() {
        let catalog = Catalog::new(&[("NICKEL", 5)]).unwrap();
        let symbol = catalog.symbol("NICKEL").unwrap();
        assert!(catalog
            .check_tick(&symbol, Price::parse("1.05").unwrap())
            .is_ok());
        assert!(matches!(
            catalog.check_tick(&symbol, Price::parse("1.03").unwrap()),
            Err(AssetError::OffTick { .. })
        ));
    }
}
