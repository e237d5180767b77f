//! Code every Attune service shares: logging, pack scanning, signal handling and the service loop.
//!
//! Std only, so the workspace builds offline with old and new toolchains alike.

pub mod json;
pub mod log;
pub mod packs;
pub mod service;
pub mod signals;

/// The build id baked in at compile time from the `ATTUNE_BUILD_ID` environment variable (the Docker
/// builds pass it as a build arg); "dev" when it was not set. Cargo tracks the variable, so changing
/// it recompiles this crate.
pub const BUILD_ID: &str = match option_env!("ATTUNE_BUILD_ID") {
    Some(id) => id,
    None => "dev",
};
