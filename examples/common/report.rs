//! What the selector and the coordinator report on stdout with `--json`: one JSON
//! object per line, read by `fl_round` to print its table and its summary.

use serde::{Deserialize, Serialize};

/// One line of a `--json` report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The coordinator evaluated the global checkpoint it started from.
    Start(Evaluation),
    /// The coordinator finished a round.
    Round(CoordinatorRound),
    /// A selector finished a round.
    SelectorRound(SelectorRound),
    /// A selector stopped in the middle of a round to be killed (`--hold-in-round`).
    Holding(Holding),
}

impl Event {
    /// The event as one line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

/// The global model's quality on the held-out data.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Evaluation {
    /// The round of the global checkpoint evaluated.
    pub round: u64,
    /// Mean binary cross-entropy.
    pub loss: f64,
    /// The share of correct predictions.
    pub accuracy: f64,
}

/// An aggregate the coordinator averaged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsedAggregate {
    /// The selector that committed it.
    pub selector: String,
    /// The round in its commit record: always the round being averaged.
    pub round: u64,
    /// Its weight: the number of samples behind it.
    pub weight: u64,
    /// The id of the commit that was read.
    pub commit_id: String,
}

/// A selector whose aggregate the coordinator did not use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    /// The selector.
    pub selector: String,
    /// Why: missing, stale (and from which round), unreadable.
    pub reason: String,
}

/// One round at the coordinator: aggregates of `round` in, global checkpoint of
/// `round + 1` out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoordinatorRound {
    /// The round of the aggregates averaged.
    pub round: u64,
    /// Whether the wait for aggregates timed out.
    pub timed_out: bool,
    /// The aggregates averaged, sorted by selector.
    pub used: Vec<UsedAggregate>,
    /// The selectors left out, sorted.
    pub skipped: Vec<Skipped>,
    /// The new global checkpoint's quality.
    pub evaluation: Evaluation,
    /// Time waiting for aggregates, from the previous commit.
    pub wait_ms: f64,
    /// Time reading and verifying the aggregates, averaging, and committing.
    pub fedavg_ms: f64,
    /// Time evaluating on the held-out data.
    pub eval_ms: f64,
}

/// One round at a selector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectorRound {
    /// The selector.
    pub selector: String,
    /// The round trained.
    pub round: u64,
    /// Client updates averaged.
    pub clients: usize,
    /// Samples behind them: the aggregate's weight.
    pub samples: u64,
    /// Time waiting for the global checkpoint of this round.
    pub wait_ms: f64,
    /// Time the clients took to train and commit their updates.
    pub train_ms: f64,
    /// Time reading the updates back verified, averaging, and committing.
    pub aggregate_ms: f64,
}

/// A selector holding in the middle of a round, waiting to be killed: it has committed
/// some client updates of the round and will not commit its aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holding {
    /// The selector.
    pub selector: String,
    /// The round it stopped in.
    pub round: u64,
    /// The client updates of the round it committed before stopping.
    pub client_updates: usize,
    /// Its clients.
    pub clients: usize,
}

/// Milliseconds since `start`.
pub fn ms_since(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
