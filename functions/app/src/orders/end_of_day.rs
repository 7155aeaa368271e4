//! The end-of-day reconciliation: once a trading day has closed, every open
//! order is compared with the venue's own list of that day's orders (REST).
//! It is the one check a healthy resting order gets, and on venues that
//! cannot prove absence any other way it is what settles a placement whose
//! answer was lost: absent from the venue's complete list of the day, the
//! order was never placed.
//!
//! Differences are acted on (missing executions pulled, final statuses
//! recorded, closed orders the venue executed after all reopened) and
//! counted; what cannot be explained is flagged. The pass is resumable: its
//! progress is a cursor, so it spreads over as many runs as it needs.

use std::collections::HashMap;

use domain::order::{
    absence_final_at_ms, Driver, FlagReason, OrderId, StepFailure, OPEN_INDEX_SHARDS,
};

use super::drive::{record_exchange_view, Current};
use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::{Exchange, ExchangeOrder};
use crate::order_store::{DueEntry, OrderStore, Saved};

const DAY_MS: u64 = 86_400_000;

/// When the venue's trading day closes, and when its day list is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingCalendar {
    /// The session's close, in milliseconds after midnight UTC (every
    /// calendar day is a trading day, as the exchange simulator keeps it).
    pub close_utc_ms: u64,
    /// The check runs this long after the close: the venue's list is final.
    pub check_after_close_ms: u64,
}

impl Default for TradingCalendar {
    fn default() -> Self {
        TradingCalendar {
            close_utc_ms: 20 * 3_600_000,
            check_after_close_ms: 30 * 60_000,
        }
    }
}

impl TradingCalendar {
    /// The close of day number `day` (days since 1970-01-01).
    pub fn close_ms(&self, day: u64) -> u64 {
        day * DAY_MS + self.close_utc_ms
    }

    /// The trading day an instant belongs to: the day of the first close at
    /// or after it.
    pub fn trade_day(&self, at_ms: u64) -> u64 {
        let day = at_ms / DAY_MS;
        if at_ms <= self.close_ms(day) {
            day
        } else {
            day + 1
        }
    }

    /// The latest day whose check is due at `now_ms`.
    pub fn last_checkable_day(&self, now_ms: u64) -> Option<u64> {
        let today = now_ms / DAY_MS;
        [today, today.checked_sub(1)?]
            .into_iter()
            .find(|day| self.close_ms(*day) + self.check_after_close_ms <= now_ms)
    }

    /// `YYYY-MM-DD` of day number `day`.
    pub fn date(day: u64) -> String {
        // Days to a civil date (proleptic Gregorian), after H. Hinnant.
        let z = day as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// What one slice of the end-of-day check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndOfDayReport {
    pub trade_date: String,
    /// Open orders compared with the venue.
    pub examined: usize,
    /// Placements settled as never received: absent from the venue's complete list.
    pub concluded_not_placed: usize,
    /// Orders whose records the venue's list moved on (executions, final statuses).
    pub corrected: usize,
    pub flagged: usize,
    /// Orders in the venue's list the platform has no record of.
    pub foreign: usize,
    /// The whole day is checked.
    pub done: bool,
}

/// Where the check stands: the shard and entry of the open-order index,
/// then the position in the venue's list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Shard(u32, Option<DueEntry>),
    List(usize),
    Done,
}

fn encode(progress: &Progress) -> String {
    match progress {
        Progress::Shard(shard, None) => format!("shard:{shard}"),
        Progress::Shard(shard, Some(e)) => format!("shard:{shard}:{}|{}", e.due_at_ms, e.id),
        Progress::List(at) => format!("list:{at}"),
        Progress::Done => "done".into(),
    }
}

fn decode(text: &str) -> Progress {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("done"), _, _) => Progress::Done,
        (Some("list"), Some(at), _) => Progress::List(at.parse().unwrap_or(0)),
        (Some("shard"), Some(shard), entry) => {
            let shard = shard.parse().unwrap_or(0);
            let entry = entry.and_then(|e| {
                let (due, id) = e.split_once('|')?;
                Some(DueEntry {
                    due_at_ms: due.parse().ok()?,
                    id: OrderId::parse(id).ok()?,
                })
            });
            Progress::Shard(shard, entry)
        }
        _ => Progress::Shard(0, None),
    }
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    /// Works on the latest closed day's check until `deadline_ms`; `None`
    /// when there is nothing to do.
    pub async fn end_of_day(
        &self,
        deadline_ms: u64,
        page_size: usize,
    ) -> Result<Option<EndOfDayReport>, OrderError> {
        let calendar = &self.settings.calendar;
        let Some(day) = calendar.last_checkable_day(self.now_ms()) else {
            return Ok(None);
        };
        let date = TradingCalendar::date(day);
        let name = format!("eod#{date}");
        let stored = self.store.cursor(&name).await?;
        let mut version = stored.as_ref().map_or(0, |c| c.version);
        let mut progress = stored
            .as_ref()
            .map_or(Progress::Shard(0, None), |c| decode(&c.value));
        if progress == Progress::Done {
            return Ok(None);
        }
        let listed = self.exchange.day_orders(&date).await?;
        let by_client: HashMap<&str, &ExchangeOrder> = listed
            .iter()
            .map(|o| (o.client_order_id.as_str(), o))
            .collect();
        let mut report = EndOfDayReport {
            trade_date: date.clone(),
            ..EndOfDayReport::default()
        };
        let close = calendar.close_ms(day);
        loop {
            if self.now_ms() >= deadline_ms {
                break;
            }
            let next = match &progress {
                Progress::Done => break,
                Progress::Shard(shard, after) => {
                    let entries = self
                        .store
                        .due_orders(*shard, after.as_ref(), u64::MAX, page_size.max(1))
                        .await?;
                    match entries.last() {
                        None if shard + 1 < OPEN_INDEX_SHARDS => Progress::Shard(shard + 1, None),
                        None => Progress::List(0),
                        Some(last) => {
                            let last = last.clone();
                            for entry in &entries {
                                self.check_open_order(
                                    &entry.id,
                                    close,
                                    &date,
                                    &by_client,
                                    &mut report,
                                )
                                .await?;
                            }
                            Progress::Shard(*shard, Some(last))
                        }
                    }
                }
                Progress::List(at) => {
                    let end = (*at + page_size.max(1)).min(listed.len());
                    for view in &listed[*at..end] {
                        self.check_listed(view, &mut report).await?;
                    }
                    if end >= listed.len() {
                        Progress::Done
                    } else {
                        Progress::List(end)
                    }
                }
            };
            match self
                .store
                .save_cursor(&name, &encode(&next), version)
                .await?
            {
                Saved::Saved { version: saved } => {
                    version = saved;
                    progress = next;
                }
                // Another run is on it: leave the day to it.
                Saved::Conflict => return Ok(Some(report)),
            }
        }
        report.done = progress == Progress::Done;
        if report.done {
            tracing::info!(?report, "end-of-day reconciliation finished");
        }
        Ok(Some(report))
    }

    /// One open order against the venue's list of the day it belongs to.
    async fn check_open_order(
        &self,
        id: &OrderId,
        close_ms: u64,
        date: &str,
        listed: &HashMap<&str, &ExchangeOrder>,
        report: &mut EndOfDayReport,
    ) -> Result<(), OrderError> {
        let current = match self.load(id).await {
            Ok(current) => current,
            Err(OrderError::NotFound) => return Ok(()),
            Err(other) => return Err(other),
        };
        let order = &current.value;
        // Orders of a later day wait for their own check.
        if order.is_closed() || order.created_at_ms > close_ms {
            return Ok(());
        }
        let now = self.now_ms();
        // A send may still be on its way: nothing is concluded from its
        // absence yet (the next day's check looks again).
        let unknown = order.place.as_ref().is_some_and(|p| p.step.is_processing());
        if unknown && now <= absence_final_at_ms(order, &self.settings.recovery) {
            return Ok(());
        }
        report.examined += 1;
        // A send that may have reached the venue after its close is on the
        // venue's next day's list.
        let may_be_listed_later =
            unknown && absence_final_at_ms(order, &self.settings.recovery) >= close_ms;
        let view = match listed.get(id.as_str()) {
            Some(view) => Some((*view).clone()),
            // Not in this day's list: an order resting from an earlier day
            // (or any placed order the list does not name), or one that may
            // be listed later: ask for it by its id before concluding.
            None if order.is_placed() || may_be_listed_later => self.exchange.order(id).await?,
            None => None,
        };
        let current = match view {
            Some(view) => {
                let before = current.version;
                let current = self
                    .update(current, |o| record_exchange_view(o, &view, now))
                    .await?;
                report.corrected += usize::from(current.version != before);
                current
            }
            None => self.absent_from_the_day(current, date, report).await?,
        };
        self.drive_from(current, Driver::Recovery).await?;
        Ok(())
    }

    async fn absent_from_the_day(
        &self,
        current: Current,
        date: &str,
        report: &mut EndOfDayReport,
    ) -> Result<Current, OrderError> {
        let unknown = current
            .value
            .place
            .as_ref()
            .is_some_and(|p| p.step.is_processing());
        if unknown {
            let text = format!("absent from the venue's complete list of the orders of {date}");
            let current = self
                .fail_placement(current, StepFailure::NotPlaced { detail: text })
                .await?;
            report.concluded_not_placed += 1;
            return Ok(current);
        }
        if current.value.is_placed() {
            let text = format!("placed, yet missing from the venue's list of {date}");
            report.flagged += usize::from(
                !current
                    .value
                    .recovery
                    .flags
                    .contains(&FlagReason::UnknownToExchange),
            );
            return self
                .flag(current, FlagReason::UnknownToExchange, &text)
                .await;
        }
        Ok(current)
    }

    /// One order of the venue's list: ours and closed, the venue may have
    /// executed more than was recorded; not ours at all, it is counted.
    async fn check_listed(
        &self,
        view: &ExchangeOrder,
        report: &mut EndOfDayReport,
    ) -> Result<(), OrderError> {
        let Ok(id) = OrderId::parse(&view.client_order_id) else {
            report.foreign += 1;
            return Ok(());
        };
        let current = match self.load(&id).await {
            Ok(current) => current,
            Err(OrderError::NotFound) => {
                tracing::error!(client_order_id = %view.client_order_id, venue_order_id = %view.order_id, "the venue holds an order the platform never recorded");
                report.foreign += 1;
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let order = &current.value;
        let differs = order.is_closed()
            && (view.cum_quantity > order.filled_quantity()
                || order.exchange_order_id.as_deref() != Some(view.order_id.as_str()));
        if !differs {
            return Ok(());
        }
        let now = self.now_ms();
        let text = format!(
            "the venue's day list shows {} executed under {}; closed with {} recorded",
            view.cum_quantity,
            view.order_id,
            order.filled_quantity()
        );
        let current = self
            .update(current, |o| {
                if o.is_closed() {
                    o.reopen(&view.order_id, &text, now);
                }
                record_exchange_view(o, view, now);
                true
            })
            .await?;
        report.corrected += 1;
        self.drive_from(current, Driver::Recovery).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_trading_days() {
        assert_eq!(TradingCalendar::date(0), "1970-01-01");
        assert_eq!(TradingCalendar::date(19_783), "2024-03-01");
        assert_eq!(TradingCalendar::date(19_782), "2024-02-29");
        let calendar = TradingCalendar::default();
        let day = 19_783;
        let noon = day * DAY_MS + 12 * 3_600_000;
        assert_eq!(calendar.trade_day(noon), day);
        assert_eq!(calendar.trade_day(calendar.close_ms(day)), day);
        assert_eq!(calendar.trade_day(calendar.close_ms(day) + 1), day + 1);
        assert_eq!(calendar.last_checkable_day(noon), Some(day - 1));
        let after = calendar.close_ms(day) + calendar.check_after_close_ms;
        assert_eq!(calendar.last_checkable_day(after), Some(day));
    }

    #[test]
    fn progress_round_trips() {
        let id = OrderId::parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap();
        for p in [
            Progress::Shard(3, None),
            Progress::Shard(
                7,
                Some(DueEntry {
                    due_at_ms: 42,
                    id: id.clone(),
                }),
            ),
            Progress::List(12),
            Progress::Done,
        ] {
            assert_eq!(decode(&encode(&p)), p);
        }
    }
}
