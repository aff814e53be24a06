//! The weight files: an unsigned decimal integer in ASCII, nothing else.
//!
//! The Go services parse the whole content with `strconv.ParseInt(s, 10, 64)`, so a
//! weight has no sign, no whitespace, no trailing newline, and is at most
//! `i64::MAX`. fedota-store writes exactly that and reads nothing looser.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext};

/// The largest weight the existing services can parse.
pub const MAX_WEIGHT: u64 = i64::MAX as u64;

/// The longest weight text: the digits of [`MAX_WEIGHT`].
const MAX_DIGITS: usize = 19;

/// The bytes of a weight file for `weight`.
pub(crate) fn format(weight: u64) -> Vec<u8> {
    weight.to_string().into_bytes()
}

/// Parses weight text. `None` if it is not what the Go services accept.
pub fn parse(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > MAX_DIGITS || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|w| *w <= MAX_WEIGHT)
}

/// Reads and parses the weight file at `path`.
///
/// # Errors
///
/// [`Error::Io`] if it cannot be read, [`Error::BadWeight`] if its content is not a
/// weight.
pub(crate) fn read(path: &Path, op: &str) -> Result<u64, Error> {
    let mut text = Vec::with_capacity(MAX_DIGITS + 1);

    // Read one byte more than a weight can have, so overlong text is caught without
    // reading a large file whole.
    File::open(path)
        .and_then(|f| f.take(MAX_DIGITS as u64 + 1).read_to_end(&mut text))
        .context(format!("{op}: read weight"), path)?;

    parse(&text).ok_or_else(|| Error::BadWeight {
        op: op.to_owned(),
        path: path.to_owned(),
        text: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// Checks that `weight` can be written so that the existing services parse it.
pub(crate) fn check(weight: u64, op: &str, path: &Path) -> Result<(), Error> {
    if weight > MAX_WEIGHT {
        return Err(Error::BadWeight {
            op: op.to_owned(),
            path: path.to_owned(),
            text: weight.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_what_strconv_parse_int_accepts_unsigned() {
        assert_eq!(parse(b"0"), Some(0));
        assert_eq!(parse(b"600"), Some(600));
        assert_eq!(parse(b"9223372036854775807"), Some(MAX_WEIGHT));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b" 1",
            b"1\n",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn formats_without_a_newline() {
        assert_eq!(format(42), b"42");
    }
}
