//! The stored form of an order: its JSON with short field names, so the
//! order item stays under 1 KB (one write unit per save) whatever happens
//! to the order. The API's JSON stays readable; only the table is terse.
//! A name missing from the table is stored as it is, so adding a field
//! never breaks reading; renaming one here would.

use serde_json::{Map, Value};

/// Field name in the domain types → stored name. Each stored name is unique.
const NAMES: &[(&str, &str)] = &[
    ("id", "i"),
    ("account", "ac"),
    ("request", "rq"),
    ("symbol", "sy"),
    ("side", "sd"),
    ("order_type", "ot"),
    ("quantity", "q"),
    ("limit_price", "lp"),
    ("time_in_force", "tf"),
    ("protection", "pr"),
    ("reservation", "rv"),
    ("asset", "as"),
    ("amount", "am"),
    ("created_at_ms", "ct"),
    ("place_deadline_ms", "pd"),
    ("reserve", "rs"),
    ("place", "pl"),
    ("state", "st"),
    ("reason", "rn"),
    ("detail", "dt"),
    ("attempt", "at"),
    ("started_at_ms", "t0"),
    ("updated_at_ms", "t1"),
    ("sends", "sn"),
    ("venue_deadline_ms", "vd"),
    ("resend", "re"),
    ("last_error", "le"),
    ("awaiting_day_list", "wl"),
    ("exchange_order_id", "xo"),
    ("fills", "fl"),
    ("count", "n"),
    ("notional_cents", "nc"),
    ("from_reserved_units", "fr"),
    ("excess_units", "ex"),
    ("last_at_ms", "la"),
    ("settling", "sl"),
    ("exec_id", "e"),
    ("price", "p"),
    ("received_at_ms", "ra"),
    ("release_units", "ru"),
    ("settle", "se"),
    ("archived", "ar"),
    ("backlog", "bl"),
    ("reported_cum", "rc"),
    ("final_report", "fi"),
    ("status", "ss"),
    ("cum_quantity", "cq"),
    ("cancel", "cn"),
    ("requested_at_ms", "cr"),
    ("step", "sp"),
    ("release", "rl"),
    ("released_units", "rd"),
    ("closed_at_ms", "cl"),
    ("recovery", "rc2"),
    ("due_at_ms", "du"),
    ("condition", "co"),
    ("kind", "k"),
    ("since_ms", "si"),
    ("attempts", "ats"),
    ("ground", "gd"),
    ("done", "dn"),
    ("missing", "mi"),
    ("flags", "fg"),
    ("flag_detail", "fd"),
    ("flagged_at_ms", "fa"),
    ("resolved", "rz"),
    ("at_ms", "az"),
    ("decision", "dc"),
    ("evidence", "ev"),
    ("cleared", "cx"),
];

fn rename(value: Value, lookup: &dyn Fn(&str) -> Option<&'static str>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = lookup(&k).map_or(k, str::to_owned);
                    (key, rename(v, lookup))
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| rename(v, lookup)).collect()),
        other => other,
    }
}

/// `value` with short field names, as JSON text.
pub fn shorten<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let long = serde_json::to_value(value)?;
    let short = rename(long, &|k| {
        NAMES.iter().find(|(l, _)| *l == k).map(|(_, s)| *s)
    });
    serde_json::to_string(&short)
}

/// Reads what [`shorten`] wrote.
pub fn lengthen<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    let short: Value = serde_json::from_str(text)?;
    let long = rename(short, &|k| {
        NAMES.iter().find(|(_, s)| *s == k).map(|(l, _)| *l)
    });
    serde_json::from_value(long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_unique_both_ways() {
        let mut long: Vec<&str> = NAMES.iter().map(|(l, _)| *l).collect();
        let mut short: Vec<&str> = NAMES.iter().map(|(_, s)| *s).collect();
        long.sort_unstable();
        short.sort_unstable();
        long.dedup();
        short.dedup();
        assert_eq!(long.len(), NAMES.len());
        assert_eq!(short.len(), NAMES.len());
        for (_, s) in NAMES {
            assert!(
                !NAMES.iter().any(|(l, _)| l == s),
                "{s} is also a long name"
            );
        }
    }
}
