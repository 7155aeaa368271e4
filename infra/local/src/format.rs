//! How the local tools print times, durations and amounts: RFC 3339 in UTC,
//! short human durations, decimals in the asset's own scale.

use domain::Asset;

const MS_PER_DAY: u64 = 86_400_000;

/// `2024-05-01T12:34:56.789Z` for a Unix time in milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let day = ms / MS_PER_DAY;
    let in_day = ms % MS_PER_DAY;
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, millis) = (in_day / 1_000 % 60, in_day % 1_000);
    format!(
        "{}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z",
        app::orders::TradingCalendar::date(day)
    )
}

/// A duration for people: `850ms`, `4.2s`, `3m05s`, `2h07m`, `3d04h`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}.{}s", ms / 1_000, ms % 1_000 / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1_000 % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
        _ => format!("{}d{:02}h", ms / MS_PER_DAY, ms / 3_600_000 % 24),
    }
}

/// The time between two instants, signed: `+1.2s`, `-850ms`.
pub fn signed_duration(from_ms: u64, to_ms: u64) -> String {
    if to_ms >= from_ms {
        format!("+{}", duration(to_ms - from_ms))
    } else {
        format!("-{}", duration(from_ms - to_ms))
    }
}

/// `units` of `asset` as a decimal with its code: `1872.50 USD`, `12 AAPL`.
pub fn amount(units: u64, asset: &Asset) -> String {
    format!(
        "{} {}",
        domain::money::format_units(units, asset.scale()),
        asset.code()
    )
}

/// Cents as dollars: `1872.50`.
pub fn cents(cents: u64) -> String {
    domain::money::format_units(cents, domain::money::CASH_SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        // A leap day, and the last millisecond of a year.
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(4_250), "4.2s");
        assert_eq!(duration(59_999), "59.9s");
        assert_eq!(duration(185_000), "3m05s");
        assert_eq!(duration(7_620_000), "2h07m");
        assert_eq!(duration(3 * MS_PER_DAY + 4 * 3_600_000), "3d04h");
        assert_eq!(signed_duration(1_000, 2_200), "+1.2s");
        assert_eq!(signed_duration(2_000, 1_150), "-850ms");
    }

    #[test]
    fn amounts_keep_the_scale_of_their_asset() {
        let catalog = domain::Catalog::us_equities();
        assert_eq!(amount(187_250, &Asset::Cash), "1872.50 USD");
        assert_eq!(amount(5, &Asset::Cash), "0.05 USD");
        assert_eq!(amount(12, &catalog.asset("AAPL").unwrap()), "12 AAPL");
        assert_eq!(cents(100_000_000), "1000000.00");
    }
}
