//! What the hook reported from the model phase, read from the file `contract::REPORT_ENV` names. The line
//! format is `contract`'s; this module only counts.

use std::path::Path;

use super::contract;

/// What the hook reported from the model phase: how many processes armed it, how many hand-overs reached
/// RD-Agent's model runner, the shape of the factors handed over, and (USE_ALPHA_FACTORS=false) how often the
/// base features were left out and why the SOTA template cannot train without them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookReport {
    pub armed: usize,
    pub used: usize,
    /// (rows, columns) of the last hand-over.
    pub shape: Option<(u64, u64)>,
    /// Model experiments whose base features the hook left out.
    pub base_features_dropped: usize,
    /// The first reason the hook gave for a SOTA template that cannot train without the base features, as the
    /// hook wrote it (text from a child process: escape it for a terminal with `render::escape_value`).
    pub template_problem: Option<String>,
}

impl HookReport {
    /// Whether the SOTA factors reached RD-Agent's model runner.
    pub fn factors_reached_training(&self) -> bool {
        self.used > 0
    }

    /// Whether, how often and in what shape the SOTA factors reached RD-Agent's model runner, and why not when
    /// they did not: the one wording of the warning, the chain's summary and the report page.
    pub fn outcome(&self) -> String {
        let processes = |n: usize| format!("{n} rdagent process{}", if n == 1 { "" } else { "es" });
        if self.factors_reached_training() {
            let times = match self.used {
                1 => "once".to_string(),
                n => format!("{n} times"),
            };
            let shape = self
                .shape
                .map(|(rows, columns)| format!(" (the last: {rows} rows x {columns} columns)"))
                .unwrap_or_default();
            return format!(
                "rd-chain's hook handed the SOTA factors to RD-Agent's model runner {times}{shape}, armed in {}",
                processes(self.armed)
            );
        }
        let why = if self.armed == 0 {
            format!(
                "it was never armed: no process imported {} with rd-chain's sitecustomize loaded (is site disabled, \
                 e.g. python -S or -I, or PYTHONPATH reset?)",
                contract::TARGET_MODULE
            )
        } else {
            format!(
                "it was armed in {}, but the model runner never developed a model experiment (did every loop fail \
                 before training?)",
                processes(self.armed)
            )
        };
        format!(
            "rd-chain's hook never handed the SOTA factors to RD-Agent's model runner: {why}; the model phase did \
             not train on them"
        )
    }

    /// Read the report the hook appended to (`armed\t<pid>\t<path>`, `used\t<pid>\t<rows>\t<cols>\t<path>`,
    /// `base_features\t<pid>\tdropped\t<n>`, `template\t<pid>\t<reason>`). A missing file means nothing was
    /// reported; lines of other shapes are ignored.
    pub fn read(path: &Path) -> HookReport {
        HookReport::read_from(path, 0)
    }

    /// `read`, counting only the lines after the first `offset` bytes (an earlier attempt's report that this
    /// attempt's hook appends to).
    pub fn read_from(path: &Path, offset: u64) -> HookReport {
        let mut report = HookReport::default();
        let Ok(bytes) = std::fs::read(path) else {
            return report;
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let Ok(text) = std::str::from_utf8(&bytes[start..]) else {
            return report;
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split(contract::REPORT_SEPARATOR).collect();
            match fields.as_slice() {
                [event, _pid, ..] if *event == contract::REPORT_ARMED => report.armed += 1,
                [event, _pid, rows, columns, ..] if *event == contract::REPORT_USED => {
                    report.used += 1;
                    report.shape = rows.parse().ok().zip(columns.parse().ok());
                }
                [event, _pid, what, ..]
                    if *event == contract::REPORT_BASE_FEATURES && *what == "dropped" =>
                {
                    report.base_features_dropped += 1
                }
                [event, _pid, reason @ ..]
                    if *event == contract::REPORT_TEMPLATE
                        && !reason.is_empty()
                        && report.template_problem.is_none() =>
                {
                    report.template_problem = Some(reason.join(" "));
                }
                _ => {}
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_arming_and_hand_overs() {
        let dir = std::env::temp_dir().join(format!("rd-chain-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(contract::REPORT_FILE);
        assert_eq!(
            HookReport::read(&path),
            HookReport::default(),
            "no file: nothing reported"
        );
        std::fs::write(
            &path,
            "armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\ngarbage\nused\t7\t21\t5\t/f.parquet\narmed\t8\n",
        )
        .unwrap();
        let r = HookReport::read(&path);
        assert_eq!((r.armed, r.used, r.shape), (2, 2, Some((21, 5))));
        assert_eq!(
            crate::record::hook_report_json(&r).compact(),
            "{\"armed\":2,\"used\":2,\"rows\":21,\"columns\":5,\"base_features_dropped\":0,\
             \"template_problem\":null}"
        );
        // From an offset: only the lines after it (an earlier attempt's lines come first).
        let earlier = "armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\n";
        std::fs::write(&path, format!("{earlier}armed\t9\t/f.parquet\n")).unwrap();
        let r = HookReport::read_from(&path, earlier.len() as u64);
        assert_eq!((r.armed, r.used, r.shape), (1, 0, None));
        assert_eq!(HookReport::read_from(&path, 0), HookReport::read(&path));
        assert_eq!(
            HookReport::read_from(&path, u64::MAX),
            HookReport::default()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_report_counts_base_features_left_out_and_keeps_the_first_template_problem() {
        let dir =
            std::env::temp_dir().join(format!("rd-chain-report-alpha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(contract::REPORT_FILE);
        std::fs::write(
            &path,
            "armed\t7\t/f.parquet\nbase_features\t7\tdropped\t20\ntemplate\t7\tfirst \x1b[31mreason\n\
             used\t7\t20\t4\t/f.parquet\nbase_features\t7\tdropped\t20\ntemplate\t7\tsecond\n\
             base_features\t8\ttemplate\t9\n",
        )
        .unwrap();
        let r = HookReport::read(&path);
        assert_eq!((r.armed, r.used, r.base_features_dropped), (1, 1, 2));
        assert_eq!(r.template_problem.as_deref(), Some("first \x1b[31mreason"));
        assert_eq!(
            crate::render::escape_value(r.template_problem.as_deref().unwrap()),
            "first \\x1b[31mreason"
        );
        assert_eq!(
            crate::record::hook_report_json(&r).compact(),
            "{\"armed\":1,\"used\":1,\"rows\":20,\"columns\":4,\"base_features_dropped\":2,\
             \"template_problem\":\"first \\u001b[31mreason\"}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_outcome_says_whether_the_factors_reached_training_and_why_not() {
        let used = HookReport {
            armed: 2,
            used: 3,
            shape: Some((245_000, 21)),
            ..HookReport::default()
        };
        assert!(used.factors_reached_training());
        assert_eq!(
            used.outcome(),
            "rd-chain's hook handed the SOTA factors to RD-Agent's model runner 3 times (the last: 245000 rows \
             x 21 columns), armed in 2 rdagent processes"
        );
        let once = HookReport {
            armed: 1,
            used: 1,
            ..HookReport::default()
        };
        assert!(once
            .outcome()
            .ends_with("model runner once, armed in 1 rdagent process"));
        let idle = HookReport {
            armed: 1,
            ..HookReport::default()
        };
        assert!(!idle.factors_reached_training());
        let text = idle.outcome();
        assert!(
            text.starts_with("rd-chain's hook never handed the SOTA factors to RD-Agent's model runner: it was armed in 1 rdagent process, but the model runner never developed")
                && text.ends_with("; the model phase did not train on them"),
            "{text}"
        );
        let never = HookReport::default().outcome();
        assert!(
            never.contains("it was never armed: no process imported")
                && never.contains(contract::TARGET_MODULE)
                && never.contains("PYTHONPATH reset?"),
            "{never}"
        );
    }
}
