//! conmon's sync pipe: what it says about the create it ran.
//!
//! With `--api-version 1` conmon writes newline-framed JSON objects, `{"data": N}` or
//! `{"data": N, "message": "..."}`. For a create the first one is the answer: `data` is the
//! container's init pid, or `-1` with the runtime's own error output as `message`. conmon closes
//! the pipe when it has nothing more to say, or when it dies: end of file without an answer is
//! a failure of its own, never a hang, and anything that is not such an object is refused.
//! A refusal in words the backend calls transient is run again, a bounded number of times
//! ([`Retries`]), each time after the failed attempt is undone.

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use runtime_core::{Error, Failure, OciBackend, Result};

/// How many more times a create, restore or background exec is run through a new conmon after
/// the runtime failed in a way its backend calls transient ([`OciBackend::is_transient`]): such
/// a failure (youki 0.7 failing to seal its own copy) comes before the runtime does anything,
/// and seldom twice in a row.
const TRANSIENT_RETRIES: u32 = 2;

/// The retries left to a call whose runtime conmon runs.
pub(crate) struct Retries(u32);

impl Retries {
    pub(crate) fn new() -> Self {
        Retries(TRANSIENT_RETRIES)
    }

    /// Whether the runtime's `failure`, relayed by conmon, is to be retried (after the failed
    /// attempt is undone): the backend calls it transient and a retry is left, which it takes.
    pub(crate) fn take_for(&mut self, backend: &dyn OciBackend, failure: &Failure) -> bool {
        if self.0 == 0 || !backend.is_transient(failure) {
            return false;
        }
        self.0 -= 1;
        tracing::info!(message = %failure.message, "transient runtime failure relayed by conmon; trying once more");
        true
    }
}

/// What conmon answered to a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The runtime created the container; its init has this host pid.
    Created(u32),
    /// The runtime refused, in these words (its error output, as conmon read it).
    Refused(String),
}

#[derive(Debug, Deserialize)]
struct Message {
    data: i64,
    #[serde(default)]
    message: Option<String>,
}

/// Reads one framed answer from the sync pipe; `Ok(None)` when conmon closed it first.
pub(crate) async fn read_answer<R: AsyncBufRead + Unpin>(pipe: &mut R) -> Result<Option<Answer>> {
    let mut line = String::new();
    let read = pipe
        .read_line(&mut line)
        .await
        .map_err(|err| Error::Io { context: "reading conmon's sync pipe".into(), source: err })?;
    if read == 0 {
        return Ok(None);
    }
    parse_answer(&line).map(Some)
}

/// One line of the sync pipe, as an answer to a create.
pub(crate) fn parse_answer(line: &str) -> Result<Answer> {
    let what = "conmon's answer on its sync pipe";
    let message: Message = serde_json::from_str(line.trim_end_matches('\n')).map_err(|err| Error::Parse {
        what: what.into(),
        message: format!("{err}; the line was {:?}", excerpt(line)),
        source: Some(Box::new(err)),
    })?;
    match message.data {
        pid if pid > 0 => u32::try_from(pid).map(Answer::Created).map_err(|_| Error::Parse {
            what: what.into(),
            message: format!("{pid} is not a pid"),
            source: None,
        }),
        -1 => Ok(Answer::Refused(message.message.unwrap_or_default())),
        other => Err(Error::Parse {
            what: what.into(),
            message: format!("{other} is neither a pid nor -1 (the runtime failed); the line was {:?}", excerpt(line)),
            source: None,
        }),
    }
}

/// The start of `text`, for messages.
fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What conmon 2.1.6 wrote on this machine for runc 1.1.5: a created container...
    const CREATED: &str = "{\"data\": 32488}\n";
    /// ... and a create of an id runc already had.
    const ID_TAKEN: &str = "{\"data\": -1, \"message\": \"time=\\\"2026-12-03T07:54:03Z\\\" level=error \
        msg=\\\"runc create failed: container with given ID already exists\\\"\\n\"}\n";

    #[test]
    fn a_created_container_is_its_pid() {
        assert_eq!(parse_answer(CREATED).unwrap(), Answer::Created(32488));
    }

    #[test]
    fn a_refusal_keeps_the_runtimes_own_words() {
        assert_eq!(
            parse_answer(ID_TAKEN).unwrap(),
            Answer::Refused(
                "time=\"2026-12-03T07:54:03Z\" level=error msg=\"runc create failed: container with given ID already exists\"\n"
                    .into()
            )
        );
    }

    #[test]
    fn garbage_zero_and_other_negatives_are_refused_as_unreadable() {
        for line in [
            "hello\n",
            "{\"message\": \"no data\"}\n",
            "{\"data\": 0}\n",
            "{\"data\": -2}\n",
            "{\"data\": 99999999999}\n",
        ] {
            assert!(matches!(parse_answer(line), Err(Error::Parse { .. })), "{line:?}");
        }
    }

    #[tokio::test]
    async fn end_of_file_is_no_answer_and_lines_are_read_one_at_a_time() {
        let mut empty: &[u8] = b"";
        assert_eq!(read_answer(&mut empty).await.unwrap(), None);
        let two = format!("{CREATED}{{\"data\": 7}}\n");
        let mut pipe = two.as_bytes();
        assert_eq!(read_answer(&mut pipe).await.unwrap(), Some(Answer::Created(32488)));
        assert_eq!(read_answer(&mut pipe).await.unwrap(), Some(Answer::Created(7)));
        assert_eq!(read_answer(&mut pipe).await.unwrap(), None);
    }
}
