//! `rd-chain list`: which run directories a log root holds and what each one's session says (loops, history,
//! the SOTA pick, whether its parquet is there). Reads directories and snapshots and decides; `report` prints.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::answers::RunKind;
use crate::resolve::{absolute, check_parquet, pick_index, Pick, ResolveRequest, PARQUET_FILE};
use crate::session::SESSION_DIR;
use crate::timestamp::Utc;
use crate::{Error, Result};

/// What `list` shows about a readable run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub loops: usize,
    pub hist_entries: usize,
    pub factor_experiments: usize,
    pub accepted_factor: usize,
    pub sota_index: Option<usize>,
    pub sota_loop: Option<u64>,
    pub workspace: Option<PathBuf>,
    /// `Ok(bytes)` when the SOTA parquet passes the check, else a short reason.
    pub parquet: std::result::Result<u64, String>,
    /// What the run evolved (factor, model, quant), and its SOTA of that kind.
    pub answers: RunAnswers,
}

/// A run's kind and the SOTA of each kind it holds, with the headline metric (IC).
#[derive(Clone, Debug, PartialEq)]
pub struct RunAnswers {
    pub kind: RunKind,
    pub model_experiments: usize,
    pub accepted_model: usize,
    /// (history index, loop) of the SOTA model.
    pub model_sota: Option<(usize, Option<u64>)>,
    pub model_ic: Option<f64>,
    pub factor_ic: Option<f64>,
}

fn run_answers(survey: &crate::resolve::Survey, factor_sota: Option<usize>) -> RunAnswers {
    let rows = crate::answers::model_rows(survey, &[]);
    let sota = crate::answers::sota_model(&rows);
    let ic =
        |m: Option<&crate::session::Metrics>| m.and_then(|m| crate::answers::headline(m, "IC"));
    RunAnswers {
        kind: crate::answers::run_kind(survey),
        model_experiments: rows.len(),
        accepted_model: rows.iter().filter(|r| r.decision == Some(true)).count(),
        model_sota: sota.map(|r| (r.index, r.loop_id)),
        model_ic: ic(sota.and_then(|r| r.metrics.as_ref())),
        factor_ic: ic(factor_sota.and_then(|i| survey.entries[i].entry.metrics.as_ref())),
    }
}

/// One run directory under the log root.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub name: String,
    pub path: PathBuf,
    /// The run's readable facts, or why it could not be read (from its newest continuation, if any).
    pub info: std::result::Result<RunInfo, String>,
    /// The dirs rd-chain continued this run in (`<name>.resume-K`), oldest first.
    pub continuations: Vec<String>,
}

/// The gist of an error for one line of `list`: its first line up to the advice after "; ".
fn short_reason(e: &Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("");
    first.split("; ").next().unwrap_or(first).to_string()
}

/// The SOTA summary of one run; an unreadable run gives the short reason.
fn summarize_run(
    path: &Path,
    workspace_env: Option<&Path>,
    cwd: &Path,
) -> std::result::Result<RunInfo, String> {
    let req = ResolveRequest {
        path: path.to_path_buf(),
        pick: Pick::Sota,
        workspace_path_env: workspace_env.map(Path::to_path_buf),
        cwd: cwd.to_path_buf(),
        // `list` shows no signatures, so it spends no time on them.
        signing_key: None,
        verify: crate::session::Verify::WithKeyAtHand,
        project_root: None,
        reading: crate::session::Reading::Everything,
    };
    if !path.join(SESSION_DIR).is_dir() {
        return Err(format!("no {SESSION_DIR} directory"));
    }
    let survey = crate::resolve::survey(&req).map_err(|e| short_reason(&e))?;
    let counts = survey.kind_counts();
    let mut info = RunInfo {
        loops: survey.session.loop_dirs,
        hist_entries: counts.entries,
        factor_experiments: counts.factor,
        accepted_factor: counts.accepted_factor,
        sota_index: None,
        sota_loop: None,
        workspace: None,
        parquet: Err(String::new()),
        answers: run_answers(&survey, pick_index(&survey, Pick::Sota).ok()),
    };
    match pick_index(&survey, Pick::Sota) {
        Err(_) if counts.factor == 0 => info.parquet = Err("no factor experiment".to_string()),
        Err(_) => info.parquet = Err("no accepted factor experiment".to_string()),
        Ok(index) => {
            let status = &survey.entries[index];
            info.sota_index = Some(index);
            info.sota_loop = status.entry.loop_id;
            info.parquet = match status.located(&survey.context()) {
                None => Err("workspace not found".to_string()),
                Some(l) => {
                    info.workspace = Some(l.path.clone());
                    check_parquet(&l.path)
                        .map(|p| p.bytes)
                        .map_err(|(_, problem)| format!("{PARQUET_FILE} {problem}"))
                }
            };
        }
    }
    Ok(info)
}

/// Every run directory under `root` (relative to `cwd`), newest first: by the timestamp in the name, then by
/// modification time. A root that is itself a run lists just that run.
pub fn list_runs(root: &Path, workspace_env: Option<&Path>, cwd: &Path) -> Result<Vec<RunSummary>> {
    let root = absolute(cwd, root);
    let mut dirs: Vec<(PathBuf, String, Option<SystemTime>)> = Vec::new();
    let name_of = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    if root.join(SESSION_DIR).is_dir() {
        dirs.push((root.clone(), name_of(&root), None));
    } else {
        let entries = fs::read_dir(&root).map_err(|e| {
            Error::resolution(format!(
                "cannot list the log root {}: {e}; pass the directory that holds the run directories (default ./log)",
                root.display()
            ))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Hidden dirs and rd-chain's own records are not runs.
            if name.starts_with('.') || name == crate::plan::RECORD_DIR_NAME || !path.is_dir() {
                continue;
            }
            let mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
            dirs.push((path, name, mtime));
        }
    }
    // A continuation is shown with its original, not as a run of its own.
    let names: Vec<String> = dirs.iter().map(|d| d.1.clone()).collect();
    let mut continuations: std::collections::BTreeMap<String, Vec<(u32, String)>> =
        Default::default();
    dirs.retain(|(_, name, _)| match crate::continuation::split_name(name) {
        (base, Some(k)) if names.iter().any(|n| n == base) => {
            continuations
                .entry(base.to_string())
                .or_default()
                .push((k, name.clone()));
            false
        }
        _ => true,
    });
    dirs.sort_by(|a, b| {
        let key = |d: &(PathBuf, String, Option<SystemTime>)| (Utc::parse_log_dir_name(&d.1), d.2);
        key(b).cmp(&key(a)).then_with(|| b.1.cmp(&a.1))
    });
    // Each run with its continuations, and the dir whose session is summarized (the newest continuation's).
    let runs: Vec<(PathBuf, String, Vec<String>, PathBuf)> = dirs
        .into_iter()
        .map(|(path, name, _)| {
            let mut conts = continuations.remove(&name).unwrap_or_default();
            conts.sort();
            let target = conts
                .last()
                .map_or_else(|| path.clone(), |(_, n)| path.with_file_name(n));
            let conts = conts.into_iter().map(|(_, n)| n).collect();
            (path, name, conts, target)
        })
        .collect();
    let targets: Vec<&Path> = runs.iter().map(|r| r.3.as_path()).collect();
    let infos = summarize_all(&targets, workspace_env, cwd);
    Ok(runs
        .into_iter()
        .zip(infos)
        .map(|((path, name, continuations, _), info)| RunSummary {
            info,
            name,
            path,
            continuations,
        })
        .collect())
}

/// `summarize_run` of every dir, in order, spread over the machine's cores (each run is independent: its own
/// files, decoded on its own).
fn summarize_all(
    dirs: &[&Path],
    workspace_env: Option<&Path>,
    cwd: &Path,
) -> Vec<std::result::Result<RunInfo, String>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(dirs.len());
    if workers <= 1 {
        return dirs
            .iter()
            .map(|path| summarize_run(path, workspace_env, cwd))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, std::result::Result<RunInfo, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = dirs.get(i) else {
                            break;
                        };
                        mine.push((i, summarize_run(path, workspace_env, cwd)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, info)| info).collect()
}
