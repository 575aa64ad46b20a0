//! Switchboard: a PBX core in one binary — SIP registrar and proxy, with a GraphQL
//! and REST API that manages extensions and streams live presence.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod events;
pub mod ids;
pub mod media;
pub mod runtime;
pub mod service;
pub mod sip;
pub mod store;
pub mod sync;
pub mod tls;
