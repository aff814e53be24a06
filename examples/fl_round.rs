//! A federated-learning run through the shared tree, in separate processes.
//!
//! ```text
//! cargo run --release --example fl_round
//! cargo run --release --example fl_round -- --kill-selector-at-round 2
//! ```
//!
//! It creates a problem in a fresh directory, starts one `coordinator` and several
//! `selector` processes (the examples of the same names), and prints, round by round,
//! the global model's loss and accuracy on held-out data and the time each phase
//! took; then every file of the final tree, verified. The processes coordinate only
//! through the tree.
//!
//! # Building the other examples
//!
//! `cargo run --example fl_round` builds only `fl_round`. When cargo runs it (cargo
//! sets `CARGO` in its environment), it first runs `cargo build` for the `selector`
//! and `coordinator` examples, in the profile it was built in, and starts the
//! executables cargo reports. Otherwise (`--no-build`, or the executable started by
//! hand) it looks for them next to its own executable. Builds for another target
//! triple (`--target`) are not handled: pass `--no-build` after building them.

mod common;

#[path = "fl_round/run.rs"]
mod run;
#[path = "fl_round/tree.rs"]
mod tree;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fedota_store::{ProblemId, Round};

use common::cli::Args;
use common::model::{DEFAULT_BATCH, Training};

const USAGE: &str = "\
fl_round: runs federated rounds with a coordinator and selectors in separate processes

usage: fl_round [options]

  --root DIR                    the shared tree [default: a new directory in the temp dir]
  --problem ID                  the problem to create in it [default: fl-demo]
  --rounds N                    rounds to run [default: 5]
  --selectors N                 selector processes, 1 to 64 [default: 3]
  --clients N                   clients per selector, 1 to 1000 [default: 4]
  --kill-selector-at-round N    SIGKILL the last selector in the middle of round N: it is
                                told to stop after half its client updates (rounded up)
                                and before its aggregate, and is killed there
  --aggregate-timeout SECS      the coordinator's wait for aggregates [default: 2]
  --wait-timeout SECS           the selectors' wait for each global checkpoint [default: 60]
  --epochs E                    local epochs per client and round, at least 1 [default: 2]
  --learning-rate X             SGD step size, a finite number above 0 [default: 0.05]
  --client-delay-ms MS          pause before each client trains [default: 0]
  --seed N                      the task's seed [default: 7]
  --json-summary FILE           also write what happened as JSON to FILE
  --setup-only                  create the problem, print the commands that run its
                                coordinator and selectors by hand, and exit
  --no-build                    do not run cargo to build selector and coordinator; use the
                                executables next to this one

Logs go to stderr. RUST_LOG sets the level of every process; unset, only warnings
and errors are logged.";

/// The demo's settings, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    root: Option<PathBuf>,
    problem: ProblemId,
    rounds: Round,
    selectors: usize,
    clients: u64,
    kill_at: Option<Round>,
    aggregate_timeout: Duration,
    wait_timeout: Duration,
    epochs: u32,
    learning_rate: f64,
    client_delay_ms: u64,
    seed: u64,
    json_summary: Option<PathBuf>,
    setup_only: bool,
    no_build: bool,
}

/// The most selectors: each is a process, and a few dozen already show everything the
/// demo has to show.
const MAX_SELECTORS: usize = 64;

/// The most clients per selector: each holds its shard in memory and commits a file
/// every round.
const MAX_CLIENTS: u64 = 1000;

fn main() -> ExitCode {
    // Warnings tell the story of a failure; info from every process would drown the
    // table. The child processes get the same default (see run::spawn).
    common::init_logging(run::DEFAULT_LOG);

    let config = match parse(Args::from_env(USAGE)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fl_round: {e}");
            return ExitCode::from(2);
        }
    };

    match run::run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: Args) -> Result<Config, Box<dyn Error>> {
    let config = Config {
        root: args.value("root")?,
        problem: args.value_or("problem", ProblemId::new("fl-demo")?)?,
        rounds: args.value_or("rounds", 5)?,
        selectors: args.value_or("selectors", 3)?,
        clients: args.value_or("clients", 4)?,
        kill_at: args.value("kill-selector-at-round")?,
        aggregate_timeout: args.seconds_or("aggregate-timeout", Duration::from_secs(2))?,
        wait_timeout: args.seconds_or("wait-timeout", Duration::from_secs(60))?,
        epochs: args.value_or("epochs", 2)?,
        learning_rate: args.value_or("learning-rate", 0.05)?,
        client_delay_ms: args.value_or("client-delay-ms", 0)?,
        seed: args.value_or("seed", 7)?,
        json_summary: args.value("json-summary")?,
        setup_only: args.switch("setup-only"),
        no_build: args.switch("no-build"),
    };
    args.finish()?;

    if config.rounds == 0 || config.selectors == 0 || config.clients == 0 {
        return Err("--rounds, --selectors and --clients must be at least 1".into());
    }
    if config.selectors > MAX_SELECTORS || config.clients > MAX_CLIENTS {
        return Err(format!(
            "--selectors {} --clients {}: at most {MAX_SELECTORS} selectors of \
             {MAX_CLIENTS} clients each",
            config.selectors, config.clients
        )
        .into());
    }
    // The selectors would refuse these settings; refuse them before starting anything.
    Training {
        epochs: config.epochs,
        learning_rate: config.learning_rate,
        batch: DEFAULT_BATCH,
    }
    .check()?;
    if config.setup_only && (config.kill_at.is_some() || config.json_summary.is_some()) {
        return Err(
            "--setup-only runs no process, so --kill-selector-at-round and \
             --json-summary mean nothing with it"
                .into(),
        );
    }
    if let Some(round) = config.kill_at {
        if round >= config.rounds {
            return Err(format!(
                "--kill-selector-at-round {round}: the rounds are 0 to {}",
                config.rounds - 1
            )
            .into());
        }
        if config.selectors < 2 {
            return Err(
                "--kill-selector-at-round needs at least 2 selectors, so that \
                        one is left to go on with"
                    .into(),
            );
        }
    }
    Ok(config)
}
