//! What a checkpoint leaves behind, read back: CRIU's statistics of a dump or a restore.
//! (Checkpoint archives, for export and import, are to join this module.)

mod stats;

pub use stats::{DumpStatistics, RestoreStatistics};
