//! `ConmonMonitor`: containers supervised by conmon, so they outlive the calling process.
//!
//! This crate will own everything conmon needs from us: its argv (built from what the backend
//! reports — binary, global args — never hard-coded runtime flags), the sync and start pipes
//! passed as fds 3 and 4, the exit and OOM files under the state root, the attach socket and
//! logs, exec and restore through conmon, and reserved ports. It implements
//! `runtime_core::Monitor` once that work lands; until then it exports nothing.
