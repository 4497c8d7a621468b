//! What `rd-chain report` and the chain's end draw: the report page's data (`report_page::PageData`) from
//! run records (the whole chain: its factor log, model log, settings, timings, attempts) and run dirs.
//!
//! Reads snapshots, parquet footers and run records; writes only the page, through a temp file and a rename,
//! to the path the caller chose (never inside a run dir: the default for a chain run is rd-chain's own
//! `<log root>/rd-chain/<run>/report.html`). All text stays data here: `report_page` escapes it.

mod loops;
pub mod record;

use std::path::{Path, PathBuf};

use crate::answers;
use crate::json::Json;
use crate::plan::RECORD_DIR_NAME;
use crate::report_page::{ComparisonPage, PageData, RunPage};
use crate::resolve::{absolute, ResolveRequest};
use crate::session::SigningKey;
use crate::timestamp::Utc;
use crate::{Error, Result};

pub use loops::{log_view, page_metrics, shown, LogView, Part};
pub use record::{chain_facts, ChainFacts};

/// The page's file name.
pub const REPORT_FILE: &str = "report.html";

/// What one argument of `report` names.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A chain run: its record `<log root>/rd-chain/<id>.json`.
    Run { id: String, record: PathBuf },
    /// A run dir (or its `__session__`, or one snapshot file).
    Log(PathBuf),
}

/// Where a run's files go: `<log root>/rd-chain/<run id>/`, next to its record.
pub fn run_dir(record: &Path, id: &str) -> PathBuf {
    record
        .parent()
        .map_or_else(|| PathBuf::from(id), |d| d.join(id))
}

fn records_dir(log_root: &Path, cwd: &Path) -> PathBuf {
    absolute(cwd, log_root).join(RECORD_DIR_NAME)
}

/// The run record under `<log root>/rd-chain/` that started last (by its `started` time: a run id can be any
/// name); a file that is not a readable record is skipped with a warning.
pub fn newest_run(log_root: &Path, cwd: &Path) -> Result<Target> {
    let dir = records_dir(log_root, cwd);
    let mut newest: Option<(String, PathBuf)> = None;
    for path in std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
    {
        match crate::record::load(&path) {
            Ok(r) if newest.as_ref().is_none_or(|(s, _)| r.started > *s) => {
                newest = Some((r.started, path));
            }
            Ok(_) => {}
            Err(e) => log::warn!("skipping {}: {e}", path.display()),
        }
    }
    let newest = newest.map(|(_, path)| path);
    match newest {
        Some(record) => Ok(run_target(record)),
        None => Err(Error::usage(format!(
            "no chain run under {}: name a run id, a run record or a run dir (`rd-chain report LOG`), or pass \
             --log-root DIR where rd-chain wrote its runs",
            dir.display()
        ))),
    }
}

fn run_target(record: PathBuf) -> Target {
    let id = record
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Target::Run { id, record }
}

/// What `arg` names: an existing run record (`.json`), an existing run dir or snapshot, else a run id under
/// `<log root>/rd-chain/`. Anything else is a usage error that says what was looked for.
pub fn target_of(arg: &Path, log_root: &Path, cwd: &Path) -> Result<Target> {
    let path = absolute(cwd, arg);
    if path.is_file() && path.extension().is_some_and(|x| x == "json") {
        return Ok(run_target(path));
    }
    if path.exists() {
        return Ok(Target::Log(path));
    }
    let text = arg.to_string_lossy();
    let dir = records_dir(log_root, cwd);
    if !text.is_empty() && !text.contains(['/', '\\']) && !text.starts_with('.') {
        let record = dir.join(format!("{text}.json"));
        if record.is_file() {
            return Ok(run_target(record));
        }
    }
    Err(Error::usage(format!(
        "no run or log '{text}': {} does not exist and {} has no run {text}; give a run id (the name of a \
         record in {}), a run record's path, or a run dir such as log/2026-01-14_16-14-52-886218 (`rd-chain \
         list` shows the run dirs; --log-root DIR changes where run ids are looked up)",
        path.display(),
        dir.display(),
        dir.display()
    )))
}

/// Where the page goes without `-o`: a single chain run's own dir, else `report.html` in `cwd`.
pub fn default_output(targets: &[Target], cwd: &Path) -> PathBuf {
    match targets {
        [Target::Run { id, record }] => run_dir(record, id).join(REPORT_FILE),
        _ => cwd.join(REPORT_FILE),
    }
}

/// How snapshots are read: where relative paths start, `WORKSPACE_PATH`, the signing key.
#[derive(Clone, Debug)]
pub struct ReadContext {
    pub cwd: PathBuf,
    pub workspace_path_env: Option<PathBuf>,
    pub signing_key: Option<SigningKey>,
}

impl ReadContext {
    fn request(&self, log: &Path, project_root: Option<&Path>) -> ResolveRequest {
        ResolveRequest {
            path: log.to_path_buf(),
            pick: crate::resolve::Pick::Sota,
            workspace_path_env: self.workspace_path_env.clone(),
            cwd: self.cwd.clone(),
            signing_key: self.signing_key.clone(),
            verify: crate::session::Verify::WithKeyAtHand,
            project_root: project_root.map(Path::to_path_buf),
            reading: crate::session::Reading::Everything,
        }
    }
}

fn generated(now: Utc) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        now.year, now.month, now.day, now.hour, now.minute, now.second
    )
}

/// A run dir's page: its loops, answers and SOTA factors. An unreadable log is an error naming it.
pub fn log_page(log: &Path, ctx: &ReadContext) -> Result<RunPage> {
    let run = answers::read_run(&ctx.request(log, None))?;
    let view = log_view(&run, Part::All, Some(&ctx.cwd));
    let dir = &run.inspection.survey.session.log_dir;
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // Short: a comparison's legends and table headers name each run by its title.
    Ok(RunPage {
        title: format!("Run {name}"),
        phases: view.phases,
        answers: view.answers,
        sota_factors: view.sota_factors,
        ..RunPage::default()
    })
}

/// A chain run's page from its record's document: what ran, then each phase's log. A phase log that cannot
/// be read (rdagent stopped before its first snapshot) is left out with a warning, so a failed chain still
/// gets its page.
pub fn chain_page(id: &str, doc: &Json, ctx: &ReadContext) -> RunPage {
    let facts = chain_facts(doc);
    let mut page = RunPage {
        commands: facts.commands.clone(),
        settings: facts.settings.clone(),
        timings: facts.timings.clone(),
        attempts: facts.attempts.clone(),
        hook: facts.hook.clone().map(Box::new),
        ..RunPage::default()
    };
    // Where rdagent ran (the project dir): logs and workspaces inside it are shown relative to it.
    let base = facts.phases.iter().find_map(|p| p.cwd.clone());
    for a in &mut page.attempts {
        if let Some(file) = &mut a.hook_report_file {
            *file = shown(Path::new(file.as_str()), base.as_deref());
        }
    }
    let factor_phase = facts.phases.iter().any(|p| p.kind == "factor");
    let mut logs: Vec<(PathBuf, Option<PathBuf>, Part)> = facts
        .phases
        .iter()
        .map(|p| {
            let part = if p.kind == "model" {
                Part::Model
            } else {
                Part::Factor
            };
            (p.log_dir.clone(), p.cwd.clone(), part)
        })
        .collect();
    // Factors from a given --sota-log: that log is the chain's factor side.
    if let (false, Some(sota_log)) = (factor_phase, &facts.sota_log) {
        logs.insert(0, (sota_log.clone(), None, Part::Factor));
    }
    for (log_dir, cwd, part) in logs {
        match answers::read_run(&ctx.request(&log_dir, cwd.as_deref())) {
            Ok(run) => {
                let view = log_view(&run, part, base.as_deref());
                page.phases.extend(view.phases);
                page.answers.extend(view.answers);
                page.sota_factors.extend(view.sota_factors);
            }
            Err(e) => log::warn!("the report leaves out {}: {e}", log_dir.display()),
        }
    }
    let state = match (facts.state.as_str(), facts.exit_code) {
        ("done", _) => String::new(),
        (state, Some(code)) => format!(" ({state}, exit {code})"),
        (state, None) => format!(" ({state})"),
    };
    page.title = format!("Chain {id}{state}");
    page
}

/// The page of one target.
pub fn target_page(target: &Target, ctx: &ReadContext) -> Result<RunPage> {
    match target {
        Target::Run { id, record } => {
            let loaded = crate::record::load(record)?;
            Ok(chain_page(id, &loaded.document, ctx))
        }
        Target::Log(path) => log_page(path, ctx),
    }
}

/// The whole page: one run's, or (several targets) the comparison.
pub fn page(targets: &[Target], ctx: &ReadContext) -> Result<PageData> {
    let now = generated(Utc::now());
    let mut runs = Vec::with_capacity(targets.len());
    for t in targets {
        runs.push(target_page(t, ctx)?);
    }
    if runs.len() == 1 {
        let mut run = runs.remove(0);
        run.generated = Some(now);
        return Ok(PageData::Run(run));
    }
    Ok(PageData::Comparison(ComparisonPage {
        title: format!("{} runs compared", runs.len()),
        generated: Some(now),
        runs,
    }))
}

/// Write the page atomically (a temp file in the same dir, then a rename). The parent dir is created only
/// when `create_dir` (rd-chain's own run dir); a missing dir of a path the user gave is an error naming it.
pub fn write_page(path: &Path, html: &str, create_dir: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if create_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("cannot create the report's directory", dir, e))?;
    } else if !dir.as_os_str().is_empty() && !dir.is_dir() {
        return Err(Error::usage(format!(
            "cannot write the report to {}: the directory {} does not exist; create it or pass another -o FILE",
            path.display(),
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .map_or_else(|| REPORT_FILE.into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, html).map_err(|e| Error::io("cannot write the report", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write the report", path, e)
    })
}

/// The chain's own report at its end: the record's page into `<log root>/rd-chain/<run>/report.html`.
/// Returns the path written.
pub fn write_chain_report(record_path: &Path, doc: &Json, ctx: &ReadContext) -> Result<PathBuf> {
    let id = record_path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut page = chain_page(&id, doc, ctx);
    page.generated = Some(generated(Utc::now()));
    let out = run_dir(record_path, &id).join(REPORT_FILE);
    write_page(
        &out,
        &crate::report_page::render_page(&PageData::Run(page)),
        true,
    )?;
    Ok(out)
}

/// At the chain's end (whatever its outcome): the run's report page, unless `--no-report`. A page that
/// cannot be written is a warning, never the chain's error. Returns the line for the summary.
pub fn at_chain_end(plan: &crate::plan::Plan, record: &crate::record::RunRecord) -> String {
    if !plan.config.report.value {
        return String::new();
    }
    let ctx = ReadContext {
        cwd: plan.cwd.clone(),
        workspace_path_env: plan.config.workspace_path_env.clone(),
        signing_key: plan.signing_key.clone(),
    };
    match write_chain_report(&record.path, &record.to_json(), &ctx) {
        Ok(path) => format!("  report {}\n", path.display()),
        Err(e) => {
            log::warn!("the report page was not written: {e}");
            String::new()
        }
    }
}
