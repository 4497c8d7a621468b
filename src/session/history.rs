//! The experiment history of one decoded snapshot: `loop.trace.hist` with loop ids, classes, decisions,
//! recorded workspace paths and metrics.
//!
//! Reads the graph only through its accessors and never follows `based_experiments` (a DAG that grows
//! exponentially when expanded). Never touches the file system: where a recorded path lives now is `resolve`'s
//! question.

use std::collections::{BTreeMap, HashMap};

use crate::pickle::{Graph, NodeId, Value};

use super::metrics::{series_metrics_within, CopyBudget, Exhausted, Metrics};
use super::numpy::scalar_bool;
use super::paths::{recorded_path_within, RecordedPath};

/// What an experiment evolves, from its class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExperimentKind {
    /// The class name contains `FactorExperiment`.
    Factor,
    /// The class name contains `ModelExperiment`.
    Model,
    Other,
}

impl ExperimentKind {
    pub fn from_class_name(name: &str) -> ExperimentKind {
        if name.contains("FactorExperiment") {
            ExperimentKind::Factor
        } else if name.contains("ModelExperiment") {
            ExperimentKind::Model
        } else {
            ExperimentKind::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentKind::Factor => "factor",
            ExperimentKind::Model => "model",
            ExperimentKind::Other => "other",
        }
    }
}

/// One `(experiment, feedback)` entry of `trace.hist`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// Position in `trace.hist`.
    pub index: usize,
    /// `trace.idx2loop_id[index]`, when the trace has that map.
    pub loop_id: Option<u64>,
    /// `module.qualname` of the experiment, when it is an object of a named class.
    pub class: Option<String>,
    pub kind: ExperimentKind,
    /// `feedback.decision`; `None` when the feedback or its decision is absent or not a bool.
    pub decision: Option<bool>,
    /// `experiment.experiment_workspace.workspace_path` as recorded.
    pub workspace: Option<RecordedPath>,
    /// `experiment.result` when it is a pandas float Series.
    pub metrics: Option<Metrics>,
}

impl HistoryEntry {
    pub fn is_accepted_factor(&self) -> bool {
        self.kind == ExperimentKind::Factor && self.decision == Some(true)
    }
}

/// Why a decoded pickle is not a loop snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotALoop(pub String);

/// The top object's class (`rdagent.app.qlib_rd_loop.factor.FactorRDLoop`, ...), if it has one.
pub fn loop_class(graph: &Graph) -> Option<String> {
    graph
        .class_of(graph.root())
        .map(|(m, n)| format!("{m}.{n}"))
}

/// Every entry of `root.trace.hist`, in order.
pub fn read_history(graph: &Graph) -> Result<Vec<HistoryEntry>, NotALoop> {
    let root = graph.root();
    let trace = graph.attr(root, "trace").ok_or_else(|| {
        NotALoop(format!(
            "the top object ({}) has no `trace`",
            describe_class(graph, root)
        ))
    })?;
    let hist = graph.attr(trace, "hist").ok_or_else(|| {
        NotALoop(format!(
            "its trace ({}) has no `hist`",
            describe_class(graph, trace)
        ))
    })?;
    let hist = graph
        .items(hist)
        .ok_or_else(|| NotALoop("its trace.hist is not a list".to_string()))?;
    let loop_ids = loop_ids(graph, trace);
    // What is read from an experiment or a feedback is worked out once per object, however many entries
    // share it, and every byte copied into the history is charged to a budget proportional to the input.
    let mut budget = CopyBudget::for_input(graph.input_len);
    let mut seen = Seen::default();
    let mut entries = Vec::with_capacity(hist.len());
    for (index, item) in hist.iter().enumerate() {
        let loop_id = loop_ids.get(&index).copied();
        let e = entry(graph, index, item, loop_id, &mut seen, &mut budget).map_err(|e| {
            NotALoop(format!(
                "its trace.hist would copy more than {} bytes out of a {}-byte pickle (entries referencing \
                 the same objects over and over, which RD-Agent never writes): refusing to amplify it",
                e.limit, graph.input_len
            ))
        })?;
        entries.push(e);
    }
    Ok(entries)
}

/// What was read from each experiment and feedback object already (by node).
#[derive(Default)]
struct Seen {
    experiments: HashMap<NodeId, Experiment>,
    decisions: HashMap<NodeId, Option<bool>>,
    /// Metrics by result (Series) node: experiments that are distinct objects may share one result.
    metrics: HashMap<NodeId, Option<Metrics>>,
}

/// What an entry takes from its experiment.
#[derive(Clone, Default)]
struct Experiment {
    class: Option<String>,
    kind: Option<ExperimentKind>,
    workspace: Option<RecordedPath>,
    metrics: Option<Metrics>,
}

fn describe_class(graph: &Graph, value: &Value) -> String {
    graph
        .class_of(value)
        .map_or_else(|| "not an object".to_string(), |(m, n)| format!("{m}.{n}"))
}

/// `trace.idx2loop_id` as a map; entries that are not (int, int) are ignored.
fn loop_ids(graph: &Graph, trace: &Value) -> BTreeMap<usize, u64> {
    let Some(map) = graph.attr(trace, "idx2loop_id") else {
        return BTreeMap::new();
    };
    graph
        .pairs(map)
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| {
            let index = usize::try_from(k.as_i64()?).ok()?;
            let loop_id = u64::try_from(v.as_i64()?).ok()?;
            Some((index, loop_id))
        })
        .collect()
}

fn entry(
    graph: &Graph,
    index: usize,
    item: &Value,
    loop_id: Option<u64>,
    seen: &mut Seen,
    budget: &mut CopyBudget,
) -> Result<HistoryEntry, Exhausted> {
    let (experiment, feedback) = match graph.items(item) {
        Some([experiment, feedback, ..]) => (Some(experiment), Some(feedback)),
        Some([experiment]) => (Some(experiment), None),
        _ => (graph.object(item).map(|_| item), None),
    };
    let read = match experiment {
        Some(Value::Node(id)) => match seen.experiments.get(id) {
            Some(read) => read.clone(),
            None => {
                let read = read_experiment(graph, experiment.expect("matched"), seen, budget)?;
                seen.experiments.insert(*id, read.clone());
                read
            }
        },
        Some(other) => read_experiment(graph, other, seen, budget)?,
        None => Experiment::default(),
    };
    // The copies each entry holds (its class and path text; metrics are shared).
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    budget.charge(
        text(&read.class)
            + read
                .workspace
                .as_ref()
                .map_or(0, |w| w.text.len() + w.stored_as.len()),
    )?;
    let decision = feedback.and_then(|f| match f {
        Value::Node(id) => *seen
            .decisions
            .entry(*id)
            .or_insert_with(|| decision(graph, f)),
        _ => None,
    });
    Ok(HistoryEntry {
        index,
        loop_id,
        class: read.class,
        kind: read.kind.unwrap_or(ExperimentKind::Other),
        decision,
        workspace: read.workspace,
        metrics: read.metrics,
    })
}

fn decision(graph: &Graph, feedback: &Value) -> Option<bool> {
    graph.attr(feedback, "decision").and_then(|d| match d {
        Value::Bool(b) => Some(*b),
        other => scalar_bool(graph, other),
    })
}

fn read_experiment(
    graph: &Graph,
    experiment: &Value,
    seen: &mut Seen,
    budget: &mut CopyBudget,
) -> Result<Experiment, Exhausted> {
    let class_parts = graph.class_of(experiment);
    if let Some((m, n)) = class_parts {
        budget.charge(m.len() + n.len() + 1)?;
    }
    let workspace = match graph
        .attr(experiment, "experiment_workspace")
        .and_then(|w| graph.attr(w, "workspace_path"))
    {
        Some(path) => recorded_path_within(graph, path, budget)?,
        None => None,
    };
    let metrics = match experiment_result(graph, experiment) {
        Some(result @ Value::Node(id)) => match seen.metrics.get(id) {
            Some(metrics) => metrics.clone(),
            None => {
                let metrics = series_metrics_within(graph, result, budget)?;
                seen.metrics.insert(*id, metrics.clone());
                metrics
            }
        },
        _ => None,
    };
    Ok(Experiment {
        class: class_parts.map(|(m, n)| format!("{m}.{n}")),
        kind: class_parts.map(|(_, n)| ExperimentKind::from_class_name(n)),
        workspace,
        metrics,
    })
}

/// An experiment's `result`: an instance attribute up to RD-Agent 0.6; from 0.7 on a property over
/// `running_info.result`, so the pickled state holds `running_info` instead.
fn experiment_result<'g>(graph: &'g Graph, experiment: &Value) -> Option<&'g Value> {
    graph
        .attr(experiment, "result")
        .filter(|r| **r != Value::None)
        .or_else(|| {
            graph
                .attr(experiment, "running_info")
                .and_then(|info| graph.attr(info, "result"))
        })
}

#[cfg(test)]
mod tests {
    use super::super::numpy::build::*;
    use super::*;
    use crate::pickle::{BuildKind, Node};

    const FACTOR: (&str, &str) = (
        "rdagent.scenarios.qlib.experiment.factor_experiment",
        "QlibFactorExperiment",
    );
    const MODEL: (&str, &str) = (
        "rdagent.scenarios.qlib.experiment.model_experiment",
        "QlibModelExperiment",
    );

    fn experiment(
        b: &mut GraphBuilder,
        class: (&str, &str),
        path: Option<&str>,
        based: Vec<Value>,
    ) -> Value {
        let ws = match path {
            Some(p) => {
                let cls = b.global("pathlib", "PosixPath");
                let path = b.object(BuildKind::Reduce, cls, vec![s(p)], None);
                b.instance(
                    "rdagent.scenarios.qlib.experiment.workspace",
                    "QlibFBWorkspace",
                    vec![("workspace_path", path)],
                )
            }
            None => Value::None,
        };
        let based = b.list(based);
        b.instance(
            class.0,
            class.1,
            vec![
                ("experiment_workspace", ws),
                ("based_experiments", based),
                ("result", Value::None),
            ],
        )
    }

    fn feedback(b: &mut GraphBuilder, decision: Value) -> Value {
        b.instance(
            "rdagent.core.proposal",
            "HypothesisFeedback",
            vec![("decision", decision), ("reason", s("because"))],
        )
    }

    fn loop_graph(mut b: GraphBuilder, hist: Vec<Value>, idx2loop: Vec<(i64, i64)>) -> Graph {
        let hist = b.list(hist);
        let pairs = idx2loop
            .into_iter()
            .map(|(k, v)| (Value::Int(k), Value::Int(v)))
            .collect();
        let map = b.node(Node::Dict(pairs));
        let trace = b.instance(
            "rdagent.core.proposal",
            "Trace",
            vec![("hist", hist), ("idx2loop_id", map)],
        );
        let root = b.instance(
            "rdagent.app.qlib_rd_loop.factor",
            "FactorRDLoop",
            vec![("trace", trace)],
        );
        let mut graph = b.graph;
        graph.root = root;
        graph
    }

    #[test]
    fn lists_entries_with_loop_ids_kinds_decisions_and_paths() {
        let mut b = GraphBuilder::default();
        let e0 = experiment(&mut b, FACTOR, Some("/ws/a"), vec![]);
        let f0 = feedback(&mut b, Value::Bool(true));
        let e1 = experiment(&mut b, MODEL, Some("/ws/b"), vec![e0.clone()]);
        let f1 = feedback(&mut b, Value::Bool(false));
        let e2 = experiment(&mut b, FACTOR, None, vec![e0.clone()]);
        let t0 = b.tuple(vec![e0, f0]);
        let t1 = b.tuple(vec![e1, f1]);
        let t2 = b.tuple(vec![e2, Value::None]);
        let odd = b.instance("x", "Other", vec![]);
        let graph = loop_graph(b, vec![t0, t1, t2, odd], vec![(0, 0), (1, 2), (2, 5)]);
        assert_eq!(
            loop_class(&graph).as_deref(),
            Some("rdagent.app.qlib_rd_loop.factor.FactorRDLoop")
        );
        let hist = read_history(&graph).unwrap();
        assert_eq!(hist.len(), 4);
        assert_eq!(
            hist.iter().map(|e| e.loop_id).collect::<Vec<_>>(),
            vec![Some(0), Some(2), Some(5), None]
        );
        assert_eq!(
            hist.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![
                ExperimentKind::Factor,
                ExperimentKind::Model,
                ExperimentKind::Factor,
                ExperimentKind::Other
            ]
        );
        assert_eq!(
            hist.iter().map(|e| e.decision).collect::<Vec<_>>(),
            vec![Some(true), Some(false), None, None]
        );
        assert_eq!(hist[0].workspace.as_ref().unwrap().text, "/ws/a");
        assert_eq!(hist[2].workspace, None);
        assert_eq!(
            hist[0].class.as_deref(),
            Some("rdagent.scenarios.qlib.experiment.factor_experiment.QlibFactorExperiment")
        );
        assert!(hist[0].is_accepted_factor());
        assert!(!hist[1].is_accepted_factor());
        assert_eq!(hist[3].class.as_deref(), Some("x.Other"));
    }

    #[test]
    fn a_snapshot_without_trace_hist_is_not_a_loop() {
        let mut b = GraphBuilder::default();
        let root = b.instance("m", "Thing", vec![]);
        b.graph.root = root;
        let err = read_history(&b.graph).unwrap_err();
        assert!(
            err.0.contains("m.Thing") && err.0.contains("trace"),
            "{}",
            err.0
        );

        let mut b = GraphBuilder::default();
        let trace = b.instance("rdagent.core.proposal", "Trace", vec![]);
        let root = b.instance("m", "Loop", vec![("trace", trace)]);
        b.graph.root = root;
        assert!(read_history(&b.graph).unwrap_err().0.contains("hist"));
    }

    #[test]
    fn empty_history_and_missing_loop_map() {
        let mut b = GraphBuilder::default();
        let hist = b.list(vec![]);
        let trace = b.instance("rdagent.core.proposal", "Trace", vec![("hist", hist)]);
        let root = b.instance("m", "Loop", vec![("trace", trace)]);
        b.graph.root = root;
        assert_eq!(read_history(&b.graph).unwrap(), vec![]);
    }

    #[test]
    fn kind_comes_from_the_class_name() {
        assert_eq!(
            ExperimentKind::from_class_name("QlibFactorExperiment"),
            ExperimentKind::Factor
        );
        assert_eq!(
            ExperimentKind::from_class_name("FactorExperiment"),
            ExperimentKind::Factor
        );
        assert_eq!(
            ExperimentKind::from_class_name("QlibModelExperiment"),
            ExperimentKind::Model
        );
        assert_eq!(
            ExperimentKind::from_class_name("Experiment"),
            ExperimentKind::Other
        );
        assert_eq!(ExperimentKind::Factor.as_str(), "factor");
    }
}
