//! Runtime versions, parsed from `--version`.
//!
//! Dialects are chosen by runtime *and* version (crun changed its not-found wording in 1.22 and
//! gained `features` in 1.8.6), so versions compare numerically; distribution suffixes such as
//! runc's `1.1.5+ds1` are kept in the raw text but do not affect ordering.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::contract::error::{Error, Result};

/// A `major.minor.patch` version; missing parts count as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version { major, minor, patch }
    }
}

impl FromStr for Version {
    type Err = Error;

    /// Reads the leading `N[.N[.N]]` of `text`; anything after (`+ds1`, `-rc1`) is ignored.
    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim().trim_start_matches('v');
        let numeric_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let mut parts = text[..numeric_end].split('.').filter(|part| !part.is_empty());
        let mut next = |required: bool| -> Result<u64> {
            match parts.next() {
                Some(part) => part.parse().map_err(|_| Error::parse("version", format!("{text:?}"))),
                None if required => Err(Error::parse("version", format!("no number in {text:?}"))),
                None => Ok(0),
            }
        };
        Ok(Version { major: next(true)?, minor: next(false)?, patch: next(false)? })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What a runtime says about itself in `--version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeVersion {
    /// The program name it reports (`runc`, `crun`, `youki`).
    pub program: String,
    /// The numeric version.
    pub version: Version,
    /// The version as printed, suffixes included (`1.1.5+ds1`).
    pub version_text: String,
    /// The `commit:` line, if any.
    pub commit: Option<String>,
    /// The `spec:` line: the OCI runtime spec version it implements.
    pub spec: Option<String>,
    /// The whole output.
    pub raw: String,
}

impl RuntimeVersion {
    /// Parses `--version` output. The first line is `<program> version[:] <version>`; later
    /// `key: value` lines give the commit and spec.
    pub fn parse(output: &str) -> Result<Self> {
        let first = output.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
        let mut words = first.split_whitespace();
        let program = words.next().unwrap_or_default().to_owned();
        let keyword = words.next().unwrap_or_default();
        let version_text = words.next().unwrap_or_default().to_owned();
        if program.is_empty() || !keyword.trim_end_matches(':').eq_ignore_ascii_case("version") {
            return Err(Error::parse("runtime version", format!("unexpected first line {first:?}")));
        }
        let version = version_text.parse()?;
        let field = |key: &str| {
            output.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == key).then(|| value.trim().to_owned())
            })
        };
        Ok(RuntimeVersion {
            program,
            version,
            version_text,
            commit: field("commit"),
            spec: field("spec"),
            raw: output.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_runc_crun_and_youki_version_output() {
        let runc = RuntimeVersion::parse(include_str!("../../tests/fixtures/runc-version.txt")).unwrap();
        assert_eq!((runc.program.as_str(), runc.version), ("runc", Version::new(1, 1, 5)));
        assert_eq!(runc.version_text, "1.1.5+ds1");
        assert_eq!(runc.spec.as_deref(), Some("1.0.2-dev"));

        let crun = RuntimeVersion::parse(include_str!("../../tests/fixtures/crun-version.txt")).unwrap();
        assert_eq!((crun.program.as_str(), crun.version), ("crun", Version::new(1, 8, 1)));
        assert_eq!(crun.commit.as_deref(), Some("f8a096be060b22ccd3d5f3ebe44108517fbf6c30"));

        let youki = RuntimeVersion::parse(include_str!("../../tests/fixtures/youki-version.txt")).unwrap();
        assert_eq!((youki.program.as_str(), youki.version), ("youki", Version::new(0, 7, 0)));
        assert_eq!(youki.spec.as_deref(), Some("1.1.0"));
    }

    #[test]
    fn versions_order_numerically_and_ignore_suffixes() {
        let v = |text: &str| text.parse::<Version>().unwrap();
        assert!(v("1.22") > v("1.8.6"));
        assert!(v("1.8.6") > v("1.8.1"));
        assert_eq!(v("1.1.5+ds1"), Version::new(1, 1, 5));
        assert_eq!(v("3"), Version::new(3, 0, 0));
    }

    #[test]
    fn rejects_output_that_is_not_a_version() {
        assert!(RuntimeVersion::parse("").is_err());
        assert!(RuntimeVersion::parse("Usage: foo [OPTIONS]").is_err());
        assert!(RuntimeVersion::parse("foo version banana").is_err());
    }
}
