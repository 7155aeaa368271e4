//! What one venue's REST API means by its answers. The port's contract
//! (found, not found, rejected, unknown) is the same everywhere; how a
//! venue says each differs (some answer `409` for "already exists", which is
//! *found*, not rejected), so each venue gets a table. The exchange
//! simulator's dialect is one such table.

use domain::order::VenueRules;

/// What an answer means, for the route it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Lookup: the venue holds no order under this id.
    NotFound,
    /// Place: refused for good; nothing stored, now or later (invalid,
    /// arrived after its deadline, id tombstoned).
    Rejected,
    /// Place: the id is taken by this very request (a repeat): look it up.
    AlreadyExists,
    /// Place: the id is held for a *different* request: a bug or a lost
    /// record, never a rejection.
    HeldForAnotherRequest,
    /// Cancel: the venue never saw the id and stored nothing.
    UnknownOrder,
}

/// One row: a status, the end of the problem's `type` (or error code), and
/// what it means on that route. An empty code matches any problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub route: Route,
    pub status: u16,
    pub code: &'static str,
    pub meaning: Meaning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Place,
    Lookup,
    Cancel,
}

/// A venue's API and guarantees, as this client is configured for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    pub name: &'static str,
    pub rules: VenueRules,
    pub table: &'static [Rule],
}

impl Venue {
    /// The meaning of `status` with problem `code` on `route`, if the table gives one.
    pub fn meaning(&self, route: Route, status: u16, code: Option<&str>) -> Option<Meaning> {
        self.table
            .iter()
            .find(|r| {
                r.route == route
                    && r.status == status
                    && (r.code.is_empty() || code.is_some_and(|c| c.ends_with(r.code)))
            })
            .map(|r| r.meaning)
    }

    /// The exchange simulator (`infra/exchange-sim`) in one of its profiles:
    /// `tombstone`, `deadline` or `plain`.
    pub fn simulator(profile: &str) -> Option<Venue> {
        let rules = match profile {
            "tombstone" => VenueRules::TOMBSTONE,
            "deadline" => VenueRules::DEADLINE,
            "plain" => VenueRules::PLAIN,
            _ => return None,
        };
        Some(Venue {
            name: "exchange-sim",
            rules,
            table: SIMULATOR,
        })
    }
}

/// The simulator's problem types end in these slugs.
const SIMULATOR: &[Rule] = &[
    Rule {
        route: Route::Lookup,
        status: 404,
        code: "order-not-found",
        meaning: Meaning::NotFound,
    },
    Rule {
        route: Route::Lookup,
        status: 404,
        code: "unknown_order",
        meaning: Meaning::NotFound,
    },
    Rule {
        route: Route::Place,
        status: 400,
        code: "",
        meaning: Meaning::Rejected,
    },
    Rule {
        route: Route::Place,
        status: 413,
        code: "",
        meaning: Meaning::Rejected,
    },
    Rule {
        route: Route::Place,
        status: 409,
        code: "client-order-id-tombstoned",
        meaning: Meaning::Rejected,
    },
    Rule {
        route: Route::Place,
        status: 422,
        code: "deadline-passed",
        meaning: Meaning::Rejected,
    },
    Rule {
        route: Route::Place,
        status: 422,
        code: "idempotency-mismatch",
        meaning: Meaning::HeldForAnotherRequest,
    },
    Rule {
        route: Route::Cancel,
        status: 404,
        code: "unknown_order",
        meaning: Meaning::UnknownOrder,
    },
    Rule {
        route: Route::Cancel,
        status: 404,
        code: "order-not-found",
        meaning: Meaning::UnknownOrder,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_answers_mean_what_the_port_says() {
        let venue = Venue::simulator("deadline").expect("profile");
        assert_eq!(venue.rules, VenueRules::DEADLINE);
        assert_eq!(
            venue.meaning(
                Route::Place,
                409,
                Some("urn:exchange-sim:problem:client-order-id-tombstoned")
            ),
            Some(Meaning::Rejected)
        );
        assert_eq!(
            venue.meaning(
                Route::Cancel,
                404,
                Some("urn:exchange-sim:problem:unknown_order")
            ),
            Some(Meaning::UnknownOrder)
        );
        assert_eq!(
            venue.meaning(Route::Lookup, 404, Some("urn:x:not-found")),
            None
        );
        assert_eq!(
            venue.meaning(Route::Place, 400, None),
            Some(Meaning::Rejected)
        );
        assert!(Venue::simulator("unknown").is_none());
    }
}
