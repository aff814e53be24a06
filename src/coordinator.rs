//! The coordinator role: the only writer of the global checkpoint.

use std::io::{self, Read};
use std::sync::Arc;

use crate::commit::{self, ArtifactWriter, Committed, Precommit};
use crate::error::Error;
use crate::id::{Round, SelectorId};
use crate::layout::ArtifactKind;
use crate::lock::{CoordinatorLock, LockHolder};
use crate::read::{Expect, Snapshot};
use crate::record::{self, WriterId};
use crate::store::{AggregateState, Problem};

/// The coordinator's handle on one problem. It holds the coordinator lock for as
/// long as it lives, and is the only way to write `initFiles/fl_checkpoint`.
///
/// Get one from [`Store::coordinator`](crate::Store::coordinator).
///
/// # Guarantees
///
/// Every commit of the global checkpoint must move the round forward, and is refused
/// with [`Error::Fenced`] if another coordinator has taken the lock since this one
/// did (see [`lock`](crate::lock) for what that can and cannot catch on NFS).
///
/// # Examples
///
/// ```
/// use fedota_store::{CreateOptions, LockWait, ProblemId, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let id = ProblemId::new("p1")?;
/// store.create_problem(&id, &mut &b"model"[..], &mut &b"round 0"[..], CreateOptions::default())?;
///
/// let coordinator = store.coordinator(&id, LockWait::Try)?;
/// coordinator.commit_global_checkpoint(1, &mut &b"round 1"[..])?;
///
/// // A second coordinator cannot start while the first lives.
/// assert!(store.coordinator(&id, LockWait::Try).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Coordinator {
    problem: Problem,
    lock: Arc<CoordinatorLock>,
    writer: WriterId,
}

impl Coordinator {
    pub(crate) fn new(problem: Problem, lock: CoordinatorLock) -> Self {
        Self {
            problem,
            lock: Arc::new(lock),
            writer: WriterId::new("coordinator"),
        }
    }

    /// The read-only view of the problem.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// This handle's lock generation, its fencing token.
    pub fn generation(&self) -> u64 {
        self.lock.holder().generation
    }

    /// The holder record this handle wrote when it took the lock.
    pub fn holder(&self) -> &LockHolder {
        self.lock.holder()
    }

    /// The round of the global checkpoint.
    ///
    /// # Errors
    ///
    /// As for [`Problem::global_round`].
    pub fn global_round(&self) -> Result<Round, Error> {
        self.problem.global_round()
    }

    /// Reads `model.h5`, verified.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_model`].
    pub fn read_model<T>(
        &self,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.problem.read_model(f)
    }

    /// Reads the global checkpoint, verified.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_model`].
    pub fn read_global_checkpoint<T>(
        &self,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.problem.read_global_checkpoint(f)
    }

    /// The state of each selector's aggregate for round `round`.
    ///
    /// # Errors
    ///
    /// As for [`Problem::aggregate_states`].
    pub fn aggregates(&self, round: Round) -> Result<Vec<(SelectorId, AggregateState)>, Error> {
        self.problem.aggregate_states(round)
    }

    /// Reads `selector`'s aggregate of round `round` and its weight, verified.
    ///
    /// An aggregate from any other round is never returned.
    ///
    /// # Errors
    ///
    /// [`Error::StaleRound`] if the stored aggregate belongs to another round,
    /// [`Error::Unrecorded`] if it has no commit record (an older service wrote it),
    /// [`Error::Io`] with [`io::ErrorKind::NotFound`] if there is none; otherwise as
    /// for [`Problem::read_model`].
    pub fn read_aggregate<T>(
        &self,
        selector: &SelectorId,
        round: Round,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        let artifact = self
            .problem
            .artifact(ArtifactKind::Aggregate(selector.clone()));
        self.problem.read(&artifact, Expect::Round(round), f)
    }

    /// Starts a commit of the global checkpoint for `round`; write the data into the
    /// returned writer, then call [`ArtifactWriter::commit`].
    ///
    /// The round and the lock generation are checked here and again inside `commit`,
    /// just before the rename.
    ///
    /// # Errors
    ///
    /// [`Error::RoundNotAdvanced`] if `round` is not above the stored round;
    /// [`Error::Fenced`] if a newer coordinator has taken over; [`Error::Io`] if the
    /// temporary file cannot be created.
    pub fn global_checkpoint_writer(&self, round: Round) -> Result<ArtifactWriter, Error> {
        let artifact = self.problem.artifact(ArtifactKind::GlobalCheckpoint);
        let precommit = self.precommit();

        precommit(&artifact, round)?;
        ArtifactWriter::new(
            artifact,
            round,
            None,
            self.writer.clone(),
            Some(self.generation()),
            Some(precommit),
        )
    }

    /// Commits `data` as the global checkpoint of `round`, streaming it.
    ///
    /// # Errors
    ///
    /// As for [`Coordinator::global_checkpoint_writer`] and
    /// [`ArtifactWriter::commit`]; [`Error::Io`] if `data` fails to read.
    pub fn commit_global_checkpoint(
        &self,
        round: Round,
        data: &mut dyn Read,
    ) -> Result<Committed, Error> {
        commit::commit_from(self.global_checkpoint_writer(round)?, data)
    }

    /// The fencing check run before each commit of the global checkpoint.
    fn precommit(&self) -> Precommit {
        let lock = Arc::clone(&self.lock);
        let ours = self.generation();

        Arc::new(move |artifact, round| {
            let op = format!("commit {} for round {round}", artifact.name());

            lock.check_current(&op)?;

            let Some(stored) = record::read(&artifact.record_path(), artifact.name(), &op)? else {
                return Ok(());
            };
            if let Some(current) = stored.generation.filter(|g| *g > ours) {
                return Err(Error::Fenced {
                    op,
                    path: artifact.record_path(),
                    ours,
                    current,
                });
            }
            if round <= stored.round {
                return Err(Error::RoundNotAdvanced {
                    op,
                    path: artifact.data_path(),
                    stored: stored.round,
                    requested: round,
                });
            }
            Ok(())
        })
    }
}
