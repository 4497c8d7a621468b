//! What the hook reported from the model phase, read from the file `contract::REPORT_ENV` names. The line
//! format is `contract`'s; this module only counts.

use std::path::Path;

use super::contract;

/// What the hook reported from the model phase: how many processes armed it, how many hand-overs reached
/// RD-Agent's model runner, and the shape of the factors handed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookReport {
    pub armed: usize,
    pub used: usize,
    /// (rows, columns) of the last hand-over.
    pub shape: Option<(u64, u64)>,
}

impl HookReport {
    /// Read the report the hook appended to (`armed\t<pid>\t<path>`, `used\t<pid>\t<rows>\t<cols>\t<path>`).
    /// A missing file means nothing was reported; lines of other shapes are ignored.
    pub fn read(path: &Path) -> HookReport {
        let mut report = HookReport::default();
        let Ok(text) = std::fs::read_to_string(path) else {
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
            "{\"armed\":2,\"used\":2,\"rows\":21,\"columns\":5}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
