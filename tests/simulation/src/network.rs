//! Requests to the venue that are held in the network and land later: the
//! caller timed out, the request did not die. A placement copy may so land
//! after recovery has looked for it, which is exactly what the venue's
//! guarantees (deadline, tombstone, day list) must make safe. Every request
//! lands within `max_in_flight_ms` of being sent, the bound the platform is
//! entitled to assume.

use std::collections::BTreeMap;

use app::exchange::PlaceRequest;
use domain::order::OrderId;

/// A request on its way to the venue.
#[derive(Debug, Clone)]
pub enum Held {
    Place(PlaceRequest),
    Cancel {
        client_order_id: OrderId,
        venue_order_id: Option<String>,
    },
}

impl Held {
    pub fn client_order_id(&self) -> &OrderId {
        match self {
            Held::Place(request) => &request.client_order_id,
            Held::Cancel {
                client_order_id, ..
            } => client_order_id,
        }
    }
}

/// Requests in flight, by landing time (then by sending order).
#[derive(Debug, Default)]
pub struct Network {
    held: BTreeMap<(u64, u64), Held>,
    sent: u64,
}

impl Network {
    pub fn hold(&mut self, lands_at_ms: u64, request: Held) {
        self.sent += 1;
        self.held.insert((lands_at_ms, self.sent), request);
    }

    /// The next request that lands at or before `until_ms`, with its time.
    pub fn next_landing(&mut self, until_ms: u64) -> Option<(u64, Held)> {
        let entry = self.held.first_entry()?;
        if entry.key().0 > until_ms {
            return None;
        }
        let ((at, _), request) = entry.remove_entry();
        Some((at, request))
    }

    /// When the next request lands, if any is in flight.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.held.keys().next().map(|(at, _)| *at)
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
