//! Venue profiles: what proves, at a given venue, that an order a client
//! lost track of was never placed. Real venues differ, and a client that
//! assumes the wrong guarantee loses money, so the simulator can be each:
//!
//! | profile | request deadline (`expire_at`) | cancel by client id of an unknown id | cancel by client id | lookup by client id |
//! |---|---|---|---|---|
//! | `tombstone` | required, enforced on arrival | tombstones the id (a later place is refused) | yes | yes |
//! | `deadline` (like Binance's `recvWindow`) | required, enforced on arrival | `404 unknown_order`, stores nothing | yes | yes, authoritative |
//! | `plain` (like Alpaca) | none: a body with `expire_at` is `400 unsupported_field` | — | no: `405 cancel_by_order_id_only` | yes |
//!
//! Every profile cancels by the venue's own order id.

use serde::{Deserialize, Serialize};

use crate::order::TimeInForce;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum VenueProfile {
    /// Request deadline; cancelling an unknown client id tombstones it.
    #[default]
    Tombstone,
    /// Request deadline; cancelling an unknown client id is an error.
    Deadline,
    /// No request deadline; cancel by the venue's order id only.
    Plain,
}

impl VenueProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            VenueProfile::Tombstone => "tombstone",
            VenueProfile::Deadline => "deadline",
            VenueProfile::Plain => "plain",
        }
    }

    /// A place request must carry `expire_at`, and is refused after it.
    pub fn request_deadline(self) -> bool {
        !matches!(self, VenueProfile::Plain)
    }

    /// Cancelling a client id never seen leaves a tombstone.
    pub fn tombstones(self) -> bool {
        matches!(self, VenueProfile::Tombstone)
    }

    /// `DELETE /v1/orders:by-client-id/{id}` is served.
    pub fn cancel_by_client_id(self) -> bool {
        !matches!(self, VenueProfile::Plain)
    }
}

/// `GET /v1/venue`: what a client may rely on at this venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenueCapabilities {
    pub profile: VenueProfile,
    pub request_deadline: bool,
    pub tombstones: bool,
    pub cancel_by_client_id: bool,
    /// Always true: every profile cancels by the venue's order id.
    pub cancel_by_order_id: bool,
    /// Always true: every profile finds an order by its client order id.
    pub lookup_by_client_id: bool,
    pub time_in_force: Vec<TimeInForce>,
    /// Session close, ms after UTC midnight, every calendar day.
    pub session_close_utc_ms: u64,
    pub gtc_max_days: u32,
}

impl VenueCapabilities {
    pub fn new(profile: VenueProfile, session_close_utc_ms: u64, gtc_max_days: u32) -> Self {
        VenueCapabilities {
            profile,
            request_deadline: profile.request_deadline(),
            tombstones: profile.tombstones(),
            cancel_by_client_id: profile.cancel_by_client_id(),
            cancel_by_order_id: true,
            lookup_by_client_id: true,
            time_in_force: vec![TimeInForce::Day, TimeInForce::Gtc, TimeInForce::Ioc],
            session_close_utc_ms,
            gtc_max_days,
        }
    }
}
