//! What an attached client read, by stream: shared by the test binaries that attach (to a
//! container or to an exec's terminal), each including it beside `support` with
//! `#[path = "support/received.rs"] mod received;`.

use std::time::Duration;

use anyhow::Context;
use runtime_core::{AttachedStdio, OutputStream};

/// How long one read may take before the case fails instead of hanging.
const READ_WITHIN: Duration = Duration::from_secs(30);

/// Output an attached client received, by stream, until conmon ended the attachment.
#[derive(Debug, Default)]
pub struct Received {
    pub stdout: String,
    pub stderr: String,
}

impl Received {
    /// Reads until `wanted` says the output so far is enough; false when the attachment ended first.
    pub async fn until(
        &mut self,
        client: &dyn AttachedStdio,
        wanted: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<bool> {
        while !wanted(self) {
            let read = tokio::time::timeout(READ_WITHIN, client.read())
                .await
                .with_context(|| format!("reading the attached output: nothing within {READ_WITHIN:?}"))??;
            let Some(chunk) = read else { return Ok(false) };
            let text = String::from_utf8_lossy(&chunk.bytes);
            match chunk.stream {
                OutputStream::Stdout => self.stdout.push_str(&text),
                OutputStream::Stderr => self.stderr.push_str(&text),
            }
        }
        Ok(true)
    }
}
