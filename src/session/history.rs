//! The experiment history of one decoded snapshot: `loop.trace.hist` with loop ids, classes, decisions,
//! recorded workspace paths and metrics, for every RD-Agent release.
//!
//! Entries are read by the roles of their items, not their positions: 0.3 writes `(hypothesis, experiment,
//! feedback)`, 0.4 on `(experiment, feedback)`. The feedback is the item with `decision`, the experiment the one
//! with `experiment_workspace` or `sub_tasks`, the hypothesis the one with `hypothesis` or `reason`. An entry
//! whose roles cannot be told apart gets a note and no kind or decision, so nothing is resolved from it.
//! Loop ids come from `trace.idx2loop_id` (filled by 1.0), else are recovered from `loop_prev_out`: from 0.5 on
//! an entry's experiment is the same pickled object as a step output of its loop there.
//!
//! Reads the graph only through its accessors and never follows `based_experiments` (a DAG that grows
//! exponentially when expanded). Never touches the file system: where a recorded path lives now is `resolve`'s
//! question.

use std::collections::BTreeMap;

use crate::pickle::value::NodeMap;
use crate::pickle::{Graph, Value};

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

/// Where an entry's loop id comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopSource {
    /// `trace.idx2loop_id` (RD-Agent 1.0).
    Recorded,
    /// The entry's experiment is a step output of exactly one loop in `loop_prev_out` (0.5 to 0.8).
    Recovered,
}

/// One `(experiment, feedback)` or `(hypothesis, experiment, feedback)` entry of `trace.hist`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// Position in `trace.hist`.
    pub index: usize,
    /// The entry's loop id, when it is recorded or can be recovered.
    pub loop_id: Option<u64>,
    pub loop_source: Option<LoopSource>,
    /// Why the entry is not used: its items' roles could not be told apart (`None` for a sound entry).
    pub note: Option<String>,
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
    let recorded = loop_ids(graph, trace);
    // Recovery only where the trace records no loop id at all (before 1.0): never mixed with recorded ids.
    let owners = if recorded.is_empty() {
        step_output_loops(graph, root)
    } else {
        NodeMap::default()
    };
    // What is read from an experiment or a feedback is worked out once per object, however many entries
    // share it, and every byte copied into the history is charged to a budget proportional to the input.
    let mut budget = CopyBudget::for_input(graph.input_len);
    let mut seen = Seen::for_entries(hist.len());
    let mut entries = Vec::with_capacity(hist.len());
    for (index, item) in hist.iter().enumerate() {
        let roles = roles(graph, item, &mut seen.roles);
        let mut e = entry(graph, index, item, &roles, &mut seen, &mut budget, &entries).map_err(|e| {
            NotALoop(format!(
                "its trace.hist would copy more than {} bytes out of a {}-byte pickle (entries referencing \
                 the same objects over and over, which RD-Agent never writes): refusing to amplify it",
                e.limit, graph.input_len
            ))
        })?;
        if let Some(&l) = recorded.get(&index) {
            e.loop_id = Some(l);
            e.loop_source = Some(LoopSource::Recorded);
        } else if let Ok(Roles {
            experiment: Value::Node(id),
            ..
        }) = &roles
        {
            if let Some(Some(l)) = owners.get(id) {
                e.loop_id = Some(*l);
                e.loop_source = Some(LoopSource::Recovered);
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

/// What was read from each experiment and feedback object already (by node).
#[derive(Default)]
struct Seen {
    experiments: NodeMap<SeenExperiment>,
    decisions: NodeMap<Option<bool>>,
    /// Metrics by result (Series) node: experiments that are distinct objects may share one result.
    metrics: NodeMap<Option<Metrics>>,
    /// The role of each item object of an entry.
    roles: NodeMap<Role>,
    /// `module.qualname` of the experiments' classes, by class node (a run's experiments share a few classes:
    /// each name is formatted once).
    class_names: NodeMap<String>,
}

impl Seen {
    /// Maps that hold what `n` entries of (at most) three items need without growing: every table a map grows
    /// out of is fresh memory written once and dropped. At most `MAX_RESERVED_ENTRIES` are reserved up front (a
    /// history of millions of references to one object must not reserve for millions of distinct ones).
    fn for_entries(n: usize) -> Self {
        let n = n.min(MAX_RESERVED_ENTRIES);
        Seen {
            experiments: NodeMap::with_capacity_and_hasher(n, Default::default()),
            decisions: NodeMap::with_capacity_and_hasher(n, Default::default()),
            metrics: NodeMap::with_capacity_and_hasher(n, Default::default()),
            roles: NodeMap::with_capacity_and_hasher(n.saturating_mul(3), Default::default()),
            class_names: NodeMap::default(),
        }
    }

    /// `module.qualname` of the class node `class` (formatted once for each class node).
    fn class_name(&mut self, class: Option<&Value>, module: &str, name: &str) -> String {
        let Some(Value::Node(class)) = class else {
            return format!("{module}.{name}");
        };
        self.class_names
            .entry(*class)
            .or_insert_with(|| format!("{module}.{name}"))
            .clone()
    }
}

/// Where what was read from an experiment object is: in the history entry that read it (an entry sure of its
/// experiment holds all of it), or kept here (read for an entry that was not).
enum SeenExperiment {
    In(usize),
    Kept(Box<Experiment>),
}

/// The most history entries `Seen` reserves room for before it reads them (a 1,000-loop run has 1,000).
const MAX_RESERVED_ENTRIES: usize = 1 << 16;

/// What an entry takes from its experiment.
#[derive(Clone, Default)]
struct Experiment {
    class: Option<String>,
    kind: Option<ExperimentKind>,
    workspace: Option<RecordedPath>,
    metrics: Option<Metrics>,
}

/// The most items of a step output container looked into for an experiment.
const MAX_OUTPUT_ITEMS: usize = 8;

/// Every object that is a step output in `loop.loop_prev_out[<int loop id>][<step name>]` (or directly inside
/// such an output's list, tuple or dict), with its loop; `None` when it appears under two loops.
fn step_output_loops(graph: &Graph, root: &Value) -> NodeMap<Option<u64>> {
    let mut owners: NodeMap<Option<u64>> = NodeMap::default();
    let Some(prev) = graph.attr(root, "loop_prev_out") else {
        return owners;
    };
    for (key, steps) in graph.pairs(prev).unwrap_or(&[]) {
        let Some(loop_id) = key.as_i64().and_then(|k| u64::try_from(k).ok()) else {
            continue;
        };
        for (_, output) in graph.pairs(steps).unwrap_or(&[]) {
            let inner = graph
                .items(output)
                .map(<[Value]>::to_vec)
                .or_else(|| {
                    graph
                        .pairs(output)
                        .map(|p| p.iter().map(|(_, v)| v.clone()).collect())
                })
                // RD-Agent's outputs are an experiment or a small container holding one (1.0's direct_exp_gen);
                // larger containers are not looked into, which keeps the work linear.
                .filter(|v: &Vec<Value>| v.len() <= MAX_OUTPUT_ITEMS)
                .unwrap_or_default();
            for value in std::iter::once(output).chain(inner.iter()) {
                if let Value::Node(id) = value {
                    if graph.object(value).is_some() {
                        let owner = owners.entry(*id).or_insert(Some(loop_id));
                        if *owner != Some(loop_id) {
                            *owner = None;
                        }
                    }
                }
            }
        }
    }
    owners
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

/// The items of one history entry by role (the one place that decides them: `details` reads entries
/// through it too).
pub(crate) struct Roles<'g> {
    pub experiment: &'g Value,
    pub feedback: Option<&'g Value>,
    /// The entry's own hypothesis item (3-item entries, as up to 0.3).
    pub hypothesis: Option<&'g Value>,
}

/// What an item of a history entry is, from its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Feedback,
    Experiment,
    Hypothesis,
    Missing,
    Unknown,
}

fn role_of(graph: &Graph, item: &Value) -> Role {
    if *item == Value::None {
        return Role::Missing;
    }
    if graph.object(item).is_none() {
        return Role::Unknown;
    }
    let has = |name: &str| graph.attr(item, name).is_some();
    if has("decision") {
        Role::Feedback
    } else if has("experiment_workspace") || has("sub_tasks") {
        Role::Experiment
    } else if has("hypothesis") || has("reason") {
        Role::Hypothesis
    } else {
        Role::Unknown
    }
}

/// The experiment and feedback of an entry of 2 items (experiment, feedback: 0.4 on) or 3 (hypothesis,
/// experiment, feedback: 0.3), found by role; the error says why the entry cannot be read with certainty.
/// `cache` keeps each item object's role, so an object shared by many entries is looked at once.
pub(crate) fn roles<'g>(
    graph: &'g Graph,
    item: &'g Value,
    cache: &mut NodeMap<Role>,
) -> Result<Roles<'g>, String> {
    let Some(items) = graph.items(item) else {
        return Err(format!(
            "the entry is {}, not a tuple of (experiment, feedback)",
            describe_class(graph, item)
        ));
    };
    if !(2..=3).contains(&items.len()) {
        return Err(format!(
            "the entry has {} item{}; RD-Agent writes 2 (experiment, feedback) or 3 (hypothesis, \
             experiment, feedback)",
            items.len(),
            if items.len() == 1 { "" } else { "s" }
        ));
    }
    let mut roles = [Role::Missing; 3];
    for (role, i) in roles.iter_mut().zip(items) {
        *role = match i {
            Value::Node(id) => *cache.entry(*id).or_insert_with(|| role_of(graph, i)),
            other => role_of(graph, other),
        };
    }
    let found = &roles[..items.len()];
    let count = |r: Role| found.iter().filter(|&&f| f == r).count();
    if count(Role::Feedback) > 1 {
        return Err(format!(
            "{} items carry `decision`, so the feedback cannot be told apart",
            count(Role::Feedback)
        ));
    }
    if count(Role::Experiment) != 1 {
        return Err(format!(
            "{} items look like the experiment (`experiment_workspace` or `sub_tasks`); expected one",
            count(Role::Experiment)
        ));
    }
    if let Some(i) = found.iter().position(|&r| r == Role::Unknown) {
        return Err(format!(
            "item {i} ({}) is neither a hypothesis, an experiment nor a feedback",
            describe_class(graph, &items[i])
        ));
    }
    if items.len() == 3 && count(Role::Hypothesis) != 1 {
        return Err("a 3-item entry without exactly one hypothesis".to_string());
    }
    let pick = |r: Role| found.iter().position(|&f| f == r).map(|i| &items[i]);
    Ok(Roles {
        experiment: pick(Role::Experiment).unwrap_or(&items[0]),
        feedback: pick(Role::Feedback),
        hypothesis: pick(Role::Hypothesis),
    })
}

fn entry(
    graph: &Graph,
    index: usize,
    item: &Value,
    roles: &Result<Roles<'_>, String>,
    seen: &mut Seen,
    budget: &mut CopyBudget,
    earlier: &[HistoryEntry],
) -> Result<HistoryEntry, Exhausted> {
    let (experiment, feedback, note) = match roles {
        Ok(r) => (Some(r.experiment), r.feedback, None),
        Err(why) => (None, None, Some(why.clone())),
    };
    // An uncertain entry still shows the class of what it holds, but has no kind: nothing is picked from it.
    let shown = experiment.or_else(|| {
        graph
            .items(item)
            .and_then(|items| items.iter().find(|i| graph.object(i).is_some()))
            .or_else(|| graph.object(item).map(|_| item))
    });
    let certain = experiment.is_some();
    let read = match shown {
        Some(Value::Node(id)) => match seen.experiments.get(id) {
            Some(SeenExperiment::In(at)) => {
                let e = &earlier[*at];
                Experiment {
                    class: e.class.clone(),
                    kind: Some(e.kind),
                    workspace: e.workspace.clone(),
                    metrics: e.metrics.clone(),
                }
            }
            Some(SeenExperiment::Kept(read)) => (**read).clone(),
            None => {
                let read = read_experiment(graph, shown.expect("matched"), seen, budget)?;
                let seen_as = if certain {
                    SeenExperiment::In(index)
                } else {
                    SeenExperiment::Kept(Box::new(read.clone()))
                };
                seen.experiments.insert(*id, seen_as);
                read
            }
        },
        Some(other) => read_experiment(graph, other, seen, budget)?,
        None => Experiment::default(),
    };
    // The copies each entry holds (its class, path text and note; metrics are shared).
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    budget.charge(
        text(&read.class)
            + text(&note)
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
        loop_id: None,
        loop_source: None,
        note,
        class: read.class,
        kind: if certain {
            read.kind.unwrap_or(ExperimentKind::Other)
        } else {
            ExperimentKind::Other
        },
        decision,
        workspace: if certain { read.workspace } else { None },
        metrics: if certain { read.metrics } else { None },
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
        class: class_parts
            .map(|(m, n)| seen.class_name(graph.object(experiment).map(|o| o.callable), m, n)),
        kind: class_parts.map(|(_, n)| ExperimentKind::from_class_name(n)),
        workspace,
        metrics,
    })
}

/// Which RD-Agent release a snapshot looks like, in one line: from the history's entry shape, the trace's
/// loop-id map, `step_idx` and the step names in `loop_prev_out`, the signing and the protocol.
pub fn era(graph: &Graph, history: &[HistoryEntry], signed: bool, protocol: u8) -> String {
    let root = graph.root();
    let trace = graph.attr(root, "trace");
    let shapes: Vec<usize> = trace
        .and_then(|t| graph.attr(t, "hist"))
        .and_then(|h| graph.items(h))
        .unwrap_or(&[])
        .iter()
        .filter_map(|e| graph.items(e).map(<[Value]>::len))
        .collect();
    let three = shapes.contains(&3);
    let map = trace.and_then(|t| graph.attr(t, "idx2loop_id"));
    let map_len = map
        .and_then(|m| graph.pairs(m))
        .map(<[(Value, Value)]>::len);
    let int_step = matches!(graph.attr(root, "step_idx"), Some(Value::Int(_)));
    let steps = step_names(graph, root);
    let has_step = |n: &str| steps.iter().any(|s| s == n);
    let recovered = history
        .iter()
        .any(|e| e.loop_source == Some(LoopSource::Recovered));
    let mut evidence: Vec<String> = Vec::new();
    let release = if three || int_step || has_step("propose") {
        if three {
            evidence.push("3-item history entries".to_string());
        }
        if int_step {
            evidence.push("step_idx an int".to_string());
        }
        evidence.push("no idx2loop_id: no loop ids".to_string());
        "0.3"
    } else {
        if !shapes.is_empty() {
            evidence.push("2-item history entries".to_string());
        }
        match map_len {
            Some(n) if n > 0 => {
                evidence.push("idx2loop_id filled".to_string());
                if has_step("record") {
                    evidence.push("a record step".to_string());
                }
                if has_step("record") || signed {
                    "1.0"
                } else {
                    "0.8 or later"
                }
            }
            Some(_) => {
                evidence.push("idx2loop_id present but empty".to_string());
                "0.8"
            }
            None => {
                evidence.push("no idx2loop_id".to_string());
                "0.4 to 0.7"
            }
        }
    };
    if recovered {
        evidence.push("loop ids recovered from loop_prev_out".to_string());
    }
    evidence.push(if signed { "signed" } else { "unsigned" }.to_string());
    evidence.push(format!("protocol {protocol}"));
    format!("looks like RD-Agent {release} ({})", evidence.join(", "))
}

/// Step names seen in `loop_prev_out`: per loop (0.4 on) or for the current loop only (0.3's plain dict).
fn step_names(graph: &Graph, root: &Value) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let Some(prev) = graph.attr(root, "loop_prev_out") else {
        return Vec::new();
    };
    for (key, value) in graph.pairs(prev).unwrap_or(&[]) {
        if let Some(name) = key.as_str() {
            names.insert(name);
        }
        for (step, _) in graph.pairs(value).unwrap_or(&[]) {
            if let Some(name) = step.as_str() {
                names.insert(name);
            }
        }
    }
    names.into_iter().map(str::to_string).collect()
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
    use crate::pickle::BuildKind;

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
        let map = b.dict_of(pairs);
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

    fn hypothesis(b: &mut GraphBuilder, with_decision: bool) -> Value {
        let mut attrs = vec![("hypothesis", s("h")), ("reason", s("r"))];
        if with_decision {
            attrs.push(("decision", Value::Bool(true)));
        }
        b.instance("rdagent.core.proposal", "Hypothesis", attrs)
    }

    /// A loop object whose trace has `hist` (no idx2loop_id) and whose `loop_prev_out` is `prev`.
    fn old_loop(
        mut b: GraphBuilder,
        hist: Vec<Value>,
        prev: Vec<(i64, Vec<(&str, Value)>)>,
    ) -> Graph {
        let hist = b.list(hist);
        let trace = b.instance("rdagent.core.proposal", "Trace", vec![("hist", hist)]);
        let loops = prev
            .into_iter()
            .map(|(l, steps)| {
                let steps = steps.into_iter().map(|(k, v)| (s(k), v)).collect();
                (Value::Int(l), b.dict_of(steps))
            })
            .collect();
        let prev = b.dict_of(loops);
        let root = b.instance(
            "rdagent.app.qlib_rd_loop.factor",
            "FactorRDLoop",
            vec![("trace", trace), ("loop_prev_out", prev)],
        );
        let mut graph = b.graph;
        graph.root = root;
        graph
    }

    #[test]
    fn three_item_entries_are_read_by_role_not_position() {
        let mut b = GraphBuilder::default();
        let h = hypothesis(&mut b, false);
        let e = experiment(&mut b, FACTOR, Some("/ws/a"), vec![]);
        let f = feedback(&mut b, Value::Bool(true));
        // 0.3's order, and a shuffled one: the roles decide.
        let t0 = b.tuple(vec![h.clone(), e.clone(), f.clone()]);
        let t1 = b.tuple(vec![f, h, e]);
        let graph = old_loop(b, vec![t0, t1], vec![]);
        let hist = read_history(&graph).unwrap();
        for entry in &hist {
            assert_eq!(entry.note, None, "{entry:?}");
            assert!(entry.is_accepted_factor(), "{entry:?}");
            assert_eq!(entry.workspace.as_ref().unwrap().text, "/ws/a");
            assert_eq!((entry.loop_id, entry.loop_source), (None, None));
        }
    }

    #[test]
    fn entries_whose_roles_cannot_be_told_apart_are_noted_and_never_accepted() {
        let mut b = GraphBuilder::default();
        let e = experiment(&mut b, FACTOR, Some("/ws/a"), vec![]);
        let f = feedback(&mut b, Value::Bool(true));
        let h_with_decision = hypothesis(&mut b, true);
        let other = b.instance("x", "Timer", vec![("started", Value::Bool(false))]);
        let cases = vec![
            (b.tuple(vec![e.clone()]), "1 item;"),
            (
                b.tuple(vec![e.clone(), f.clone(), f.clone(), Value::None]),
                "4 items",
            ),
            (
                b.tuple(vec![h_with_decision, e.clone(), f.clone()]),
                "2 items carry `decision`",
            ),
            (b.tuple(vec![e.clone(), other]), "item 1 (x.Timer)"),
            (
                b.tuple(vec![f.clone(), Value::Int(3)]),
                "0 items look like the experiment",
            ),
            (
                b.tuple(vec![e.clone(), e.clone()]),
                "2 items look like the experiment",
            ),
        ];
        let (hist, whys): (Vec<Value>, Vec<&str>) = cases.into_iter().unzip();
        let graph = old_loop(b, hist, vec![]);
        let read = read_history(&graph).unwrap();
        for (entry, why) in read.iter().zip(whys) {
            let note = entry
                .note
                .as_deref()
                .unwrap_or_else(|| panic!("{why}: no note"));
            assert!(note.contains(why), "{note:?} lacks {why:?}");
            assert_eq!(entry.kind, ExperimentKind::Other, "{why}");
            assert_eq!(entry.decision, None, "{why}");
            assert!(!entry.is_accepted_factor());
        }
    }

    #[test]
    fn loop_ids_are_recovered_from_loop_prev_out_by_object_identity() {
        let mut b = GraphBuilder::default();
        let e0 = experiment(&mut b, FACTOR, Some("/ws/a"), vec![]);
        let e1 = experiment(&mut b, FACTOR, Some("/ws/b"), vec![]);
        let e2 = experiment(&mut b, FACTOR, Some("/ws/c"), vec![]);
        // An equal-looking but distinct object: identity, not equality, decides.
        let twin = experiment(&mut b, FACTOR, Some("/ws/b"), vec![]);
        let fs: Vec<Value> = (0..3)
            .map(|_| feedback(&mut b, Value::Bool(false)))
            .collect();
        let t0 = b.tuple(vec![e0.clone(), fs[0].clone()]);
        let t1 = b.tuple(vec![e1.clone(), fs[1].clone()]);
        let t2 = b.tuple(vec![e2.clone(), fs[2].clone()]);
        let wrapped = b.tuple(vec![e0.clone()]);
        let prev = vec![
            (
                4,
                vec![("direct_exp_gen", wrapped), ("feedback", fs[0].clone())],
            ),
            (7, vec![("running", e1.clone()), ("coding", twin)]),
            // e2 under two loops: ambiguous, not recovered
            (8, vec![("running", e2.clone())]),
            (9, vec![("coding", e2)]),
        ];
        let graph = old_loop(b, vec![t0, t1, t2], prev);
        let hist = read_history(&graph).unwrap();
        assert_eq!(
            hist.iter()
                .map(|e| (e.loop_id, e.loop_source))
                .collect::<Vec<_>>(),
            vec![
                (Some(4), Some(LoopSource::Recovered)),
                (Some(7), Some(LoopSource::Recovered)),
                (None, None)
            ]
        );
        let era = era(&graph, &hist, false, 4);
        assert!(
            era.starts_with(
                "looks like RD-Agent 0.4 to 0.7 (2-item history entries, no idx2loop_id"
            ) && era.contains("recovered from loop_prev_out")
                && era.ends_with("unsigned, protocol 4)"),
            "{era}"
        );
    }

    #[test]
    fn recorded_loop_ids_win_and_are_never_mixed_with_recovered_ones() {
        let mut b = GraphBuilder::default();
        let e0 = experiment(&mut b, FACTOR, Some("/ws/a"), vec![]);
        let f0 = feedback(&mut b, Value::Bool(true));
        let t0 = b.tuple(vec![e0, f0]);
        let graph = loop_graph(b, vec![t0], vec![(0, 3)]);
        let hist = read_history(&graph).unwrap();
        assert_eq!(hist[0].loop_id, Some(3));
        assert_eq!(hist[0].loop_source, Some(LoopSource::Recorded));
        let era = era(&graph, &hist, true, 5);
        assert!(
            era.starts_with("looks like RD-Agent 1.0 (2-item history entries, idx2loop_id filled"),
            "{era}"
        );
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
