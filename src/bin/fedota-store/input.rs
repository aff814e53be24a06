//! The files that `init`, `commit` and `commit-aggregate` read: opened, checked and
//! first read before anything in the tree is created or locked.
//!
//! A directory, or a file whose first read fails, is refused up front with an error
//! naming it, so a bad input leaves the tree untouched. (A closed stdin cannot be
//! told apart: Rust's runtime reopens a closed descriptor 0 on `/dev/null`, so it
//! reads as empty, which `init` refuses for the model.) Later read
//! errors (a disk that fails halfway) name the input too: the library's message names
//! the temporary file it was writing, and the input's name follows it.

use std::error::Error as StdError;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fedota_store::Error;

use crate::output;

/// How much of an input is read before the commit starts.
const HEAD_BYTES: usize = 64 << 10;

/// What an input is called in messages when it is stdin.
pub const STDIN: &str = "<stdin>";

/// An input file (or stdin), with its first bytes already read.
pub struct Input {
    /// The path, or [`STDIN`].
    name: PathBuf,
    /// The operation its read errors are reported under, such as "read the model
    /// to commit from".
    op: String,
    /// The first bytes, read by [`open`], served before the rest.
    head: io::Cursor<Vec<u8>>,
    rest: File,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

/// Opens `path` (or stdin for `-`), the `what` to commit, refuses a directory, and
/// reads its first bytes.
///
/// # Errors
///
/// [`Error::Io`] naming the input if it cannot be opened or read, or is a directory.
pub fn open(path: &Path, what: &str) -> Result<Input, Error> {
    let stdin = path == Path::new("-");
    let name = if stdin {
        PathBuf::from(STDIN)
    } else {
        path.to_owned()
    };
    let open_op = format!("open the {what} to commit");

    // Stdin is used through a duplicate of descriptor 0, so that it can be checked
    // like a file, and read without std's buffer in between.
    let file = if stdin {
        stdin_file()
    } else {
        File::open(path)
    }
    .map_err(|e| output::io_error(&open_op, &name, e))?;

    let meta = file
        .metadata()
        .map_err(|e| output::io_error(&open_op, &name, e))?;
    if meta.is_dir() {
        let e = io::Error::new(io::ErrorKind::IsADirectory, "it is a directory, not a file");
        return Err(output::io_error(&open_op, &name, e));
    }

    let mut input = Input {
        name,
        op: format!("read the {what} to commit from"),
        head: io::Cursor::new(Vec::new()),
        rest: file,
    };

    // A first read that fails is refused before anything is created.
    let mut head = vec![0u8; HEAD_BYTES];
    let n = loop {
        match input.rest.read(&mut head) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(output::io_error(&input.op, &input.name, e)),
        }
    };
    head.truncate(n);
    input.head = io::Cursor::new(head);
    Ok(input)
}

impl Input {
    /// Whether the input has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.head.get_ref().is_empty()
    }

    /// The path, or [`STDIN`].
    pub fn name(&self) -> &Path {
        &self.name
    }
}

impl Read for Input {
    /// Serves the bytes read by [`open`], then the rest. An error keeps its kind and
    /// names the input.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }

        self.rest.read(buf).map_err(|source| {
            let kind = source.kind();
            let error = InputError {
                op: self.op.clone(),
                name: self.name.clone(),
                source,
            };
            io::Error::new(kind, error)
        })
    }
}

/// A read error of an input, naming it.
#[derive(Debug)]
struct InputError {
    op: String,
    name: PathBuf,
    source: io::Error,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.name.display(), self.source)
    }
}

impl StdError for InputError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Descriptor 0 as a file of its own.
#[cfg(unix)]
fn stdin_file() -> io::Result<File> {
    use std::os::fd::AsFd;

    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    Ok(File::from(fd))
}

/// Stdin's handle as a file of its own.
#[cfg(windows)]
fn stdin_file() -> io::Result<File> {
    use std::os::windows::io::AsHandle;

    let handle = io::stdin().as_handle().try_clone_to_owned()?;
    Ok(File::from(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();

        let error = open(dir.path(), "checkpoint").unwrap_err();
        assert_eq!(error.io_kind(), Some(io::ErrorKind::IsADirectory));
        assert_eq!(error.path(), Some(dir.path()));
    }

    #[test]
    fn the_bytes_read_up_front_come_first_and_empty_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let data: Vec<u8> = (0..HEAD_BYTES * 2 + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();

        let mut input = open(&path, "checkpoint").unwrap();
        assert!(!input.is_empty());
        let mut back = Vec::new();
        input.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);

        std::fs::write(&path, b"").unwrap();
        assert!(open(&path, "model").unwrap().is_empty());
    }

    #[test]
    fn a_read_error_after_the_first_bytes_names_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, b"abc").unwrap();
        let mut input = open(&path, "aggregate").unwrap();

        // Swap the file for one opened write-only: its reads fail.
        input.rest = File::options().write(true).open(&path).unwrap();
        let mut back = Vec::new();
        let error = input.read_to_end(&mut back).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "read the aggregate to commit from {}: ",
                path.display()
            )),
            "{message}"
        );
        assert_eq!(back, b"abc");
    }
}
