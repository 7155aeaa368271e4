//! Resting orders of one symbol, by limit price: the orders that were not
//! marketable at their last step. They cost nothing while they wait; the
//! engine looks at a book only when the quote could have reached its best
//! price (see `Engine::plan_check`), and takes out exactly the orders the
//! quote crosses, in a range query.

use std::collections::BTreeMap;

use crate::money::Price;
use crate::order::Side;
use crate::quotes::Quote;

use super::Key;

/// (limit, resting sequence) → order index. The sequence makes keys unique
/// and gives time priority among equal limits.
type Levels = BTreeMap<(Price, u64), usize>;

#[derive(Debug, Clone, Default)]
pub(super) struct Book {
    buys: Levels,
    sells: Levels,
    /// The scheduled look at this book, if any orders rest in it.
    pub(super) check: Option<Key>,
}

impl Book {
    pub(super) fn is_empty(&self) -> bool {
        self.buys.is_empty() && self.sells.is_empty()
    }

    pub(super) fn insert(&mut self, side: Side, limit: Price, seq: u64, index: usize) {
        self.side_mut(side).insert((limit, seq), index);
    }

    pub(super) fn remove(&mut self, side: Side, limit: Price, seq: u64) -> Option<usize> {
        self.side_mut(side).remove(&(limit, seq))
    }

    fn side_mut(&mut self, side: Side) -> &mut Levels {
        match side {
            Side::Buy => &mut self.buys,
            Side::Sell => &mut self.sells,
        }
    }

    /// Cents the quote must still move before the nearest resting order
    /// becomes marketable (0: one already is; `u64::MAX`: the book is empty).
    pub(super) fn cents_to_cross(&self, quote: &Quote) -> u64 {
        // A buy fills when the ask comes down to its limit, a sell when the
        // bid comes up to it.
        let buy = self
            .buys
            .last_key_value()
            .map(|((limit, _), _)| quote.ask.cents().saturating_sub(limit.cents()));
        let sell = self
            .sells
            .first_key_value()
            .map(|((limit, _), _)| limit.cents().saturating_sub(quote.bid.cents()));
        buy.into_iter().chain(sell).min().unwrap_or(u64::MAX)
    }

    /// Removes and returns every order the quote makes marketable, in the
    /// order they came to rest. Costs O(k log n) for k crossed orders: a
    /// look that finds nothing is one descent per side.
    pub(super) fn take_crossed(&mut self, quote: &Quote) -> Vec<(u64, usize)> {
        let buys: Vec<(Price, u64)> = self.buys.range((quote.ask, 0)..).map(|(k, _)| *k).collect();
        let sells: Vec<(Price, u64)> = self
            .sells
            .range(..=(quote.bid, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut crossed: Vec<(u64, usize)> = Vec::with_capacity(buys.len() + sells.len());
        for key in buys {
            crossed.extend(self.buys.remove(&key).map(|index| (key.1, index)));
        }
        for key in sells {
            crossed.extend(self.sells.remove(&key).map(|index| (key.1, index)));
        }
        crossed.sort_unstable();
        crossed
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.buys.len() + self.sells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(cents: u64) -> Price {
        Price::from_cents(cents).expect("positive")
    }

    fn quote(bid: u64, ask: u64) -> Quote {
        Quote {
            symbol: "AAPL".into(),
            bid: price(bid),
            ask: price(ask),
            last: price((bid + ask) / 2),
            at: 0,
        }
    }

    #[test]
    fn takes_exactly_the_crossed_orders_in_resting_order() {
        let mut b = Book::default();
        b.insert(Side::Buy, price(100), 5, 0); // crossed by an ask of 100
        b.insert(Side::Buy, price(99), 1, 1);
        b.insert(Side::Sell, price(98), 3, 2); // crossed by a bid of 98
        b.insert(Side::Sell, price(99), 2, 3);
        b.insert(Side::Buy, price(101), 4, 4);
        assert_eq!(
            b.cents_to_cross(&quote(90, 110)),
            8,
            "the sell at 98 is nearest"
        );
        let crossed = b.take_crossed(&quote(98, 100));
        assert_eq!(crossed, vec![(3, 2), (4, 4), (5, 0)]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.cents_to_cross(&quote(98, 100)), 1);
        assert_eq!(b.remove(Side::Buy, price(99), 1), Some(1));
        assert_eq!(b.remove(Side::Sell, price(99), 2), Some(3));
        assert!(b.is_empty());
        assert_eq!(b.cents_to_cross(&quote(98, 100)), u64::MAX);
    }
}
