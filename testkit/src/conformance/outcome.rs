//! What a run of the suite says about each cell (backend × monitor × privilege × case), as data: the test
//! binaries turn it into libtest's lines and `cargo xtask matrix` into its table and JSON, so no
//! program reads another's text.
//!
//! Four outcomes, never folded into one another: a pass, a failure with its evidence, a skip
//! with the reason the case could not run here, and a deviation: a real runtime's known,
//! documented departure from the spec, listed in [`DEVIATIONS`] with the spec line it departs
//! from. A deviation is never counted as a pass, and only a case's [`Departure`] that a table
//! entry lists makes one: any other failure of the case, and a departure the table does not
//! list, stays a failure.

use serde::{Deserialize, Serialize};

use crate::harness::{CaseResult, Ran};

/// The monitor a cell's case runs under; backend-only cases have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    /// The embedding process itself (`DirectMonitor`).
    Direct,
    /// conmon (`ConmonMonitor`): the real one over a real runtime, the fake one over a fake.
    Conmon,
}

impl Monitor {
    /// Its name in test names and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Monitor::Direct => "direct",
            Monitor::Conmon => "conmon",
        }
    }
}

/// Whom a cell's case runs as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Root, as the test binary or `cargo xtask matrix` itself runs.
    #[default]
    Rootful,
    /// The unprivileged user `cargo xtask setup` makes ([`crate::rootless`]).
    Rootless,
}

impl Privilege {
    /// Its name in test names and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Privilege::Rootful => "rootful",
            Privilege::Rootless => "rootless",
        }
    }
}

/// One cell of the matrix: a case against a backend under a monitor (or none), as root or as
/// the unprivileged user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cell {
    /// The subject's label (`runc`, `runc-fake`, `plugin-fake`).
    pub backend: String,
    /// The monitor, `None` for the backend's own cases.
    pub monitor: Option<Monitor>,
    /// Whom the case runs as.
    pub privilege: Privilege,
    /// The case's name.
    pub case: String,
}

impl Cell {
    /// The libtest name, which `cargo test` filters match:
    /// `conformance::<backend>[+<monitor>][+rootless]::<case>` (a rootful cell's name does not
    /// say so).
    pub fn test_name(&self) -> String {
        let mut column = self.backend.clone();
        if let Some(monitor) = self.monitor {
            column.push('+');
            column.push_str(monitor.label());
        }
        if self.privilege == Privilege::Rootless {
            column.push_str("+rootless");
        }
        format!("conformance::{column}::{}", self.case)
    }
}

/// How one cell ended (read back from JSON when the user's copy of the program ran it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// An assertion did not hold, or the case could not run where it must.
    Fail {
        /// What went wrong, with its causes.
        evidence: String,
    },
    /// The case could not run here.
    Skip {
        /// Why, and how to make it run where that is ours to say.
        reason: String,
    },
    /// A documented departure of the runtime from the spec (an entry of [`DEVIATIONS`]).
    Deviation {
        /// The spec line the runtime departs from.
        spec: String,
        /// What the runtime does instead.
        does: String,
    },
}

/// What a case returns (as its error) when the runtime does what the spec line it checks
/// forbids: what the runtime did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure(pub String);

impl std::fmt::Display for Departure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the runtime departs from the spec: {}", self.0)
    }
}

impl std::error::Error for Departure {}

/// A known departure of a real runtime from the spec: the case that meets it fails on that
/// runtime, for the reason the entry gives. It holds for the runtime's fake too, which imitates
/// the runtime (the differential tests hold each fake to its runtime), and for any backend
/// over either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDeviation {
    /// The runtime (`runc`).
    pub runtime: &'static str,
    /// The case that meets it.
    pub case: &'static str,
    /// The spec line it departs from.
    pub spec: &'static str,
    /// What the runtime does instead, as checked on the runtime itself.
    pub does: &'static str,
}

/// The departures of the real runtimes from the spec that the suite meets. Each entry is one a
/// run of the runtime here showed (runc 1.1.5, crun 1.8.1, youki 0.7.0); none is listed on
/// hearsay.
pub const DEVIATIONS: &[KnownDeviation] = &[
    KnownDeviation {
        runtime: "runc",
        case: "delete_of_a_created_container_is_refused",
        spec: super::cases::DELETE_OF_A_CREATED_CONTAINER,
        does: "`runc delete` without --force deletes a created container (exit 0), killing its init",
    },
    KnownDeviation {
        runtime: "crun",
        case: "delete_of_a_created_container_is_refused",
        spec: super::cases::DELETE_OF_A_CREATED_CONTAINER,
        does: "`crun delete` without --force deletes a created container (exit 0), killing its init",
    },
    KnownDeviation {
        runtime: "youki",
        case: "delete_of_a_created_container_is_refused",
        spec: super::cases::DELETE_OF_A_CREATED_CONTAINER,
        does: "`youki delete` without --force deletes a created container (exit 0), killing its init",
    },
];

impl Outcome {
    /// The outcome of `case` against `runtime` (the runtime a subject is or imitates) given what
    /// the case returned: a failure is a deviation only when it is the case's [`Departure`] and
    /// `deviations` lists the runtime and the case.
    pub fn of(runtime: &str, case: &str, result: CaseResult, deviations: &[KnownDeviation]) -> Outcome {
        match result {
            Ok(Ran::Passed) => Outcome::Pass,
            Ok(Ran::Skipped(reason)) => Outcome::Skip { reason },
            Err(err) => {
                let known = deviations.iter().find(|known| known.runtime == runtime && known.case == case);
                match known.filter(|_| err.downcast_ref::<Departure>().is_some()) {
                    Some(known) => Outcome::Deviation { spec: known.spec.to_owned(), does: known.does.to_owned() },
                    None => Outcome::Fail { evidence: format!("{err:#}") },
                }
            }
        }
    }

    /// True for [`Outcome::Fail`].
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Fail { .. })
    }
}

/// How many cells ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passes.
    pub passed: usize,
    /// Failures.
    pub failed: usize,
    /// Skips.
    pub skipped: usize,
    /// Deviations.
    pub deviations: usize,
}

impl Totals {
    /// The counts of `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Totals {
        let mut totals = Totals::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Pass => totals.passed += 1,
                Outcome::Fail { .. } => totals.failed += 1,
                Outcome::Skip { .. } => totals.skipped += 1,
                Outcome::Deviation { .. } => totals.deviations += 1,
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_DELETES_CREATED: KnownDeviation = KnownDeviation {
        runtime: "runc",
        case: "delete_of_a_created_container_is_refused",
        spec: "runtime.md#delete: attempting to delete a container that is not stopped MUST generate an error",
        does: "deletes a created container without --force",
    };

    fn departed() -> anyhow::Error {
        Departure("delete succeeded".into()).into()
    }

    #[test]
    fn a_listed_departure_is_a_deviation_with_the_entry_s_words() {
        let outcome =
            Outcome::of("runc", "delete_of_a_created_container_is_refused", Err(departed()), &[RUNC_DELETES_CREATED]);
        assert_eq!(
            outcome,
            Outcome::Deviation {
                spec: "runtime.md#delete: attempting to delete a container that is not stopped MUST generate an error"
                    .into(),
                does: "deletes a created container without --force".into()
            }
        );
    }

    #[test]
    fn a_departure_the_table_does_not_list_stays_a_failure() {
        let table = [RUNC_DELETES_CREATED];
        let fail = |runtime, case| Outcome::of(runtime, case, Err(departed()), &table);
        let evidence = "the runtime departs from the spec: delete succeeded";
        let failed = Outcome::Fail { evidence: evidence.into() };
        assert_eq!(fail("crun", "delete_of_a_created_container_is_refused"), failed, "another runtime");
        assert_eq!(fail("runc", "unknown_id_is_not_found"), failed, "another case");
    }

    #[test]
    fn any_other_failure_of_a_listed_case_stays_a_failure() {
        let outcome = Outcome::of(
            "runc",
            "delete_of_a_created_container_is_refused",
            Err(anyhow::anyhow!("create: exit status 1")),
            &[RUNC_DELETES_CREATED],
        );
        assert_eq!(outcome, Outcome::Fail { evidence: "create: exit status 1".into() });
    }

    #[test]
    fn a_listed_case_that_passes_or_skips_is_no_deviation() {
        let table = [RUNC_DELETES_CREATED];
        let case = "delete_of_a_created_container_is_refused";
        assert_eq!(Outcome::of("runc", case, Ok(Ran::Passed), &table), Outcome::Pass);
        assert_eq!(
            Outcome::of("runc", case, Ok(Ran::Skipped("no busybox".into())), &table),
            Outcome::Skip { reason: "no busybox".into() }
        );
    }

    #[test]
    fn evidence_keeps_every_cause() {
        let err = anyhow::anyhow!("exit status 1").context("delete");
        assert_eq!(Outcome::of("runc", "x", Err(err), &[]), Outcome::Fail { evidence: "delete: exit status 1".into() });
    }

    #[test]
    fn totals_count_deviations_apart_from_passes() {
        let outcomes = [
            Outcome::Pass,
            Outcome::Pass,
            Outcome::Fail { evidence: "e".into() },
            Outcome::Skip { reason: "r".into() },
            Outcome::Deviation { spec: "s".into(), does: "d".into() },
        ];
        assert_eq!(Totals::of(&outcomes), Totals { passed: 2, failed: 1, skipped: 1, deviations: 1 });
    }

    #[test]
    fn test_names_put_the_monitor_after_the_backend() {
        let cell =
            |monitor| Cell { backend: "runc-fake".into(), monitor, privilege: Privilege::Rootful, case: "list".into() };
        assert_eq!(cell(None).test_name(), "conformance::runc-fake::list");
        assert_eq!(cell(Some(Monitor::Direct)).test_name(), "conformance::runc-fake+direct::list");
        assert_eq!(cell(Some(Monitor::Conmon)).test_name(), "conformance::runc-fake+conmon::list");
    }

    #[test]
    fn a_rootless_cell_s_test_name_says_so_after_its_monitor() {
        let cell =
            |monitor| Cell { backend: "runc".into(), monitor, privilege: Privilege::Rootless, case: "exec".into() };
        assert_eq!(cell(Some(Monitor::Direct)).test_name(), "conformance::runc+direct+rootless::exec");
        assert_eq!(cell(Some(Monitor::Conmon)).test_name(), "conformance::runc+conmon+rootless::exec");
    }

    #[test]
    fn a_cell_serialises_its_privilege_in_lowercase() {
        let cell = Cell {
            backend: "crun".into(),
            monitor: Some(Monitor::Conmon),
            privilege: Privilege::Rootless,
            case: "stop".into(),
        };
        assert_eq!(
            serde_json::to_string(&cell).unwrap(),
            r#"{"backend":"crun","monitor":"conmon","privilege":"rootless","case":"stop"}"#
        );
    }

    #[test]
    fn an_outcome_reads_back_as_written() {
        let outcomes = [
            Outcome::Pass,
            Outcome::Fail { evidence: "e".into() },
            Outcome::Skip { reason: "r".into() },
            Outcome::Deviation { spec: "s".into(), does: "d".into() },
        ];
        for outcome in outcomes {
            let text = serde_json::to_string(&outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome, "{text}");
        }
    }

    #[test]
    fn outcomes_serialise_with_their_kind_and_fields() {
        let json = |outcome: &Outcome| serde_json::to_string(outcome).unwrap();
        assert_eq!(json(&Outcome::Pass), r#"{"outcome":"pass"}"#);
        assert_eq!(json(&Outcome::Fail { evidence: "e".into() }), r#"{"outcome":"fail","evidence":"e"}"#);
        assert_eq!(json(&Outcome::Skip { reason: "r".into() }), r#"{"outcome":"skip","reason":"r"}"#);
        assert_eq!(
            json(&Outcome::Deviation { spec: "s".into(), does: "d".into() }),
            r#"{"outcome":"deviation","spec":"s","does":"d"}"#
        );
    }
}
