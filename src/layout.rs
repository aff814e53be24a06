//! File names and paths of the shared tree.
//!
//! The names of the data files are fixed by the services that exist today and must
//! not change. Everything fedota-store adds is a dot-file next to them, so the older
//! services, which open their files by name, never see it:
//!
//! | file | where | what it is |
//! |---|---|---|
//! | `.fedota-layout` | `initFiles/` | the layout version of the tree, as JSON |
//! | `.fedota-coordinator.lock` | `initFiles/` | the file the coordinator locks; never replaced |
//! | `.fedota-coordinator.holder` | `initFiles/` | who holds the lock, and the lock generation |
//! | `.fedota-commit.<name>` | beside `<name>` | the commit record of data file `<name>` |
//! | `.fedota-tmp.<name>.<host>.<pid>.<random>` | beside `<name>` | a commit in progress |

use std::fmt;
use std::path::{Path, PathBuf};

use crate::id::{ClientNo, ProblemId, SelectorId};

/// The directory of a problem's shared files.
pub const INIT_DIR: &str = "initFiles";
/// The global checkpoint, in [`INIT_DIR`].
pub const GLOBAL_CHECKPOINT: &str = "fl_checkpoint";
/// The model file, in [`INIT_DIR`].
pub const MODEL: &str = "model.h5";
/// A selector's aggregate, in its own directory.
pub const AGGREGATE: &str = "fl_agg_checkpoint";
/// The weight of a selector's aggregate, beside it.
pub const AGGREGATE_WEIGHT: &str = "fl_agg_checkpoint_weight";
/// The directory of a selector's client updates.
pub const ROUND_DIR: &str = "roundFiles";
/// The name prefix of a client update: `checkpoint_<client-no>`.
pub const CLIENT_UPDATE_PREFIX: &str = "checkpoint_";
/// The name prefix of a client update's weight: `checkpoint_weight_<client-no>`.
pub const CLIENT_WEIGHT_PREFIX: &str = "checkpoint_weight_";

/// The layout marker, in [`INIT_DIR`].
pub const LAYOUT_MARKER: &str = ".fedota-layout";
/// The coordinator's lock file, in [`INIT_DIR`].
pub const LOCK_FILE: &str = ".fedota-coordinator.lock";
/// The coordinator's holder record, in [`INIT_DIR`].
pub const HOLDER_FILE: &str = ".fedota-coordinator.holder";
/// The name prefix of a commit record.
pub const RECORD_PREFIX: &str = ".fedota-commit.";
/// The name prefix of every temporary file fedota-store creates. Cleanup removes
/// files with this prefix and nothing else.
pub const TEMP_PREFIX: &str = ".fedota-tmp.";

/// The layout version this build writes and the newest it reads.
pub const LAYOUT_VERSION: u32 = 1;

/// What one data file in the tree is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// `initFiles/model.h5`, written once when the problem is created.
    Model,
    /// `initFiles/fl_checkpoint`, written by the coordinator.
    GlobalCheckpoint,
    /// `<selector-id>/fl_agg_checkpoint` with its weight.
    Aggregate(SelectorId),
    /// `<selector-id>/roundFiles/checkpoint_<client-no>` with its weight.
    ClientUpdate(SelectorId, ClientNo),
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactKind::Model => f.write_str("the model"),
            ArtifactKind::GlobalCheckpoint => f.write_str("the global checkpoint"),
            ArtifactKind::Aggregate(s) => write!(f, "the aggregate of selector {s}"),
            ArtifactKind::ClientUpdate(s, c) => write!(f, "client {c}'s update at selector {s}"),
        }
    }
}

/// One data file of the tree, with its weight file (if it has one) and its commit
/// record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Artifact {
    kind: ArtifactKind,
    dir: PathBuf,
    name: String,
    weight_name: Option<String>,
}

impl Artifact {
    /// What this artifact is.
    pub fn kind(&self) -> &ArtifactKind {
        &self.kind
    }

    /// The directory that holds the data file, its weight and its record.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data file's name, such as `fl_checkpoint`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path of the data file.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The path of the weight file, for aggregates and client updates.
    pub fn weight_path(&self) -> Option<PathBuf> {
        self.weight_name.as_ref().map(|w| self.dir.join(w))
    }

    /// The path of the commit record.
    pub fn record_path(&self) -> PathBuf {
        self.dir.join(format!("{RECORD_PREFIX}{}", self.name))
    }

    /// Whether this artifact has a weight file.
    pub fn has_weight(&self) -> bool {
        self.weight_name.is_some()
    }
}

/// The paths of one problem's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemLayout {
    dir: PathBuf,
}

impl ProblemLayout {
    /// The layout of problem `id` under `root`.
    pub fn new(root: &Path, id: &ProblemId) -> Self {
        Self { dir: root.join(id) }
    }

    /// `<root>/<problem-id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<root>/<problem-id>/initFiles`.
    pub fn init_dir(&self) -> PathBuf {
        self.dir.join(INIT_DIR)
    }

    /// `<root>/<problem-id>/<selector-id>`.
    pub fn selector_dir(&self, selector: &SelectorId) -> PathBuf {
        self.dir.join(selector)
    }

    /// `<root>/<problem-id>/<selector-id>/roundFiles`.
    pub fn round_dir(&self, selector: &SelectorId) -> PathBuf {
        self.selector_dir(selector).join(ROUND_DIR)
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.init_dir().join(LOCK_FILE)
    }

    /// The holder record.
    pub fn holder_path(&self) -> PathBuf {
        self.init_dir().join(HOLDER_FILE)
    }

    /// The layout marker.
    pub fn marker_path(&self) -> PathBuf {
        self.init_dir().join(LAYOUT_MARKER)
    }

    /// The artifact of the given kind, with its paths.
    pub fn artifact(&self, kind: ArtifactKind) -> Artifact {
        let (dir, name, weight_name) = match &kind {
            ArtifactKind::Model => (self.init_dir(), MODEL.to_owned(), None),
            ArtifactKind::GlobalCheckpoint => (self.init_dir(), GLOBAL_CHECKPOINT.to_owned(), None),
            ArtifactKind::Aggregate(s) => (
                self.selector_dir(s),
                AGGREGATE.to_owned(),
                Some(AGGREGATE_WEIGHT.to_owned()),
            ),
            ArtifactKind::ClientUpdate(s, c) => (
                self.round_dir(s),
                format!("{CLIENT_UPDATE_PREFIX}{c}"),
                Some(format!("{CLIENT_WEIGHT_PREFIX}{c}")),
            ),
        };

        Artifact {
            kind,
            dir,
            name,
            weight_name,
        }
    }
}

/// Parses `checkpoint_<n>` into `n`; `None` for weights, records and anything else.
pub(crate) fn parse_client_update_name(name: &str) -> Option<ClientNo> {
    let digits = name.strip_prefix(CLIENT_UPDATE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_the_layout_of_the_existing_services() {
        let layout = ProblemLayout::new(Path::new("/data"), &ProblemId::new("p1").unwrap());
        let sel = SelectorId::new("s1").unwrap();

        let agg = layout.artifact(ArtifactKind::Aggregate(sel.clone()));
        assert_eq!(agg.data_path(), Path::new("/data/p1/s1/fl_agg_checkpoint"));
        assert_eq!(
            agg.weight_path().unwrap(),
            Path::new("/data/p1/s1/fl_agg_checkpoint_weight")
        );

        let upd = layout.artifact(ArtifactKind::ClientUpdate(sel, 3));
        assert_eq!(
            upd.data_path(),
            Path::new("/data/p1/s1/roundFiles/checkpoint_3")
        );
        assert_eq!(
            upd.weight_path().unwrap(),
            Path::new("/data/p1/s1/roundFiles/checkpoint_weight_3")
        );

        let ckpt = layout.artifact(ArtifactKind::GlobalCheckpoint);
        assert_eq!(
            ckpt.data_path(),
            Path::new("/data/p1/initFiles/fl_checkpoint")
        );
        assert_eq!(
            ckpt.record_path(),
            Path::new("/data/p1/initFiles/.fedota-commit.fl_checkpoint")
        );
    }

    #[test]
    fn only_client_update_names_parse_as_client_numbers() {
        assert_eq!(parse_client_update_name("checkpoint_12"), Some(12));
        assert_eq!(parse_client_update_name("checkpoint_weight_12"), None);
        assert_eq!(parse_client_update_name("checkpoint_"), None);
        assert_eq!(parse_client_update_name("checkpoint_+1"), None);
    }
}
