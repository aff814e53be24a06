//! The root of the shared tree, problem setup, and the read-only view of a problem.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::commit::{self, ArtifactWriter};
use crate::coordinator::Coordinator;
use crate::error::{Error, IoContext};
use crate::fsutil;
use crate::id::{ClientNo, ProblemId, Round, SelectorId};
use crate::layout::{self, Artifact, ArtifactKind, LAYOUT_VERSION, ProblemLayout};
use crate::lock::{self, CoordinatorLock, LockStatus, LockWait};
use crate::read::{self, Expect, RetryPolicy, Snapshot};
use crate::record::{self, CommitRecord, WriterId};
use crate::selector::Selector;

/// The root of a shared tree, such as `/data`: the entry point to every problem.
///
/// # Examples
///
/// ```
/// use fedota_store::{CreateOptions, ProblemId, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let id = ProblemId::new("p1")?;
/// let problem = store.create_problem(&id, &mut &b"model"[..], &mut &b"weights"[..], CreateOptions::default())?;
/// assert_eq!(problem.global_round()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    retry: RetryPolicy,
}

/// Options for [`Store::create_problem`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Replace the model and reset the global checkpoint to round 0 if the problem
    /// exists already. Selector directories are left as they are; their aggregates
    /// then belong to rounds that the coordinator will not ask for until it reaches
    /// them again.
    pub force: bool,
}

impl CreateOptions {
    /// Options that replace an existing problem.
    pub fn force() -> Self {
        Self { force: true }
    }
}

/// The layout marker's content.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    layout: u32,
}

impl Store {
    /// Opens the tree at `root`, which must be an existing directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `root` if it does not exist or is not a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();

        let meta = fs::metadata(&root).context("open the store at", &root)?;
        if !meta.is_dir() {
            let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(Error::io("open the store at", &root, e));
        }

        Ok(Self {
            root,
            retry: RetryPolicy::default(),
        })
    }

    /// Uses `policy` for every read through this store and the handles it makes.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The problems in the tree: every directory with an `initFiles` directory, by
    /// name. Names that are not valid problem ids are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the root cannot be listed.
    pub fn problems(&self) -> Result<Vec<ProblemId>, Error> {
        let mut ids: Vec<ProblemId> = list_dirs(&self.root, "list problems in")?
            .into_iter()
            .filter_map(|name| ProblemId::new(name).ok())
            .filter(|id| self.root.join(id).join(layout::INIT_DIR).is_dir())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The read-only view of problem `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`io::ErrorKind::NotFound`] if the problem has no
    /// `initFiles` directory; [`Error::UnsupportedLayout`] if a newer fedota-store
    /// wrote it.
    pub fn problem(&self, id: &ProblemId) -> Result<Problem, Error> {
        let problem = Problem {
            id: id.clone(),
            layout: ProblemLayout::new(&self.root, id),
            retry: self.retry,
        };

        let init = problem.layout.init_dir();
        let meta = fs::metadata(&init).context(format!("open problem {id}: look for"), &init)?;
        if !meta.is_dir() {
            let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(Error::io(format!("open problem {id}: look for"), &init, e));
        }

        problem.layout_version()?;
        Ok(problem)
    }

    /// Creates problem `id` with its model and its initial global checkpoint (round
    /// 0), taking the coordinator lock while it writes.
    ///
    /// A problem exists once `initFiles` holds `model.h5` or `fl_checkpoint` (or a
    /// commit record of either): what the older services write, or what a creation
    /// got as far as committing. A creation that failed before that left only
    /// fedota-store's own dot-files, and may simply be run again.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`io::ErrorKind::AlreadyExists`] if the problem exists and
    /// `options.force` is not set; [`Error::LockHeld`] if a coordinator is running;
    /// any error of a commit.
    pub fn create_problem(
        &self,
        id: &ProblemId,
        model: &mut dyn Read,
        checkpoint: &mut dyn Read,
        options: CreateOptions,
    ) -> Result<Problem, Error> {
        let layout = ProblemLayout::new(&self.root, id);
        let init = layout.init_dir();
        let op = format!("create problem {id}");

        if is_created(&layout) && !options.force {
            let e = io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the problem exists already (CreateOptions::force, or `fedota-store init --force`, replaces it)",
            );
            return Err(Error::io(format!("{op} at"), layout.dir(), e));
        }
        fsutil::create_dir_all_durable(&init, &op)?;

        // Hold the lock so no coordinator commits while the problem is set up.
        let problem = Problem {
            id: id.clone(),
            layout,
            retry: self.retry,
        };
        let lock = CoordinatorLock::acquire(
            &problem.layout,
            "setup",
            LockWait::Try,
            problem.checkpoint_generation(),
        )?;
        let generation = Some(lock.holder().generation);
        let writer = WriterId::new("setup");

        let marker = serde_json::to_vec(&Marker {
            layout: LAYOUT_VERSION,
        })
        .expect("the marker always serializes");
        fsutil::write_small_atomic(&problem.layout.marker_path(), &marker, &op)?;

        let model_artifact = problem.layout.artifact(ArtifactKind::Model);
        let w = ArtifactWriter::new(model_artifact, 0, None, writer.clone(), generation, None)?;
        commit::commit_from(w, model)?;

        let checkpoint_artifact = problem.layout.artifact(ArtifactKind::GlobalCheckpoint);
        let w = ArtifactWriter::new(checkpoint_artifact, 0, None, writer, generation, None)?;
        commit::commit_from(w, checkpoint)?;

        drop(lock);
        tracing::info!(problem = %id, dir = %problem.dir().display(), "problem created");
        Ok(problem)
    }

    /// Takes the coordinator lock of problem `id` and returns the coordinator handle,
    /// which holds the lock until it is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`] or [`Error::LockTimeout`] naming the holder; the errors of
    /// [`Store::problem`].
    pub fn coordinator(&self, id: &ProblemId, wait: LockWait) -> Result<Coordinator, Error> {
        let problem = self.problem(id)?;
        let lock = CoordinatorLock::acquire(
            &problem.layout,
            "coordinator",
            wait,
            problem.checkpoint_generation(),
        )?;
        Ok(Coordinator::new(problem, lock))
    }

    /// The handle of selector `selector` in problem `id`, creating the selector's
    /// directory and its `roundFiles` if they are missing.
    ///
    /// # Errors
    ///
    /// The errors of [`Store::problem`]; [`Error::Io`] if the directories cannot be
    /// created.
    pub fn selector(&self, id: &ProblemId, selector: &SelectorId) -> Result<Selector, Error> {
        let problem = self.problem(id)?;

        let round_dir = problem.layout.round_dir(selector);
        fsutil::create_dir_all_durable(
            &round_dir,
            &format!("open selector {selector} of problem {id}"),
        )?;

        Ok(Selector::new(problem, selector.clone()))
    }
}

/// The state of one selector's aggregate, seen from a given round.
#[derive(Debug)]
#[non_exhaustive]
pub enum AggregateState {
    /// Committed for the round asked about.
    Ready(CommitRecord),
    /// Committed for another round: left over from an earlier round (or ahead).
    Stale(CommitRecord),
    /// No aggregate at all.
    Missing,
    /// A file without a commit record, written by an older service: its round is
    /// unknown.
    Unrecorded,
    /// The commit record cannot be read.
    Unreadable(Error),
}

impl std::fmt::Display for AggregateState {
    /// Says in a few words whether the aggregate can be used, and why not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AggregateState::Ready(r) => write!(f, "ready (round {})", r.round),
            AggregateState::Stale(r) => write!(f, "stale: its aggregate is from round {}", r.round),
            AggregateState::Missing => f.write_str("no aggregate yet"),
            AggregateState::Unrecorded => f.write_str("an aggregate without a commit record"),
            AggregateState::Unreadable(e) => write!(f, "unreadable commit record: {e}"),
        }
    }
}

/// A read-only view of one problem: everyone may read, nobody writes through it.
///
/// The writing roles are [`Coordinator`] and [`Selector`].
#[derive(Debug, Clone)]
pub struct Problem {
    id: ProblemId,
    layout: ProblemLayout,
    retry: RetryPolicy,
}

impl Problem {
    /// The problem's id.
    pub fn id(&self) -> &ProblemId {
        &self.id
    }

    /// `<root>/<problem-id>`.
    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// The paths of this problem's tree.
    pub fn layout(&self) -> &ProblemLayout {
        &self.layout
    }

    /// The layout version in the marker; `None` for a tree made by the older
    /// services, which has no marker.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedLayout`] for a newer version; [`Error::BadRecord`] for a
    /// marker that does not parse.
    pub fn layout_version(&self) -> Result<Option<u32>, Error> {
        let path = self.layout.marker_path();
        let op = format!("open problem {}: read the layout marker", self.id);

        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(op, &path, e)),
        };
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|source| Error::BadRecord {
            op: op.clone(),
            path: path.clone(),
            source,
        })?;

        if marker.layout > LAYOUT_VERSION {
            return Err(Error::UnsupportedLayout {
                op,
                path,
                found: marker.layout,
                supported: LAYOUT_VERSION,
            });
        }
        Ok(Some(marker.layout))
    }

    /// Whether the coordinator lock is held, and by whom.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the lock file exists but cannot be queried.
    pub fn lock_status(&self) -> Result<LockStatus, Error> {
        lock::status(&self.layout)
    }

    /// The artifact of the given kind in this problem.
    pub fn artifact(&self, kind: ArtifactKind) -> Artifact {
        self.layout.artifact(kind)
    }

    /// The commit record of `artifact` as it is on disk, with the earlier commits it
    /// keeps, without reading its data. `None` if it has none.
    ///
    /// # Errors
    ///
    /// [`Error::BadRecord`], [`Error::UnsupportedLayout`] or [`Error::Io`].
    pub fn record(&self, artifact: &Artifact) -> Result<Option<CommitRecord>, Error> {
        let op = format!("read the commit record of {}", artifact.kind());
        record::read(&artifact.record_path(), artifact.name(), &op)
    }

    /// The round of the global checkpoint, from its commit record.
    ///
    /// # Errors
    ///
    /// [`Error::Unrecorded`] if `fl_checkpoint` has no record (an older service wrote
    /// it); the errors of [`Problem::record`].
    pub fn global_round(&self) -> Result<Round, Error> {
        let artifact = self.artifact(ArtifactKind::GlobalCheckpoint);
        match self.record(&artifact)? {
            Some(r) => Ok(r.round),
            None => Err(Error::Unrecorded {
                op: "read the round of the global checkpoint".to_owned(),
                path: artifact.data_path(),
            }),
        }
    }

    /// Reads `model.h5`, verified. `f` is called once per attempt (see
    /// [`read`](crate::read)).
    ///
    /// # Errors
    ///
    /// Those of every verified read: [`Error::Inconsistent`] after the retries,
    /// [`Error::Io`], [`Error::BadRecord`].
    pub fn read_model<T>(
        &self,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.read(&self.artifact(ArtifactKind::Model), Expect::Anything, f)
    }

    /// Reads `fl_checkpoint`, verified, whatever its round.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_model`].
    pub fn read_global_checkpoint<T>(
        &self,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.read(
            &self.artifact(ArtifactKind::GlobalCheckpoint),
            Expect::Anything,
            f,
        )
    }

    /// Reads `fl_checkpoint` of exactly round `round`.
    ///
    /// # Errors
    ///
    /// [`Error::StaleRound`] if the stored checkpoint has another round,
    /// [`Error::Unrecorded`] if it has no record; otherwise as for
    /// [`Problem::read_model`].
    pub fn read_global_checkpoint_of<T>(
        &self,
        round: Round,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.read(
            &self.artifact(ArtifactKind::GlobalCheckpoint),
            Expect::Round(round),
            f,
        )
    }

    /// Reads any artifact, verified, whatever its round: what `fedota-store verify`
    /// does for each file.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_model`].
    pub fn read_artifact<T>(
        &self,
        artifact: &Artifact,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.read(artifact, Expect::Anything, f)
    }

    /// Reads any artifact of exactly round `round`, verified: what
    /// `fedota-store cat --round` does.
    ///
    /// # Errors
    ///
    /// [`Error::StaleRound`] if the stored artifact has another round,
    /// [`Error::Unrecorded`] if it has no record; otherwise as for
    /// [`Problem::read_model`].
    pub fn read_artifact_of<T>(
        &self,
        artifact: &Artifact,
        round: Round,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        self.read(artifact, Expect::Round(round), f)
    }

    /// Reads the whole of `artifact` and checks it, returning its size.
    ///
    /// # Errors
    ///
    /// As for [`Problem::read_model`].
    pub fn verify(&self, artifact: &Artifact) -> Result<Snapshot<u64>, Error> {
        self.read_artifact(artifact, |r| io::copy(r, &mut io::sink()))
    }

    pub(crate) fn read<T>(
        &self,
        artifact: &Artifact,
        expect: Expect,
        f: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<Snapshot<T>, Error> {
        let op = match expect {
            Expect::Anything => format!("read {}", artifact.kind()),
            Expect::Round(round) => format!("read {} of round {round}", artifact.kind()),
        };
        read::read_artifact(artifact, expect, &self.retry, &op, f)
    }

    /// The selectors of this problem: every directory beside `initFiles` whose name
    /// is a valid selector id, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the problem directory cannot be listed.
    pub fn selectors(&self) -> Result<Vec<SelectorId>, Error> {
        let mut ids: Vec<SelectorId> = list_dirs(self.dir(), "list the selectors in")?
            .into_iter()
            .filter_map(|name| SelectorId::new(name).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The client numbers with an update file in `selector`'s `roundFiles`, sorted.
    /// A missing `roundFiles` directory gives an empty list.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory exists but cannot be listed.
    pub fn client_updates(&self, selector: &SelectorId) -> Result<Vec<ClientNo>, Error> {
        let dir = self.layout.round_dir(selector);

        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list the client updates in", &dir, e)),
        };

        let mut clients = Vec::new();
        for entry in entries {
            let entry = entry.context("list the client updates in", &dir)?;
            if let Some(no) = entry
                .file_name()
                .to_str()
                .and_then(layout::parse_client_update_name)
            {
                clients.push(no);
            }
        }
        clients.sort_unstable();
        Ok(clients)
    }

    /// Every data file present in the problem: the model, the global checkpoint, and
    /// each selector's aggregate and client updates.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed.
    pub fn artifacts(&self) -> Result<Vec<Artifact>, Error> {
        let mut artifacts = vec![
            self.artifact(ArtifactKind::Model),
            self.artifact(ArtifactKind::GlobalCheckpoint),
        ];

        for selector in self.selectors()? {
            artifacts.push(self.artifact(ArtifactKind::Aggregate(selector.clone())));
            for client in self.client_updates(&selector)? {
                artifacts.push(self.artifact(ArtifactKind::ClientUpdate(selector.clone(), client)));
            }
        }

        artifacts.retain(|a| a.data_path().exists() || a.record_path().exists());
        Ok(artifacts)
    }

    /// The state of every selector's aggregate with respect to round `round`, read
    /// from the commit records alone.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the problem directory cannot be listed. A record that cannot
    /// be read shows as [`AggregateState::Unreadable`] instead.
    pub fn aggregate_states(
        &self,
        round: Round,
    ) -> Result<Vec<(SelectorId, AggregateState)>, Error> {
        let mut states = Vec::new();

        for selector in self.selectors()? {
            let artifact = self.artifact(ArtifactKind::Aggregate(selector.clone()));
            let state = match self.record(&artifact) {
                Ok(Some(r)) if r.round == round => AggregateState::Ready(r),
                Ok(Some(r)) => AggregateState::Stale(r),
                Ok(None) if artifact.data_path().exists() => AggregateState::Unrecorded,
                Ok(None) => AggregateState::Missing,
                Err(e) => AggregateState::Unreadable(e),
            };
            states.push((selector, state));
        }
        Ok(states)
    }

    /// The lock generation in the global checkpoint's record, or 0: the floor for the
    /// next lock generation.
    pub(crate) fn checkpoint_generation(&self) -> u64 {
        let artifact = self.artifact(ArtifactKind::GlobalCheckpoint);
        self.record(&artifact)
            .ok()
            .flatten()
            .and_then(|r| r.generation)
            .unwrap_or(0)
    }
}

/// Whether the problem at `layout` has a model or a global checkpoint, committed or
/// written by an older service.
fn is_created(layout: &ProblemLayout) -> bool {
    [ArtifactKind::Model, ArtifactKind::GlobalCheckpoint]
        .into_iter()
        .map(|kind| layout.artifact(kind))
        .any(|a| a.data_path().exists() || a.record_path().exists())
}

/// The names of the subdirectories of `dir`, skipping dot-names.
fn list_dirs(dir: &Path, op: &str) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();

    for entry in fs::read_dir(dir).context(op, dir)? {
        let entry = entry.context(op, dir)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type().context(op, dir)?.is_dir() {
            names.push(name);
        }
    }
    Ok(names)
}
