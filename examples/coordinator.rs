//! A Fedota coordinator over the shared tree.
//!
//! It takes the problem's coordinator lock, then for each round waits for the
//! selectors' aggregates, averages those that belong to the round (FedAvg, weighted
//! by sample count), commits the next global checkpoint, and evaluates it on
//! held-out data. A selector that does not deliver in time is left out of the round
//! and named; its aggregate from an earlier round is never used.
//!
//! ```text
//! cargo run --example coordinator -- --root DIR --problem ID --selectors 3 --rounds 5
//! ```

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fedota_store::{AggregateState, Coordinator, LockWait, ProblemId, Round, Store};

use common::cli::Args;
use common::data::Dataset;
use common::model::{LogReg, ModelSpec};
use common::report::{CoordinatorRound, Evaluation, Event, Skipped, UsedAggregate, ms_since};

const USAGE: &str = "\
coordinator: averages the selectors' aggregates each round into the next global checkpoint

usage: coordinator --root DIR --problem ID --selectors K --rounds R [options]

  --root DIR                 the shared tree (like /data)
  --problem ID               the problem, created beforehand (see fl_round)
  --selectors K              how many selectors to wait for
  --rounds R                 commit global checkpoints up to round R, then exit
  --aggregate-timeout SECS   how long to wait for K aggregates before going on with
                             those that are ready [default: 2]
  --lock-timeout SECS        how long to wait for the coordinator lock [default: 10]
  --json                     report each round as a line of JSON on stdout

A selector that missed a round's timeout is not waited for in the next rounds; it
is used again whenever its aggregate is ready in time.

Logs go to stderr; RUST_LOG sets the level (default: info).";

/// The coordinator's settings, from the command line.
struct Config {
    root: PathBuf,
    problem: ProblemId,
    selectors: usize,
    rounds: Round,
    aggregate_timeout: Duration,
    lock_timeout: Duration,
    json: bool,
}

fn main() -> ExitCode {
    common::init_logging("info");

    let config = match parse(Args::from_env(USAGE)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return ExitCode::from(2);
        }
    };

    // At error level so the span is enabled, and names the process, at every level.
    let span = tracing::error_span!("coordinator", problem = %config.problem);
    let _entered = span.enter();
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: Args) -> Result<Config, Box<dyn Error>> {
    let config = Config {
        root: args.required("root")?,
        problem: args.required("problem")?,
        selectors: args.required("selectors")?,
        rounds: args.required("rounds")?,
        aggregate_timeout: args.seconds_or("aggregate-timeout", Duration::from_secs(2))?,
        lock_timeout: args.seconds_or("lock-timeout", Duration::from_secs(10))?,
        json: args.switch("json"),
    };
    args.finish()?;
    if config.selectors == 0 {
        return Err("--selectors must be at least 1".into());
    }
    Ok(config)
}

fn run(config: &Config) -> Result<(), Box<dyn Error>> {
    let store = Store::open(&config.root)?;
    let coordinator = store.coordinator(&config.problem, LockWait::Timeout(config.lock_timeout))?;
    tracing::info!(
        generation = coordinator.generation(),
        "holding the coordinator lock"
    );

    // The task, and so the held-out data, comes from model.h5.
    let spec = ModelSpec::from_bytes(&coordinator.read_model(common::read_all)?.value)?;
    let held_out = spec.task.held_out_set();

    // Start from the committed global checkpoint, so a restarted coordinator goes on
    // where the last one stopped.
    let snapshot = coordinator.read_global_checkpoint(common::read_all)?;
    let start = snapshot
        .round()
        .ok_or("the global checkpoint has no commit record")?;
    let (global, _) = LogReg::from_safetensors(&snapshot.value, spec.task.features)
        .map_err(|e| format!("global checkpoint of round {start}: {e}"))?;
    let evaluation = evaluate(&global, start, &held_out)?;
    tracing::info!(
        round = start,
        loss = evaluation.loss,
        accuracy = evaluation.accuracy,
        "starting from the global checkpoint"
    );
    report(config, Event::Start(evaluation));

    let mut expected = config.selectors;
    for round in start..config.rounds {
        let averaged = run_round(&coordinator, round, expected, config, &spec)?;

        let eval_started = Instant::now();
        let evaluation = evaluate(&averaged.model, round + 1, &held_out)?;
        let eval_ms = ms_since(eval_started);
        tracing::info!(
            round = round + 1,
            loss = evaluation.loss,
            accuracy = evaluation.accuracy,
            aggregates = averaged.used.len(),
            "global checkpoint committed"
        );

        // A selector that missed the timeout is not waited for again; it rejoins
        // whenever its aggregate is ready with the others'.
        expected = averaged.used.len();
        report(
            config,
            Event::Round(CoordinatorRound {
                round,
                timed_out: averaged.timed_out,
                used: averaged.used,
                skipped: averaged.skipped,
                evaluation,
                wait_ms: averaged.wait_ms,
                fedavg_ms: averaged.fedavg_ms,
                eval_ms,
            }),
        );
    }
    Ok(())
}

/// What one round of averaging produced.
struct Averaged {
    model: LogReg,
    timed_out: bool,
    used: Vec<UsedAggregate>,
    skipped: Vec<Skipped>,
    wait_ms: f64,
    fedavg_ms: f64,
}

/// Waits for the aggregates of `round`, averages the ready ones, commits `round + 1`.
fn run_round(
    coordinator: &Coordinator,
    round: Round,
    expected: usize,
    config: &Config,
    spec: &ModelSpec,
) -> Result<Averaged, Box<dyn Error>> {
    let started = Instant::now();

    // Wait for the selectors; after the timeout, go on with what is there.
    let timed_out = match coordinator.wait_for_aggregates(round, expected, config.aggregate_timeout)
    {
        Ok(_) => false,
        Err(fedota_store::Error::Timeout { what, .. }) => {
            tracing::warn!(round, "timed out waiting for aggregates: {what}");
            true
        }
        Err(e) => return Err(e.into()),
    };
    let wait_ms = ms_since(started);

    // Only aggregates committed for this round are candidates: a stale one, left from
    // an earlier round by a selector that died, is named and skipped.
    let fedavg_started = Instant::now();
    let mut used = Vec::new();
    let mut skipped = Vec::new();
    let mut models = Vec::new();
    for (selector, state) in coordinator.aggregates(round)? {
        if !matches!(state, AggregateState::Ready(_)) {
            let reason = state.to_string();
            tracing::warn!(round, %selector, "selector left out of the round ({reason})");
            skipped.push(Skipped {
                selector: selector.to_string(),
                reason,
            });
            continue;
        }

        // The read checks the round again, and size, checksum and weight; an
        // aggregate that fails is left out rather than stopping the round.
        let read = coordinator
            .read_aggregate(&selector, round, common::read_all)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                let (model, _) = LogReg::from_safetensors(&s.value, spec.task.features)?;
                Ok((model, s))
            });
        match read {
            Ok((model, snapshot)) => {
                let record = snapshot
                    .record
                    .as_ref()
                    .ok_or("a ready aggregate lost its record")?;
                let weight = snapshot.weight.ok_or("an aggregate without a weight")?;
                used.push(UsedAggregate {
                    selector: selector.to_string(),
                    round: record.round,
                    weight,
                    commit_id: record.commit_id.clone(),
                });
                models.push((model, weight));
            }
            Err(reason) => {
                tracing::warn!(round, %selector, "selector left out of the round ({reason})");
                skipped.push(Skipped {
                    selector: selector.to_string(),
                    reason,
                });
            }
        }
    }

    // A selector that never started has no directory, so it cannot be named.
    let seen = used.len() + skipped.len();
    if seen < config.selectors {
        tracing::warn!(
            round,
            seen,
            configured = config.selectors,
            "some selectors have no directory in the tree yet"
        );
    }

    // Weighted FedAvg: each aggregate counts by the samples behind it.
    let next = LogReg::weighted_average(&models).ok_or_else(|| {
        format!("no usable aggregate of round {round} after {wait_ms:.0} ms; cannot go on")
    })?;

    // A model that is not finite is of no use to anyone: stop rather than commit it.
    if !next.is_finite() {
        return Err(format!(
            "the average of the aggregates of round {round} is not finite (NaN or \
             infinite weights): the selectors' training diverged; try a smaller \
             --learning-rate"
        )
        .into());
    }
    let sources: Vec<String> = used
        .iter()
        .map(|u| format!("{}@{}", u.selector, u.commit_id))
        .collect();
    let metadata = HashMap::from([
        ("round".to_owned(), (round + 1).to_string()),
        ("producer".to_owned(), "coordinator".to_owned()),
        ("aggregates".to_owned(), sources.join(",")),
    ]);
    let bytes = next.to_safetensors(metadata)?;
    coordinator.commit_global_checkpoint(round + 1, &mut &bytes[..])?;

    Ok(Averaged {
        model: next,
        timed_out,
        used,
        skipped,
        wait_ms,
        fedavg_ms: ms_since(fedavg_started),
    })
}

/// Loss and accuracy of `model` on the held-out data; an error if the loss is not
/// a finite number, which no later round could mend.
fn evaluate(model: &LogReg, round: Round, held_out: &Dataset) -> Result<Evaluation, String> {
    let (loss, accuracy) = model.evaluate(held_out);
    if !loss.is_finite() {
        return Err(format!(
            "the held-out loss of the global checkpoint of round {round} is {loss}: \
             training diverged; try a smaller --learning-rate"
        ));
    }
    Ok(Evaluation {
        round,
        loss,
        accuracy,
    })
}

/// Prints `event` as JSON on stdout if asked to.
fn report(config: &Config, event: Event) {
    if config.json {
        println!("{}", event.to_line());
    }
}
