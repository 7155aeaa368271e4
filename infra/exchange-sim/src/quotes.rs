//! The built-in symbol table and its quotes. Each symbol's mid price takes a
//! seeded random walk, one step per [`QUOTE_STEP_MS`] of the caller's clock, so
//! the same seed and the same times give the same quotes.
//!
//! Optionally the walk *gaps*: with `probability` per step the mid jumps by up
//! to `max_bps` basis points, up or down (an opening auction, a halt that
//! reopens away). A step without a gap moves at most [`MAX_STEP_CENTS`], which
//! lets the engine know how soon a resting limit could possibly be reached
//! and look at it only then.

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
/// Largest move of the mid price per step without a gap, in cents.
pub const MAX_STEP_CENTS: i64 = 3;
/// Half the bid/ask spread, in cents.
pub const HALF_SPREAD_CENTS: u64 = 1;
/// The walk stays within this many percent of the starting price, either way,
/// so long runs (and gaps) cannot drift to absurd prices.
pub const MAX_DRIFT_PERCENT: u64 = 50;
/// A caller jumping far ahead (a fake clock moved by a day) walks at most this
/// many steps; older steps are skipped. Bounds the cost of one call.
pub const MAX_STEPS_PER_CALL: u64 = 100_000;
/// Largest accepted gap, in basis points (the drift band caps it anyway).
pub const MAX_GAP_BPS: u64 = 5_000;
/// Basis points per unit.
const BPS: u64 = 10_000;

/// Price gaps: with `probability` per step, a jump of 1..=`max_bps` basis
/// points of the mid, either way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaps {
    pub probability: f64,
    pub max_bps: u64,
}

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
    symbol: &'static str,
    start_cents: u64,
    mid_cents: u64,
    /// Index of the last step applied; `None` until first asked.
    step: Option<u64>,
    rng: ChaCha8Rng,
}

#[derive(Debug, Clone)]
pub struct QuoteBook {
    /// In [`SYMBOLS`] order, so a symbol's index addresses its walk.
    walks: Vec<Walk>,
    gaps: Option<Gaps>,
}

impl QuoteBook {
    /// Slow random walks, no gaps.
    pub fn new(seed: u64) -> QuoteBook {
        QuoteBook::with_gaps(seed, None)
    }

    /// Walks that gap as `gaps` says (`None`, or a probability of 0: never).
    pub fn with_gaps(seed: u64, gaps: Option<Gaps>) -> QuoteBook {
        let walks = SYMBOLS
            .iter()
            .enumerate()
            .map(|(i, &(symbol, cents))| {
                // One stream per symbol, so asking for one symbol's quote never
                // shifts another's walk.
                let stream = seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1));
                Walk {
                    symbol,
                    start_cents: cents,
                    mid_cents: cents,
                    step: None,
                    rng: ChaCha8Rng::seed_from_u64(stream),
                }
            })
            .collect();
        let gaps = gaps.filter(|g| g.probability > 0.0 && g.max_bps > 0);
        QuoteBook { walks, gaps }
    }

    pub fn is_listed(symbol: &str) -> bool {
        SYMBOLS.iter().any(|(s, _)| *s == symbol)
    }

    /// The position of a listed symbol in [`SYMBOLS`].
    pub fn index_of(symbol: &str) -> Option<usize> {
        SYMBOLS.iter().position(|(s, _)| *s == symbol)
    }

    /// The most the mid (and so the bid and the ask) can move in one step,
    /// in cents; `None` when gaps make any move possible.
    pub fn max_move_cents_per_step(&self) -> Option<u64> {
        match self.gaps {
            Some(_) => None,
            None => Some(MAX_STEP_CENTS.unsigned_abs()),
        }
    }

    /// The last step a symbol's walk has reached (`None` before its first quote).
    pub fn step_of(&self, index: usize) -> Option<u64> {
        self.walks.get(index)?.step
    }

    /// The quote at `now_ms`. Time never runs backwards for a walk: asking for
    /// an earlier time returns the latest quote.
    pub fn quote(&mut self, symbol: &str, now_ms: u64) -> Option<Quote> {
        self.quote_at(QuoteBook::index_of(symbol)?, now_ms)
    }

    /// [`QuoteBook::quote`] by the symbol's index in [`SYMBOLS`].
    pub fn quote_at(&mut self, index: usize, now_ms: u64) -> Option<Quote> {
        let gaps = self.gaps;
        let walk = self.walks.get_mut(index)?;
        let target = now_ms / QUOTE_STEP_MS;
        match walk.step {
            None => walk.step = Some(target),
            Some(last) if target > last => {
                let first = last.max(target.saturating_sub(MAX_STEPS_PER_CALL)) + 1;
                let lo = walk.start_cents * (100 - MAX_DRIFT_PERCENT) / 100;
                let hi = walk.start_cents * (100 + MAX_DRIFT_PERCENT) / 100;
                for _ in first..=target {
                    let delta = walk.rng.gen_range(-MAX_STEP_CENTS..=MAX_STEP_CENTS);
                    let mut moved = walk.mid_cents.saturating_add_signed(delta);
                    // Drawn only when gaps are on, so turning them off gives
                    // exactly the walk of earlier versions for a seed.
                    if let Some(g) = gaps {
                        if walk.rng.gen_bool(g.probability.clamp(0.0, 1.0)) {
                            let bps = walk.rng.gen_range(1..=g.max_bps);
                            let jump = (moved.saturating_mul(bps) / BPS).max(1);
                            moved = if walk.rng.gen_bool(0.5) {
                                moved.saturating_add(jump)
                            } else {
                                moved.saturating_sub(jump)
                            };
                        }
                    }
                    walk.mid_cents = moved.clamp(lo, hi);
                }
                walk.step = Some(target);
            }
            Some(_) => {}
        }
        let mid = walk.mid_cents;
        Some(Quote {
            symbol: walk.symbol.to_string(),
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
    fn gaps_jump_far_and_are_seeded_and_without_them_the_walk_is_unchanged() {
        let gaps = Some(Gaps {
            probability: 0.2,
            max_bps: 2_000,
        });
        let walk = |book: &mut QuoteBook| -> Vec<u64> {
            (0..300)
                .filter_map(|i| book.quote("AAPL", 1_000_000 + i * QUOTE_STEP_MS))
                .map(|q| q.last.cents())
                .collect()
        };
        let a = walk(&mut QuoteBook::with_gaps(3, gaps));
        assert_eq!(a, walk(&mut QuoteBook::with_gaps(3, gaps)));
        let biggest = a.windows(2).map(|w| w[0].abs_diff(w[1])).max();
        assert!(biggest > Some(100), "a gap moves more than $1: {biggest:?}");
        let plain = walk(&mut QuoteBook::new(3));
        assert_eq!(plain, walk(&mut QuoteBook::with_gaps(3, None)));
        assert!(plain.windows(2).all(|w| w[0].abs_diff(w[1]) <= 3));
        let lo = 18_725 * (100 - MAX_DRIFT_PERCENT) / 100;
        assert!(a.iter().all(|c| *c >= lo));
    }

    #[test]
    fn unknown_symbols_have_no_quote() {
        assert!(QuoteBook::new(1).quote("XXXX", 0).is_none());
        assert!(!QuoteBook::is_listed("XXXX"));
        assert!(QuoteBook::is_listed("MSFT"));
    }
}
