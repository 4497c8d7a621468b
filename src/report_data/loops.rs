//! One run dir's session history -> the report page's loops (per phase), answers and SOTA factor set.
//!
//! A loop is accepted when its feedback says so, failed when it produced no metrics (its backtest raised, or
//! it never reached feedback: a loop dir under `__session__` without a history entry), else rejected. Loop
//! ids come from `trace.idx2loop_id`; a history without them (RD-Agent up to 0.3) is numbered by position.
//! Text from the snapshot is passed on as it is: the page escapes it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::answers::{self, headline, Run};
use crate::factors;
use crate::report_page::{Answer, Decision, LoopRow, Metrics, Phase, SotaFactor};
use crate::session::snapshot::snapshot_names;
use crate::session::{self, ExperimentKind};

/// What one log contributes to a run page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogView {
    pub phases: Vec<Phase>,
    pub answers: Vec<Answer>,
    pub sota_factors: Vec<SotaFactor>,
}

/// The five headline metrics of a history entry (Qlib's long names match by their last part).
pub fn page_metrics(m: Option<&session::Metrics>) -> Metrics {
    let get = |key: &str| m.and_then(|m| headline(m, key));
    Metrics {
        ic: get("IC"),
        icir: get("ICIR"),
        rank_ic: get("Rank IC"),
        annualized_return: get("annualized_return"),
        max_drawdown: get("max_drawdown"),
    }
}

fn decision(accepted: Option<bool>, metrics: &Metrics) -> Decision {
    let has_result = [
        metrics.ic,
        metrics.icir,
        metrics.rank_ic,
        metrics.annualized_return,
        metrics.max_drawdown,
    ]
    .iter()
    .any(Option::is_some);
    match accepted {
        Some(true) => Decision::Accepted,
        _ if !has_result => Decision::Failed,
        _ => Decision::Rejected,
    }
}

fn loop_number(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

/// The loops under `__session__` (every loop that started), when the log has that dir.
fn started_loops(run: &Run) -> BTreeSet<u64> {
    let session = &run.inspection.survey.session;
    match &session.session_dir {
        Some(dir) => snapshot_names(dir)
            .map(|files| files.iter().map(|f| f.loop_id).collect())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    }
}

/// The loops of one kind, in loop order, with every started loop that left no entry as a failed loop
/// (only for a run of that kind alone: in a mixed run a missing loop's kind is unknown).
fn phase(run: &Run, kind: ExperimentKind, name: &str, add_missing: bool) -> Phase {
    let survey = &run.inspection.survey;
    let mut loops: Vec<LoopRow> = survey
        .entries
        .iter()
        .filter(|s| s.entry.kind == kind)
        .map(|s| {
            let e = &s.entry;
            let detail = run.details.get(e.index);
            let metrics = page_metrics(e.metrics.as_ref());
            LoopRow {
                id: loop_number(e.loop_id.unwrap_or(e.index as u64)),
                decision: decision(e.decision, &metrics),
                hypothesis: detail
                    .and_then(|d| d.hypothesis.clone())
                    .unwrap_or_default(),
                reason: detail.and_then(|d| d.reason.clone()).unwrap_or_default(),
                metrics,
            }
        })
        .collect();
    let has_loop_ids = survey.entries.iter().all(|s| s.entry.loop_id.is_some());
    if add_missing && has_loop_ids {
        let seen: BTreeSet<u32> = loops.iter().map(|l| l.id).collect();
        for id in started_loops(run) {
            if !seen.contains(&loop_number(id)) {
                loops.push(LoopRow {
                    id: loop_number(id),
                    decision: Decision::Failed,
                    hypothesis: String::new(),
                    reason: "The loop left no history entry: it failed before its feedback, or the run stopped."
                        .to_string(),
                    metrics: Metrics::default(),
                });
            }
        }
    }
    // Stable: entries of one loop (a parallel run records out of order) keep their history order.
    loops.sort_by_key(|l| l.id);
    // RD-Agent's SOTA: the last accepted entry of the history (not the highest loop id).
    let sota_loop = survey
        .entries
        .iter()
        .rev()
        .find(|s| s.entry.kind == kind && s.entry.decision == Some(true))
        .map(|s| loop_number(s.entry.loop_id.unwrap_or(s.entry.index as u64)));
    Phase {
        name: name.to_string(),
        loops,
        sota_loop,
    }
}

/// A path as the page shows it: relative to `base` (the project dir) when inside it, else as it is.
pub fn shown(p: &Path, base: Option<&Path>) -> String {
    match base.and_then(|b| p.strip_prefix(b).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => p.display().to_string(),
    }
}

/// The factor answer (`answers::FactorAnswer`) as the page's card.
fn factor_card(run: &Run, base: Option<&Path>) -> Option<Answer> {
    let f = run.answers.factor.as_ref()?;
    let count = match &f.factor_count {
        Ok(n) => format!(" ({n} factors)"),
        Err(_) => String::new(),
    };
    let recorded = run.inspection.survey.entries[f.index]
        .entry
        .workspace
        .as_ref()
        .map(|w| format!("{} (not found)", w.text));
    Some(Answer {
        title: format!("SOTA factor set{count}"),
        log: shown(&run.inspection.survey.session.log_dir, base),
        loop_id: f.loop_id.map(loop_number),
        workspace: f
            .workspace
            .as_deref()
            .map(|w| shown(w, base))
            .or(recorded)
            .unwrap_or_else(|| "—".to_string()),
        metrics: page_metrics(f.metrics.as_ref()),
        baseline: None,
    })
}

/// The model answer: the SOTA model with the model phase's first loop with metrics as its baseline.
fn model_card(run: &Run, base: Option<&Path>) -> Option<Answer> {
    let m = run.answers.model.as_ref()?;
    let name = m
        .sota
        .task
        .as_ref()
        .map_or(String::new(), |t| match t.model_type.as_deref() {
            Some(kind) => format!(": {} ({kind})", t.name),
            None => format!(": {}", t.name),
        });
    Some(Answer {
        title: format!("SOTA model{name}"),
        log: shown(&run.inspection.survey.session.log_dir, base),
        loop_id: m.sota.loop_id.map(loop_number),
        workspace: m
            .sota
            .workspace
            .as_deref()
            .map(|w| shown(w, base))
            .or_else(|| m.sota.recorded.as_ref().map(|r| format!("{r} (not found)")))
            .unwrap_or_else(|| "—".to_string()),
        metrics: page_metrics(m.sota.metrics.as_ref()),
        baseline: m
            .baseline
            .as_ref()
            .map(|b| page_metrics(b.metrics.as_ref())),
    })
}

/// The SOTA factor set as `inspect --factors` reads it (the parquet footer's columns, each explained by the
/// history); empty, with a warning, when the parquet cannot be read.
fn sota_factors(run: &Run) -> Vec<SotaFactor> {
    let Ok(picked) = &run.inspection.outcome else {
        return Vec::new();
    };
    let set = match factors::factor_set(
        &run.inspection.survey,
        &run.details,
        picked.index,
        picked.parquet.path.clone(),
    ) {
        Ok(set) => set,
        Err(e) => {
            log::warn!("the report shows no SOTA factor table: {e}");
            return Vec::new();
        }
    };
    set.factors
        .into_iter()
        .map(|f| {
            let task = f.task.as_ref();
            SotaFactor {
                loop_id: f.introduced_loop.map(loop_number),
                formulation: task.and_then(|t| t.formulation.clone()).unwrap_or_default(),
                description: task.and_then(|t| t.description.clone()).unwrap_or_else(|| {
                    "no factor experiment up to the SOTA names this column".to_string()
                }),
                name: f.name,
            }
        })
        .collect()
}

/// Which parts of a log the page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Whatever the log holds: the factor loops, the model loops, or both (a quant run).
    All,
    /// The factor loops and the SOTA factor set (a chain's factor phase).
    Factor,
    /// The model loops and the SOTA model (a chain's model phase).
    Model,
}

/// The page's view of one surveyed log.
/// Paths inside `base` are shown relative to it.
pub fn log_view(run: &Run, part: Part, base: Option<&Path>) -> LogView {
    let kind = run.answers.kind;
    let counts = run.inspection.survey.kind_counts();
    let wants_factor = match part {
        Part::Factor => true,
        Part::Model => false,
        Part::All => counts.factor > 0 || kind == answers::RunKind::Factor,
    };
    let wants_model = match part {
        Part::Model => true,
        Part::Factor => false,
        Part::All => counts.model > 0 || kind == answers::RunKind::Model,
    };
    let alone = !(wants_factor && wants_model);
    let mut view = LogView::default();
    if wants_factor {
        view.phases
            .push(phase(run, ExperimentKind::Factor, "Factor loop", alone));
        view.answers.extend(factor_card(run, base));
        view.sota_factors = sota_factors(run);
    }
    if wants_model {
        view.phases
            .push(phase(run, ExperimentKind::Model, "Model loop", alone));
        view.answers.extend(model_card(run, base));
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_without_metrics_is_failed_unless_accepted() {
        let with = Metrics {
            ic: Some(0.01),
            ..Metrics::default()
        };
        let without = Metrics::default();
        assert_eq!(decision(Some(true), &with), Decision::Accepted);
        assert_eq!(decision(Some(true), &without), Decision::Accepted);
        assert_eq!(decision(Some(false), &with), Decision::Rejected);
        assert_eq!(decision(None, &with), Decision::Rejected);
        assert_eq!(decision(Some(false), &without), Decision::Failed);
        assert_eq!(decision(None, &without), Decision::Failed);
    }

    #[test]
    fn qlib_long_metric_names_fill_the_page_metrics() {
        let m: session::Metrics = vec![
            ("IC".into(), 0.03),
            ("Rank IC".into(), 0.04),
            ("1day.excess_return_with_cost.annualized_return".into(), 0.1),
            ("1day.excess_return_with_cost.max_drawdown".into(), -0.2),
        ]
        .into();
        let p = page_metrics(Some(&m));
        assert_eq!(
            (p.ic, p.icir, p.rank_ic, p.annualized_return, p.max_drawdown),
            (Some(0.03), None, Some(0.04), Some(0.1), Some(-0.2))
        );
        assert_eq!(page_metrics(None), Metrics::default());
    }

    #[test]
    fn paths_inside_the_project_are_shown_relative() {
        let base = Path::new("/p/proj");
        assert_eq!(shown(Path::new("/p/proj/log/a"), Some(base)), "log/a");
        assert_eq!(shown(Path::new("/p/projx/log"), Some(base)), "/p/projx/log");
        assert_eq!(shown(Path::new("/p/proj"), Some(base)), "/p/proj");
        assert_eq!(shown(Path::new("/q/log"), None), "/q/log");
    }
}
