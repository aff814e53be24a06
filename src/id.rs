//! Validated names for the parts of the tree: problems, selectors, clients and rounds.
//!
//! A problem id and a selector id each become one directory name under the root, so
//! both are checked before any path is built from them. The rules are the same for
//! both, and one more applies to selectors:
//!
//! - not empty, not `.` or `..`, and at most 255 bytes (the usual `NAME_MAX`);
//! - no `/`, no NUL and no other control character;
//! - no leading `.`, because the crate keeps its own files under dot-names;
//! - a selector id is never `initFiles`, the problem's shared directory.
//!
//! Real selector ids look like `selector-7d4f9c-x2x9q.selector:50051` (pod host name,
//! service, port). They pass these rules unchanged.

use std::fmt;
use std::path::Path;

use crate::error::{Error, IdKind};
use crate::layout::INIT_DIR;

/// The longest id accepted, in bytes: one directory name on Linux (`NAME_MAX`).
pub const MAX_ID_LEN: usize = 255;

/// The number of a federated round. The problem starts at round 0.
pub type Round = u64;

/// The number a selector gives one of its clients, as in `checkpoint_<client-no>`.
pub type ClientNo = u64;

/// The id of one federated-learning problem: the directory `<root>/<problem-id>`.
///
/// # Errors
///
/// [`ProblemId::new`] returns [`Error::InvalidId`] for a name that breaks the rules in
/// the [module docs](self).
///
/// # Examples
///
/// ```
/// use fedota_store::ProblemId;
///
/// let id = ProblemId::new("mnist-2026")?;
/// assert_eq!(id.as_str(), "mnist-2026");
/// assert!(ProblemId::new("../etc").is_err());
/// # Ok::<(), fedota_store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProblemId(String);

/// The id of one selector: the directory `<root>/<problem-id>/<selector-id>`.
///
/// # Errors
///
/// [`SelectorId::new`] returns [`Error::InvalidId`] for a name that breaks the rules in
/// the [module docs](self), including `initFiles`.
///
/// # Examples
///
/// ```
/// use fedota_store::SelectorId;
///
/// let id = SelectorId::new("selector-7d4f9c-x2x9q.selector:50051")?;
/// assert_eq!(id.to_string(), "selector-7d4f9c-x2x9q.selector:50051");
/// assert!(SelectorId::new("initFiles").is_err());
/// # Ok::<(), fedota_store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectorId(String);

impl ProblemId {
    /// Checks `id` and wraps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] names the id and the rule it breaks.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        check_name(IdKind::Problem, &id)?;
        Ok(Self(id))
    }

    /// The id as text, which is also its directory name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SelectorId {
    /// Checks `id` and wraps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] names the id and the rule it breaks.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        check_name(IdKind::Selector, &id)?;

        if id == INIT_DIR {
            return Err(invalid(
                IdKind::Selector,
                &id,
                "it is the problem's shared directory",
            ));
        }
        Ok(Self(id))
    }

    /// The id as text, which is also its directory name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! id_traits {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<Path> for $ty {
            fn as_ref(&self) -> &Path {
                Path::new(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }
    };
}

id_traits!(ProblemId);
id_traits!(SelectorId);

/// Applies the rules shared by every id that becomes a directory name.
fn check_name(kind: IdKind, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(invalid(kind, id, "it is empty"));
    }
    if id == "." || id == ".." {
        return Err(invalid(
            kind,
            id,
            "it names a directory itself or its parent",
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(kind, id, "it is longer than 255 bytes"));
    }
    if id.starts_with('.') {
        return Err(invalid(
            kind,
            id,
            "it starts with '.', which fedota-store keeps for itself",
        ));
    }
    if id.contains('/') {
        return Err(invalid(kind, id, "it contains '/'"));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(
            kind,
            id,
            "it contains NUL or another control character",
        ));
    }
    Ok(())
}

fn invalid(kind: IdKind, id: &str, reason: &'static str) -> Error {
    Error::InvalidId {
        kind,
        id: id.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_selector_id_is_accepted() {
        let id = SelectorId::new("selector-7d4f9c-x2x9q.selector:50051").unwrap();
        assert_eq!(id.as_str(), "selector-7d4f9c-x2x9q.selector:50051");
    }

    #[test]
    fn init_files_is_a_valid_problem_id_but_not_a_selector_id() {
        assert!(ProblemId::new("initFiles").is_ok());
        assert!(SelectorId::new("initFiles").is_err());
    }

    #[test]
    fn the_error_names_the_id_and_the_rule() {
        let err = SelectorId::new("a/b").unwrap_err().to_string();
        assert!(err.contains("a/b") && err.contains("'/'"), "{err}");
    }
}
