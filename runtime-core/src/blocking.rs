//! File and archive work of async calls, run off the caller's executor.
//!
//! An async call that reads or writes files (an archive of hundreds of megabytes, the images
//! of a checkpoint, a spec, a record, a plugin's library) would hold the executor thread for as
//! long as the disk takes; on a `current_thread` runtime every other task stops meanwhile. Such
//! work runs on tokio's blocking pool. It is not cancelled with the call: a dropped call's file
//! work finishes on its own, which it does in bounded time.

use crate::contract::error::{Error, Result};

/// Runs `work` on tokio's blocking pool and returns its result; `what` names it in the error
/// when the pool cannot run it (the runtime is shutting down). A panic in `work` goes on
/// unwinding in the caller.
pub(crate) async fn off_executor<T, F>(what: &str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(Error::io(what, std::io::Error::other(err))),
    }
}
