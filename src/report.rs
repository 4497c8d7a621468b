//! What `rd-chain resolve`, `inspect` and `list` print: text for people, JSON for programs.
//!
//! Output only: every value comes from `resolve`, `session` and `listing`; nothing here reads files or decides
//! anything.
//! `resolve` prints exactly one line (the workspace) so `$(rd-chain resolve LOG)` works; diagnostics go to
//! stderr through `log`, never to stdout.

use std::path::Path;

use crate::answers::RunKind;
use crate::json::Json;
use crate::listing::RunSummary;
use crate::resolve::{Inspection, Located, Pick, Picked, Resolution, Survey};
use crate::session::{ExperimentKind, LoopSource};
use crate::Error;

// ----------------------------------------------------------------------------------------------- resolve

/// `resolve` stdout: the workspace path and a newline, as raw bytes on Unix so a non-UTF-8 path survives
/// `$(...)`.
pub fn resolve_stdout(r: &Resolution) -> Vec<u8> {
    let mut out = path_bytes(&r.workspace);
    out.push(b'\n');
    out
}

/// `resolve` stdout as text (lossy for non-UTF-8 paths).
pub fn resolve_text(r: &Resolution) -> String {
    format!("{}\n", r.workspace.display())
}

#[cfg(unix)]
pub fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
pub fn path_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

/// `resolve --json`: the whole resolution as one object.
pub fn resolution_json(r: &Resolution) -> Json {
    document(&r.survey, r.pick, Ok(&r.picked()))
}

/// `inspect --json`: like `resolution_json`, with `pick.error` (and null workspace) when the pick failed.
pub fn inspection_json(i: &Inspection) -> Json {
    document(&i.survey, i.pick, i.outcome.as_ref())
}

fn located_json(l: Option<&Located>) -> (Json, Json) {
    match l {
        Some(l) => (Json::from(&l.path), Json::from(l.mapping.as_str())),
        None => (Json::Null, Json::Null),
    }
}

fn document(survey: &Survey, pick: Pick, outcome: std::result::Result<&Picked, &Error>) -> Json {
    let session = &survey.session;
    let snap = &session.snapshot;
    let ctx = survey.context();
    let history: Vec<Json> = survey
        .entries
        .iter()
        .map(|status| {
            let e = &status.entry;
            let (workspace, mapping) = located_json(status.located(&ctx));
            let metrics = crate::answers::metrics_json(e.metrics.as_ref());
            Json::object()
                .with("index", e.index)
                .with("loop", e.loop_id)
                .with(
                    "loop_source",
                    e.loop_source.map(|s| match s {
                        LoopSource::Recorded => "idx2loop_id",
                        LoopSource::Recovered => "recovered",
                    }),
                )
                .with("note", e.note.clone())
                .with("class", e.class.clone())
                .with("kind", e.kind.as_str())
                .with("decision", e.decision)
                .with(
                    "workspace_recorded",
                    e.workspace.as_ref().map(|w| w.text.clone()),
                )
                .with(
                    "workspace_stored_as",
                    e.workspace.as_ref().map(|w| w.stored_as.clone()),
                )
                .with("workspace", workspace)
                .with("mapping", mapping)
                .with("parquet_exists", status.parquet_exists(&ctx))
                .with("metrics", metrics)
        })
        .collect();
    let skipped: Vec<Json> = session
        .skipped
        .iter()
        .map(|s| {
            Json::object()
                .with("path", &s.path)
                .with("reason", s.reason.as_str())
        })
        .collect();
    let mut pick_json = Json::object().with("policy", pick.to_string());
    let (workspace, mapping, parquet, tried) = match outcome {
        Ok(p) => {
            pick_json.push("index", p.index);
            pick_json.push("loop", p.loop_id);
            let tried: Vec<Json> = p
                .paths_tried
                .iter()
                .map(|(m, path)| {
                    Json::object()
                        .with("mapping", m.as_str())
                        .with("path", path)
                })
                .collect();
            (
                Json::from(&p.workspace),
                Json::from(p.mapping.as_str()),
                Json::object()
                    .with("path", &p.parquet.path)
                    .with("bytes", p.parquet.bytes),
                Json::Array(tried),
            )
        }
        Err(e) => {
            pick_json.push("index", Json::Null);
            pick_json.push("loop", Json::Null);
            pick_json.push("error", e.to_string());
            (Json::Null, Json::Null, Json::Null, Json::Array(Vec::new()))
        }
    };
    Json::object()
        .with("log_dir", &session.log_dir)
        .with("project_root", &survey.project_root)
        .with(
            "snapshot",
            Json::object()
                .with("path", &snap.path)
                .with("loop", snap.loop_id)
                .with("step", snap.step)
                .with("signed", snap.signed)
                .with(
                    "hmac_verified",
                    matches!(snap.signature, crate::session::Signature::Verified { .. }),
                )
                .with("signature", snap.signature.as_str())
                .with("signing_key_source", snap.signature.key_source())
                .with("protocol", u32::from(snap.protocol))
                .with("bytes", snap.bytes)
                .with("loop_class", snap.loop_class.clone())
                .with("era", snap.era.as_str())
                .with("hist_len", survey.entries.len()),
        )
        .with("loop_dirs", session.loop_dirs)
        .with("snapshot_files", session.snapshot_files.get())
        .with("candidates_read", session.candidates_read)
        .with("skipped", Json::Array(skipped))
        .with("history", Json::Array(history))
        .with("pick", pick_json)
        .with("workspace", workspace)
        .with("path_mapping", mapping)
        .with("parquet", parquet)
        .with("paths_tried", tried)
}

// ----------------------------------------------------------------------------------------------- inspect

/// A snapshot path shown relative to the log dir when it is inside it.
fn short_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// Header names for well-known metrics; others show their last dotted part.
fn metric_header(label: &str) -> String {
    let tail = label.rsplit('.').next().unwrap_or(label);
    match tail {
        "annualized_return" => "ann.ret".to_string(),
        "max_drawdown" => "max.dd".to_string(),
        "information_ratio" => "IR".to_string(),
        _ => tail.to_string(),
    }
}

fn format_metric(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v:.4}")
    }
}

/// Lay out rows as columns; `right[i]` right-aligns column `i`. Trailing spaces are trimmed.
pub fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    // Cells hold text from snapshots (class names, workspace paths): escaped before widths are measured.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::render::escape_value(c)).collect())
        .collect();
    let rows = &rows;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right.get(i).copied().unwrap_or(false) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `rd-chain inspect PATH` for a resolved run: header lines, then the history table with the picked entry
/// marked `*`.
pub fn inspect_text(r: &Resolution) -> String {
    render_inspection(&r.survey, r.pick, Ok(&r.picked()))
}

/// `rd-chain inspect PATH` whether or not the pick succeeded (a failed pick is shown in the header).
pub fn inspection_text(i: &Inspection) -> String {
    render_inspection(&i.survey, i.pick, i.outcome.as_ref())
}

fn render_inspection(
    survey: &Survey,
    pick: Pick,
    outcome: std::result::Result<&Picked, &Error>,
) -> String {
    let session = &survey.session;
    let snap = &session.snapshot;
    let mut header: Vec<(&str, String)> = Vec::new();
    header.push(("log dir", session.log_dir.display().to_string()));
    header.push(("project", survey.project_root.display().to_string()));
    let position = match (snap.loop_id, snap.step) {
        (Some(l), Some(s)) => format!(" (loop {l}, step {s})"),
        (None, Some(s)) => format!(" (step {s})"),
        _ => String::new(),
    };
    header.push((
        "snapshot",
        format!(
            "{}{position}, {} bytes",
            short_path(&snap.path, &session.log_dir),
            snap.bytes
        ),
    ));
    header.push((
        "format",
        format!("{}, protocol {}", snap.signature.describe(), snap.protocol),
    ));
    if let Some(class) = &snap.loop_class {
        header.push(("loop", class.clone()));
    }
    header.push(("era", snap.era.clone()));
    if session.session_dir.is_some() {
        let files = match session.snapshot_files.get() {
            Some(n) => format!("{} of {n} snapshot files", session.candidates_read),
            None => format!(
                "{} snapshot files (the session directory could not be listed again to count them all)",
                session.candidates_read
            ),
        };
        header.push((
            "read",
            format!("{files} ({} loop directories)", session.loop_dirs),
        ));
    }
    for s in &session.skipped {
        header.push((
            "skipped",
            format!("{}: {}", short_path(&s.path, &session.log_dir), s.reason),
        ));
    }
    header.push(("history", survey.counts().to_string()));
    match outcome {
        Ok(p) => {
            let at = match p.loop_id {
                Some(l) => format!("#{} (loop {l})", p.index),
                None => format!("#{}", p.index),
            };
            header.push(("pick", format!("{pick} -> {at}")));
            header.push((
                "workspace",
                format!("{} ({})", p.workspace.display(), p.mapping),
            ));
            header.push((
                "parquet",
                format!("{} ({} bytes)", p.parquet.path.display(), p.parquet.bytes),
            ));
        }
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or("").to_string();
            header.push(("pick", format!("{pick} -> none: {first}")));
        }
    }
    let mut out = String::new();
    for (key, value) in &header {
        out.push_str(&format!(
            "{key:<10} {}\n",
            crate::render::escape_value(value)
        ));
    }
    out.push('\n');
    if survey.entries.is_empty() {
        out.push_str("(the history is empty)\n");
        return out;
    }

    let mut metric_labels: Vec<&str> = Vec::new();
    for status in &survey.entries {
        for (label, _) in status.entry.metrics.iter().flatten() {
            if !metric_labels.contains(&label.as_str()) {
                metric_labels.push(label);
            }
        }
    }
    let picked = outcome.ok().map(|p| p.index);
    let mut rows = Vec::new();
    let mut head = vec![
        String::new(),
        "#".to_string(),
        "loop".to_string(),
        "kind".to_string(),
        "decision".to_string(),
        "parquet".to_string(),
    ];
    head.extend(metric_labels.iter().map(|l| metric_header(l)));
    head.push("workspace".to_string());
    rows.push(head);
    let ctx = survey.context();
    for status in &survey.entries {
        let e = &status.entry;
        let kind = match (e.kind, &e.class) {
            (ExperimentKind::Other, Some(class)) => {
                class.rsplit('.').next().unwrap_or("other").to_string()
            }
            (kind, _) => kind.as_str().to_string(),
        };
        let mut row = vec![
            if picked == Some(e.index) { "*" } else { "" }.to_string(),
            e.index.to_string(),
            match (e.loop_id, e.loop_source) {
                (Some(l), Some(LoopSource::Recovered)) => format!("{l} (recovered)"),
                (Some(l), _) => l.to_string(),
                (None, _) => "-".to_string(),
            },
            kind,
            match e.decision {
                Some(true) => "accepted",
                Some(false) => "rejected",
                None => "-",
            }
            .to_string(),
            match (status.located(&ctx), status.parquet_exists(&ctx)) {
                (None, _) => "-",
                (Some(_), true) => "yes",
                (Some(_), false) => "no",
            }
            .to_string(),
        ];
        for label in &metric_labels {
            let value = e
                .metrics
                .iter()
                .flatten()
                .find(|(l, _)| l == label)
                .map_or("-".to_string(), |(_, v)| format_metric(*v));
            row.push(value);
        }
        let workspace = match (&e.workspace, status.located(&ctx)) {
            (None, _) => "-".to_string(),
            (Some(rec), Some(l)) => format!(
                "{} ({})",
                rec.last_segment().unwrap_or(&rec.text),
                l.mapping
            ),
            (Some(rec), None) => format!("{} (not found)", rec.last_segment().unwrap_or(&rec.text)),
        };
        row.push(workspace);
        rows.push(row);
    }
    let mut right = vec![false, true, true, false, false, false];
    right.extend(metric_labels.iter().map(|_| true));
    right.push(false);
    out.push_str(&table(&rows, &right));
    for e in survey.entries.iter().map(|s| &s.entry) {
        if let Some(note) = &e.note {
            out.push_str(&format!(
                "note: entry #{} is not used: {}\n",
                e.index,
                crate::render::escape_value(note)
            ));
        }
    }
    if let Some(index) = picked {
        out.push_str(&format!(
            "\n(* marks entry #{index}, picked by --pick {pick})\n"
        ));
    }
    out
}

// ----------------------------------------------------------------------------------------------- list
fn sota_cell(at: (usize, Option<u64>), ic: Option<f64>) -> String {
    let at = match at {
        (_, Some(l)) => format!("loop {l}"),
        (i, None) => format!("#{i}"),
    };
    match ic {
        Some(ic) => format!("{at} (IC {})", format_metric(ic)),
        None => at,
    }
}

/// `list` as a table: one line per run, with its kind and its SOTA of that kind (a quant run: both).
pub fn list_text(root: &Path, runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return format!("no run directories in {}\n", root.display());
    }
    let mut rows = vec![vec![
        "run".to_string(),
        "kind".to_string(),
        "loops".to_string(),
        "hist".to_string(),
        "accepted".to_string(),
        "sota".to_string(),
        "parquet".to_string(),
    ]];
    for run in runs {
        let name = match run.continuations.len() {
            0 => run.name.clone(),
            n => format!("{} (+{n} continued)", run.name),
        };
        match &run.info {
            Ok(info) => {
                let a = &info.answers;
                let factor_sota = info
                    .sota_index
                    .map(|i| sota_cell((i, info.sota_loop), a.factor_ic));
                let model_sota = a.model_sota.map(|at| sota_cell(at, a.model_ic));
                let (accepted, sota, parquet) = match a.kind {
                    RunKind::Model => (
                        a.accepted_model.to_string(),
                        model_sota.unwrap_or_else(|| "none accepted".to_string()),
                        "-".to_string(),
                    ),
                    RunKind::Quant => (
                        format!("{}+{}", info.accepted_factor, a.accepted_model),
                        format!(
                            "factors {}; model {}",
                            factor_sota.unwrap_or_else(|| "-".to_string()),
                            model_sota.unwrap_or_else(|| "-".to_string())
                        ),
                        parquet_cell(&info.parquet),
                    ),
                    RunKind::Factor | RunKind::Unknown => (
                        info.accepted_factor.to_string(),
                        factor_sota.unwrap_or_else(|| "-".to_string()),
                        parquet_cell(&info.parquet),
                    ),
                };
                rows.push(vec![
                    name,
                    a.kind.as_str().to_string(),
                    info.loops.to_string(),
                    info.hist_entries.to_string(),
                    accepted,
                    sota,
                    parquet,
                ]);
            }
            Err(reason) => rows.push(vec![
                name,
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                format!("unreadable: {reason}"),
            ]),
        }
    }
    table(&rows, &[false, false, true, true, true, false, false])
}

fn parquet_cell(parquet: &std::result::Result<u64, String>) -> String {
    match parquet {
        Ok(bytes) => format!("ok ({bytes} bytes)"),
        Err(reason) => format!("no: {reason}"),
    }
}

/// `list --json`: `{"log_root": ..., "runs": [...]}`.
pub fn list_json(root: &Path, runs: &[RunSummary]) -> Json {
    let runs: Vec<Json> = runs
        .iter()
        .map(|run| {
            let base = Json::object()
                .with("name", run.name.as_str())
                .with("path", &run.path)
                .with("continuations", run.continuations.clone());
            match &run.info {
                Ok(info) => base
                    .with("loops", info.loops)
                    .with("hist_entries", info.hist_entries)
                    .with("factor_experiments", info.factor_experiments)
                    .with("accepted_factor", info.accepted_factor)
                    .with("sota_index", info.sota_index)
                    .with("sota_loop", info.sota_loop)
                    .with("workspace", info.workspace.as_ref())
                    .with("parquet_ok", info.parquet.is_ok())
                    .with("parquet_bytes", info.parquet.as_ref().ok().copied())
                    .with("reason", info.parquet.as_ref().err().cloned())
                    .with("kind", info.answers.kind.as_str())
                    .with("model_experiments", info.answers.model_experiments)
                    .with("accepted_model", info.answers.accepted_model)
                    .with("model_sota_index", info.answers.model_sota.map(|(i, _)| i))
                    .with(
                        "model_sota_loop",
                        info.answers.model_sota.and_then(|(_, l)| l),
                    )
                    .with("sota_ic", info.answers.factor_ic)
                    .with("model_sota_ic", info.answers.model_ic)
                    .with("error", Json::Null),
                Err(reason) => base.with("error", reason.as_str()),
            }
        })
        .collect();
    Json::object()
        .with("log_root", root)
        .with("runs", Json::Array(runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_by_characters() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "é".to_string()],
            vec!["bbb".to_string(), "22".to_string(), "x".to_string()],
        ];
        assert_eq!(
            table(&rows, &[false, true, false]),
            "a     1  é\nbbb  22  x\n"
        );
    }

    #[test]
    fn metric_headers_are_short() {
        assert_eq!(metric_header("IC"), "IC");
        assert_eq!(metric_header("Rank ICIR"), "Rank ICIR");
        assert_eq!(
            metric_header("1day.excess_return_with_cost.annualized_return"),
            "ann.ret"
        );
        assert_eq!(
            metric_header("1day.excess_return_with_cost.max_drawdown"),
            "max.dd"
        );
        assert_eq!(metric_header("a.b.mean"), "mean");
        assert_eq!(format_metric(0.012345), "0.0123");
        assert_eq!(format_metric(f64::NAN), "NaN");
    }
}
