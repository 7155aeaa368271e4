//! The venue's trading calendar: one session close per UTC day, every
//! calendar day a trading day (holidays and weekends are left out on purpose:
//! they change nothing a client has to handle that a late close does not).
//!
//! An order belongs to the session of the first close after its acceptance,
//! and that close's date is its *trade date*; an execution likewise belongs
//! to the trade date of the first close after it. A time exactly at a close
//! belongs to the next session (the close is the end of the day, exclusive).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::{civil_from_days, days_from_civil, days_in_month, MS_PER_DAY};

/// Default session close: 20:00 UTC (16:00 New York in summer).
pub const DEFAULT_CLOSE_UTC_MS: u64 = 20 * 3_600_000;
/// Default longest life of a GTC order, in days after its first close.
pub const DEFAULT_GTC_MAX_DAYS: u32 = 90;
/// Longest accepted `gtc_max_days` (ten years), so a typo cannot overflow.
pub const MAX_GTC_DAYS: u32 = 3_650;

/// A trading day, held as days since 1970-01-01; shown as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TradeDate(u64);

impl TradeDate {
    pub fn from_days(days_since_epoch: u64) -> TradeDate {
        TradeDate(days_since_epoch)
    }

    pub fn days_since_epoch(self) -> u64 {
        self.0
    }

    /// Parses exactly `YYYY-MM-DD` (a real date, on or after 1970-01-01).
    pub fn parse(s: &str) -> Option<TradeDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        let days = days_from_civil(y as i64, m, d);
        u64::try_from(days).ok().map(TradeDate)
    }

    /// The Unix ms of this day's close.
    pub fn close_ms(self, close_utc_ms: u64) -> u64 {
        self.0
            .saturating_mul(MS_PER_DAY)
            .saturating_add(close_utc_ms)
    }
}

impl fmt::Display for TradeDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0 as i64);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Serialize for TradeDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TradeDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TradeDate::parse(&s).ok_or_else(|| serde::de::Error::custom("expected YYYY-MM-DD"))
    }
}

/// When sessions close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Close, in ms after UTC midnight (`< MS_PER_DAY`).
    pub close_utc_ms: u64,
}

impl Calendar {
    /// The first close strictly after `now_ms`.
    pub fn next_close_ms(&self, now_ms: u64) -> u64 {
        self.trade_date(now_ms).close_ms(self.close_utc_ms)
    }

    /// The trade date `now_ms` belongs to: the date of the next close.
    pub fn trade_date(&self, now_ms: u64) -> TradeDate {
        let day = now_ms / MS_PER_DAY;
        if now_ms % MS_PER_DAY < self.close_utc_ms {
            TradeDate(day)
        } else {
            TradeDate(day + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_709_294_400_000; // 2024-03-01T12:00:00Z

    #[test]
    fn trade_dates_print_and_parse_back() {
        let d = TradeDate::parse("2024-02-29").expect("leap day");
        assert_eq!(d.to_string(), "2024-02-29");
        for bad in [
            "2023-02-29",
            "2024-3-01",
            "2024-03-01T",
            "24-03-01",
            "1969-12-31",
        ] {
            assert_eq!(TradeDate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_time_belongs_to_the_next_close_and_the_close_itself_to_the_next_day() {
        let cal = Calendar {
            close_utc_ms: DEFAULT_CLOSE_UTC_MS,
        };
        let close = T0 + 8 * 3_600_000; // 20:00 the same day
        assert_eq!(cal.next_close_ms(T0), close);
        assert_eq!(cal.trade_date(T0).to_string(), "2024-03-01");
        assert_eq!(cal.trade_date(close - 1).to_string(), "2024-03-01");
        assert_eq!(cal.trade_date(close).to_string(), "2024-03-02");
        assert_eq!(cal.next_close_ms(close), close + MS_PER_DAY);
    }
}
