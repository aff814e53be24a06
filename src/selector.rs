//! The selector role: reads `initFiles`, writes only its own directory.

use std::io::{self, Read};

use crate::commit::{self, ArtifactWriter, Committed};
use crate::error::Error;
use crate::id::{ClientNo, Round, SelectorId};
use crate::layout::ArtifactKind;
use crate::read::{Expect, Snapshot};
use crate::record::WriterId;
use crate::store::Problem;

/// One selector's handle on one problem.
///
/// It can read the model and the global checkpoint, and write its own aggregate and
/// its own client updates. It has no method that writes `initFiles` or another
/// selector's directory: that is checked by the compiler, not at run time. Every file
/// it reads is opened read-only.
///
/// Get one from [`Store::selector`](crate::Store::selector).
///
/// # Examples
///
/// ```
/// use fedota_store::{CreateOptions, ProblemId, SelectorId, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let id = ProblemId::new("p1")?;
/// store.create_problem(&id, &mut &b"model"[..], &mut &b"round 0"[..], CreateOptions::default())?;
///
/// let selector = store.selector(&id, &SelectorId::new("selector-1.selector:50051")?)?;
/// let global = selector.read_global_checkpoint(|r| {
///     let mut bytes = Vec::new();
///     r.read_to_end(&mut bytes).map(|_| bytes)
/// })?;
/// assert_eq!(global.round(), Some(0));
///
/// selector.commit_aggregate(0, 120, &mut &b"averaged"[..])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Selector {
    problem: Problem,
    id: SelectorId,
    writer: WriterId,
}

impl Selector {
    pub(crate) fn new(problem: Problem, id: SelectorId) -> Self {
        let writer = WriterId::new(format!("selector:{id}"));
        Self {
            problem,
            id,
            writer,
        }
    }

    /// This selector's id.
    pub fn id(&self) -> &SelectorId {
        &self.id
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

    /// Reads the global checkpoint, verified, whatever its round.
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

    /// Reads the global checkpoint of exactly `round`.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_global_checkpoint_of`].
    pub fn read_global_checkpoint_of<T>(
        &self,
        round: Round,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.problem.read_global_checkpoint_of(round, f)
    }

    /// Starts a commit of this selector's aggregate of `round` with `weight`; write
    /// the data into the returned writer, then call [`ArtifactWriter::commit`].
    ///
    /// # Errors
    ///
    /// [`Error::BadWeight`] if `weight` is above [`MAX_WEIGHT`](crate::MAX_WEIGHT);
    /// [`Error::Io`] if the temporary file cannot be created.
    pub fn aggregate_writer(&self, round: Round, weight: u64) -> Result<ArtifactWriter, Error> {
        let artifact = self
            .problem
            .artifact(ArtifactKind::Aggregate(self.id.clone()));
        ArtifactWriter::new(
            artifact,
            round,
            Some(weight),
            self.writer.clone(),
            None,
            None,
        )
    }

    /// Commits `data` as this selector's aggregate of `round`, with `weight`.
    ///
    /// # Errors
    ///
    /// As for [`Selector::aggregate_writer`] and [`ArtifactWriter::commit`].
    pub fn commit_aggregate(
        &self,
        round: Round,
        weight: u64,
        data: &mut dyn Read,
    ) -> Result<Committed, Error> {
        commit::commit_from(self.aggregate_writer(round, weight)?, data)
    }

    /// Reads back this selector's own aggregate of `round`.
    ///
    /// # Errors
    ///
    /// As for [`Coordinator::read_aggregate`](crate::Coordinator::read_aggregate).
    pub fn read_aggregate<T>(
        &self,
        round: Round,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        let artifact = self
            .problem
            .artifact(ArtifactKind::Aggregate(self.id.clone()));
        self.problem.read(&artifact, Expect::Round(round), f)
    }

    /// Starts a commit of client `client`'s update of `round` with `weight`, into
    /// `roundFiles/checkpoint_<client>` and `checkpoint_weight_<client>`.
    ///
    /// # Errors
    ///
    /// As for [`Selector::aggregate_writer`].
    pub fn client_update_writer(
        &self,
        round: Round,
        client: ClientNo,
        weight: u64,
    ) -> Result<ArtifactWriter, Error> {
        let artifact = self
            .problem
            .artifact(ArtifactKind::ClientUpdate(self.id.clone(), client));
        ArtifactWriter::new(
            artifact,
            round,
            Some(weight),
            self.writer.clone(),
            None,
            None,
        )
    }

    /// Commits `data` as client `client`'s update of `round`, with `weight`.
    ///
    /// # Errors
    ///
    /// As for [`Selector::aggregate_writer`] and [`ArtifactWriter::commit`].
    pub fn commit_client_update(
        &self,
        round: Round,
        client: ClientNo,
        weight: u64,
        data: &mut dyn Read,
    ) -> Result<Committed, Error> {
        commit::commit_from(self.client_update_writer(round, client, weight)?, data)
    }

    /// The clients with an update in `roundFiles`, of any round, sorted.
    ///
    /// # Errors
    ///
    /// As for [`Problem::client_updates`].
    pub fn clients(&self) -> Result<Vec<ClientNo>, Error> {
        self.problem.client_updates(&self.id)
    }

    /// Reads client `client`'s update of exactly `round`, with its weight, verified.
    ///
    /// # Errors
    ///
    /// [`Error::StaleRound`] for an update of another round; otherwise as for
    /// [`Coordinator::read_aggregate`](crate::Coordinator::read_aggregate).
    pub fn read_client_update<T>(
        &self,
        round: Round,
        client: ClientNo,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        let artifact = self
            .problem
            .artifact(ArtifactKind::ClientUpdate(self.id.clone(), client));
        self.problem.read(&artifact, Expect::Round(round), f)
    }

    /// Waits until the global checkpoint reaches `round` (see [`wait`](crate::wait)).
    ///
    /// # Errors
    ///
    /// As for [`Problem::wait_for_global_round`].
    pub fn wait_for_global_round(
        &self,
        round: Round,
        timeout: std::time::Duration,
    ) -> Result<Round, Error> {
        self.problem.wait_for_global_round(round, timeout)
    }
}
