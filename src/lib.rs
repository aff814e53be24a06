//! Atomic, verified, locked storage for Fedota's federated-learning tree on a shared
//! filesystem (usually NFS).
//!
//! Fedota runs, for each federated-learning problem, one coordinator and several
//! selectors as separate services that share one directory tree. fedota-store gives
//! each of them a typed handle on that tree, so that no service can read half a
//! checkpoint, average in a stale aggregate, or write a file that is not its own.
//!
//! # The layout
//!
//! The files are where, and as, the existing Go and Python services expect them, so
//! old and new services can share a tree:
//!
//! ```text
//! <root>/<problem-id>/
//!   initFiles/
//!     fl_checkpoint              global checkpoint: the coordinator writes, all read
//!     model.h5                   written when the problem is created; all read
//!   <selector-id>/
//!     fl_agg_checkpoint          the selector's aggregate: it writes, the coordinator reads
//!     fl_agg_checkpoint_weight   its weight, as decimal integer text
//!     roundFiles/
//!       checkpoint_<client-no>
//!       checkpoint_weight_<client-no>
//! ```
//!
//! Data files are opaque bytes and are never transformed. A weight file holds an
//! unsigned decimal integer with no sign, whitespace or newline (see [`weight`]).
//! What fedota-store adds are dot-files beside these, which the older services never
//! open: commit records, the lock file, the holder record, a layout marker, and
//! temporary files (see [`layout`]).
//!
//! # The roles
//!
//! - [`Store::create_problem`] sets a problem up: `model.h5` and the global
//!   checkpoint of round 0.
//! - A [`Coordinator`] holds the problem's exclusive lock for as long as it lives and
//!   is the only writer of `fl_checkpoint`. Each commit must move the round forward,
//!   and carries the lock generation as a fencing token. It reads each selector's
//!   aggregate *of a given round*; an aggregate of another round is reported stale,
//!   never used.
//! - A [`Selector`] reads `initFiles` and writes only its own directory. Its type has
//!   no method that writes anywhere else.
//! - A [`Problem`] is a read-only view for anyone, such as the command-line tool.
//!
//! # The commit protocol
//!
//! Each write streams into a temporary file in the target's directory, created with
//! `O_EXCL` under a name that says it is ours (`.fedota-tmp.<name>.<host>.<pid>.…`).
//! Commit fsyncs and closes it, renames it over the target, fsyncs the directory, and
//! writes the commit record (round, size, crc32c, weight, writer, time, layout and
//! lock generation) last, by the same steps. Reads verify size and checksum while they
//! stream, and compare the weight with the record. [`commit`] and [`read`] give the
//! details.
//!
//! ## What is guaranteed
//!
//! On a local filesystem, and on NFS mounted with locking (the default):
//!
//! - No reader opening a file by path sees a partial file: rename is atomic.
//! - A verified read never returns data that is not exactly one committed version,
//!   nor a weight from another commit. When it catches a writer mid-commit it checks
//!   the data against the record that writer writes last, or reads again, and after a
//!   bounded number of tries returns [`Error::Inconsistent`].
//! - A commit that returned `Ok` is durable: data, weight and record were fsynced,
//!   and the directory too.
//! - A failed commit leaves the previous version in place, unless it fails after the
//!   data was renamed (see [`commit`] for that window and what readers see then).
//! - Only one [`Coordinator`] per problem can exist at a time, across processes and
//!   across NFS clients.
//!
//! ## Where it stops on NFS
//!
//! - Another node may see a new commit late, by up to the attribute-cache time
//!   (`acdirmax`, 60 s by default).
//! - With the mount options `nolock`, `local_lock=posix` or `local_lock=all`, fcntl
//!   locks are local to one node and two coordinators can both run. With
//!   `local_lock=flock` only `flock` locks stay local: the coordinator lock (an OFD
//!   fcntl lock) still reaches the server, as the NFS lab measured on NFSv3 (Linux
//!   ignores `local_lock` on NFSv4). `fedota-store doctor` reports all of these
//!   mounts.
//! - A lock is a lease: a coordinator whose node died may keep it for one NFSv4 lease
//!   (90 s) or, on NFSv3, until that node reboots. A coordinator that lost its lock
//!   unknowingly is refused by the generation check before each commit, but the check
//!   and the rename are two steps.
//! - A data file and its weight file are two renames. The older services, which do
//!   not read records, can see a new checkpoint with the old weight in between.
//!
//! # Logging
//!
//! The library logs through [`tracing`]: lock taken and released, each commit with its
//! size and time, reads that retry or give up. It installs no subscriber and never
//! prints.
//!
//! # Examples
//!
//! ```
//! use std::io::Read;
//! use fedota_store::{CreateOptions, LockWait, ProblemId, SelectorId, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let problem = ProblemId::new("p1")?;
//! store.create_problem(&problem, &mut &b"model"[..], &mut &b"global 0"[..], CreateOptions::default())?;
//!
//! // A selector trains on round 0 and commits its aggregate of round 0.
//! let selector = store.selector(&problem, &SelectorId::new("s1.selector:50051")?)?;
//! selector.commit_aggregate(0, 40, &mut &b"aggregate 0"[..])?;
//!
//! // The coordinator reads the aggregates of round 0 and commits round 1.
//! let coordinator = store.coordinator(&problem, LockWait::Try)?;
//! let aggregate = coordinator.read_aggregate(selector.id(), 0, |r| {
//!     let mut bytes = Vec::new();
//!     r.read_to_end(&mut bytes).map(|_| bytes)
//! })?;
//! assert_eq!(aggregate.weight, Some(40));
//! coordinator.commit_global_checkpoint(1, &mut &b"global 1"[..])?;
//! assert_eq!(coordinator.global_round()?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod commit;
mod coordinator;
mod error;
mod fsutil;
pub mod gc;
pub mod id;
pub mod layout;
pub mod lock;
pub mod mount;
pub mod os;
pub mod read;
pub mod record;
mod selector;
mod store;
pub mod wait;
pub mod weight;

pub use commit::{ArtifactWriter, CommitError, Committed};
pub use coordinator::Coordinator;
pub use error::{Error, IdKind};
pub use gc::Leftover;
pub use id::{ClientNo, ProblemId, Round, SelectorId};
pub use layout::{Artifact, ArtifactKind, ProblemLayout};
pub use lock::{LockHolder, LockStatus, LockWait};
pub use read::{RetryPolicy, Snapshot};
pub use record::{CommitRecord, WriterId};
pub use selector::Selector;
pub use store::{AggregateState, CreateOptions, Problem, Store};
pub use weight::MAX_WEIGHT;

/// The README's code compiles: it is checked as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
