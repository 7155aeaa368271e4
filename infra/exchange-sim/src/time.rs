//! Timestamps. The engine only ever sees `now_ms: u64` (Unix milliseconds)
//! passed in by the caller; this module formats and parses them as RFC 3339
//! (UTC, `Z` suffix) without pulling in a date library.

use serde::Serializer;

/// A source of the current time. The server uses [`SystemClock`]; tests use a
/// [`ManualClock`] they move by hand. The engine never reads a clock.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(start_ms))
    }
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, by_ms: u64) {
        self.0.fetch_add(by_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The venue's clock: another clock moved by a fixed signed offset, so a
/// venue can run ahead of or behind the platform. Saturates at 0 and
/// `u64::MAX` rather than wrapping.
pub struct OffsetClock {
    inner: std::sync::Arc<dyn Clock>,
    offset_ms: i64,
}

impl OffsetClock {
    pub fn new(inner: std::sync::Arc<dyn Clock>, offset_ms: i64) -> OffsetClock {
        OffsetClock { inner, offset_ms }
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms().saturating_add_signed(self.offset_ms)
    }
}

/// Milliseconds in a UTC day (no leap seconds, as in Unix time).
pub const MS_PER_DAY: u64 = 86_400_000;

/// `2024-03-01T12:00:00.250Z` for a Unix time in milliseconds.
pub fn format_rfc3339_ms(unix_ms: u64) -> String {
    let days = unix_ms / MS_PER_DAY;
    let ms_of_day = unix_ms % MS_PER_DAY;
    let (y, m, d) = civil_from_days(days as i64);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only; offsets are rejected to
/// keep the one accepted form obvious). Fractions beyond milliseconds are
/// truncated.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 || !s.ends_with(['Z', 'z']) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let rest = &s[19..s.len() - 1];
    let ms = if rest.is_empty() {
        0
    } else {
        let frac = rest.strip_prefix('.')?;
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut digits: String = frac.chars().take(3).collect();
        while digits.len() < 3 {
            digits.push('0');
        }
        digits.parse::<u64>().ok()?
    };
    let days = days_from_civil(y as i64, mo, d);
    let days = u64::try_from(days).ok()?;
    Some(days * MS_PER_DAY + ((h * 60 + mi) * 60 + sec) * 1000 + ms)
}

pub(crate) fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days`, proleptic Gregorian.
pub(crate) fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `#[serde(serialize_with = "...")]` helper: Unix ms as an RFC 3339 string.
pub fn ser_rfc3339<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339_ms(*ms))
}

/// The same for an optional time (pair with `skip_serializing_if`).
pub fn ser_rfc3339_opt<S: Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&format_rfc3339_ms(*ms)),
        None => s.serialize_none(),
    }
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP `Date` (RFC 7231 IMF-fixdate), e.g. `Fri, 01 Mar 2024 12:00:00 GMT`.
/// Whole seconds: the milliseconds are dropped, as the format has none.
pub fn format_http_date(unix_ms: u64) -> String {
    let days = unix_ms / MS_PER_DAY;
    let secs = (unix_ms % MS_PER_DAY) / 1000;
    let (y, m, d) = civil_from_days(days as i64);
    // 1970-01-01 was a Thursday; WEEKDAYS starts there.
    let weekday = WEEKDAYS[(days % 7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Parses an IMF-fixdate (`Fri, 01 Mar 2024 12:00:00 GMT`) into Unix ms.
/// The obsolete RFC 850 and asctime forms are not accepted.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let (weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let iso = format!("{year}-{month:02}-{day}T{hms}Z");
    if day.len() != 2 {
        return None;
    }
    let ms = parse_rfc3339_ms(&iso)?;
    (format_http_date(ms).split(',').next() == Some(weekday)).then_some(ms)
}

/// `#[serde(deserialize_with = "...")]` helper: an RFC 3339 string or Unix ms.
pub fn de_rfc3339_or_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::Deserialize;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => {
            parse_rfc3339_ms(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 UTC time"))
        }
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("not whole Unix milliseconds")),
        _ => Err(serde::de::Error::custom(
            "expected an RFC 3339 string or Unix milliseconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [0, 1_614_265_330_000, 1_709_294_400_250, 4_102_444_799_999] {
            let s = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
        }
        assert_eq!(
            format_rfc3339_ms(1_709_294_400_250),
            "2024-03-01T12:00:00.250Z"
        );
        assert_eq!(
            parse_rfc3339_ms("2024-03-01T12:00:00Z"),
            Some(1_709_294_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00.5Z"),
            Some(1_709_164_800_500)
        );
    }

    #[test]
    fn http_dates_format_and_parse_back() {
        assert_eq!(
            format_http_date(1_709_294_400_250),
            "Fri, 01 Mar 2024 12:00:00 GMT"
        );
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            parse_http_date("Fri, 01 Mar 2024 12:00:00 GMT"),
            Some(1_709_294_400_000)
        );
        for bad in [
            "Sat, 01 Mar 2024 12:00:00 GMT",
            "Fri, 1 Mar 2024 12:00:00 GMT",
            "Fri, 01 Mar 2024 12:00:00 UTC",
            "Friday, 01-Mar-24 12:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_offset_clock_runs_ahead_or_behind_and_saturates() {
        let inner = std::sync::Arc::new(ManualClock::new(10_000));
        assert_eq!(OffsetClock::new(inner.clone(), 5_000).now_ms(), 15_000);
        assert_eq!(OffsetClock::new(inner.clone(), -4_000).now_ms(), 6_000);
        assert_eq!(OffsetClock::new(inner, -20_000).now_ms(), 0);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for s in [
            "2024-03-01 12:00:00Z",
            "2024-03-01T12:00:00+01:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T12:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
    }
}
