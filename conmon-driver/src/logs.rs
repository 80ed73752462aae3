//! Reading conmon's k8s-file log back, line by line, and following it as it grows.
//!
//! The log is in the CRI log format, one record a line: `TIME STREAM TAG CONTENT`, with `TIME`
//! in RFC 3339 with nanoseconds (conmon writes the local offset, `+00:00`, where the CRI
//! examples write `Z`), `STREAM` `stdout` or `stderr`, and `TAG` `F` for the end of a line or
//! `P` for a piece of one that goes on in the next record of the same stream (conmon writes a
//! piece whenever one read of the container's output ends inside a line). Pieces are joined
//! back here, so a reader sees the container's lines (conmon's `ctr_logging.c`).
//!
//! Following ends once the container has exited and the log is drained: conmon writes all the
//! output it read to the log before it records the exit, so once the exit file is there (or
//! conmon is gone) what the log holds is all it will. Waiting is driven by inotify on the
//! log's directory and the exit directory, never by a sleep loop. conmon starts the log again
//! in a new file when it reaches its size bound or is told to reopen it (a rename over the old
//! one): the reader, at the end of the old file, goes on in the new one.
//!
//! Registering a descriptor with the reactor is `unsafe` in tokio (it cannot check that the
//! descriptor stays open); here the inotify descriptor is owned by the value registered, which
//! is what makes it sound.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};

use runtime_core::{ContainerFiles, Error, LogLine, LogReader, OutputStream, Result};

use crate::watch::{Process, Watch};

/// One record of a k8s-file log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub time: DateTime<FixedOffset>,
    pub stream: OutputStream,
    /// `P`: the line goes on in the next record of its stream.
    pub partial: bool,
    pub content: &'a [u8],
}

fn malformed(line: &[u8], message: impl Into<String>) -> Error {
    let shown: String = String::from_utf8_lossy(line).chars().take(120).collect();
    Error::Parse {
        what: "a line of the k8s-file log".into(),
        message: format!("{}: {shown:?}", message.into()),
        source: None,
    }
}

/// One line of the log, without its newline.
pub(crate) fn parse_record(line: &[u8]) -> Result<Record<'_>> {
    let mut fields = line.splitn(4, |byte| *byte == b' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(line, "fewer than three fields"));
    };
    let time = std::str::from_utf8(time)
        .ok()
        .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
        .ok_or_else(|| malformed(line, "the time is not RFC 3339"))?;
    let stream = match stream {
        b"stdout" => OutputStream::Stdout,
        b"stderr" => OutputStream::Stderr,
        _ => return Err(malformed(line, "the stream is neither stdout nor stderr")),
    };
    let partial = match tag {
        b"F" => false,
        b"P" => true,
        _ => return Err(malformed(line, "the tag is neither F nor P")),
    };
    Ok(Record { time, stream, partial, content: fields.next().unwrap_or_default() })
}

/// The pieces of a line not yet ended, per stream.
#[derive(Debug, Default)]
pub(crate) struct Rejoin {
    pending: Vec<LogLine>,
}

impl Rejoin {
    /// Takes a record; returns the line it ends, if it ends one.
    pub(crate) fn push(&mut self, record: Record<'_>) -> Option<LogLine> {
        let position = self.pending.iter().position(|line| line.stream == record.stream);
        let mut line = match position {
            Some(position) => self.pending.remove(position),
            None => LogLine { time: record.time, stream: record.stream, text: Vec::new(), complete: false },
        };
        line.text.extend_from_slice(record.content);
        if record.partial {
            self.pending.push(line);
            return None;
        }
        line.complete = true;
        Some(line)
    }

    /// The lines still unended, in the order they began.
    pub(crate) fn flush(&mut self) -> impl Iterator<Item = LogLine> + use<> {
        let mut lines = std::mem::take(&mut self.pending);
        lines.sort_by_key(|line| line.time);
        lines.into_iter()
    }
}

/// A k8s-file log being read.
pub(crate) struct K8sFileReader {
    path: PathBuf,
    file: tokio::fs::File,
    /// Bytes read after the last whole record.
    unread: Vec<u8>,
    rejoin: Rejoin,
    ready: VecDeque<LogLine>,
    follow: Option<Follow>,
    done: bool,
}

/// What following needs: events on the log and the exit, and whether the end has come.
struct Follow {
    events: AsyncFd<Watch>,
    files: ContainerFiles,
    conmon: Option<Process>,
    /// The container has exited (or nobody is left to write): what the log holds is all.
    ending: bool,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

impl K8sFileReader {
    /// Opens the log at `path`. With `follow` (the container's files and its conmon, if it is
    /// still there) reading goes on until the container has exited; without, it ends at what
    /// the log holds now.
    pub(crate) fn open(path: &Path, follow: Option<(ContainerFiles, Option<Process>)>) -> Result<Self> {
        // Watched before the log is first read, so that nothing written after is missed.
        let follow = follow.map(|(files, conmon)| Follow::watching(path, files, conmon)).transpose()?;
        let file = std::fs::File::open(path).map_err(io(format!("opening the log {}", path.display())))?;
        Ok(K8sFileReader {
            path: path.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            unread: Vec::new(),
            rejoin: Rejoin::default(),
            ready: VecDeque::new(),
            follow,
            done: false,
        })
    }

    /// Takes bytes read from the log: every whole record in them is parsed.
    fn take(&mut self, bytes: &[u8]) -> Result<()> {
        self.unread.extend_from_slice(bytes);
        let Some(end) = self.unread.iter().rposition(|byte| *byte == b'\n') else { return Ok(()) };
        let rest = self.unread.split_off(end + 1);
        let whole = std::mem::replace(&mut self.unread, rest);
        for line in whole[..end].split(|byte| *byte == b'\n') {
            if let Some(line) = self.rejoin.push(parse_record(line)?) {
                self.ready.push_back(line);
            }
        }
        Ok(())
    }

    /// conmon has started the log again in a new file at the same path.
    async fn replaced(&self) -> Result<bool> {
        let context = || format!("looking at the log {}", self.path.display());
        let open = self.file.metadata().await.map_err(io(context()))?;
        match tokio::fs::metadata(&self.path).await {
            Ok(now) => Ok((now.dev(), now.ino()) != (open.dev(), open.ino())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(io(context())(err)),
        }
    }

    /// The end: lines left unended are given as they are; a record cut short is an error when
    /// the writer is done (while it writes, it is the record being written).
    fn finish(&mut self) -> Result<()> {
        self.done = true;
        if self.follow.is_some() && !self.unread.is_empty() {
            return Err(malformed(&self.unread, "the log ends inside a record"));
        }
        let unended: Vec<LogLine> = self.rejoin.flush().collect();
        self.ready.extend(unended);
        Ok(())
    }
}

#[async_trait]
impl LogReader for K8sFileReader {
    async fn next_line(&mut self) -> Result<Option<LogLine>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.done {
                return Ok(None);
            }
            let read =
                self.file.read(&mut chunk).await.map_err(io(format!("reading the log {}", self.path.display())))?;
            if read > 0 {
                self.take(&chunk[..read])?;
                continue;
            }
            if self.replaced().await? {
                let file =
                    tokio::fs::File::open(&self.path).await.map_err(io(format!("opening {}", self.path.display())))?;
                self.file = file;
                self.unread.clear();
                continue;
            }
            match &mut self.follow {
                Some(follow) if !follow.ending => follow.wait().await?,
                _ => self.finish()?,
            }
        }
    }
}

impl Follow {
    /// Watches the log's directory and the exit directory.
    fn watching(log: &Path, files: ContainerFiles, conmon: Option<Process>) -> Result<Self> {
        let context = || format!("watching the log {} and the exit file {}", log.display(), files.exit_file.display());
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|errno| Error::Io { context: context(), source: errno.into() })?;
        let log_dir = log.parent().unwrap_or(Path::new("/"));
        let exit_dir = files.exit_file.parent().unwrap_or(Path::new("/"));
        let changes = AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE;
        // Both with the same flags: one directory given twice is one watch, with these flags.
        for dir in [log_dir, exit_dir] {
            inotify.add_watch(dir, changes).map_err(|errno| Error::Io { context: context(), source: errno.into() })?;
        }
        // SAFETY: the inotify descriptor is owned by `Watch`, which the `AsyncFd` owns: it stays
        // open, under the same number, until the `AsyncFd` is dropped.
        let events = unsafe { AsyncFd::register_with_interest(Watch(inotify), Interest::READABLE) }
            .map_err(|err| Error::Io { context: context(), source: err.into_parts().1 })?;
        let ending = conmon.is_none();
        Ok(Follow { events, files, conmon, ending })
    }

    /// Waits until the log or the exit directory changed, or conmon ended; notes the end.
    async fn wait(&mut self) -> Result<()> {
        if self.files.recorded_exit()?.is_some() {
            self.ending = true;
            return Ok(());
        }
        let context = || format!("watching for the end of {}", self.files.exit_file.display());
        let changed = async {
            loop {
                let mut ready =
                    self.events.readable().await.map_err(|source| Error::Io { context: context(), source })?;
                match ready.get_inner().0.read_events() {
                    Ok(_) => return Ok(()),
                    Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                    Err(errno) => return Err(Error::Io { context: context(), source: errno.into() }),
                }
            }
        };
        let conmon_gone = async {
            match &self.conmon {
                Some(conmon) => conmon.exited().await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            changed = changed => {
                changed?;
                false
            }
            () = conmon_gone => true,
        };
        self.ending |= ended;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// `2016-10-06T00:17:09.669794202` at `offset_hours` east of UTC, written out by hand.
    fn time(nanos: u32, offset_hours: i32) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(offset_hours * 3600).unwrap();
        let naive = NaiveDate::from_ymd_opt(2016, 10, 6).unwrap().and_hms_nano_opt(0, 17, 9, nanos).unwrap();
        offset.from_local_datetime(&naive).unwrap()
    }

    #[test]
    fn a_record_has_its_time_stream_tag_and_content() {
        let record = parse_record(b"2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1").unwrap();
        assert_eq!(
            record,
            Record {
                time: time(669794202, 0),
                stream: OutputStream::Stdout,
                partial: false,
                content: b"The content of the log entry 1",
            }
        );
        let record = parse_record(b"2016-10-06T00:17:09.669794202+02:00 stderr P a piece ").unwrap();
        assert_eq!(
            record,
            Record { time: time(669794202, 2), stream: OutputStream::Stderr, partial: true, content: b"a piece " }
        );
    }

    #[test]
    fn an_empty_line_is_a_record_with_no_content() {
        let record = parse_record(b"2016-10-06T00:17:09.669794202Z stdout F ").unwrap();
        assert_eq!(record.content, b"");
        assert!(!record.partial);
    }

    #[test]
    fn what_is_not_a_record_is_a_parse_error() {
        for line in [
            &b""[..],
            b"2016-10-06T00:17:09.669794202Z stdout",
            b"yesterday stdout F text",
            b"2016-10-06T00:17:09.669794202Z stdin F text",
            b"2016-10-06T00:17:09.669794202Z stdout X text",
        ] {
            assert!(matches!(parse_record(line), Err(Error::Parse { .. })), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn pieces_are_rejoined_per_stream_even_when_the_streams_interleave() {
        let mut rejoin = Rejoin::default();
        let lines: Vec<&[u8]> = vec![
            b"2016-10-06T00:17:09.000000001Z stdout P First piece, ",
            b"2016-10-06T00:17:09.000000002Z stderr F an error",
            b"2016-10-06T00:17:09.000000003Z stdout P second piece, ",
            b"2016-10-06T00:17:09.000000004Z stdout F last piece",
            b"2016-10-06T00:17:09.000000005Z stderr P left without a newline",
        ];
        let mut ended = Vec::new();
        for line in lines {
            ended.extend(rejoin.push(parse_record(line).unwrap()));
        }
        let stderr =
            LogLine { time: time(2, 0), stream: OutputStream::Stderr, text: b"an error".to_vec(), complete: true };
        let stdout = LogLine {
            time: time(1, 0),
            stream: OutputStream::Stdout,
            text: b"First piece, second piece, last piece".to_vec(),
            complete: true,
        };
        assert_eq!(ended, vec![stderr, stdout]);
        let unended: Vec<_> = rejoin.flush().collect();
        let left = LogLine {
            time: time(5, 0),
            stream: OutputStream::Stderr,
            text: b"left without a newline".to_vec(),
            complete: false,
        };
        assert_eq!(unended, vec![left]);
    }

    async fn all(reader: &mut K8sFileReader) -> Vec<(OutputStream, String, bool)> {
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push((line.stream, String::from_utf8(line.text).unwrap(), line.complete));
        }
        lines
    }

    #[tokio::test]
    async fn reading_without_following_ends_at_what_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        std::fs::write(
            &log,
            "2016-10-06T00:17:09.669794202Z stdout F one\n\
             2016-10-06T00:17:09.669794203Z stderr F two\n\
             2016-10-06T00:17:09.669794204Z stdout P thr\n\
             2016-10-06T00:17:09.669794205Z stdout F ee\n\
             2016-10-06T00:17:09.669794206Z stdout P still being wri\n\
             2016-10-06T00:17:09.6697942",
        )
        .unwrap();
        let mut reader = K8sFileReader::open(&log, None).unwrap();
        assert_eq!(
            all(&mut reader).await,
            vec![
                (OutputStream::Stdout, "one".into(), true),
                (OutputStream::Stderr, "two".into(), true),
                (OutputStream::Stdout, "three".into(), true),
                (OutputStream::Stdout, "still being wri".into(), false),
            ]
        );
    }

    #[tokio::test]
    async fn following_yields_lines_as_they_are_written_and_ends_after_the_exit_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: dir.path().join("exits/c1"), dir: dir.path().join("c1") };
        std::fs::create_dir_all(dir.path().join("exits")).unwrap();
        std::fs::create_dir_all(&files.dir).unwrap();
        let log = files.dir.join("ctr.log");
        let mut writer = std::fs::File::create(&log).unwrap();
        // A live process stands in for conmon: only the exit file ends the reading.
        let alive = Process::open(std::process::id()).unwrap();
        let mut reader = K8sFileReader::open(&log, Some((files.clone(), alive))).unwrap();

        writer.write_all(b"2016-10-06T00:17:09.669794202Z stdout F first\n").unwrap();
        let first = reader.next_line().await.unwrap().unwrap();
        assert_eq!(first.text, b"first");
        let next = tokio::spawn(async move {
            let second = reader.next_line().await.unwrap();
            (reader, second)
        });
        writer.write_all(b"2016-10-06T00:17:09.669794203Z stderr F second\n").unwrap();
        let (mut reader, second) = next.await.unwrap();
        assert_eq!(second.map(|line| (line.stream, line.text)), Some((OutputStream::Stderr, b"second".to_vec())));

        writer.write_all(b"2016-10-06T00:17:09.669794204Z stdout F last\n").unwrap();
        std::fs::write(&files.exit_file, "0").unwrap();
        assert_eq!(all(&mut reader).await, vec![(OutputStream::Stdout, "last".into(), true)]);
    }

    #[tokio::test]
    async fn following_goes_on_in_the_new_file_when_the_log_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: dir.path().join("exits/c1"), dir: dir.path().join("c1") };
        std::fs::create_dir_all(dir.path().join("exits")).unwrap();
        std::fs::create_dir_all(&files.dir).unwrap();
        let log = files.dir.join("ctr.log");
        std::fs::write(&log, "2016-10-06T00:17:09.669794202Z stdout F old\n").unwrap();
        let alive = Process::open(std::process::id()).unwrap();
        let mut reader = K8sFileReader::open(&log, Some((files.clone(), alive))).unwrap();
        assert_eq!(reader.next_line().await.unwrap().unwrap().text, b"old");
        // As conmon does: a new file, renamed over the old one.
        let new = files.dir.join("ctr.log.tmp");
        std::fs::write(&new, "2016-10-06T00:17:09.669794203Z stdout F new\n").unwrap();
        std::fs::rename(&new, &log).unwrap();
        std::fs::write(&files.exit_file, "0").unwrap();
        assert_eq!(all(&mut reader).await, vec![(OutputStream::Stdout, "new".into(), true)]);
    }

    #[tokio::test]
    async fn a_followed_log_that_ends_inside_a_record_is_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = ContainerFiles { exit_file: dir.path().join("exit"), dir: dir.path().to_path_buf() };
        let log = dir.path().join("ctr.log");
        std::fs::write(&log, "2016-10-06T00:17:09.669794202Z stdout F cut sh").unwrap();
        std::fs::write(&files.exit_file, "0").unwrap();
        let mut reader = K8sFileReader::open(&log, Some((files, None))).unwrap();
        assert!(matches!(reader.next_line().await, Err(Error::Parse { .. })));
    }
}
