//! CRIU's statistics: `stats-dump` in a checkpoint's image directory, `stats-restore` in a
//! restore's work directory (the image directory unless told otherwise).
//!
//! Both files are CRIU images: two little-endian `u32` magics (the image class, then `STATS`),
//! a `u32` length, and one protobuf `stats_entry` message of that length. The message is
//! decoded with `prost` from the schema CRIU publishes in `images/stats.proto` (proto2; the
//! fields kept here are the ones every CRIU from 3.x writes). Times are CRIU's microseconds.

use std::path::Path;
use std::time::Duration;

use crate::contract::error::{Error, Result};

/// The magic of CRIU's service images (stats among them), the first word of the file.
const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
/// The magic of a statistics image, the second word.
const STATS_MAGIC: u32 = 0x5709_3306;

/// `dump_stats_entry` of CRIU's `images/stats.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct DumpStatsEntry {
    #[prost(uint32, required, tag = "1")]
    freezing_time: u32,
    #[prost(uint32, required, tag = "2")]
    frozen_time: u32,
    #[prost(uint32, required, tag = "3")]
    memdump_time: u32,
    #[prost(uint32, required, tag = "4")]
    memwrite_time: u32,
    #[prost(uint64, required, tag = "5")]
    pages_scanned: u64,
    #[prost(uint64, required, tag = "6")]
    pages_skipped_parent: u64,
    #[prost(uint64, required, tag = "7")]
    pages_written: u64,
    #[prost(uint64, required, tag = "9")]
    pages_lazy: u64,
}

/// `restore_stats_entry` of CRIU's `images/stats.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct RestoreStatsEntry {
    #[prost(uint64, required, tag = "1")]
    pages_compared: u64,
    #[prost(uint64, required, tag = "2")]
    pages_skipped_cow: u64,
    #[prost(uint32, required, tag = "3")]
    forking_time: u32,
    #[prost(uint32, required, tag = "4")]
    restore_time: u32,
    #[prost(uint64, optional, tag = "5")]
    pages_restored: Option<u64>,
}

/// `stats_entry`: one of the two, by where it was written.
#[derive(Clone, PartialEq, prost::Message)]
struct StatsEntry {
    #[prost(message, optional, tag = "1")]
    dump: Option<DumpStatsEntry>,
    #[prost(message, optional, tag = "2")]
    restore: Option<RestoreStatsEntry>,
}

/// How a dump went, as CRIU measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpStatistics {
    /// Time spent freezing the container's processes.
    pub freezing_time: Duration,
    /// Time the processes stayed frozen.
    pub frozen_time: Duration,
    /// Time spent collecting memory.
    pub memdump_time: Duration,
    /// Time spent writing memory to the images.
    pub memwrite_time: Duration,
    /// Memory pages looked at.
    pub pages_scanned: u64,
    /// Pages left out because the parent (pre-)dump already holds them unchanged.
    pub pages_skipped_parent: u64,
    /// Pages written to this image.
    pub pages_written: u64,
    /// Pages left to be served lazily.
    pub pages_lazy: u64,
}

/// How a restore went, as CRIU measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreStatistics {
    /// Pages compared with the parent image.
    pub pages_compared: u64,
    /// Pages shared copy-on-write instead of copied.
    pub pages_skipped_cow: u64,
    /// Time spent recreating the process tree.
    pub forking_time: Duration,
    /// Time the whole restore took.
    pub restore_time: Duration,
    /// Pages restored, where this CRIU counts them.
    pub pages_restored: Option<u64>,
}

fn micros(value: u32) -> Duration {
    Duration::from_micros(u64::from(value))
}

impl DumpStatistics {
    /// Reads `stats-dump` from a checkpoint's image directory.
    pub fn read(image_dir: &Path) -> Result<Self> {
        let path = image_dir.join("stats-dump");
        let entry = read_entry(&path)?
            .dump
            .ok_or_else(|| Error::parse(format!("CRIU statistics {}", path.display()), "no dump statistics in it"))?;
        Ok(DumpStatistics {
            freezing_time: micros(entry.freezing_time),
            frozen_time: micros(entry.frozen_time),
            memdump_time: micros(entry.memdump_time),
            memwrite_time: micros(entry.memwrite_time),
            pages_scanned: entry.pages_scanned,
            pages_skipped_parent: entry.pages_skipped_parent,
            pages_written: entry.pages_written,
            pages_lazy: entry.pages_lazy,
        })
    }
}

impl RestoreStatistics {
    /// Reads `stats-restore` from a restore's work directory.
    pub fn read(work_dir: &Path) -> Result<Self> {
        let path = work_dir.join("stats-restore");
        let entry = read_entry(&path)?.restore.ok_or_else(|| {
            Error::parse(format!("CRIU statistics {}", path.display()), "no restore statistics in it")
        })?;
        Ok(RestoreStatistics {
            pages_compared: entry.pages_compared,
            pages_skipped_cow: entry.pages_skipped_cow,
            forking_time: micros(entry.forking_time),
            restore_time: micros(entry.restore_time),
            pages_restored: entry.pages_restored,
        })
    }
}

/// The one `stats_entry` of a CRIU statistics image.
fn read_entry(path: &Path) -> Result<StatsEntry> {
    use prost::Message;
    let what = || format!("CRIU statistics {}", path.display());
    let bytes = std::fs::read(path).map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match (word(0), word(4)) {
        (Some(IMG_SERVICE_MAGIC), Some(STATS_MAGIC)) => {}
        (first, second) => {
            return Err(Error::parse(what(), format!("not a CRIU statistics image (magics {first:x?}, {second:x?})")));
        }
    }
    let length = word(8).ok_or_else(|| Error::parse(what(), "it ends before the entry's length"))? as usize;
    let entry = bytes
        .get(12..12 + length)
        .ok_or_else(|| Error::parse(what(), format!("it ends before the {length} bytes its entry needs")))?;
    StatsEntry::decode(entry).map_err(|err| Error::parse_failed(what(), err, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures are `stats-dump` and `stats-restore` of a real `runc checkpoint` and
    /// `runc restore` of a busybox `sleep` with CRIU 4.1.1; the expected values were read from
    /// them with `protoc --decode_raw` at capture time.
    fn fixture_dir(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("criu-4.1.1-{name}"));
        std::fs::copy(source, dir.path().join(name)).unwrap();
        dir
    }

    #[test]
    fn a_real_dump_s_statistics_are_read() {
        let dir = fixture_dir("stats-dump");
        let stats = DumpStatistics::read(dir.path()).unwrap();
        assert_eq!(
            stats,
            DumpStatistics {
                freezing_time: Duration::from_micros(642),
                frozen_time: Duration::from_micros(125_382),
                memdump_time: Duration::from_micros(852),
                memwrite_time: Duration::from_micros(160),
                pages_scanned: 22,
                pages_skipped_parent: 0,
                pages_written: 15,
                pages_lazy: 0,
            }
        );
    }

    #[test]
    fn a_real_restore_s_statistics_are_read() {
        let dir = fixture_dir("stats-restore");
        let stats = RestoreStatistics::read(dir.path()).unwrap();
        assert_eq!(
            stats,
            RestoreStatistics {
                pages_compared: 0,
                pages_skipped_cow: 0,
                forking_time: Duration::from_micros(3),
                restore_time: Duration::from_micros(145_891),
                pages_restored: Some(15),
            }
        );
    }

    #[test]
    fn the_wrong_image_or_a_cut_one_is_a_parse_error() {
        let dir = fixture_dir("stats-dump");
        let path = dir.path().join("stats-dump");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(dir.path().join("stats-restore"), &bytes).unwrap();
        assert!(matches!(RestoreStatistics::read(dir.path()), Err(Error::Parse { .. })), "a dump is not a restore");
        std::fs::write(dir.path().join("stats-dump"), &bytes[..bytes.len() - 5]).unwrap();
        assert!(matches!(DumpStatistics::read(dir.path()), Err(Error::Parse { .. })), "cut");
        let mut other = bytes.clone();
        other[4] ^= 0xff;
        std::fs::write(&path, other).unwrap();
        assert!(matches!(DumpStatistics::read(dir.path()), Err(Error::Parse { .. })), "another image class");
        assert!(matches!(DumpStatistics::read(Path::new("/nonexistent")), Err(Error::Io { .. })));
    }
}
