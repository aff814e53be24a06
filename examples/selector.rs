//! A Fedota selector over the shared tree, with its clients simulated in-process.
//!
//! For each round it waits for the global checkpoint, lets each client train on its
//! own shard and commit its update into `roundFiles`, reads the updates back
//! verified, averages them by sample count, and commits the aggregate. It talks to
//! the coordinator only through the tree.
//!
//! ```text
//! cargo run --example selector -- --root DIR --problem ID --selector ID --clients 4 --rounds 5
//! ```

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fedota_store::{ProblemId, Round, Selector, SelectorId, Store};

use common::cli::Args;
use common::data::Dataset;
use common::model::{DEFAULT_BATCH, LogReg, ModelSpec, Training};
use common::report::{Event, Holding, SelectorRound, ms_since};
use common::rng::Rng;

const USAGE: &str = "\
selector: trains a selector's simulated clients each round and commits their aggregate

usage: selector --root DIR --problem ID --selector ID --clients N --rounds R [options]

  --root DIR              the shared tree (like /data)
  --problem ID            the problem, created beforehand (see fl_round)
  --selector ID           this selector's id, which names its directory
  --clients N             clients to simulate
  --rounds R              train rounds 0 to R-1, then exit
  --epochs E              local epochs per client and round [default: 2]
  --learning-rate X       SGD step size [default: 0.05]
  --batch B               samples per SGD step [default: 16]
  --wait-timeout SECS     how long to wait for each global checkpoint [default: 60]
  --client-delay-ms MS    pause before each client trains, like a slow client [default: 0]
  --hold-in-round N       in round N, stop after half the client updates (rounded up),
                          say so, and wait to be killed without aggregating; fl_round's
                          kill demo uses it. Exits with an error if not killed within
                          --wait-timeout [default: off]
  --json                  report each round as a line of JSON on stdout

Logs go to stderr; RUST_LOG sets the level (default: info).";

/// The selector's settings, from the command line.
struct Config {
    root: PathBuf,
    problem: ProblemId,
    selector: SelectorId,
    clients: u64,
    rounds: Round,
    training: Training,
    wait_timeout: Duration,
    client_delay: Duration,
    hold_in_round: Option<Round>,
    json: bool,
}

fn main() -> ExitCode {
    common::init_logging("info");

    let config = match parse(Args::from_env(USAGE)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("selector: {e}");
            return ExitCode::from(2);
        }
    };

    // At error level so the span is enabled, and names the process, at every level.
    let span = tracing::error_span!("selector", id = %config.selector);
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
        selector: args.required("selector")?,
        clients: args.required("clients")?,
        rounds: args.required("rounds")?,
        training: Training {
            epochs: args.value_or("epochs", 2)?,
            learning_rate: args.value_or("learning-rate", 0.05)?,
            batch: args.value_or("batch", DEFAULT_BATCH)?,
        },
        wait_timeout: args.seconds_or("wait-timeout", Duration::from_secs(60))?,
        client_delay: Duration::from_millis(args.value_or("client-delay-ms", 0)?),
        hold_in_round: args.value("hold-in-round")?,
        json: args.switch("json"),
    };
    args.finish()?;

    if config.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    config.training.check()?;
    Ok(config)
}

fn run(config: &Config) -> Result<(), Box<dyn Error>> {
    let store = Store::open(&config.root)?;
    let selector = store.selector(&config.problem, &config.selector)?;

    // The task comes from model.h5, so every client's shard is the same in every run.
    let spec = ModelSpec::from_bytes(&selector.read_model(common::read_all)?.value)?;
    let shards: Vec<(u64, Dataset)> = (1..=config.clients)
        .map(|c| (c, spec.task.client_shard(config.selector.as_str(), c)))
        .collect();
    for (client, shard) in &shards {
        tracing::debug!(
            client,
            samples = shard.len(),
            positive_share = shard.positive_share(),
            "client shard"
        );
    }

    let mut round = 0;
    while round < config.rounds {
        let started = Instant::now();

        // Wait for the coordinator, then read whatever checkpoint is there: if this
        // selector fell behind, it joins the round the others are in.
        selector.wait_for_global_round(round, config.wait_timeout)?;
        let snapshot = selector.read_global_checkpoint(common::read_all)?;
        let Some(global_round) = snapshot.round() else {
            return Err("the global checkpoint has no commit record".into());
        };
        if global_round >= config.rounds {
            tracing::info!(global_round, "the coordinator is past the last round; done");
            break;
        }
        if global_round > round {
            tracing::warn!(
                missed = round,
                now = global_round,
                "fell behind: joining the current round"
            );
        }
        let (global, _) = LogReg::from_safetensors(&snapshot.value, spec.task.features)
            .map_err(|e| format!("global checkpoint of round {global_round}: {e}"))?;
        let wait_ms = ms_since(started);

        let report = train_round(
            config,
            &selector,
            &shards,
            &global,
            spec.task.seed,
            global_round,
            wait_ms,
        )?;
        tracing::info!(
            round = global_round,
            clients = report.clients,
            samples = report.samples,
            "aggregate committed"
        );
        if config.json {
            println!("{}", Event::SelectorRound(report).to_line());
        }

        round = global_round + 1;
    }
    Ok(())
}

/// One round: the clients train and commit, then the selector aggregates.
fn train_round(
    config: &Config,
    selector: &Selector,
    shards: &[(u64, Dataset)],
    global: &LogReg,
    seed: u64,
    round: Round,
    wait_ms: f64,
) -> Result<SelectorRound, Box<dyn Error>> {
    let id = config.selector.as_str();

    // In the round to be killed in, stop once half the clients have committed.
    let hold_after = (config.hold_in_round == Some(round)).then(|| shards.len().div_ceil(2));

    // Each client starts from the global model and uploads its update with its
    // sample count as the weight. The shuffles are seeded from the task's seed, so
    // --seed changes them too.
    let started = Instant::now();
    for (done, (client, shard)) in (1..).zip(shards) {
        std::thread::sleep(config.client_delay);

        let mut model = global.clone();
        let mut rng = Rng::for_label(seed, &format!("train/{id}/{client}/{round}"));
        model.train(shard, config.training, &mut rng);

        let metadata = HashMap::from([
            ("round".to_owned(), round.to_string()),
            ("producer".to_owned(), format!("client {client} of {id}")),
            ("samples".to_owned(), shard.len().to_string()),
        ]);
        let bytes = model.to_safetensors(metadata)?;
        selector.commit_client_update(round, *client, shard.len() as u64, &mut &bytes[..])?;
        tracing::debug!(
            round,
            client,
            samples = shard.len(),
            "client update committed"
        );

        if hold_after == Some(done) {
            return Err(hold(config, round, done, shards.len()));
        }
    }
    let train_ms = ms_since(started);

    // Aggregate what is in roundFiles for this round, verified, as a selector that
    // received the updates over the network would; updates of other rounds are
    // refused by the read.
    let started = Instant::now();
    let mut updates = Vec::new();
    for client in selector.clients()? {
        match selector.read_client_update(round, client, common::read_all) {
            Ok(snapshot) => {
                let (model, _) = LogReg::from_safetensors(&snapshot.value, global.w.len())
                    .map_err(|e| format!("client {client}'s update of round {round}: {e}"))?;
                let weight = snapshot.weight.ok_or("a client update without a weight")?;
                updates.push((model, weight));
            }
            Err(fedota_store::Error::StaleRound { found, .. }) => {
                tracing::debug!(client, found, "skipping a client update of another round");
            }
            Err(e) => return Err(e.into()),
        }
    }

    let samples: u64 = updates.iter().map(|(_, n)| n).sum();
    let aggregate = LogReg::weighted_average(&updates)
        .ok_or_else(|| format!("no client update of round {round} to aggregate"))?;
    let metadata = HashMap::from([
        ("round".to_owned(), round.to_string()),
        ("producer".to_owned(), format!("aggregate of {id}")),
        ("clients".to_owned(), updates.len().to_string()),
        ("samples".to_owned(), samples.to_string()),
    ]);
    let bytes = aggregate.to_safetensors(metadata)?;
    selector.commit_aggregate(round, samples, &mut &bytes[..])?;

    Ok(SelectorRound {
        selector: id.to_owned(),
        round,
        clients: updates.len(),
        samples,
        wait_ms,
        train_ms,
        aggregate_ms: ms_since(started),
    })
}

/// Stops in the middle of `round` for `--hold-in-round`: says so in the log and, with
/// `--json`, on stdout, where fl_round reads it and sends SIGKILL; then waits. The aggregate of `round` is
/// never committed. Returns the error to exit with if nobody kills this process
/// within `--wait-timeout`.
fn hold(config: &Config, round: Round, committed: usize, clients: usize) -> Box<dyn Error> {
    tracing::info!(
        round,
        committed,
        clients,
        "holding before the aggregate, to be killed (--hold-in-round)"
    );
    if config.json {
        let event = Event::Holding(Holding {
            selector: config.selector.to_string(),
            round,
            client_updates: committed,
            clients,
        });
        println!("{}", event.to_line());
    }

    std::thread::sleep(config.wait_timeout);
    format!(
        "held in round {round} for {:?} (--hold-in-round) and nobody killed this selector; \
         its aggregate of round {round} was not committed",
        config.wait_timeout
    )
    .into()
}
