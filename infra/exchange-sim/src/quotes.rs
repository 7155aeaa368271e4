//! The built-in symbol table and its quotes. Each symbol's mid price takes a
//! seeded random walk, one step per [`QUOTE_STEP_MS`] of the caller's clock, so
//! the same seed and the same times give the same quotes.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::money::Price;

/// Symbols the exchange lists, with their starting mid price in cents.
pub const SYMBOLS: &[(&str, u64)] = &[
    ("AAPL", 18_725),
    ("MSFT", 41_110),
    ("AMZN", 17_830),
    ("GOOG", 16_550),
    ("TSLA", 24_280),
    ("NVDA", 12_140),
    ("META", 50_210),
    ("JPM", 19_860),
];

/// One random-walk step per this many milliseconds.
pub const QUOTE_STEP_MS: u64 = 1_000;
/// Largest move of the mid price per step, in cents.
pub const MAX_STEP_CENTS: i64 = 3;
/// Half the bid/ask spread, in cents.
pub const HALF_SPREAD_CENTS: u64 = 1;
/// The walk stays within this many percent of the starting price, either way,
/// so long runs cannot drift to absurd prices.
pub const MAX_DRIFT_PERCENT: u64 = 50;
/// A caller jumping far ahead (a fake clock moved by a day) walks at most this
/// many steps; older steps are skipped. Bounds the cost of one call.
pub const MAX_STEPS_PER_CALL: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Price,
    pub ask: Price,
    /// The mid price.
    pub last: Price,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub at: u64,
}

#[derive(Debug, Clone)]
struct Walk {
    start_cents: u64,
    mid_cents: u64,
    /// Index of the last step applied; `None` until first asked.
    step: Option<u64>,
    rng: ChaCha8Rng,
}

#[derive(Debug, Clone)]
pub struct QuoteBook {
    walks: BTreeMap<&'static str, Walk>,
}

impl QuoteBook {
    pub fn new(seed: u64) -> QuoteBook {
        let walks = SYMBOLS
            .iter()
            .enumerate()
            .map(|(i, &(sym, cents))| {
                // One stream per symbol, so asking for one symbol's quote never
                // shifts another's walk.
                let stream = seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1));
                let walk = Walk {
                    start_cents: cents,
                    mid_cents: cents,
                    step: None,
                    rng: ChaCha8Rng::seed_from_u64(stream),
                };
                (sym, walk)
            })
            .collect();
        QuoteBook { walks }
    }

    pub fn is_listed(symbol: &str) -> bool {
        SYMBOLS.iter().any(|(s, _)| *s == symbol)
    }

    /// The quote at `now_ms`. Time never runs backwards for a walk: asking for
    /// an earlier time returns the latest quote.
    pub fn quote(&mut self, symbol: &str, now_ms: u64) -> Option<Quote> {
        let walk = self.walks.get_mut(symbol)?;
        let target = now_ms / QUOTE_STEP_MS;
        match walk.step {
            None => walk.step = Some(target),
            Some(last) if target > last => {
                let first = last.max(target.saturating_sub(MAX_STEPS_PER_CALL)) + 1;
                let lo = walk.start_cents * (100 - MAX_DRIFT_PERCENT) / 100;
                let hi = walk.start_cents * (100 + MAX_DRIFT_PERCENT) / 100;
                for _ in first..=target {
                    let delta = walk.rng.gen_range(-MAX_STEP_CENTS..=MAX_STEP_CENTS);
                    let moved = walk.mid_cents.saturating_add_signed(delta);
                    walk.mid_cents = moved.clamp(lo, hi);
                }
                walk.step = Some(target);
            }
            Some(_) => {}
        }
        let mid = walk.mid_cents;
        Some(Quote {
            symbol: symbol.to_string(),
            bid: Price::from_cents(mid.saturating_sub(HALF_SPREAD_CENTS).max(1))?,
            ask: Price::from_cents(mid + HALF_SPREAD_CENTS)?,
            last: Price::from_cents(mid)?,
            at: now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_table_price_and_walks_the_same_way_for_a_seed() {
        let mut a = QuoteBook::new(7);
        let mut b = QuoteBook::new(7);
        let q0 = a.quote("AAPL", 1_000_000).map(|q| q.last.cents());
        assert_eq!(q0, Some(18_725));
        b.quote("AAPL", 1_000_000);
        let qa: Vec<_> = (1..50)
            .filter_map(|i| a.quote("AAPL", 1_000_000 + i * 700))
            .collect();
        let qb: Vec<_> = (1..50)
            .filter_map(|i| b.quote("AAPL", 1_000_000 + i * 700))
            .collect();
        assert_eq!(qa, qb);
        assert!(
            qa.iter().any(|q| q.last.cents() != 18_725),
            "the price should move"
        );
        assert!(qa.iter().all(|q| q.bid < q.ask));
    }

    #[test]
    fn unknown_symbols_have_no_quote() {
        assert!(QuoteBook::new(1).quote("XXXX", 0).is_none());
        assert!(!QuoteBook::is_listed("XXXX"));
        assert!(QuoteBook::is_listed("MSFT"));
    }
}
