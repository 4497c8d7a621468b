//! The dry-run plan as text for people and as one JSON document for machines (fields in docs/usage.md).
//!
//! Rendering only: it reads nothing and decides nothing; every fact comes from the `Plan`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::{SotaSource, SETTINGS};
use crate::hook::{contract, TemplateCheck, TemplateVerdict};
use crate::json::Json;
use crate::plan::{EnvValue, LogDir, Phase, Plan, SotaState};
use crate::record::{self, PhaseJson};
use crate::{exit, report};

/// Text for a terminal: every control character (C0 but newline and tab, DEL, C1) is written as a visible
/// escape (`\x1b`, `\u{9b}`), so text from snapshots (paths, class names, hypotheses) and paths cannot move the
/// cursor, recolour or retitle the terminal, or forge lines of their own inside a value. Every human output goes
/// through this one function (errors, warnings, the summary, the plan, `inspect`, `list`); JSON stays exact
/// (escaped per JSON) and `resolve`'s stdout stays the path's own bytes, for `$(rd-chain resolve ...)`.
pub fn escape_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `escape_message` for one value standing inside a line: newlines and tabs are escaped too.
pub fn escape_value(text: &str) -> String {
    escape_message(text)
        .replace('\n', "\\x0a")
        .replace('\t', "\\x09")
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn source_name(s: &SotaSource) -> &'static str {
    match s {
        SotaSource::FactorPhase => "factor-phase",
        SotaSource::Log(_) => "log",
        SotaSource::Workspace(_) => "workspace",
    }
}

fn source_path(s: &SotaSource) -> Option<&std::path::Path> {
    match s {
        SotaSource::FactorPhase => None,
        SotaSource::Log(p) | SotaSource::Workspace(p) => Some(p),
    }
}

fn env_json(v: &EnvValue) -> Json {
    match v {
        EnvValue::Known(v) => Json::from(lossy(v)),
        EnvValue::Pending(what) => Json::object().with("pending", *what),
        EnvValue::Unset => Json::Null,
    }
}

fn log_dir_text(plan: &Plan, d: &LogDir) -> String {
    match d {
        LogDir::UserSet(p) => format!("{} (LOG_TRACE_PATH you set)", p.display()),
        LogDir::Fresh => format!(
            "a fresh {}/<UTC time> created when the phase starts",
            plan.log_root.display()
        ),
    }
}

fn phase_argv(plan: &Plan, p: &Phase) -> Vec<String> {
    let program = match &plan.rdagent {
        Ok(path) => path.display().to_string(),
        Err(_) => "rdagent".to_string(),
    };
    std::iter::once(program)
        .chain(p.args.iter().map(|a| lossy(a)))
        .collect()
}

/// The SOTA template check (USE_ALPHA_FACTORS=false with the hook on): the dry run's `alpha_template`.
fn alpha_template_json(check: &TemplateCheck) -> Json {
    let (verdict, loader, group, reason) = match &check.verdict {
        TemplateVerdict::Runs => ("runs", None, None, None),
        TemplateVerdict::NeedsBaseFeatures { loader, group } => (
            "needs-base-features",
            Some(loader.as_str()),
            Some(group.as_str()),
            check.verdict.problem(),
        ),
        TemplateVerdict::Undecided(_) => ("undecided", None, None, check.undecided()),
    };
    Json::object()
        .with("template", check.template.as_ref())
        .with("verdict", verdict)
        .with("loader", loader)
        .with("group", group)
        .with("reason", reason)
}

/// The SOTA template check in words, for the text plan.
fn alpha_template_text(check: &TemplateCheck) -> String {
    let template = check.template.as_ref().map_or_else(
        || contract::SOTA_MODEL_TEMPLATE.to_string(),
        |p| p.display().to_string(),
    );
    match &check.verdict {
        TemplateVerdict::Runs => format!(
            "{}=false: {template} can train without base features (no Qlib data loader is left without fields)",
            contract::ALPHA_FACTORS_ENV
        ),
        TemplateVerdict::NeedsBaseFeatures { .. } => format!(
            "{}=false: {template} CANNOT train without base features: {}",
            contract::ALPHA_FACTORS_ENV,
            check.verdict.problem().unwrap_or_default()
        ),
        TemplateVerdict::Undecided(_) => format!("warning: {}", check.undecided().unwrap_or_default()),
    }
}

/// The plan as one JSON document.
pub fn plan_json(plan: &Plan) -> Json {
    let problem = plan.blocking_error();
    let c = &plan.config;
    let sota_state = match &plan.sota {
        SotaState::AfterFactorPhase => Json::object().with("state", "after-factor-phase"),
        SotaState::Resolved(r) => Json::object()
            .with("state", "resolved")
            .with("workspace", r.workspace.as_path())
            .with("parquet", r.parquet.path.as_path())
            .with("resolution", report::resolution_json(r)),
        SotaState::Workspace { dir, parquet } => Json::object()
            .with("state", "checked")
            .with("workspace", dir.as_path())
            .with(
                "parquet",
                Json::object()
                    .with("path", parquet.path.as_path())
                    .with("bytes", parquet.bytes),
            ),
        SotaState::Failed(e) => Json::object()
            .with("state", "failed")
            .with("exit_code", e.exit_code() as i64)
            .with("error", e.to_string()),
    };
    let mut sota = Json::object()
        .with("source", source_name(&c.sota.source))
        .with("path", source_path(&c.sota.source))
        .with("origin", c.sota.origin.to_string())
        .with("others", c.sota.others.clone());
    if let Json::Object(fields) = sota_state {
        for (k, v) in fields {
            sota.push(&k, v);
        }
    }
    let phases: Vec<Json> = plan
        .phases
        .iter()
        .map(|p| {
            let log_dir = match &p.log_dir {
                LogDir::UserSet(d) => Json::from(d.as_path()),
                LogDir::Fresh => Json::object().with("fresh_under", plan.log_root.as_path()),
            };
            let env = p
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), env_json(v)))
                .collect();
            record::phase_json(
                PhaseJson {
                    kind: p.kind,
                    loops: p.loops,
                    argv: phase_argv(plan, p),
                    cwd: p.cwd.clone(),
                    log_dir,
                    env: Json::Object(env),
                },
                None,
            )
        })
        .collect();
    Json::object()
        .with("dry_run", true)
        .with("can_run", problem.is_none())
        .with(
            "exit_code",
            problem.as_ref().map_or(exit::OK, |e| e.exit_code()) as i64,
        )
        .with("problem", problem.as_ref().map(|e| e.to_string()))
        .with("cwd", plan.cwd.as_path())
        .with("settings", record::settings_json(c))
        .with("warnings", plan.warnings.clone())
        .with(
            "rdagent",
            Json::object()
                .with("needed", plan.needs_rdagent)
                .with(
                    "path",
                    plan.rdagent.as_ref().ok().map(|p| Json::from(p.as_path())),
                )
                .with("error", plan.rdagent.as_ref().err().cloned()),
        )
        .with("log_root", plan.log_root.as_path())
        .with("run_record", plan.run_record.as_path())
        .with("sota", sota)
        .with("hook", plan.hook.as_ref().map(record::hook_json))
        .with(
            "alpha_template",
            plan.alpha_template.as_ref().map(alpha_template_json),
        )
        .with("phases", phases)
}

/// The plan as text.
pub fn plan_text(plan: &Plan) -> String {
    let c = &plan.config;
    let mut out = String::new();
    out.push_str("rd-chain dry run: the plan below is not run and nothing is written\n\n");
    out.push_str("Settings (value, origin)\n");
    for entry in SETTINGS {
        if let Some(name) = entry.label {
            let (_, value, origin) = entry.show(c);
            let _ = writeln!(out, "  {name:<16} {value:<28} {origin}");
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }

    out.push_str("\nSOTA source\n");
    let won = match &c.sota.source {
        SotaSource::FactorPhase => "the factor phase's own log (no SOTA source given)".to_string(),
        SotaSource::Log(p) => format!("the factor log {}", p.display()),
        SotaSource::Workspace(p) => format!("the workspace {}", p.display()),
    };
    let _ = writeln!(out, "  used: {won}  [{}]", c.sota.origin);
    for o in &c.sota.others {
        let _ = writeln!(out, "  not used: {o}");
    }
    match &plan.sota {
        SotaState::AfterFactorPhase => {
            out.push_str("  resolved after the factor phase, from its log (pick ");
            let _ = writeln!(out, "{})", c.pick.value);
        }
        SotaState::Resolved(r) => {
            out.push('\n');
            for line in report::inspect_text(r).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        SotaState::Workspace { dir, parquet } => {
            let _ = writeln!(
                out,
                "  workspace {} checked: {} ({} bytes, PAR1 magic ok)",
                dir.display(),
                parquet.path.display(),
                parquet.bytes
            );
        }
        SotaState::Failed(e) => {
            let _ = writeln!(out, "  cannot be resolved (exit {}): {e}", e.exit_code());
        }
    }

    out.push_str("\nrdagent\n");
    match (&plan.rdagent, plan.needs_rdagent) {
        (_, false) => out.push_str(
            "  not needed: no phase runs (model loops is 0 and a SOTA source is given)\n",
        ),
        (Ok(p), true) => {
            let _ = writeln!(out, "  {}", p.display());
        }
        (Err(why), true) => {
            let _ = writeln!(out, "  missing: {why}");
        }
    }
    if let Some(h) = &plan.hook {
        let consumer = if h.enabled {
            "rd-chain's sitecustomize hook"
        } else {
            "rdagent itself (env vars only)"
        };
        let _ = writeln!(
            out,
            "\nFactor consumer in the model phase: {consumer}\n  hook {}: {}",
            h.mode.as_str(),
            h.reason
        );
        if h.enabled {
            let _ = writeln!(out, "  hook dir: {}", plan.hook_dir.display());
        }
        if let Some(check) = &plan.alpha_template {
            let _ = writeln!(out, "  {}", alpha_template_text(check));
        }
    }

    out.push_str("\nPhases\n");
    if plan.phases.is_empty() {
        out.push_str("  none: the SOTA is resolved and reported only\n");
    }
    for (i, p) in plan.phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {} phase ({} loops)",
            i + 1,
            p.kind.name(),
            p.loops
        );
        let _ = writeln!(out, "     argv: {}", phase_argv(plan, p).join(" "));
        let _ = writeln!(out, "     cwd:  {}", p.cwd.display());
        let _ = writeln!(out, "     log:  {}", log_dir_text(plan, &p.log_dir));
        for (k, v) in &p.env {
            let shown = match v {
                EnvValue::Known(v) => lossy(v),
                EnvValue::Pending(what) => format!("<{what}>"),
                EnvValue::Unset => "(removed)".to_string(),
            };
            let shown = if *k == "LOG_TRACE_PATH" {
                "<the phase's log dir above>".to_string()
            } else {
                shown
            };
            let _ = writeln!(out, "     env:  {k}={shown}");
        }
    }
    let _ = writeln!(out, "\nRun record: {}", plan.run_record.display());
    match plan.blocking_error() {
        None => out.push_str("Result: the plan can run (exit 0)\n"),
        Some(e) => {
            let _ = writeln!(
                out,
                "Result: the run would stop with exit {}: {e}",
                e.exit_code()
            );
        }
    }
    out
}

/// `1h 02m 03s`, `4m 05s`, `6.2s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(6200)), "6.2s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m 05s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h 02m 03s");
    }
}
