//! Container ids, validated before anything is spawned.
//!
//! Ids end up as argv elements and as file names (in the engine's state root and in every
//! runtime's own), so the grammar is strict: 1–255 characters of `[A-Za-z0-9_+.-]` (255 bytes
//! is the longest file name Linux file systems take, `NAME_MAX`), not starting with `-` (it
//! would be read as a flag) or `.` (`.` and `..` are paths). Anything else never reaches a
//! process.

use std::fmt;
use std::str::FromStr;

use crate::contract::error::{Error, Result};

/// The longest id accepted: a file name's limit (`NAME_MAX`), since ids are file names.
pub const MAX_ID_LEN: usize = 255;

/// A validated container id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `id` against the grammar.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        match violation(&id) {
            None => Ok(ContainerId(id)),
            Some(reason) => Err(Error::InvalidId { id: shorten(&id), reason }),
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn violation(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("it is empty");
    }
    if id.len() > MAX_ID_LEN {
        return Some("it is longer than 255 characters, the longest file name");
    }
    if id.starts_with('-') {
        return Some("it starts with '-'");
    }
    if id.starts_with('.') {
        return Some("it starts with '.'");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-');
    if !id.chars().all(allowed) {
        return Some("only A-Z, a-z, 0-9, '_', '+', '.' and '-' are allowed");
    }
    None
}

fn shorten(id: &str) -> String {
    const SHOWN: usize = 64;
    match id.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_owned(),
    }
}

impl FromStr for ContainerId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ContainerId::new(s)
    }
}

impl TryFrom<&str> for ContainerId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        ContainerId::new(s)
    }
}

impl TryFrom<String> for ContainerId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ContainerId::new(s)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ContainerId {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ContainerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ContainerId::new(raw).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ContainerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The grammar as the design states it, written independently of the validator: 1–255 of
    /// `[A-Za-z0-9_+.-]`, not starting with `-` or `.`.
    fn grammar() -> regex::Regex {
        regex::Regex::new(r"\A[A-Za-z0-9_+][A-Za-z0-9_+.-]{0,254}\z").unwrap()
    }

    proptest! {
        #[test]
        fn accepts_every_id_of_the_grammar(id in "[A-Za-z0-9_+][A-Za-z0-9_+.-]{0,254}") {
            let parsed = ContainerId::new(id.clone()).unwrap();
            prop_assert_eq!(parsed.as_str(), id.as_str());
        }

        #[test]
        fn accepts_exactly_the_grammar_for_any_string(id in any::<String>()) {
            prop_assert_eq!(ContainerId::new(id.clone()).is_ok(), grammar().is_match(&id));
        }

        #[test]
        fn accepts_exactly_the_grammar_for_strings_near_it(id in "[-.A-Za-z0-9_+/ é\\x00]{0,12}") {
            prop_assert_eq!(ContainerId::new(id.clone()).is_ok(), grammar().is_match(&id));
        }

        #[test]
        fn rejects_ids_with_any_character_outside_the_grammar(
            prefix in "[a-z]{1,8}",
            bad in any::<char>().prop_filter("outside grammar", |c| {
                !(c.is_ascii_alphanumeric() || "_+.-".contains(*c))
            }),
        ) {
            let id = format!("{prefix}{bad}");
            prop_assert!(ContainerId::new(id).is_err());
        }
    }

    #[test]
    fn accepts_and_refuses_as_the_examples_say() {
        let accepted = ["a", "A", "0", "_", "+", "a.b", "a-b", "x_1+2.3-4", "9..", "a-", "+-."];
        let refused = ["", "-a", ".a", "..", "a/b", "a b", "a:b", "é", "a\nb", "a\u{0}b", "a*"];
        for id in accepted {
            assert!(ContainerId::new(id).is_ok(), "{id:?} is in the grammar");
            assert!(grammar().is_match(id), "the stated grammar accepts {id:?}");
        }
        for id in refused {
            assert!(ContainerId::new(id).is_err(), "{id:?} is outside the grammar");
            assert!(!grammar().is_match(id), "the stated grammar refuses {id:?}");
        }
    }

    #[test]
    fn rejects_hostile_ids() {
        let long = "a".repeat(2000);
        for hostile in ["--help", "-", "../x", "..", ".", ".hidden", "a/b", "", "a\0b", "a b", &long] {
            let err = ContainerId::new(hostile).unwrap_err();
            assert!(matches!(err, Error::InvalidId { .. }), "{hostile:?} gave {err:?}");
        }
    }

    #[test]
    fn accepts_exactly_the_ids_the_file_system_takes_as_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for len in [1, 254, 255, 256, 1024] {
            let name = "a".repeat(len);
            let as_file = std::fs::write(dir.path().join(&name), b"");
            if let Err(err) = &as_file {
                assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG), "{len} bytes: {err}");
            }
            assert_eq!(ContainerId::new(name).is_ok(), as_file.is_ok(), "an id of {len} bytes");
        }
        assert!(ContainerId::new("a".repeat(255)).is_ok(), "255 bytes, the spec's NAME_MAX");
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<ContainerId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<ContainerId>("\"../x\"").is_err());
    }
}
