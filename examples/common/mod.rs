//! Code shared by the example programs `selector`, `coordinator` and `fl_round`:
//! flags, the random number generator, the task, the model, and the reports.
//!
//! Each example includes this module and uses a part of it.
#![allow(dead_code)]

pub mod cli;
pub mod data;
pub mod model;
pub mod report;
pub mod rng;

use std::io::{self, IsTerminal, Read};

use tracing_subscriber::EnvFilter;

/// Installs a readable log format on stderr; `RUST_LOG` sets the level, `default` if
/// it is unset. Stdout is left for the program's results.
pub fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Reads a whole file into memory: the closure given to the verified reads. It may be
/// called more than once; only the last call's bytes are verified.
pub fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}
