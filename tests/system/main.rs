//! System tests: one binary, run against the local stack (moto_server) that
//! `local_stack::Stack::ensure_running` starts or reuses.

mod accounting;
mod balances;
mod balances_api;
mod balances_authz;
mod balances_model;
mod cancel;
mod cost_budget;
mod emulator;
mod exchange;
mod fill_processor;
mod fill_webhook;
mod metering;
mod openapi;
mod operator;
mod order_store;
mod orders_auth;
mod place_order;
mod reconciler;
mod recovery_signals;
mod template;
mod venues;
