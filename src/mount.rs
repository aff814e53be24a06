//! What the mount under the tree promises: parse `/proc/self/mountinfo`, find the
//! mount that holds a path, and judge its options.
//!
//! fedota-store's guarantees rest on the filesystem: an atomic rename, `O_EXCL`, and
//! locks that reach every node. A local filesystem gives all three to the processes
//! of one node. NFS gives them across nodes only when it is mounted with locking and
//! with close-to-open consistency, which mount options can turn off without any
//! call failing. [`MountInfo::findings`] names each such option and what it means for
//! `fl_checkpoint`; `fedota-store doctor` prints them.
//!
//! # What is judged
//!
//! | check | pass | warn | fail |
//! |---|---|---|---|
//! | `filesystem` | local, or NFS | another network or FUSE filesystem | — |
//! | `nfs-version` | NFSv4 | NFSv3 | NFSv2 |
//! | `locking` | `local_lock=none` | `local_lock=flock` | `nolock`, `local_lock=posix` or `all` |
//! | `close-to-open` | the default | `nocto` | — |
//! | `attribute-cache` | every `ac*` time ≤ 60 s | a time > 60 s | — |
//! | `lookup-cache` | any | — | — |
//! | `hard-mount` | `hard` | `soft` or `softerr` | — |
//!
//! The checks after `filesystem` are made for NFS mounts only.
//!
//! # Caveats
//!
//! - The mount of a path is found by the longest mount point that contains it, the
//!   last such line winning; bind mounts of a subdirectory (`root` other than `/`)
//!   are reported as the mount they are, not as the filesystem they came from.
//! - Only what the kernel shows is judged. It shows the `ac*` times only when they
//!   differ from the defaults (3, 60, 30 and 60 s), and never `actimeo` itself, which
//!   it splits into the four; both spellings are understood.
//! - The options say what this client does, not what the server allows: an NFS
//!   server without a running lock manager refuses locks with `ENOLCK`, which only a
//!   probe finds (`fedota-store doctor` runs one).
//!
//! # Examples
//!
//! ```
//! use fedota_store::mount::{MountInfo, Severity};
//!
//! let line = "46 27 0:53 / /data rw,relatime shared:31 - nfs 10.0.0.5:/export \
//!             rw,vers=3,hard,nolock,proto=tcp,local_lock=all,addr=10.0.0.5";
//! let mount = MountInfo::parse(line)?;
//! assert!(mount.is_nfs());
//!
//! let locking = mount.findings().into_iter().find(|f| f.check == "locking").unwrap();
//! assert_eq!(locking.severity, Severity::Fail);
//! # Ok::<(), fedota_store::mount::MountInfoError>(())
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext};

/// Where the kernel lists this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The longest attribute-cache time, in seconds, that is not flagged: the default
/// `acdirmax`.
pub const LONG_ATTRIBUTE_CACHE_S: u64 = 60;

/// The NFS client's default attribute-cache times, in seconds: `acregmin`,
/// `acregmax`, `acdirmin`, `acdirmax`.
const NFS_DEFAULT_AC: [u64; 4] = [3, 60, 30, 60];

/// Filesystems that keep their data on this node.
const LOCAL_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "tmpfs", "ramfs", "overlay",
];

/// One line of `/proc/self/mountinfo` (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountInfo {
    /// The mount's unique id.
    pub mount_id: u32,
    /// The id of the parent mount.
    pub parent_id: u32,
    /// The `major:minor` device number of the filesystem.
    pub device: (u32, u32),
    /// The directory of the filesystem that is mounted here (`/` unless a bind mount
    /// of a subdirectory).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The per-mount options, such as `rw` and `relatime`.
    pub mount_options: Vec<String>,
    /// The optional fields, such as `shared:31`.
    pub optional_fields: Vec<String>,
    /// The filesystem type, such as `ext4`, `nfs` or `nfs4`.
    pub fs_type: String,
    /// The mount source, such as `/dev/vda` or `server:/export`.
    pub source: String,
    /// The superblock options; for NFS these hold `vers=`, `nolock`, `local_lock=`,
    /// the `ac*` times and the rest.
    pub super_options: Vec<String>,
}

/// A mountinfo line that does not have the format of proc(5), given back with the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line_no} of the mount table is malformed ({reason}): {line:?}")]
#[non_exhaustive]
pub struct MountInfoError {
    /// The line, as read.
    pub line: String,
    /// Its number, counting from 1 (1 when a single line was parsed).
    pub line_no: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// What fedota-store relies on holds.
    Pass,
    /// It holds, with a cost or a risk the operator should know of.
    Warn,
    /// It does not hold: do not run a coordinator on this tree until it is fixed.
    Fail,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Pass => "pass",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        })
    }
}

/// One judgement about the filesystem under the tree, with the reason and the fix.
///
/// The JSON form (`fedota-store doctor --json`) has exactly these fields; `fix` is
/// `null` when there is nothing to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// A stable id of what was checked, such as `locking`.
    pub check: String,
    /// Pass, warn or fail.
    pub severity: Severity,
    /// What was found, in one line.
    pub summary: String,
    /// What it means for the checkpoint tree.
    pub reason: String,
    /// What to do about it.
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(
        check: impl Into<String>,
        severity: Severity,
        summary: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            severity,
            summary: summary.into(),
            reason: reason.into(),
            fix: None,
        }
    }

    /// The same finding, with what to do about it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The NFS client's attribute-cache times of a mount, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AttributeCache {
    /// The shortest time a file's attributes are trusted.
    pub acregmin: u64,
    /// The longest time a file's attributes are trusted.
    pub acregmax: u64,
    /// The shortest time a directory's attributes (and so its names) are trusted.
    pub acdirmin: u64,
    /// The longest time a directory's attributes are trusted.
    pub acdirmax: u64,
}

impl AttributeCache {
    /// The longest of the four times.
    pub fn longest(&self) -> u64 {
        self.acregmin
            .max(self.acregmax)
            .max(self.acdirmin)
            .max(self.acdirmax)
    }
}

impl MountInfo {
    /// Parses one line of `/proc/self/mountinfo`.
    ///
    /// # Errors
    ///
    /// [`MountInfoError`] giving the line back, if it lacks a field, the ` - `
    /// separator, or has a number that does not parse.
    pub fn parse(line: &str) -> Result<Self, MountInfoError> {
        let bad = |reason| MountInfoError {
            line: line.to_owned(),
            line_no: 1,
            reason,
        };

        // The optional fields end at a lone "-"; the three fields after it follow.
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let dash = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| bad("no ' - ' separator"))?;
        if dash < 6 {
            return Err(bad("fewer than six fields before the separator"));
        }
        let [fs_type, source, super_options] = match fields.get(dash + 1..) {
            Some([a, b, c, ..]) => [*a, *b, *c],
            Some([a, b]) => [*a, *b, ""],
            _ => return Err(bad("fewer than two fields after the separator")),
        };

        let (major, minor) = fields[2]
            .split_once(':')
            .ok_or_else(|| bad("the device is not major:minor"))?;

        Ok(Self {
            mount_id: fields[0]
                .parse()
                .map_err(|_| bad("the mount id is not a number"))?,
            parent_id: fields[1]
                .parse()
                .map_err(|_| bad("the parent id is not a number"))?,
            device: (
                major
                    .parse()
                    .map_err(|_| bad("the major device number does not parse"))?,
                minor
                    .parse()
                    .map_err(|_| bad("the minor device number does not parse"))?,
            ),
            root: PathBuf::from(unescape(fields[3])),
            mount_point: PathBuf::from(unescape(fields[4])),
            mount_options: split_options(fields[5]),
            optional_fields: fields[6..dash].iter().map(|f| (*f).to_owned()).collect(),
            fs_type: unescape(fs_type),
            source: unescape(source),
            super_options: split_options(super_options),
        })
    }

    /// Whether this is an NFS mount (`nfs` for v2 and v3, `nfs4` for v4).
    pub fn is_nfs(&self) -> bool {
        self.fs_type == "nfs" || self.fs_type == "nfs4"
    }

    /// Whether the filesystem keeps its data on this node (ext4, xfs, tmpfs, …).
    pub fn is_local(&self) -> bool {
        LOCAL_FILESYSTEMS.contains(&self.fs_type.as_str())
    }

    /// The value of option `name` among the per-mount and superblock options:
    /// `Some("")` for a flag such as `nolock`, `Some("4.2")` for `vers=4.2`, `None` if
    /// absent. The last occurrence wins.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options()
            .filter_map(|(k, v)| (k == name).then_some(v))
            .last()
    }

    /// Whether flag or option `name` is present.
    pub fn has_option(&self, name: &str) -> bool {
        self.option(name).is_some()
    }

    /// Every option as a (name, value) pair, per-mount options first.
    fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.mount_options
            .iter()
            .chain(&self.super_options)
            .map(|o| o.split_once('=').unwrap_or((o.as_str(), "")))
    }

    /// The NFS major version from `vers=` (or the type `nfs4`); `None` for other
    /// filesystems or if it is not shown.
    pub fn nfs_version(&self) -> Option<u32> {
        if !self.is_nfs() {
            return None;
        }
        let shown = self
            .option("vers")
            .or_else(|| self.option("nfsvers"))
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.parse().ok());
        shown.or((self.fs_type == "nfs4").then_some(4))
    }

    /// The attribute-cache times of an NFS mount, after the defaults, `actimeo`,
    /// `noac` and the four `ac*` options in the order given; `None` for other
    /// filesystems.
    pub fn attribute_cache(&self) -> Option<AttributeCache> {
        if !self.is_nfs() {
            return None;
        }
        let [mut acregmin, mut acregmax, mut acdirmin, mut acdirmax] = NFS_DEFAULT_AC;

        for (name, value) in self.options() {
            let seconds = value.parse::<u64>().ok();
            match (name, seconds) {
                ("noac", _) => [acregmin, acregmax, acdirmin, acdirmax] = [0; 4],
                ("actimeo", Some(s)) => [acregmin, acregmax, acdirmin, acdirmax] = [s; 4],
                ("acregmin", Some(s)) => acregmin = s,
                ("acregmax", Some(s)) => acregmax = s,
                ("acdirmin", Some(s)) => acdirmin = s,
                ("acdirmax", Some(s)) => acdirmax = s,
                _ => {}
            }
        }
        Some(AttributeCache {
            acregmin,
            acregmax,
            acdirmin,
            acdirmax,
        })
    }

    /// Judges this mount for fedota-store, one finding per check in the table of the
    /// [module docs](self).
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = vec![self.filesystem_finding()];
        if self.is_nfs() {
            findings.push(self.version_finding());
            findings.push(self.locking_finding());
            findings.push(self.close_to_open_finding());
            findings.push(self.attribute_cache_finding());
            findings.push(self.lookup_cache_finding());
            findings.push(self.hard_finding());
        }
        findings
    }

    fn filesystem_finding(&self) -> Finding {
        let what = format!(
            "{} from {} mounted at {}",
            self.fs_type,
            self.source,
            self.mount_point.display()
        );

        if self.is_nfs() {
            Finding::new(
                "filesystem",
                Severity::Pass,
                what,
                "NFS: renames are atomic and, with locking on, locks reach every client; \
                 the checks below say whether this mount keeps those promises",
            )
        } else if self.is_local() {
            Finding::new(
                "filesystem",
                Severity::Pass,
                format!("{what} (local)"),
                "a local filesystem: renames, O_EXCL and locks are exact, but only \
                 processes on this node see the tree; services on other nodes need it \
                 shared over NFS",
            )
        } else {
            Finding::new(
                "filesystem",
                Severity::Warn,
                what,
                format!(
                    "fedota-store's guarantees are stated for local filesystems and NFS; \
                     whether {} keeps renames atomic and locks shared across nodes was \
                     not checked (the probes below test this node only)",
                    self.fs_type
                ),
            )
            .with_fix("use NFS (v4.1 or later) for a tree shared between nodes")
        }
    }

    fn version_finding(&self) -> Finding {
        match self.nfs_version() {
            Some(v) if v >= 4 => Finding::new(
                "nfs-version",
                Severity::Pass,
                format!("NFSv{}", self.option("vers").unwrap_or("4")),
                "locks are leases: a dead node's lock is freed after one lease period \
                 (90 s by default), and a new coordinator can take over",
            ),
            Some(3) => Finding::new(
                "nfs-version",
                Severity::Warn,
                "NFSv3",
                "locks go through NLM and rpc.statd: a coordinator whose node died can keep \
                 the coordinator lock (initFiles/.fedota-coordinator.lock) until that node \
                 reboots, so no other coordinator can start",
            )
            .with_fix("mount with vers=4.2 (or 4.1)"),
            Some(v) => Finding::new(
                "nfs-version",
                Severity::Fail,
                format!("NFSv{v}"),
                "NFSv2 does not make O_EXCL creation atomic, so two writers can take the \
                 same temporary name",
            )
            .with_fix("mount with vers=4.2 (or 4.1)"),
            None => Finding::new(
                "nfs-version",
                Severity::Warn,
                "the NFS version is not shown",
                "the mount table does not say which NFS version is in use",
            )
            .with_fix("mount with an explicit vers=4.2"),
        }
    }

    fn locking_finding(&self) -> Finding {
        let local_lock = self.option("local_lock");

        if self.has_option("nolock") || matches!(local_lock, Some("posix" | "all")) {
            let option = if self.has_option("nolock") {
                "nolock".to_owned()
            } else {
                format!("local_lock={}", local_lock.unwrap_or_default())
            };
            return Finding::new(
                "locking",
                Severity::Fail,
                format!("{option}: fcntl locks stay on this client"),
                "the coordinator lock (an OFD fcntl lock on initFiles/.fedota-coordinator.lock) \
                 never reaches the server: a coordinator on another node takes the same lock \
                 at the same time, and two coordinators write fl_checkpoint",
            )
            .with_fix(
                "remount without nolock and with local_lock=none (on NFSv3, run rpc.statd \
                 on every client and the lock manager on the server)",
            );
        }

        if local_lock == Some("flock") {
            return Finding::new(
                "locking",
                Severity::Warn,
                "local_lock=flock: flock locks stay on this client",
                "fedota-store's coordinator lock is an fcntl (OFD) lock, which \
                 local_lock=flock still sends to the server; but flock locks, such as an \
                 older service's, stay on this node and do not exclude other nodes",
            )
            .with_fix("remount with local_lock=none");
        }

        Finding::new(
            "locking",
            Severity::Pass,
            format!("local_lock={}", local_lock.unwrap_or("none")),
            "locks are sent to the server, so the coordinator lock excludes other nodes",
        )
    }

    fn close_to_open_finding(&self) -> Finding {
        if self.has_option("nocto") {
            return Finding::new(
                "close-to-open",
                Severity::Warn,
                "nocto: open() does not revalidate cached attributes",
                "a service opening fl_checkpoint can keep reading the version it saw before \
                 the last commit, for as long as the attribute cache lasts; verified reads \
                 then see a record of one commit and data of another, retry, and can fail \
                 as inconsistent",
            )
            .with_fix("remount without nocto");
        }
        Finding::new(
            "close-to-open",
            Severity::Pass,
            "close-to-open consistency (no nocto)",
            "each open() of fl_checkpoint asks the server for its current attributes, so a \
             reader that opens by path sees the latest committed file",
        )
    }

    fn attribute_cache_finding(&self) -> Finding {
        let Some(ac) = self.attribute_cache() else {
            return Finding::new(
                "attribute-cache",
                Severity::Pass,
                "not NFS",
                "no attribute cache",
            );
        };
        let times = format!(
            "acregmin={} acregmax={} acdirmin={} acdirmax={}",
            ac.acregmin, ac.acregmax, ac.acdirmin, ac.acdirmax
        );

        if ac.longest() > LONG_ATTRIBUTE_CACHE_S {
            return Finding::new(
                "attribute-cache",
                Severity::Warn,
                format!("{times}: up to {} s", ac.longest()),
                format!(
                    "another node can go on resolving fl_checkpoint and the aggregates to \
                     the files they were before a commit for up to {} s, so each round \
                     waits that much longer to be seen",
                    ac.longest()
                ),
            )
            .with_fix(format!(
                "remount with actimeo={LONG_ATTRIBUTE_CACHE_S} or less (or without the long ac* \
                 options)"
            ));
        }
        Finding::new(
            "attribute-cache",
            Severity::Pass,
            times,
            format!(
                "a commit becomes visible on other nodes within {} s at most",
                ac.longest()
            ),
        )
    }

    fn lookup_cache_finding(&self) -> Finding {
        let acdirmax = self.attribute_cache().map_or(0, |ac| ac.acdirmax);

        match self.option("lookupcache") {
            Some("none") => Finding::new(
                "lookup-cache",
                Severity::Pass,
                "lookupcache=none",
                "every lookup asks the server: new commits are seen at once, at the cost of \
                 more round trips",
            ),
            Some("pos" | "positive") => Finding::new(
                "lookup-cache",
                Severity::Pass,
                "lookupcache=pos",
                "missing names are not cached: a file committed after a service looked for \
                 it is seen at once",
            ),
            _ => Finding::new(
                "lookup-cache",
                Severity::Pass,
                "lookupcache=all (the default)",
                format!(
                    "a service that looked for an aggregate before it was committed can be \
                     told it is missing for up to acdirmax ({acdirmax} s); fedota-store's \
                     waits poll until then"
                ),
            ),
        }
    }

    fn hard_finding(&self) -> Finding {
        if self.has_option("soft") || self.has_option("softerr") {
            return Finding::new(
                "hard-mount",
                Severity::Warn,
                "soft: operations give up when the server is slow",
                "a commit can fail with EIO or ETIMEDOUT while the server is briefly away; \
                 fedota-store reports the failure and keeps the previous fl_checkpoint, but \
                 a service that ignores write errors can leave a truncated file",
            )
            .with_fix("remount with hard");
        }
        Finding::new(
            "hard-mount",
            Severity::Pass,
            "hard",
            "operations wait for the server instead of failing",
        )
    }
}

/// All lines of a mount table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountTable {
    mounts: Vec<MountInfo>,
}

impl MountTable {
    /// Reads this process's mount table from [`MOUNTINFO`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file if it cannot be read (as on systems other than
    /// Linux), or with [`io::ErrorKind::InvalidData`] if a line is malformed.
    pub fn read() -> Result<Self, Error> {
        Self::read_from(Path::new(MOUNTINFO))
    }

    /// Reads a mount table in the mountinfo format from `path`.
    ///
    /// # Errors
    ///
    /// As for [`MountTable::read`].
    pub fn read_from(path: &Path) -> Result<Self, Error> {
        let op = "read the mount table";
        let text = fs::read_to_string(path).context(op, path)?;

        Self::parse(&text)
            .map_err(|e| Error::io(op, path, io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Parses a whole mount table; blank lines are skipped.
    ///
    /// # Errors
    ///
    /// The [`MountInfoError`] of the first malformed line, with its number.
    pub fn parse(text: &str) -> Result<Self, MountInfoError> {
        let mut mounts = Vec::new();

        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mount = MountInfo::parse(line).map_err(|e| MountInfoError {
                line_no: i + 1,
                ..e
            })?;
            mounts.push(mount);
        }
        Ok(Self { mounts })
    }

    /// Every mount, in the kernel's order.
    pub fn mounts(&self) -> &[MountInfo] {
        &self.mounts
    }

    /// The mount that holds `path`, which must be absolute and free of symbolic links
    /// (see [`std::fs::canonicalize`]): the longest mount point that contains it, the
    /// later line winning when one point is mounted over.
    pub fn find(&self, path: &Path) -> Option<&MountInfo> {
        self.mounts
            .iter()
            .filter(|m| path.starts_with(&m.mount_point))
            .fold(None, |best: Option<&MountInfo>, m| match best {
                Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => {
                    Some(b)
                }
                _ => Some(m),
            })
    }
}

/// The mount that holds `path`, from this process's mount table.
///
/// # Errors
///
/// [`Error::Io`] naming `path` if it does not exist, naming [`MOUNTINFO`] if that
/// cannot be read, and with [`io::ErrorKind::NotFound`] if no mount contains it.
pub fn mount_of(path: &Path) -> Result<MountInfo, Error> {
    let op = "find the mount of";
    let canonical = fs::canonicalize(path).context(op, path)?;

    let table = MountTable::read()?;
    table.find(&canonical).cloned().ok_or_else(|| {
        let e = io::Error::new(
            io::ErrorKind::NotFound,
            "no mount in the mount table holds it",
        );
        Error::io(op, path, e)
    })
}

/// Splits a comma-separated option list; an empty list gives no options.
fn split_options(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|o| !o.is_empty())
        .map(unescape)
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;

    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
