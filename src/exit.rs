//! The exit codes rd-chain documents: one table, from which `--help`'s EXIT CODES section is generated and
//! against which a test checks README.md and docs/usage.md. One place, so they cannot drift.

use crate::signals::{SIGHUP, SIGINT, SIGTERM};

/// Everything asked for was done.
pub const OK: u8 = 0;
/// A bug or an unexpected I/O failure in rd-chain itself.
pub const INTERNAL: u8 = 1;
/// The command line or an environment variable is wrong.
pub const USAGE: u8 = 2;
/// The SOTA factor workspace (or the SOTA model asked for) could not be resolved (no snapshot, no accepted
/// experiment of that kind, no parquet).
pub const RESOLUTION: u8 = 3;
/// The `rdagent` program was not found or is not executable.
pub const RDAGENT_MISSING: u8 = 4;
/// Another rd-chain is running the same run (it holds the run's lock).
pub const BUSY: u8 = 5;
/// rd-chain was interrupted with Ctrl-C (SIGINT).
pub const INTERRUPTED: u8 = for_signal(SIGINT);
/// rd-chain was terminated (SIGTERM).
pub const TERMINATED: u8 = for_signal(SIGTERM);
/// rd-chain's terminal hung up (SIGHUP).
pub const HUNG_UP: u8 = for_signal(SIGHUP);

/// The code for a child killed by signal `n` (128 + n, as shells report it).
pub const fn for_signal(n: i32) -> u8 {
    let code = 128 + n;
    if code < 0 {
        0
    } else if code > 255 {
        255
    } else {
        code as u8
    }
}

/// A documented exit code: a number, or a family (`N`, `128+N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Fixed(u8),
    /// A failed phase's own exit code.
    PhaseOwn,
    /// 128 + the number of the signal that killed rdagent.
    Signal,
}

impl Code {
    /// As the docs write it: `3`, `N`, `128+N`.
    pub fn spelled(self) -> String {
        match self {
            Code::Fixed(n) => n.to_string(),
            Code::PhaseOwn => "N".to_string(),
            Code::Signal => "128+N".to_string(),
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Documented {
    pub code: Code,
    pub name: &'static str,
    pub meaning: &'static str,
}

/// Every exit code rd-chain documents, in the order the docs list them.
pub const TABLE: &[Documented] = &[
    Documented {
        code: Code::Fixed(OK),
        name: "ok",
        meaning: "everything asked for was done",
    },
    Documented {
        code: Code::Fixed(INTERNAL),
        name: "internal error",
        meaning: "a bug, or an I/O failure on rd-chain's own files or stdout",
    },
    Documented {
        code: Code::Fixed(USAGE),
        name: "usage",
        meaning:
            "a flag or environment variable is wrong, or the log root or hook dir is not usable",
    },
    Documented {
        code: Code::Fixed(RESOLUTION),
        name: "SOTA resolution failed",
        meaning: "the SOTA factor workspace (or model asked for) could not be resolved",
    },
    Documented {
        code: Code::Fixed(RDAGENT_MISSING),
        name: "rdagent missing",
        meaning: "rdagent is missing or not executable",
    },
    Documented {
        code: Code::Fixed(BUSY),
        name: "run busy",
        meaning: "another rd-chain is running the same run id (it holds <log root>/rd-chain/<run id>.lock)",
    },
    Documented {
        code: Code::PhaseOwn,
        name: "phase failed",
        meaning: "a phase failed with exit code N (the chain stops there)",
    },
    Documented {
        code: Code::Signal,
        name: "rdagent killed",
        meaning: "rdagent was killed by signal N",
    },
    Documented {
        code: Code::Fixed(INTERRUPTED),
        name: "interrupted",
        meaning: "rd-chain was interrupted (Ctrl-C, SIGINT)",
    },
    Documented {
        code: Code::Fixed(TERMINATED),
        name: "terminated",
        meaning: "rd-chain was terminated (SIGTERM)",
    },
    Documented {
        code: Code::Fixed(HUNG_UP),
        name: "hung up",
        meaning: "rd-chain's terminal hung up (SIGHUP)",
    },
];

/// `--help`'s EXIT CODES section body: one `code  name: meaning` line per row, indented by four spaces.
pub fn help_section() -> String {
    TABLE
        .iter()
        .map(|d| format!("    {:<6} {}: {}\n", d.code.spelled(), d.name, d.meaning))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str) -> String {
        std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Every number or `N`/`128+N` standing as a whole word in `text`.
    fn codes_in(text: &str) -> Vec<String> {
        let mut found: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+'))
            .filter(|w| {
                *w == "N"
                    || *w == "128+N"
                    || (!w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(str::to_string)
            .collect();
        found.sort();
        found.dedup();
        found
    }

    fn table_codes() -> Vec<String> {
        let mut codes: Vec<String> = TABLE.iter().map(|d| d.code.spelled()).collect();
        codes.sort();
        codes
    }

    #[test]
    fn the_signal_codes_are_128_plus_the_signal() {
        assert_eq!((INTERRUPTED, TERMINATED, HUNG_UP), (130, 143, 129));
        assert_eq!(for_signal(9), 137);
        assert_eq!(for_signal(200), 255);
    }

    #[test]
    fn readme_and_usage_list_the_same_codes_as_the_table() {
        // docs/usage.md: the rows of the table under "## Signals and exit codes".
        let usage = doc("docs/usage.md");
        let section = usage
            .split("## Signals and exit codes")
            .nth(1)
            .expect("docs/usage.md has a Signals and exit codes section");
        let section = section.split("\n## ").next().unwrap();
        let mut rows: Vec<String> = Vec::new();
        for line in section.lines().filter(|l| l.starts_with("| ")) {
            let first = line.split('|').nth(1).unwrap().trim();
            if first != "code" {
                rows.extend(first.split(" / ").map(str::to_string));
            }
        }
        rows.sort();
        assert_eq!(rows, table_codes(), "docs/usage.md");

        // README.md: the "Exit codes:" paragraph.
        let readme = doc("README.md");
        let start = readme
            .find("Exit codes:")
            .expect("README.md has an Exit codes paragraph");
        let paragraph = readme[start..].split("\n\n").next().unwrap();
        assert_eq!(codes_in(paragraph), {
            let mut c = table_codes();
            c.sort();
            c
        });
        assert_eq!(
            codes_in(&help_section()),
            {
                let mut c = table_codes();
                c.sort();
                c
            },
            "--help"
        );
    }
}
