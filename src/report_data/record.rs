//! A run record (as written by `record::RunRecord::to_json`, read back by `record::load`) -> what the report
//! page shows of the chain itself: commands, settings with their origins, durations, attempts, and each
//! phase's log dir. The one place that maps the record's fields to the page: a record whose phases carry
//! `attempts[]` (one object per start of rdagent) shows each attempt; an older record shows one per phase.

use std::path::PathBuf;

use crate::cli::SETTINGS;
use crate::hook::HookReport;
use crate::json::Json;
use crate::report_page::{Attempt, Setting, Timing};

/// One phase of the record: its kind (`factor`, `model`), where rdagent ran, and its last log dir (the one
/// that holds the whole history).
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseLog {
    pub kind: String,
    pub cwd: Option<PathBuf>,
    pub log_dir: PathBuf,
}

/// The chain's part of a run page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainFacts {
    /// `<state>`, and the exit code and message when the chain did not finish cleanly.
    pub state: String,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub commands: Vec<String>,
    pub settings: Vec<Setting>,
    pub timings: Vec<Timing>,
    pub attempts: Vec<Attempt>,
    pub phases: Vec<PhaseLog>,
    /// `sota.log_dir`: the factor log the model phase's factors came from (a given `--sota-log`, or the
    /// factor phase's own log).
    pub sota_log: Option<PathBuf>,
    /// `hook_report`: what the hook reported from the model phase.
    pub hook: Option<HookReport>,
}

fn text(j: Option<&Json>) -> Option<String> {
    j.and_then(Json::as_str).map(str::to_string)
}

fn seconds(j: Option<&Json>) -> Option<f64> {
    match j? {
        Json::Float(f) => Some(*f),
        Json::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn items(j: Option<&Json>) -> &[Json] {
    match j {
        Some(Json::Array(a)) => a,
        _ => &[],
    }
}

/// A setting's value as the page shows it: strings as they are, `null` as "none".
fn value_text(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => "none".to_string(),
        Some(Json::Str(s)) => s.clone(),
        Some(other) => other.compact(),
    }
}

/// How one start of rdagent ended, from `exit_code`, `signal` and `stopped_by`.
fn outcome(o: &Json) -> String {
    let ended = match (
        o.get("exit_code").and_then(Json::as_i64),
        o.get("signal").and_then(Json::as_i64),
    ) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(n)) => format!(
            "killed by signal {n} ({})",
            crate::exit::for_signal(n as i32)
        ),
        (None, None) => "did not finish".to_string(),
    };
    match text(o.get("stopped_by")) {
        Some(by) => format!("{ended}; rd-chain stopped by {by}"),
        None => ended,
    }
}

/// A command line as one string, arguments with spaces or quotes quoted.
fn command_line(argv: &[Json]) -> String {
    argv.iter()
        .filter_map(Json::as_str)
        .map(|a| {
            if !a.is_empty() && !a.contains([' ', '\'', '"', '\\', '$', '\t', '\n']) {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn phase_label(kind: &str) -> String {
    let mut label = kind.to_string();
    if let Some(first) = label.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{label} phase")
}

/// Seconds between two of the record's ISO 8601 UTC times (`2026-01-14T16:14:52.886218Z`).
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    Some(unix_seconds(end)? - unix_seconds(start)?)
}

fn unix_seconds(iso: &str) -> Option<f64> {
    let b = iso.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = iso.get(from..to)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let secs = num(11, 13)? * 3600 + num(14, 16)? * 60 + num(17, 19)?;
    let frac = match iso[19..].strip_prefix('.') {
        Some(rest) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("0.{digits}").parse::<f64>().ok()?
        }
        None => 0.0,
    };
    // Days from the civil date (H. Hinnant's algorithm), the inverse of timestamp's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + secs) as f64 + frac)
}

/// Everything the page shows of the chain, from a run record's document (schema 1 and later).
pub fn chain_facts(doc: &Json) -> ChainFacts {
    let mut facts = ChainFacts {
        state: text(doc.get("state")).unwrap_or_else(|| "unknown".to_string()),
        exit_code: doc.get("exit_code").and_then(Json::as_i64),
        message: text(doc.get("message")),
        ..ChainFacts::default()
    };
    if let Some(Json::Object(settings)) = doc.get("settings") {
        for (key, s) in settings {
            // The flag's name when this rd-chain knows the setting, else the record's key.
            let name = SETTINGS
                .iter()
                .find(|e| e.key == key)
                .map_or_else(|| key.clone(), |e| format!("--{}", e.flag));
            facts.settings.push(Setting {
                name,
                value: value_text(s.get("value")),
                origin: text(s.get("origin")).unwrap_or_default(),
            });
        }
    }
    for phase in items(doc.get("phases")) {
        let kind = text(phase.get("phase")).unwrap_or_else(|| "phase".to_string());
        let label = phase_label(&kind);
        let attempts = items(phase.get("attempts"));
        if attempts.is_empty() {
            facts.commands.push(command_line(items(phase.get("argv"))));
            facts.attempts.push(Attempt {
                phase: kind.clone(),
                number: 1,
                outcome: outcome(phase),
                seconds: seconds(phase.get("duration_seconds")),
                hook_report_file: None,
            });
        } else {
            for (i, a) in attempts.iter().enumerate() {
                facts.commands.push(command_line(items(a.get("argv"))));
                let mut what = outcome(a);
                // Why it started, when it was not the phase's first start (resume, retry, stall-restart).
                if let Some(reason) = text(a.get("reason")).filter(|r| r != "start") {
                    what = format!("{reason}: {what}");
                }
                facts.attempts.push(Attempt {
                    phase: kind.clone(),
                    number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    outcome: what,
                    seconds: seconds(a.get("duration_seconds")),
                    hook_report_file: text(a.get("hook_report_file")),
                });
            }
        }
        facts.timings.push(Timing {
            label,
            seconds: seconds(phase.get("duration_seconds")),
        });
        let log_dir = attempts
            .last()
            .and_then(|a| text(a.get("log_dir")))
            .or_else(|| text(phase.get("log_dir")));
        if let Some(log_dir) = log_dir {
            facts.phases.push(PhaseLog {
                kind,
                cwd: text(phase.get("cwd")).map(PathBuf::from),
                log_dir: PathBuf::from(log_dir),
            });
        }
    }
    if let (Some(start), Some(end)) = (text(doc.get("started")), text(doc.get("finished"))) {
        facts.timings.push(Timing {
            label: "Whole chain".to_string(),
            seconds: seconds_between(&start, &end),
        });
    }
    facts.sota_log = doc
        .get("sota")
        .and_then(|s| text(s.get("log_dir")))
        .map(PathBuf::from);
    facts.hook = crate::record::hook_report_of(doc.get("hook_report"));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_subtract() {
        assert_eq!(
            seconds_between("2026-01-14T16:14:52.500000Z", "2026-01-14T17:14:53.000000Z"),
            Some(3600.5)
        );
        // Across a leap day and a year end.
        assert_eq!(
            seconds_between("2024-02-28T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"),
            Some(2.0 * 86_400.0)
        );
        assert_eq!(
            seconds_between("2025-12-31T23:59:59.000000Z", "2026-01-01T00:00:00.000000Z"),
            Some(1.0)
        );
        assert_eq!(seconds_between("yesterday", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn a_record_maps_to_commands_settings_timings_and_attempts() {
        let doc = crate::json::parse(
            r#"{"state": "failed", "exit_code": 137, "message": "the model phase was killed",
            "started": "2026-01-14T16:00:00.000000Z", "finished": "2026-01-14T16:10:00.000000Z",
            "settings": {"factor_loops": {"value": 4, "origin": "flag factor-loops"},
                         "rdagent": {"value": null, "origin": "default"},
                         "someday": {"value": "x", "origin": "env X"}},
            "sota": {"log_dir": "/p/log/a"},
            "hook_report": {"armed": 2, "used": 1, "rows": 10, "columns": 3, "base_features_dropped": 0,
                            "template_problem": null},
            "phases": [
              {"phase": "factor", "argv": ["rdagent", "fin_factor", "--loop-n", "4"], "cwd": "/p",
               "log_dir": "/p/log/a", "duration_seconds": 300.5, "exit_code": 0, "signal": null,
               "stopped_by": null},
              {"phase": "model", "argv": ["rdagent", "fin_model"], "cwd": "/p", "log_dir": "/p/log/b",
               "duration_seconds": 120, "exit_code": null, "signal": 9, "stopped_by": null,
               "attempts": [
                 {"reason": "start", "argv": ["rdagent", "fin_model", "--loop-n", "2"], "log_dir": "/p/log/b",
                  "duration_seconds": 100, "exit_code": 1, "signal": null, "stopped_by": null,
                  "hook_report_file": "/p/log/rd-chain/r.hook.attempt-1/report.tsv"},
                 {"reason": "retry", "argv": ["rdagent", "fin_model", "--path", "/p/log/c x"],
                  "log_dir": "/p/log/c", "duration_seconds": 20, "exit_code": null, "signal": 9,
                  "stopped_by": "SIGTERM"}]}]}"#,
        )
        .unwrap();
        let f = chain_facts(&doc);
        assert_eq!((f.state.as_str(), f.exit_code), ("failed", Some(137)));
        assert_eq!(
            f.commands,
            [
                "rdagent fin_factor --loop-n 4",
                "rdagent fin_model --loop-n 2",
                "rdagent fin_model --path '/p/log/c x'"
            ]
        );
        let s: Vec<(&str, &str, &str)> = f
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.origin.as_str()))
            .collect();
        assert_eq!(
            s,
            [
                ("--factor-loops", "4", "flag factor-loops"),
                ("--rdagent", "none", "default"),
                ("someday", "x", "env X")
            ]
        );
        let t: Vec<(&str, Option<f64>)> = f
            .timings
            .iter()
            .map(|t| (t.label.as_str(), t.seconds))
            .collect();
        assert_eq!(
            t,
            [
                ("Factor phase", Some(300.5)),
                ("Model phase", Some(120.0)),
                ("Whole chain", Some(600.0))
            ]
        );
        let a: Vec<(&str, u32, &str)> = f
            .attempts
            .iter()
            .map(|a| (a.phase.as_str(), a.number, a.outcome.as_str()))
            .collect();
        assert_eq!(
            a,
            [
                ("factor", 1, "exit 0"),
                ("model", 1, "exit 1"),
                (
                    "model",
                    2,
                    "retry: killed by signal 9 (137); rd-chain stopped by SIGTERM"
                )
            ]
        );
        // The last attempt's log holds the whole history of its phase.
        let logs: Vec<(&str, PathBuf)> = f
            .phases
            .iter()
            .map(|p| (p.kind.as_str(), p.log_dir.clone()))
            .collect();
        assert_eq!(
            logs,
            [("factor", "/p/log/a".into()), ("model", "/p/log/c".into())]
        );
        assert_eq!(f.sota_log, Some(PathBuf::from("/p/log/a")));
        // The hook's report, and each attempt's report file (none for the factor phase nor where the record
        // has none).
        let reports: Vec<Option<&str>> = f
            .attempts
            .iter()
            .map(|a| a.hook_report_file.as_deref())
            .collect();
        assert_eq!(
            reports,
            [
                None,
                Some("/p/log/rd-chain/r.hook.attempt-1/report.tsv"),
                None
            ]
        );
        assert_eq!(
            f.hook,
            Some(HookReport {
                armed: 2,
                used: 1,
                shape: Some((10, 3)),
                base_features_dropped: 0,
                template_problem: None,
            })
        );
        assert_eq!(chain_facts(&crate::json::parse("{}").unwrap()).hook, None);
    }
}
