//! A run's two answers: which factor set won and which model won, with their metrics.
//!
//! A run's kind (factor, model, quant) comes from its loop class and its history. The SOTA of each kind is
//! RD-Agent's own rule: the last experiment of that kind whose feedback decision is true. The model's gain is
//! measured against the model phase's first loop that produced metrics (its baseline). Decides and describes;
//! never writes anything, never changes a log or workspace.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::json::Json;
use crate::resolve::{pick_index, Pick, Survey, PARQUET_FILE};
use crate::session::details::{ExperimentDetail, ModelTask};
use crate::session::{ExperimentKind, Metrics};
use crate::Error;

/// Which answer a command asks for (`--kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Factor,
    Model,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Factor => "factor",
            Kind::Model => "model",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "factor" | "factors" => Ok(Kind::Factor),
            "model" | "models" => Ok(Kind::Model),
            _ => Err(format!("unknown kind '{s}': use factor or model")),
        }
    }
}

/// What a run evolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// `rdagent fin_factor`: factor experiments only.
    Factor,
    /// `rdagent fin_model`: model experiments only.
    Model,
    /// `rdagent fin_quant`: one trace mixing both.
    Quant,
    /// Nothing in the history says (an empty history of an unknown loop class).
    Unknown,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Factor => "factor",
            RunKind::Model => "model",
            RunKind::Quant => "quant",
            RunKind::Unknown => "unknown",
        }
    }

    /// Whether this run can answer `kind`.
    pub fn holds(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (RunKind::Quant, _) | (RunKind::Factor, Kind::Factor) | (RunKind::Model, Kind::Model)
        )
    }
}

/// The kind of a run: from its history when it has experiments, else from the loop class
/// (`...factor.FactorRDLoop`, `...model.ModelRDLoop`, `...quant.QuantRDLoop`).
pub fn run_kind(survey: &Survey) -> RunKind {
    let counts = survey.kind_counts();
    let class = survey.session.snapshot.loop_class.as_deref().unwrap_or("");
    let class_kind = if class.contains("Quant") {
        RunKind::Quant
    } else if class.contains("Model") {
        RunKind::Model
    } else if class.contains("Factor") {
        RunKind::Factor
    } else {
        RunKind::Unknown
    };
    match (counts.factor > 0, counts.model > 0) {
        (true, true) => RunKind::Quant,
        // A quant loop whose history so far has one kind is still a quant run.
        (true, false) if class_kind == RunKind::Quant => RunKind::Quant,
        (false, true) if class_kind == RunKind::Quant => RunKind::Quant,
        (true, false) => RunKind::Factor,
        (false, true) => RunKind::Model,
        (false, false) => class_kind,
    }
}

/// The metrics every answer shows, by label (the last dotted part of Qlib's long names also matches).
pub const HEADLINE: &[(&str, &str)] = &[
    ("IC", "IC"),
    ("ICIR", "ICIR"),
    ("Rank IC", "Rank IC"),
    ("annualized_return", "ann.ret"),
    ("max_drawdown", "max.dd"),
];

/// One headline metric of `metrics`: an exact label, else a label whose last dotted part matches (Qlib's
/// `1day.excess_return_with_cost.annualized_return`).
pub fn headline(metrics: &Metrics, key: &str) -> Option<f64> {
    metrics
        .iter()
        .find(|(l, _)| l == key)
        .or_else(|| {
            metrics
                .iter()
                .find(|(l, _)| l.rsplit('.').next() == Some(key) && l.contains('.'))
        })
        .map(|(_, v)| *v)
}

/// One model experiment of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRow {
    pub index: usize,
    pub loop_id: Option<u64>,
    pub decision: Option<bool>,
    /// The first model task of the experiment.
    pub task: Option<ModelTask>,
    pub metrics: Option<Metrics>,
    /// The workspace as recorded.
    pub recorded: Option<String>,
    /// The workspace where it is now, if it exists.
    pub workspace: Option<PathBuf>,
}

/// The SOTA factor set of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorAnswer {
    pub index: usize,
    pub loop_id: Option<u64>,
    pub workspace: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
    /// The factor columns of the SOTA parquet's footer, or why they could not be counted.
    pub factor_count: Result<usize, String>,
    pub metrics: Option<Metrics>,
}

/// The SOTA model of a run and its gain over the baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelAnswer {
    pub sota: ModelRow,
    /// The model phase's first loop that produced metrics.
    pub baseline: Option<ModelRow>,
    /// SOTA minus baseline on each headline metric both have.
    pub gain: Vec<(&'static str, f64)>,
}

/// Both answers of one run (either may be absent), and every model experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Answers {
    pub kind: RunKind,
    pub factor: Option<FactorAnswer>,
    pub model: Option<ModelAnswer>,
    pub models: Vec<ModelRow>,
}

/// Every model experiment of the history, in order.
pub fn model_rows(survey: &Survey, details: &[ExperimentDetail]) -> Vec<ModelRow> {
    let ctx = survey.context();
    survey
        .entries
        .iter()
        .filter(|s| s.entry.kind == ExperimentKind::Model)
        .map(|s| ModelRow {
            index: s.entry.index,
            loop_id: s.entry.loop_id,
            decision: s.entry.decision,
            task: details
                .get(s.entry.index)
                .and_then(|d| d.models.first().cloned()),
            metrics: s.entry.metrics.clone(),
            recorded: s.entry.workspace.as_ref().map(|w| w.text.clone()),
            workspace: s.located(&ctx).map(|l| l.path.clone()),
        })
        .collect()
}

/// RD-Agent's SOTA model: the last model experiment whose decision is true.
pub fn sota_model(rows: &[ModelRow]) -> Option<&ModelRow> {
    rows.iter().rev().find(|r| r.decision == Some(true))
}

/// The model answer of `rows`: the SOTA model, the baseline and the gain.
pub fn model_answer(rows: &[ModelRow]) -> Option<ModelAnswer> {
    let sota = sota_model(rows)?.clone();
    let baseline = rows.iter().find(|r| r.metrics.is_some()).cloned();
    let gain = match (
        &sota.metrics,
        baseline.as_ref().and_then(|b| b.metrics.as_ref()),
    ) {
        (Some(s), Some(b)) => HEADLINE
            .iter()
            .filter_map(|(key, _)| Some((*key, headline(s, key)? - headline(b, key)?)))
            .collect(),
        _ => Vec::new(),
    };
    Some(ModelAnswer {
        sota,
        baseline,
        gain,
    })
}

/// The SOTA factor set of a run, when it has an accepted factor experiment.
pub fn factor_answer(survey: &Survey) -> Option<FactorAnswer> {
    let index = pick_index(survey, Pick::Sota).ok()?;
    Some(factor_answer_at(survey, index))
}

/// Both answers of a surveyed run.
pub fn answers(survey: &Survey, details: &[ExperimentDetail]) -> Answers {
    let models = model_rows(survey, details);
    Answers {
        kind: run_kind(survey),
        factor: factor_answer(survey),
        model: model_answer(&models),
        models,
    }
}

/// The SOTA model's workspace (`resolve --kind model`): exit 3 naming what the log holds when there is none.
pub fn resolve_model(survey: &Survey, rows: &[ModelRow]) -> crate::Result<PathBuf> {
    let log = survey.session.log_dir.display();
    let Some(sota) = sota_model(rows) else {
        let kind = run_kind(survey);
        let counts = survey.counts();
        let what = if rows.is_empty() && kind == RunKind::Model {
            format!(
                "no model experiment in the history of {log} yet ({counts}): a model loop records its \
                 experiment at its feedback (or record) step"
            )
        } else if rows.is_empty() {
            format!(
                "no model experiment in the history of {log}: it is a {} run ({counts}); `--kind factor` gives \
                 its SOTA factor workspace",
                kind.as_str()
            )
        } else {
            format!(
                "no accepted model experiment in the history of {log} ({} model experiments, none accepted): \
                 RD-Agent's SOTA model is the last model experiment whose feedback decision is true",
                rows.len()
            )
        };
        return Err(Error::resolution(what));
    };
    let at = match sota.loop_id {
        Some(l) => format!("history entry #{} (loop {l})", sota.index),
        None => format!("history entry #{}", sota.index),
    };
    match (&sota.workspace, &sota.recorded) {
        (Some(w), _) => Ok(w.clone()),
        (None, Some(rec)) => Err(Error::resolution(format!(
            "the SOTA model's workspace {rec} does not exist ({at} of {log}); set WORKSPACE_PATH to the directory \
             that holds RD-Agent's workspaces now"
        ))),
        (None, None) => Err(Error::resolution(format!(
            "the SOTA model ({at} of {log}) records no workspace path"
        ))),
    }
}

/// Text from a snapshot inside a line of human output: rd-chain's one terminal escaping (control characters,
/// newlines and tabs shown as visible escapes).
pub fn term(text: &str) -> String {
    crate::render::escape_value(text)
}

// ------------------------------------------------------------------------------------------------- JSON

/// Metrics as a JSON object of numbers; null when there are none.
pub(crate) fn metrics_json(m: Option<&Metrics>) -> Json {
    match m {
        Some(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Json::Float(*v)))
                .collect(),
        ),
        None => Json::Null,
    }
}

fn headline_json(m: Option<&Metrics>) -> Json {
    let mut out = Json::object();
    for (key, _) in HEADLINE {
        out.push(key, m.and_then(|m| headline(m, key)));
    }
    out
}

/// One model experiment as JSON.
pub fn model_row_json(r: &ModelRow) -> Json {
    let task = r.task.as_ref();
    Json::object()
        .with("index", r.index)
        .with("loop", r.loop_id)
        .with("decision", r.decision)
        .with("name", task.map(|t| t.name.clone()))
        .with("model_type", task.and_then(|t| t.model_type.clone()))
        .with("description", task.and_then(|t| t.description.clone()))
        .with("formulation", task.and_then(|t| t.formulation.clone()))
        .with("architecture", task.and_then(|t| t.architecture.clone()))
        .with(
            "hyperparameters",
            task.map_or(Json::Null, |t| t.hyperparameters.clone()),
        )
        .with(
            "training_hyperparameters",
            task.map_or(Json::Null, |t| t.training_hyperparameters.clone()),
        )
        .with("code_in_snapshot", task.is_some_and(|t| t.code.is_some()))
        .with("headline", headline_json(r.metrics.as_ref()))
        .with("metrics", metrics_json(r.metrics.as_ref()))
        .with("workspace_recorded", r.recorded.clone())
        .with("workspace", r.workspace.as_ref())
}

/// The factor answer as JSON.
pub fn factor_answer_json(f: &FactorAnswer) -> Json {
    Json::object()
        .with("index", f.index)
        .with("loop", f.loop_id)
        .with("workspace", f.workspace.as_ref())
        .with("parquet", f.parquet.as_ref())
        .with("factor_count", f.factor_count.as_ref().ok().copied())
        .with("factor_count_error", f.factor_count.as_ref().err().cloned())
        .with("headline", headline_json(f.metrics.as_ref()))
        .with("metrics", metrics_json(f.metrics.as_ref()))
}

/// The model answer as JSON.
pub fn model_answer_json(m: &ModelAnswer) -> Json {
    let mut gain = Json::object();
    for (key, _) in HEADLINE {
        gain.push(key, m.gain.iter().find(|(k, _)| k == key).map(|(_, v)| *v));
    }
    Json::object()
        .with("sota", model_row_json(&m.sota))
        .with(
            "baseline",
            m.baseline.as_ref().map_or(Json::Null, |b| {
                Json::object()
                    .with("index", b.index)
                    .with("loop", b.loop_id)
                    .with("headline", headline_json(b.metrics.as_ref()))
            }),
        )
        .with("gain", gain)
}

/// `answers` in `inspect --json` and the run record.
pub fn answers_json(a: &Answers) -> Json {
    Json::object()
        .with("kind", a.kind.as_str())
        .with(
            "factor",
            a.factor.as_ref().map_or(Json::Null, factor_answer_json),
        )
        .with(
            "model",
            a.model.as_ref().map_or(Json::Null, model_answer_json),
        )
}

// ------------------------------------------------------------------------------------------------- text

fn fmt_metric(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_nan() => "NaN".to_string(),
        Some(v) => format!("{v:.4}"),
        None => "-".to_string(),
    }
}

fn fmt_gain(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v:+.4}")
    }
}

fn at(index: usize, loop_id: Option<u64>) -> String {
    match loop_id {
        Some(l) => format!("loop {l}"),
        None => format!("history entry #{index}"),
    }
}

fn headline_text(m: Option<&Metrics>, keys: &[&str]) -> String {
    HEADLINE
        .iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, label)| format!("{label} {}", fmt_metric(m.and_then(|m| headline(m, k)))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The factor answer in one line (after a label).
pub fn factor_answer_text(f: &FactorAnswer) -> String {
    let count = match &f.factor_count {
        Ok(n) => format!("{n} factors"),
        Err(_) => "factor count unknown (parquet footer unreadable)".to_string(),
    };
    format!(
        "{}, {count}; {}",
        at(f.index, f.loop_id),
        headline_text(
            f.metrics.as_ref(),
            &["IC", "ICIR", "Rank IC", "annualized_return"]
        )
    )
}

/// The model answer in two lines (after a label): the SOTA model, then its gain over the baseline.
pub fn model_answer_text(m: &ModelAnswer) -> (String, String) {
    let task = m.sota.task.as_ref();
    let name = task.map_or("(unnamed)".to_string(), |t| term(&t.name));
    let kind = task
        .and_then(|t| t.model_type.as_deref())
        .map_or(String::new(), |t| format!(" ({})", term(t)));
    let workspace = m
        .sota
        .workspace
        .as_ref()
        .map(|w| w.display().to_string())
        .or_else(|| {
            m.sota
                .recorded
                .as_ref()
                .map(|r| format!("{} (not found)", term(r)))
        })
        .unwrap_or_else(|| "-".to_string());
    let first = format!(
        "{}, {name}{kind}; {}; workspace {workspace}",
        at(m.sota.index, m.sota.loop_id),
        headline_text(
            m.sota.metrics.as_ref(),
            &["IC", "ICIR", "Rank IC", "annualized_return", "max_drawdown"]
        )
    );
    let second = match &m.baseline {
        Some(b) if !m.gain.is_empty() => {
            let gains: Vec<String> = m
                .gain
                .iter()
                .map(|(k, v)| {
                    let label = HEADLINE.iter().find(|(h, _)| h == k).map_or(*k, |(_, l)| l);
                    format!("{label} {}", fmt_gain(*v))
                })
                .collect();
            format!(
                "over {} (baseline): {}",
                at(b.index, b.loop_id),
                gains.join(", ")
            )
        }
        _ => "no baseline with metrics to compare with".to_string(),
    };
    (first, second)
}

/// The answer lines (`factors ...`, `model ...`, `gain ...`) with a label column of `width`.
pub fn answers_text(a: &Answers, indent: &str) -> String {
    let mut out = String::new();
    if let Some(f) = &a.factor {
        out.push_str(&format!(
            "{indent}{:<9} {}\n",
            "factors",
            factor_answer_text(f)
        ));
    }
    if let Some(m) = &a.model {
        let (first, second) = model_answer_text(m);
        out.push_str(&format!("{indent}{:<9} {first}\n", "model"));
        out.push_str(&format!("{indent}{:<9} {second}\n", "gain"));
    }
    out
}

/// The model table of `inspect`: one row per model experiment, the SOTA model marked `*`.
pub fn model_table(rows: &[ModelRow]) -> String {
    let sota = sota_model(rows).map(|r| r.index);
    let mut table = vec![vec![
        String::new(),
        "#".to_string(),
        "loop".to_string(),
        "model".to_string(),
        "type".to_string(),
        "decision".to_string(),
        "IC".to_string(),
        "ICIR".to_string(),
        "Rank IC".to_string(),
        "ann.ret".to_string(),
        "max.dd".to_string(),
        "workspace".to_string(),
    ]];
    for r in rows {
        let task = r.task.as_ref();
        let m = r.metrics.as_ref();
        let workspace = match (&r.recorded, &r.workspace) {
            (None, _) => "-".to_string(),
            (Some(_), Some(w)) => w.display().to_string(),
            (Some(rec), None) => format!("{} (not found)", term(rec)),
        };
        table.push(vec![
            if sota == Some(r.index) { "*" } else { "" }.to_string(),
            r.index.to_string(),
            r.loop_id.map_or("-".to_string(), |l| l.to_string()),
            task.map_or("-".to_string(), |t| term(&t.name)),
            task.and_then(|t| t.model_type.as_deref())
                .map_or("-".to_string(), term),
            match r.decision {
                Some(true) => "accepted",
                Some(false) => "rejected",
                None => "-",
            }
            .to_string(),
            fmt_metric(m.and_then(|m| headline(m, "IC"))),
            fmt_metric(m.and_then(|m| headline(m, "ICIR"))),
            fmt_metric(m.and_then(|m| headline(m, "Rank IC"))),
            fmt_metric(m.and_then(|m| headline(m, "annualized_return"))),
            fmt_metric(m.and_then(|m| headline(m, "max_drawdown"))),
            workspace,
        ]);
    }
    let right = [
        false, true, true, false, false, false, true, true, true, true, true, false,
    ];
    let mut out = crate::report::table(&table, &right);
    match sota {
        Some(i) => out.push_str(&format!(
            "\n(* marks entry #{i}, the SOTA model: the last accepted model experiment)\n"
        )),
        None => out.push_str("\n(no model experiment was accepted: there is no SOTA model)\n"),
    }
    out
}

// ------------------------------------------------------------------------------------------------- commands

/// A surveyed run with its details read: what `resolve --kind model`, `inspect` and `export` work from.
pub struct Run {
    pub inspection: crate::resolve::Inspection,
    pub details: Vec<ExperimentDetail>,
    pub answers: Answers,
}

/// Survey a log, apply the factor pick, read the details of its snapshot and work out both answers.
pub fn read_run(req: &crate::resolve::ResolveRequest) -> crate::Result<Run> {
    let inspection = crate::resolve::inspect(req)?;
    let details = crate::session::details::load_details(&inspection.survey.session.snapshot.path)?;
    let answers = answers(&inspection.survey, &details);
    Ok(Run {
        inspection,
        details,
        answers,
    })
}

/// The kind a command works on: the one asked for, else the run's own (a model run: model; else factor).
pub fn effective_kind(asked: Option<Kind>, run: RunKind) -> Kind {
    asked.unwrap_or(match run {
        RunKind::Model => Kind::Model,
        _ => Kind::Factor,
    })
}

/// `resolve --kind factor` of a run that holds no factor experiment: the reason, then what the log holds
/// instead and how to get its answer.
pub fn not_a_factor_run(survey: &Survey, why: Error) -> Error {
    match why {
        Error::Resolution(m) if run_kind(survey) == RunKind::Model => Error::Resolution(format!(
            "{m}\n{} holds a model run, not factors: `rd-chain resolve --kind model` prints its SOTA model \
             workspace",
            survey.session.log_dir.display()
        )),
        other => other,
    }
}

/// `resolve --kind model --json`.
pub fn model_resolution_json(run: &Run, workspace: &std::path::Path) -> Json {
    let survey = &run.inspection.survey;
    Json::object()
        .with("log_dir", &survey.session.log_dir)
        .with("kind", "model")
        .with("run_kind", run.answers.kind.as_str())
        .with("snapshot", &survey.session.snapshot.path)
        .with("workspace", workspace)
        .with(
            "model",
            run.answers
                .model
                .as_ref()
                .map_or(Json::Null, model_answer_json),
        )
}

/// The header `inspect` prints for a model run (a factor or quant run gets the factor history's header).
pub fn model_run_header(survey: &Survey) -> String {
    let session = &survey.session;
    let snap = &session.snapshot;
    let mut out = String::new();
    out.push_str(&format!(
        "{:<10} {}\n",
        "log dir",
        session.log_dir.display()
    ));
    out.push_str(&format!(
        "{:<10} {}\n",
        "project",
        survey.project_root.display()
    ));
    out.push_str(&format!(
        "{:<10} {}, {} bytes\n",
        "snapshot",
        snap.path
            .strip_prefix(&session.log_dir)
            .unwrap_or(&snap.path)
            .display(),
        snap.bytes
    ));
    out.push_str(&format!(
        "{:<10} {}, protocol {}\n",
        "format",
        snap.signature.describe(),
        snap.protocol
    ));
    if let Some(class) = &snap.loop_class {
        out.push_str(&format!("{:<10} {}\n", "loop", term(class)));
    }
    out.push_str(&format!("{:<10} {}\n", "history", survey.counts()));
    out
}

/// `inspect` as text: the factor history (factor and quant runs), the model table (model and quant runs),
/// both answers, and with `--factors` the SOTA factor set.
pub fn inspect_text(
    run: &Run,
    kind: Kind,
    factor_set: Option<&crate::factors::FactorSet>,
) -> String {
    let survey = &run.inspection.survey;
    let mut out = String::new();
    let run_kind = run.answers.kind;
    if run_kind == RunKind::Model && kind == Kind::Model {
        out.push_str(&model_run_header(survey));
    } else {
        out.push_str(&crate::report::inspection_text(&run.inspection));
    }
    if !run.answers.models.is_empty() {
        out.push_str(&format!(
            "\nmodel experiments ({} run):\n",
            run_kind.as_str()
        ));
        out.push_str(&model_table(&run.answers.models));
    }
    let answers = answers_text(&run.answers, "  ");
    if !answers.is_empty() {
        out.push_str("\nanswers:\n");
        out.push_str(&answers);
    }
    if let Some(set) = factor_set {
        out.push('\n');
        out.push_str(&crate::factors::factor_set_text(set));
    }
    out
}

/// `inspect --json`: the factor document plus `run_kind`, `models`, `answers` and (with `--factors`)
/// `factor_set`.
pub fn inspect_json(run: &Run, factor_set: Option<&crate::factors::FactorSet>) -> Json {
    let mut doc = crate::report::inspection_json(&run.inspection);
    doc.push("run_kind", run.answers.kind.as_str());
    doc.push(
        "models",
        run.answers
            .models
            .iter()
            .map(model_row_json)
            .collect::<Vec<_>>(),
    );
    doc.push("answers", answers_json(&run.answers));
    if let Some(set) = factor_set {
        doc.push("factor_set", crate::factors::factor_set_json(set));
    }
    doc
}

// ------------------------------------------------------------------------------------------------- the chain

/// The chain's two answers: the SOTA factor set of the factor log and the SOTA model of the model phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainAnswers {
    pub factor_log: Option<PathBuf>,
    pub factor: Option<FactorAnswer>,
    pub model_log: Option<PathBuf>,
    pub model: Option<ModelAnswer>,
    /// Why an answer is missing.
    pub notes: Vec<String>,
    /// Where `--export DIR` wrote the bundle.
    pub export: Option<PathBuf>,
}

impl ChainAnswers {
    /// `answers` in the run record.
    pub fn to_json(&self) -> Json {
        Json::object()
            .with("factor_log", self.factor_log.as_ref())
            .with(
                "factor",
                self.factor.as_ref().map_or(Json::Null, factor_answer_json),
            )
            .with("model_log", self.model_log.as_ref())
            .with(
                "model",
                self.model.as_ref().map_or(Json::Null, model_answer_json),
            )
            .with("notes", self.notes.clone())
            .with("export", self.export.as_ref())
    }

    /// The summary's last lines.
    pub fn text(&self) -> String {
        let mut out = String::from("answers\n");
        if let Some(f) = &self.factor {
            out.push_str(&format!("  {:<9} {}\n", "factors", factor_answer_text(f)));
        }
        if let Some(m) = &self.model {
            let (first, second) = model_answer_text(m);
            out.push_str(&format!("  {:<9} {first}\n", "model"));
            out.push_str(&format!("  {:<9} {second}\n", "gain"));
        }
        for note in &self.notes {
            out.push_str(&format!("  {:<9} {}\n", "note", term(note)));
        }
        if let Some(dir) = &self.export {
            out.push_str(&format!("  {:<9} {}\n", "export", dir.display()));
        }
        out
    }
}

/// The factor answer for an already chosen history entry.
pub fn factor_answer_at(survey: &Survey, index: usize) -> FactorAnswer {
    let status = &survey.entries[index];
    let workspace = status.located(&survey.context()).map(|l| l.path.clone());
    let parquet = workspace.as_ref().map(|w| w.join(PARQUET_FILE));
    let factor_count = match &parquet {
        None => Err("the workspace does not exist".to_string()),
        Some(p) => crate::parquet::read_columns(p)
            .map(|c| c.factor_names().len())
            .map_err(|e| e.to_string()),
    };
    FactorAnswer {
        index,
        loop_id: status.entry.loop_id,
        workspace,
        parquet,
        factor_count,
        metrics: status.entry.metrics.clone(),
    }
}

/// Work out the chain's answers from its record (the factor log and pick in `sota`, the model phase's log),
/// and the bundle `--export` would write. Never fails: a missing answer becomes a note.
pub fn chain_answers(
    plan: &crate::plan::Plan,
    record: &crate::record::RunRecord,
) -> (ChainAnswers, crate::export::Bundle) {
    use crate::plan::PhaseKind;
    let mut out = ChainAnswers::default();
    let mut bundle = crate::export::Bundle::default();
    let request = |path: &std::path::Path, root: Option<PathBuf>| crate::resolve::ResolveRequest {
        path: path.to_path_buf(),
        pick: plan.config.pick.value,
        workspace_path_env: plan.config.workspace_path_env.clone(),
        cwd: plan.cwd.clone(),
        signing_key: plan.signing_key.clone(),
        verify: crate::session::Verify::WithKeyAtHand,
        project_root: root,
        reading: crate::session::Reading::Everything,
    };
    let factor_root = record
        .phases
        .iter()
        .find(|p| p.kind == PhaseKind::Factor)
        .map(|p| p.cwd.clone());
    match record.sota.as_ref() {
        Some(sota) => match (&sota.log_dir, sota.index) {
            (Some(log), Some(index)) => {
                out.factor_log = Some(log.clone());
                match read_run(&request(log, factor_root)) {
                    Ok(run) if index < run.inspection.survey.entries.len() => {
                        let survey = &run.inspection.survey;
                        out.factor = Some(factor_answer_at(survey, index));
                        match crate::factors::factor_set(
                            survey,
                            &run.details,
                            index,
                            sota.parquet.clone(),
                        ) {
                            Ok(set) => {
                                bundle.factors = Some(set);
                                bundle.sources.push(crate::export::Source {
                                    kind: "factor",
                                    log_dir: survey.session.log_dir.clone(),
                                    snapshot: survey.session.snapshot.path.clone(),
                                });
                            }
                            Err(e) => out.notes.push(format!("the SOTA factor set: {e}")),
                        }
                    }
                    Ok(_) => out.notes.push(format!(
                        "the factor log {} changed while rd-chain ran",
                        log.display()
                    )),
                    Err(e) => out.notes.push(format!("the factor log: {e}")),
                }
            }
            _ => out.notes.push(format!(
                "the SOTA factors are the given workspace {}: no factor log to describe them",
                sota.workspace.display()
            )),
        },
        None => out
            .notes
            .push("no SOTA factor set was resolved".to_string()),
    }
    if let Some(phase) = record.phases.iter().find(|p| p.kind == PhaseKind::Model) {
        out.model_log = Some(phase.log_dir.clone());
        match read_run(&request(&phase.log_dir, Some(phase.cwd.clone()))) {
            Ok(run) => match &run.answers.model {
                Some(m) => {
                    out.model = Some(m.clone());
                    bundle.model = Some(m.clone());
                    bundle.sources.push(crate::export::Source {
                        kind: "model",
                        log_dir: run.inspection.survey.session.log_dir.clone(),
                        snapshot: run.inspection.survey.session.snapshot.path.clone(),
                    });
                }
                None if run.answers.models.is_empty() => out
                    .notes
                    .push("the model phase recorded no model experiment".to_string()),
                None => out.notes.push(format!(
                    "the model phase accepted none of its {} model experiments: no SOTA model",
                    run.answers.models.len()
                )),
            },
            Err(e) => out.notes.push(format!("the model log: {e}")),
        }
    }
    (out, bundle)
}

/// Write the chain's bundle (`--export DIR`) and note it in the record.
pub fn export_chain(
    bundle: crate::export::Bundle,
    dir: &std::path::Path,
    record: &mut crate::record::RunRecord,
) -> crate::Result<()> {
    if bundle.factors.is_none() && bundle.model.is_none() {
        return Err(Error::resolution(format!(
            "--export {}: the chain has no answer to export ({})",
            dir.display(),
            record
                .answers
                .as_ref()
                .map(|a| a.notes.join("; "))
                .unwrap_or_default()
        )));
    }
    crate::export::write(&bundle, dir, false)?;
    if let Some(a) = record.answers.as_mut() {
        a.export = Some(dir.to_path_buf());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: usize, decision: Option<bool>, ic: Option<f64>) -> ModelRow {
        ModelRow {
            index,
            loop_id: Some(index as u64),
            decision,
            task: None,
            metrics: ic.map(|ic| {
                vec![
                    ("IC".to_string(), ic),
                    ("ICIR".to_string(), ic * 10.0),
                    (
                        "1day.excess_return_with_cost.annualized_return".to_string(),
                        ic * 2.0,
                    ),
                ]
                .into()
            }),
            recorded: None,
            workspace: None,
        }
    }

    #[test]
    fn the_sota_model_is_the_last_accepted_and_gain_is_over_the_first_with_metrics() {
        let rows = vec![
            row(0, Some(false), None),
            row(1, Some(true), Some(0.01)),
            row(2, Some(true), Some(0.03)),
            row(3, Some(false), Some(0.05)),
        ];
        let a = model_answer(&rows).unwrap();
        assert_eq!(a.sota.index, 2);
        assert_eq!(a.baseline.as_ref().unwrap().index, 1);
        let gain: Vec<(&str, String)> = a
            .gain
            .iter()
            .map(|(k, v)| (*k, format!("{v:.4}")))
            .collect();
        assert_eq!(
            gain,
            vec![
                ("IC", "0.0200".to_string()),
                ("ICIR", "0.2000".to_string()),
                ("annualized_return", "0.0400".to_string())
            ]
        );
        assert!(model_answer(&[row(0, Some(false), Some(0.1))]).is_none());
        let table = model_table(&rows);
        let marked: Vec<&str> = table.lines().filter(|l| l.starts_with('*')).collect();
        assert_eq!(marked.len(), 1, "{table}");
        assert!(marked[0].contains("0.0300"), "{table}");
    }

    #[test]
    fn headline_matches_qlib_long_labels_and_kind_parses() {
        let m: Metrics = vec![(
            "1day.excess_return_with_cost.max_drawdown".to_string(),
            -0.1,
        )]
        .into();
        assert_eq!(headline(&m, "max_drawdown"), Some(-0.1));
        assert_eq!(headline(&m, "IC"), None);
        assert_eq!("Model".parse::<Kind>(), Ok(Kind::Model));
        assert_eq!("factor".parse::<Kind>(), Ok(Kind::Factor));
        assert!("quant"
            .parse::<Kind>()
            .unwrap_err()
            .contains("factor or model"));
        assert!(RunKind::Quant.holds(Kind::Model) && RunKind::Quant.holds(Kind::Factor));
        assert!(!RunKind::Factor.holds(Kind::Model) && !RunKind::Model.holds(Kind::Factor));
    }

    #[test]
    fn terminal_text_has_no_control_characters() {
        assert_eq!(
            term("a\u{1b}[31mred\nb\u{9b}"),
            "a\\x1b[31mred\\x0ab\\u{9b}"
        );
        assert_eq!(term("plain ü"), "plain ü");
    }
}
