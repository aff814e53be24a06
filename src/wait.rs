//! Waiting for other services to commit, by polling.
//!
//! NFS has no change notification that reaches other clients (inotify sees only
//! local changes), so waiting means reading the commit records again, pausing 50 ms,
//! then twice as long each time up to 1 s. Every wait takes a timeout. A long wait
//! logs what it is still missing every 10 s, as a `tracing` event at `info` level.
//!
//! # Caveats
//!
//! On NFS a new commit can become visible to another client late: the client may
//! keep resolving a name from its lookup and attribute caches until they expire
//! (`acdirmin`/`acdirmax`, 30 s and 60 s by default). A wait therefore ends up to that
//! much after the commit, not at once. Mount with a smaller `actimeo` to shorten it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::id::{Round, SelectorId};
use crate::layout::ArtifactKind;
use crate::store::{AggregateState, Problem};

/// The first pause between two polls.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two polls.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How often a long wait says what it is still waiting for.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why a poll found nothing yet.
enum Pending {
    /// Not there yet: what is missing, in words.
    Waiting(String),
    /// An error that waiting cannot mend: the wait ends with it.
    Failed(Error),
}

/// Calls `poll` until it returns `Ok`, pausing with backoff, for at most `timeout`.
/// `op` and `path` name the wait in its progress events and in [`Error::Timeout`],
/// which carries the last thing `poll` said was missing.
fn poll_until<T>(
    op: String,
    path: PathBuf,
    timeout: Duration,
    mut poll: impl FnMut() -> Result<T, Pending>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut next_report = REPORT_EVERY;

    loop {
        let missing = match poll() {
            Ok(done) => return Ok(done),
            Err(Pending::Failed(e)) => return Err(e),
            Err(Pending::Waiting(missing)) => missing,
        };

        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                op,
                path,
                waited,
                what: missing,
            });
        }

        // Progress for whoever watches the logs of a long wait.
        if waited >= next_report {
            tracing::info!(waited_s = waited.as_secs(), timeout_s = timeout.as_secs(), %missing, "{op}: still waiting");
            next_report = waited + REPORT_EVERY;
        }

        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

impl Problem {
    /// Waits until the global checkpoint has round `round` or later, and returns the
    /// round it has.
    ///
    /// A checkpoint without a commit record, or without a problem directory yet, may
    /// still be committed, so the wait goes on; any other error ends it at once.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`, saying which round was last seen. At once,
    /// the errors of [`Problem::global_round`] that waiting cannot mend, such as
    /// [`Error::BadRecord`] or permission denied.
    pub fn wait_for_global_round(&self, round: Round, timeout: Duration) -> Result<Round, Error> {
        let op = format!("wait for the global checkpoint of round {round}");
        let path = self.artifact(ArtifactKind::GlobalCheckpoint).data_path();

        poll_until(op, path, timeout, || match self.global_round() {
            Ok(stored) if stored >= round => Ok(stored),
            Ok(stored) => Err(Pending::Waiting(format!("still at round {stored}"))),
            Err(e) if may_pass(&e) => Err(Pending::Waiting(e.to_string())),
            Err(e) => Err(Pending::Failed(e)),
        })
    }

    /// Waits until at least `count` selectors have committed their aggregate of round
    /// `round`, and returns those that have, sorted.
    ///
    /// A selector whose record cannot be read counts as not ready, and is named; the
    /// wait goes on.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`, naming each selector that was not ready and
    /// why (missing, or the round its aggregate is from); at once, the error of
    /// listing the problem's directory.
    pub fn wait_for_aggregates(
        &self,
        round: Round,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<SelectorId>, Error> {
        let op = format!("wait for {count} aggregates of round {round}");

        poll_until(op, self.dir().to_owned(), timeout, || {
            let states = self.aggregate_states(round).map_err(Pending::Failed)?;

            let (ready, waiting): (Vec<_>, Vec<_>) = states
                .into_iter()
                .partition(|(_, s)| matches!(s, AggregateState::Ready(_)));
            if ready.len() >= count {
                return Ok(ready.into_iter().map(|(id, _)| id).collect());
            }

            let waiting: Vec<String> = waiting
                .iter()
                .map(|(id, s)| format!("{id} ({s})"))
                .collect();
            Err(Pending::Waiting(format!(
                "{} of {count} aggregates of round {round} ready; not ready: {}",
                ready.len(),
                if waiting.is_empty() {
                    "no other selector directories".to_owned()
                } else {
                    waiting.join(", ")
                }
            )))
        })
    }
}

/// Whether waiting may mend `e`: the file or its record is not there yet, or an NFS
/// file handle went stale because a commit replaced the file.
fn may_pass(e: &Error) -> bool {
    match e {
        Error::Unrecorded { .. } => true,
        Error::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::NotFound || crate::fsutil::is_stale_handle(source)
        }
        _ => false,
    }
}

impl Coordinator {
    /// Waits until at least `count` selectors have committed their aggregate of round
    /// `round` (see [`Problem::wait_for_aggregates`]).
    ///
    /// # Errors
    ///
    /// As for [`Problem::wait_for_aggregates`].
    pub fn wait_for_aggregates(
        &self,
        round: Round,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<SelectorId>, Error> {
        self.problem().wait_for_aggregates(round, count, timeout)
    }
}
