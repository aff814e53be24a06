//! `wait`: block until the tree reaches a round, for scripts that drive a round.
//!
//! ```text
//! fedota-store wait --problem p1 --round 4                  # global checkpoint ≥ 4
//! fedota-store wait --problem p1 --round 3 --aggregates 5   # 5 aggregates of round 3
//! ```
//!
//! It polls the commit records (50 ms, doubling up to 1 s) and exits 0 when the
//! condition holds, or 1 after `--timeout` (default 10 minutes), saying what was
//! still missing. On NFS another node's commit can take up to the attribute-cache
//! time (`acdirmax`, 60 s by default) to be seen.
//!
//! # JSON
//!
//! ```text
//! { "command": "wait", "schema_version": 1, "problem": string,
//!   "round": number,                   the round waited for
//!   "global_round": number | null,     the global round reached (without --aggregates)
//!   "selectors": [string] | null }     the selectors ready (with --aggregates)
//! ```

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use fedota_store::{Error, ProblemId, Round, Store};
use serde::Serialize;

use crate::output::{Outcome, Output, OutputArgs, Render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The problem
    #[arg(long, value_name = "ID")]
    problem: ProblemId,

    /// The round to wait for
    #[arg(long, value_name = "N")]
    round: Round,

    /// Wait for this many selectors' aggregates of the round, instead of the global
    /// checkpoint
    #[arg(long, value_name = "COUNT")]
    aggregates: Option<usize>,

    /// Give up after this long
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct WaitReport {
    problem: String,
    round: Round,
    global_round: Option<Round>,
    selectors: Option<Vec<String>>,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let problem = store.problem(&args.problem)?;

    let report = match args.aggregates {
        Some(count) => {
            let ready = problem.wait_for_aggregates(args.round, count, args.timeout)?;
            WaitReport {
                problem: args.problem.to_string(),
                round: args.round,
                global_round: None,
                selectors: Some(ready.iter().map(ToString::to_string).collect()),
            }
        }
        None => WaitReport {
            problem: args.problem.to_string(),
            round: args.round,
            global_round: Some(problem.wait_for_global_round(args.round, args.timeout)?),
            selectors: None,
        },
    };

    out.report(&report)?;
    Ok(Outcome::Clean)
}

impl Render for WaitReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        match (&self.selectors, self.global_round) {
            (Some(ready), _) => writeln!(
                w,
                "{} aggregates of round {} ready in {}: {}",
                ready.len(),
                self.round,
                self.problem,
                ready.join(", ")
            ),
            (None, Some(reached)) => writeln!(
                w,
                "global checkpoint of {} at round {reached} (waited for {})",
                self.problem, self.round
            ),
            (None, None) => writeln!(w, "nothing waited for"),
        }
    }
}
