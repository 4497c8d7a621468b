//! What each experiment of `trace.hist` was about: its tasks (factors with description, formulation and
//! variables; models with name, type, architecture and hyperparameters), the code the snapshot holds for each
//! task (`factor.py` / `model.py` in `sub_workspace_list[i].file_dict`), and the hypothesis text.
//!
//! An entry's items are found by role exactly as `history::read_history` finds them (`history::roles`): an entry
//! whose roles cannot be told apart there gives an empty detail here. Reads the graph through its accessors only
//! and never follows `based_experiments`. Text and values are data from the snapshot: they are returned as they
//! are, for the caller to escape where it prints them.

use std::path::Path;

use crate::json::Json;
use crate::pickle::{self, Graph, Node, Options, Value};

use super::history::{self, Roles};
use super::snapshot::open_envelope;

/// The code file a factor task's workspace holds.
pub const FACTOR_CODE_FILE: &str = "factor.py";
/// The code file a model task's workspace holds (RD-Agent's model runner also injects it into the
/// experiment's workspace).
pub const MODEL_CODE_FILE: &str = "model.py";

/// One `FactorTask` of an experiment's `sub_tasks`.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorTask {
    /// `factor_name` (or `name`).
    pub name: String,
    /// `description` (RD-Agent 1.0; `factor_description` is a property there) or `factor_description`.
    pub description: Option<String>,
    pub formulation: Option<String>,
    /// `variables`: a dict of symbol -> meaning, as JSON.
    pub variables: Json,
    /// `sub_workspace_list[i].file_dict["factor.py"]`.
    pub code: Option<String>,
}

/// One `ModelTask` of an experiment's `sub_tasks`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelTask {
    pub name: String,
    pub model_type: Option<String>,
    pub description: Option<String>,
    pub formulation: Option<String>,
    pub architecture: Option<String>,
    pub variables: Json,
    pub hyperparameters: Json,
    pub training_hyperparameters: Json,
    /// `sub_workspace_list[i].file_dict["model.py"]`, else the experiment workspace's `model.py`.
    pub code: Option<String>,
}

/// What one history entry's experiment holds besides its result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentDetail {
    /// Position in `trace.hist`.
    pub index: usize,
    /// `experiment.hypothesis.hypothesis` (or a `Hypothesis` item of the entry itself, as up to 0.3).
    pub hypothesis: Option<String>,
    /// The feedback's `reason` (why RD-Agent accepted or rejected the experiment).
    pub reason: Option<String>,
    pub factors: Vec<FactorTask>,
    pub models: Vec<ModelTask>,
}

/// Deepest nesting converted to JSON; deeper values become a short note (hyperparameters are flat dicts).
const MAX_JSON_DEPTH: usize = 16;

/// A plain Python value (None, bool, int, float, str, list, tuple, dict) as JSON; anything else as its class
/// name in angle brackets, never expanded.
pub fn value_json(graph: &Graph, value: &Value) -> Json {
    value_json_at(graph, value, 0)
}

fn value_json_at(graph: &Graph, value: &Value, depth: usize) -> Json {
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Int(*i),
        Value::BigInt(_) => Json::Str("<int>".to_string()),
        Value::Float(f) => Json::Float(*f),
        Value::Str(_) | Value::Short(_) => {
            Json::Str(value.as_str().unwrap_or_default().to_string())
        }
        // Only in graphs decoded with a str keep limit (`load_details` keeps every str whole).
        Value::LongStr { len, .. } => Json::Str(format!("<str of {len} bytes>")),
        Value::Bytes(b) => Json::Str(format!("<{} bytes>", b.len)),
        Value::Node(_) if depth >= MAX_JSON_DEPTH => Json::Str("<nested too deep>".to_string()),
        Value::Node(_) => match graph.deref(value) {
            Some(
                Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items),
            ) => Json::Array(
                items
                    .iter()
                    .map(|v| value_json_at(graph, v, depth + 1))
                    .collect(),
            ),
            Some(Node::Dict(pairs)) => Json::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (key_text(graph, k), value_json_at(graph, v, depth + 1)))
                    .collect(),
            ),
            _ => match graph.class_of(value) {
                Some((m, n)) => Json::Str(format!("<{m}.{n}>")),
                None => Json::Str("<object>".to_string()),
            },
        },
    }
}

fn key_text(graph: &Graph, key: &Value) -> String {
    if let Some(s) = key.as_str() {
        return s.to_string();
    }
    match key {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::None => "None".to_string(),
        Value::Float(f) => f.to_string(),
        other => match value_json(graph, other) {
            Json::Str(s) => s,
            j => j.compact(),
        },
    }
}

fn text_attr(graph: &Graph, obj: &Value, name: &str) -> Option<String> {
    graph
        .attr(obj, name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn json_attr(graph: &Graph, obj: &Value, name: &str) -> Json {
    graph
        .attr(obj, name)
        .map_or(Json::Null, |v| value_json(graph, v))
}

fn class_name<'g>(graph: &'g Graph, value: &Value) -> Option<&'g str> {
    graph.class_of(value).map(|(_, n)| n)
}

/// `workspace.file_dict[file]` when it is a str.
fn workspace_file(graph: &Graph, workspace: &Value, file: &str) -> Option<String> {
    let dict = graph.attr(workspace, "file_dict")?;
    graph
        .dict_get(dict, &Value::str(file))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `experiment.hypothesis.hypothesis`, else the entry's own hypothesis item (3-item entries, up to 0.3).
fn hypothesis_of(graph: &Graph, roles: &Roles<'_>) -> Option<String> {
    graph
        .attr(roles.experiment, "hypothesis")
        .and_then(|h| text_attr(graph, h, "hypothesis"))
        .or_else(|| {
            roles
                .hypothesis
                .and_then(|h| text_attr(graph, h, "hypothesis"))
        })
}

fn factor_task(graph: &Graph, task: &Value, workspace: Option<&Value>) -> Option<FactorTask> {
    let name = text_attr(graph, task, "factor_name").or_else(|| text_attr(graph, task, "name"))?;
    Some(FactorTask {
        name,
        description: text_attr(graph, task, "description")
            .or_else(|| text_attr(graph, task, "factor_description")),
        formulation: text_attr(graph, task, "factor_formulation")
            .or_else(|| text_attr(graph, task, "formulation")),
        variables: json_attr(graph, task, "variables"),
        code: workspace.and_then(|w| workspace_file(graph, w, FACTOR_CODE_FILE)),
    })
}

fn model_task(
    graph: &Graph,
    task: &Value,
    workspace: Option<&Value>,
    experiment_workspace: Option<&Value>,
) -> Option<ModelTask> {
    let name = text_attr(graph, task, "name")?;
    Some(ModelTask {
        name,
        model_type: text_attr(graph, task, "model_type"),
        description: text_attr(graph, task, "description"),
        formulation: text_attr(graph, task, "formulation"),
        architecture: text_attr(graph, task, "architecture"),
        variables: json_attr(graph, task, "variables"),
        hyperparameters: json_attr(graph, task, "hyperparameters"),
        training_hyperparameters: json_attr(graph, task, "training_hyperparameters"),
        code: workspace
            .and_then(|w| workspace_file(graph, w, MODEL_CODE_FILE))
            .or_else(|| {
                experiment_workspace.and_then(|w| workspace_file(graph, w, MODEL_CODE_FILE))
            }),
    })
}

/// The details of every entry of `root.trace.hist`, in order (an entry that is not an experiment gives an
/// empty detail, so positions always match `read_history`).
pub fn read_details(graph: &Graph) -> Vec<ExperimentDetail> {
    let Some(hist) = graph
        .attr(graph.root(), "trace")
        .and_then(|t| graph.attr(t, "hist"))
        .and_then(|h| graph.items(h))
    else {
        return Vec::new();
    };
    let mut cache = crate::pickle::value::NodeMap::default();
    hist.iter()
        .enumerate()
        .map(|(index, item)| {
            // The items' roles as `read_history` decides them: an entry it cannot read gives no details.
            let Ok(roles) = history::roles(graph, item, &mut cache) else {
                return ExperimentDetail {
                    index,
                    ..ExperimentDetail::default()
                };
            };
            let experiment = roles.experiment;
            let mut detail = ExperimentDetail {
                index,
                hypothesis: hypothesis_of(graph, &roles),
                reason: roles.feedback.and_then(|f| text_attr(graph, f, "reason")),
                ..ExperimentDetail::default()
            };
            let tasks = graph
                .attr(experiment, "sub_tasks")
                .and_then(|t| graph.items(t))
                .unwrap_or(&[]);
            let workspaces = graph
                .attr(experiment, "sub_workspace_list")
                .and_then(|w| graph.items(w))
                .unwrap_or(&[]);
            let experiment_workspace = graph.attr(experiment, "experiment_workspace");
            for (i, task) in tasks.iter().enumerate() {
                let workspace = workspaces.get(i).filter(|w| graph.object(w).is_some());
                let class = class_name(graph, task).unwrap_or("");
                let is_factor =
                    class.contains("Factor") || graph.attr(task, "factor_name").is_some();
                if is_factor {
                    detail.factors.extend(factor_task(graph, task, workspace));
                } else if class.contains("Model") || graph.attr(task, "model_type").is_some() {
                    detail
                        .models
                        .extend(model_task(graph, task, workspace, experiment_workspace));
                }
            }
            detail
        })
        .collect()
}

/// Decode one snapshot file again and read its details (the code strings are kept whole: they are text, not
/// the byte payloads the decoder drops).
pub fn load_details(path: &Path) -> crate::Result<Vec<ExperimentDetail>> {
    let data =
        std::fs::read(path).map_err(|e| crate::Error::io("cannot read the snapshot", path, e))?;
    let envelope = open_envelope(&data).map_err(|why| {
        crate::Error::resolution(format!("cannot use snapshot {}: {why}", path.display()))
    })?;
    let options = Options {
        keep_bytes_up_to: super::snapshot::KEEP_BYTES_UP_TO,
        skip_values_of: super::snapshot::SKIP_VALUES_OF,
        ..Options::default()
    };
    let graph = pickle::decode(envelope.payload, &options).map_err(|e| {
        crate::Error::resolution(format!(
            "cannot use snapshot {}: not a complete pickle ({e})",
            path.display()
        ))
    })?;
    Ok(read_details(&graph))
}

#[cfg(test)]
mod tests {
    use super::super::numpy::build::*;
    use super::*;

    fn workspace(b: &mut GraphBuilder, file: &str, code: &str) -> Value {
        let files = b.dict(vec![(file, s(code))]);
        b.instance(
            "rdagent.components.coder.factor_coder.factor",
            "FactorFBWorkspace",
            vec![("file_dict", files)],
        )
    }

    fn graph_with(mut b: GraphBuilder, hist: Vec<Value>) -> Graph {
        let hist = b.list(hist);
        let trace = b.instance("rdagent.core.proposal", "Trace", vec![("hist", hist)]);
        let root = b.instance(
            "rdagent.app.qlib_rd_loop.quant",
            "QuantRDLoop",
            vec![("trace", trace)],
        );
        let mut graph = b.graph;
        graph.root = root;
        graph
    }

    #[test]
    fn reads_factor_and_model_tasks_code_and_hypothesis() {
        let mut b = GraphBuilder::default();
        let vars = b.dict(vec![("close_t", s("close at t"))]);
        // RD-Agent 1.0's FactorTask: `description` (factor_description is a property).
        let f1 = b.instance(
            "rdagent.components.coder.factor_coder.factor",
            "FactorTask",
            vec![
                ("factor_name", s("Mom_5")),
                ("description", s("five-day momentum")),
                ("factor_formulation", s("c_t/c_{t-5}-1")),
                ("variables", vars),
            ],
        );
        // An older FactorTask: `factor_description`, and no code for it.
        let f2 = b.instance(
            "rdagent.components.coder.factor_coder.factor",
            "FactorTask",
            vec![
                ("factor_name", s("Vol_20")),
                ("factor_description", s("volatility")),
            ],
        );
        let ws1 = workspace(&mut b, "factor.py", "def f(): pass\n");
        let tasks = b.list(vec![f1, f2]);
        let wss = b.list(vec![ws1, Value::None]);
        let hyp = b.instance(
            "rdagent.core.proposal",
            "Hypothesis",
            vec![("hypothesis", s("momentum persists"))],
        );
        let e0 = b.instance(
            "rdagent.scenarios.qlib.experiment.factor_experiment",
            "QlibFactorExperiment",
            vec![
                ("sub_tasks", tasks),
                ("sub_workspace_list", wss),
                ("hypothesis", hyp),
            ],
        );
        let hp = b.dict(vec![("lr", Value::Float(0.001)), ("layers", Value::Int(2))]);
        let m = b.instance(
            "rdagent.components.coder.model_coder.model",
            "ModelTask",
            vec![
                ("name", s("GRU_A")),
                ("model_type", s("TimeSeries")),
                ("architecture", s("2 GRU layers")),
                ("hyperparameters", hp),
            ],
        );
        let files = b.dict(vec![("model.py", s("class Net: pass\n"))]);
        let ews = b.instance(
            "rdagent.scenarios.qlib.experiment.workspace",
            "QlibFBWorkspace",
            vec![("file_dict", files)],
        );
        let mtasks = b.list(vec![m]);
        let e1 = b.instance(
            "rdagent.scenarios.qlib.experiment.model_experiment",
            "QlibModelExperiment",
            vec![("sub_tasks", mtasks), ("experiment_workspace", ews)],
        );
        // A 3-item entry (hypothesis, experiment, feedback), as RD-Agent 0.3 wrote them.
        let h3 = b.instance(
            "rdagent.core.proposal",
            "Hypothesis",
            vec![("hypothesis", s("old style"))],
        );
        let fb = b.instance(
            "rdagent.core.proposal",
            "HypothesisFeedback",
            vec![("reason", s("IC fell")), ("decision", Value::Bool(false))],
        );
        let t0 = b.tuple(vec![e0, Value::None]);
        let t1 = b.tuple(vec![h3, e1, fb]);
        let graph = graph_with(b, vec![t0, t1, Value::Int(3)]);
        let d = read_details(&graph);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].hypothesis.as_deref(), Some("momentum persists"));
        assert_eq!(d[0].factors.len(), 2);
        assert_eq!(d[0].factors[0].name, "Mom_5");
        assert_eq!(
            d[0].factors[0].description.as_deref(),
            Some("five-day momentum")
        );
        assert_eq!(
            d[0].factors[0].formulation.as_deref(),
            Some("c_t/c_{t-5}-1")
        );
        assert_eq!(
            d[0].factors[0].variables.compact(),
            r#"{"close_t":"close at t"}"#
        );
        assert_eq!(d[0].factors[0].code.as_deref(), Some("def f(): pass\n"));
        assert_eq!(d[0].factors[1].description.as_deref(), Some("volatility"));
        assert_eq!(d[0].factors[1].code, None);
        assert_eq!(d[1].hypothesis.as_deref(), Some("old style"));
        assert_eq!(d[1].reason.as_deref(), Some("IC fell"));
        assert_eq!(d[0].reason, None, "no feedback object, no reason");
        assert_eq!(d[1].models.len(), 1);
        let model = &d[1].models[0];
        assert_eq!(model.name, "GRU_A");
        assert_eq!(model.model_type.as_deref(), Some("TimeSeries"));
        assert_eq!(
            model.hyperparameters.compact(),
            r#"{"lr":0.001,"layers":2}"#
        );
        assert_eq!(model.training_hyperparameters, Json::Null);
        // No sub workspace: the experiment workspace's model.py.
        assert_eq!(model.code.as_deref(), Some("class Net: pass\n"));
        assert_eq!(
            d[2],
            ExperimentDetail {
                index: 2,
                ..ExperimentDetail::default()
            }
        );
    }

    #[test]
    fn entries_are_read_by_the_roles_history_decides() {
        let mut b = GraphBuilder::default();
        let task = |b: &mut GraphBuilder, name: &str| {
            let t = b.instance(
                "rdagent.components.coder.factor_coder.factor",
                "FactorTask",
                vec![("factor_name", s(name))],
            );
            b.list(vec![t])
        };
        let exp = |b: &mut GraphBuilder, tasks: Value| {
            b.instance(
                "rdagent.scenarios.qlib.experiment.factor_experiment",
                "QlibFactorExperiment",
                vec![("sub_tasks", tasks)],
            )
        };
        let fb = |b: &mut GraphBuilder| {
            b.instance(
                "rdagent.core.proposal",
                "HypothesisFeedback",
                vec![("decision", Value::Bool(true))],
            )
        };
        let hyp = b.instance(
            "rdagent.core.proposal",
            "Hypothesis",
            vec![("hypothesis", s("shuffled"))],
        );
        // A 3-item entry in an order no release wrote: the roles, not the positions, decide.
        let t = task(&mut b, "A");
        let e = exp(&mut b, t);
        let f = fb(&mut b);
        let shuffled = b.tuple(vec![f, hyp, e]);
        // Two experiments in one entry: history notes it and reads nothing from it, and so do the details.
        let t1 = task(&mut b, "B1");
        let e1 = exp(&mut b, t1);
        let t2 = task(&mut b, "B2");
        let e2 = exp(&mut b, t2);
        let two = b.tuple(vec![e1, e2]);
        let graph = graph_with(b, vec![shuffled, two]);
        let hist = history::read_history(&graph).unwrap();
        assert_eq!(hist[0].note, None);
        assert!(hist[1].note.is_some(), "{:?}", hist[1]);
        let d = read_details(&graph);
        assert_eq!(d[0].hypothesis.as_deref(), Some("shuffled"));
        assert_eq!(d[0].factors.len(), 1);
        assert_eq!(d[0].factors[0].name, "A");
        assert_eq!(
            d[1],
            ExperimentDetail {
                index: 1,
                ..ExperimentDetail::default()
            }
        );
    }

    #[test]
    fn values_that_are_not_plain_data_stay_names() {
        let mut b = GraphBuilder::default();
        let obj = b.instance("m", "Thing", vec![]);
        let list = b.list(vec![Value::Int(1), obj, Value::None]);
        assert_eq!(
            value_json(&b.graph, &list).compact(),
            r#"[1,"<m.Thing>",null]"#
        );
    }
}
