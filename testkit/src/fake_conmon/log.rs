//! The k8s-file log as conmon writes it: for every line a container prints,
//! `<timestamp> <stream> F <text>\n`, and for the end of a read that did not finish a line
//! `<timestamp> <stream> P <text>\n` (a partial line, continued by the next record). The
//! timestamp is the local time with nanoseconds and the UTC offset
//! (`2026-12-03T08:30:00.123456789+00:00`), one per read, as in conmon's `write_k8s_log`.
//!
//! With `--log-size-max`, a record that would take the file past the bound starts a new file in
//! its place (conmon's `reopen_k8s_file`: a new file renamed over the old).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Which of the container's streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// An open k8s-file log.
#[derive(Debug)]
pub(crate) struct K8sLog {
    path: PathBuf,
    file: File,
    size_max: Option<u64>,
    written: u64,
}

fn open(path: &PathBuf, truncate: bool) -> io::Result<File> {
    OpenOptions::new().create(true).append(!truncate).write(true).truncate(truncate).mode(0o600).open(path)
}

impl K8sLog {
    /// Opens (appends to) the log at `path`, bounded to `size_max` bytes when given.
    pub(crate) fn open(path: PathBuf, size_max: Option<u64>) -> io::Result<Self> {
        let file = open(&path, false)?;
        Ok(K8sLog { path, file, size_max, written: 0 })
    }

    /// Records `chunk`, one read of `stream`.
    pub(crate) fn write(&mut self, stream: Stream, chunk: &[u8]) -> io::Result<()> {
        let now = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.9f%:z");
        let prefix = format!("{now} {} ", stream.name());
        let mut rest = chunk;
        while !rest.is_empty() {
            let (line, partial) = match rest.iter().position(|byte| *byte == b'\n') {
                Some(end) => (&rest[..=end], false),
                None => (rest, true),
            };
            let mut record = Vec::with_capacity(prefix.len() + line.len() + 3);
            record.extend_from_slice(prefix.as_bytes());
            record.extend_from_slice(if partial { b"P " } else { b"F " });
            record.extend_from_slice(line);
            if partial {
                record.push(b'\n');
            }
            let size = u64::try_from(record.len()).unwrap_or(u64::MAX);
            if self.size_max.is_some_and(|max| self.written + size > max) {
                self.reopen()?;
            }
            self.file.write_all(&record)?;
            self.written += size;
            rest = &rest[line.len()..];
        }
        Ok(())
    }

    /// A new, empty log in place of the old one.
    fn reopen(&mut self) -> io::Result<()> {
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        self.file = open(&temporary, true)?;
        std::fs::rename(&temporary, &self.path)?;
        self.written = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log's records, each split into its four fields.
    fn records(path: &std::path::Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| line.splitn(4, ' ').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn full_lines_are_f_and_an_unfinished_one_is_p_each_with_its_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut log = K8sLog::open(path.clone(), None).unwrap();
        log.write(Stream::Stdout, b"one\ntwo\nthr").unwrap();
        log.write(Stream::Stderr, b"err\n").unwrap();
        let fields: Vec<Vec<String>> = records(&path).into_iter().map(|record| record[1..].to_vec()).collect();
        let expected = [["stdout", "F", "one"], ["stdout", "F", "two"], ["stdout", "P", "thr"], ["stderr", "F", "err"]];
        assert_eq!(fields, expected.map(|record| record.map(str::to_owned).to_vec()).to_vec());
        for record in records(&path) {
            // RFC 3339 with nanoseconds and an offset, as conmon's set_k8s_timestamp prints it.
            let stamp = &record[0];
            assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
            assert_eq!(stamp.split_once('.').map(|(_, rest)| rest.len()), Some(9 + 6), "{stamp}");
        }
    }

    #[test]
    fn a_record_past_the_bound_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        // One record is the 35-byte timestamp, a space, the stream, " F ", the text.
        let mut log = K8sLog::open(path.clone(), Some(100)).unwrap();
        log.write(Stream::Stdout, b"first line\n").unwrap();
        log.write(Stream::Stdout, b"second line\n").unwrap();
        let texts: Vec<String> = records(&path).into_iter().map(|record| record[3].clone()).collect();
        assert_eq!(texts, ["second line"]);
        assert!(!dir.path().join("ctr.log.tmp").exists());
    }
}
