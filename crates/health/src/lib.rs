//! Readiness and liveness probes with timeouts: HTTP GET (hyper-util), TCP connect and exec.
//! Entry point: [`Prober`], whose [`Prober::probe`] answers one [`ProbeOutcome`] and whose
//! [`Prober::wait_ready`] polls with fast backoff until a service is up or [`NotReady`].
//! It knows nothing of services, registries or schedules: callers pass a port, a path, a
//! program, and decide how often to probe and what a failure means.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod duration;
mod exec;
mod http;
mod probe;
mod ready;
mod tcp;

pub use crate::{
    probe::{Probe, ProbeOutcome, Prober},
    ready::NotReady,
};
