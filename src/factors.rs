//! The SOTA factor set in detail: every factor column of the SOTA experiment's parquet (read from its footer),
//! with the loop whose experiment introduced it, its description, formulation and variables, whether the
//! snapshot holds its `factor.py`, and the hypothesis of that loop.
//!
//! A column no experiment explains is listed as such, never dropped. Reads the parquet footer only; never
//! writes anything.

use std::path::PathBuf;

use crate::answers::{metrics_json, term};
use crate::json::Json;
use crate::parquet;
use crate::resolve::Survey;
use crate::session::details::{ExperimentDetail, FactorTask};
use crate::session::{ExperimentKind, Metrics};
use crate::Error;

/// One factor of the SOTA set.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// The column's factor name (second level of `('feature', <name>)`, or the stored name).
    pub name: String,
    /// The history entry whose experiment introduced it; `None`: no experiment explains the column.
    pub introduced_index: Option<usize>,
    pub introduced_loop: Option<u64>,
    /// The task as that experiment recorded it.
    pub task: Option<FactorTask>,
    pub hypothesis: Option<String>,
    /// The metrics of the introducing loop.
    pub metrics: Option<Metrics>,
}

impl Factor {
    pub fn explained(&self) -> bool {
        self.task.is_some()
    }

    pub fn code_in_snapshot(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.code.is_some())
    }
}

/// The SOTA factor set of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorSet {
    pub sota_index: usize,
    pub sota_loop: Option<u64>,
    pub parquet: PathBuf,
    pub factors: Vec<Factor>,
}

/// A factor experiment of the history, for `introducer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub index: usize,
    pub accepted: bool,
}

/// The history entry that introduced factor `name` into the SOTA set: the first ACCEPTED factor experiment at
/// or before the SOTA (the SOTA itself counts as accepted) whose tasks name it, else the first factor
/// experiment at or before the SOTA that names it (a task may have been re-proposed); `None`: no experiment
/// explains the column.
pub fn introducer(
    name: &str,
    experiments: &[Candidate],
    details: &[ExperimentDetail],
    sota_index: usize,
) -> Option<usize> {
    let names_it = |c: &&Candidate| {
        c.index <= sota_index
            && details
                .get(c.index)
                .is_some_and(|d| d.factors.iter().any(|f| f.name == name))
    };
    experiments
        .iter()
        .filter(|c| c.accepted || c.index == sota_index)
        .find(names_it)
        .or_else(|| experiments.iter().find(names_it))
        .map(|c| c.index)
}

/// The factor set of `sota_index`'s parquet, explained by the history up to that entry: a factor is
/// introduced by the first ACCEPTED factor experiment at or before the SOTA whose tasks name it (the SOTA's
/// parquet holds the accepted experiments' factors), else by the first factor experiment that names it.
pub fn factor_set(
    survey: &Survey,
    details: &[ExperimentDetail],
    sota_index: usize,
    parquet_path: PathBuf,
) -> crate::Result<FactorSet> {
    let columns = parquet::read_columns(&parquet_path).map_err(|e| {
        Error::resolution(format!(
            "{e}; the factor names of the SOTA set come from that footer: rerun the factor loop, or pass \
             another --pick"
        ))
    })?;
    let mut names: Vec<String> = columns
        .factor_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Data columns outside ('feature', name) are listed too, never dropped.
    names.extend(columns.other_data_columns().iter().map(|c| match &c.label {
        Some(levels) => levels.join("."),
        None => c.name.clone(),
    }));
    let experiments: Vec<Candidate> = survey
        .entries
        .iter()
        .filter(|s| s.entry.kind == ExperimentKind::Factor)
        .map(|s| Candidate {
            index: s.entry.index,
            accepted: s.entry.decision == Some(true),
        })
        .collect();
    let factors = names
        .into_iter()
        .map(
            |name| match introducer(&name, &experiments, details, sota_index) {
                Some(i) => {
                    let detail = &details[i];
                    let entry = &survey.entries[i].entry;
                    Factor {
                        task: detail.factors.iter().find(|f| f.name == name).cloned(),
                        name,
                        introduced_index: Some(i),
                        introduced_loop: entry.loop_id,
                        hypothesis: detail.hypothesis.clone(),
                        metrics: entry.metrics.clone(),
                    }
                }
                None => Factor {
                    name,
                    introduced_index: None,
                    introduced_loop: None,
                    task: None,
                    hypothesis: None,
                    metrics: None,
                },
            },
        )
        .collect();
    Ok(FactorSet {
        sota_index,
        sota_loop: survey.entries[sota_index].entry.loop_id,
        parquet: parquet_path,
        factors,
    })
}

/// One factor as JSON (`inspect --factors --json`, the bundle's `factors.json`).
pub fn factor_json(f: &Factor, code_file: Option<&str>) -> Json {
    let task = f.task.as_ref();
    Json::object()
        .with("name", f.name.as_str())
        .with("explained", f.explained())
        .with("loop", f.introduced_loop)
        .with("index", f.introduced_index)
        .with("description", task.and_then(|t| t.description.clone()))
        .with("formulation", task.and_then(|t| t.formulation.clone()))
        .with(
            "variables",
            task.map_or(Json::Null, |t| t.variables.clone()),
        )
        .with("code_in_snapshot", f.code_in_snapshot())
        .with("code_file", code_file)
        .with("hypothesis", f.hypothesis.clone())
        .with("metrics", metrics_json(f.metrics.as_ref()))
}

/// The set as JSON.
pub fn factor_set_json(set: &FactorSet) -> Json {
    Json::object()
        .with("sota_index", set.sota_index)
        .with("sota_loop", set.sota_loop)
        .with("parquet", &set.parquet)
        .with("count", set.factors.len())
        .with(
            "unexplained",
            set.factors.iter().filter(|f| !f.explained()).count(),
        )
        .with(
            "factors",
            set.factors
                .iter()
                .map(|f| factor_json(f, None))
                .collect::<Vec<_>>(),
        )
}

/// `inspect --factors` as text: one block per factor. Every text from the snapshot is escaped for the
/// terminal.
pub fn factor_set_text(set: &FactorSet) -> String {
    let mut out = format!(
        "SOTA factor set: {} factors in {} ({})\n",
        set.factors.len(),
        set.parquet.display(),
        match set.sota_loop {
            Some(l) => format!("loop {l}, history entry #{}", set.sota_index),
            None => format!("history entry #{}", set.sota_index),
        }
    );
    for f in &set.factors {
        out.push('\n');
        match (&f.task, f.introduced_index) {
            (Some(task), Some(i)) => {
                let from = match f.introduced_loop {
                    Some(l) => format!("loop {l} (entry #{i})"),
                    None => format!("entry #{i}"),
                };
                out.push_str(&format!("{}  introduced by {from}\n", term(&f.name)));
                let field = |label: &str, value: Option<String>| {
                    format!(
                        "  {label:<12} {}\n",
                        value.map_or("-".to_string(), |v| term(&v))
                    )
                };
                out.push_str(&field("description", task.description.clone()));
                out.push_str(&field("formulation", task.formulation.clone()));
                let vars = match &task.variables {
                    Json::Null => None,
                    Json::Object(pairs) if pairs.is_empty() => None,
                    Json::Object(pairs) => Some(
                        pairs
                            .iter()
                            .map(|(k, v)| match v {
                                Json::Str(s) => format!("{k}: {s}"),
                                other => format!("{k}: {}", other.compact()),
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    other => Some(other.compact()),
                };
                out.push_str(&field("variables", vars));
                out.push_str(&field(
                    "code",
                    Some(if task.code.is_some() {
                        "factor.py in the snapshot".to_string()
                    } else {
                        "not in the snapshot".to_string()
                    }),
                ));
                out.push_str(&field("hypothesis", f.hypothesis.clone()));
            }
            _ => out.push_str(&format!(
                "{}  NOT EXPLAINED: no factor experiment up to the SOTA names this column\n",
                term(&f.name)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(index: usize, names: &[&str]) -> ExperimentDetail {
        ExperimentDetail {
            index,
            hypothesis: None,
            reason: None,
            factors: names
                .iter()
                .map(|n| FactorTask {
                    name: n.to_string(),
                    description: None,
                    formulation: None,
                    variables: Json::Null,
                    code: None,
                })
                .collect(),
            models: Vec::new(),
        }
    }

    #[test]
    fn a_factor_is_introduced_by_the_first_accepted_experiment_that_names_it() {
        // 0 rejected names A; 1 accepted names A and B; 2 rejected names C; 3 (the SOTA, accepted) names D;
        // 4 (after the SOTA) names E.
        let details = vec![
            detail(0, &["A"]),
            detail(1, &["A", "B"]),
            detail(2, &["C"]),
            detail(3, &["D"]),
            detail(4, &["E"]),
        ];
        let exps: Vec<Candidate> = [false, true, false, true, true]
            .iter()
            .enumerate()
            .map(|(index, &accepted)| Candidate { index, accepted })
            .collect();
        assert_eq!(
            introducer("A", &exps, &details, 3),
            Some(1),
            "accepted wins over an earlier rejected one"
        );
        assert_eq!(introducer("B", &exps, &details, 3), Some(1));
        assert_eq!(
            introducer("C", &exps, &details, 3),
            Some(2),
            "only a rejected one names it"
        );
        assert_eq!(
            introducer("D", &exps, &details, 3),
            Some(3),
            "the SOTA's own"
        );
        assert_eq!(
            introducer("E", &exps, &details, 3),
            None,
            "after the SOTA: cannot be in its parquet"
        );
        assert_eq!(introducer("Z", &exps, &details, 3), None);
        // The SOTA counts even when its decision was not recorded as accepted (--pick latest / loop:N).
        let mut unaccepted = exps.clone();
        unaccepted[3].accepted = false;
        assert_eq!(introducer("D", &unaccepted, &details, 3), Some(3));
    }
}
