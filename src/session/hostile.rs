//! Hostile but well-formed snapshots: small files whose structure (one object referenced over and over, labels
//! sharing one huge string) would make a careless reader's cost explode. Each shape is built at two sizes and
//! the work counted by `crate::work` (opcodes run, pairs scanned or indexed, bytes copied) must grow
//! no faster than the input.

use crate::pickle::testpickle::Writer;
use crate::pickle::{decode, Options};
use crate::work;

use super::history::{read_history, HistoryEntry, NotALoop};
use super::snapshot::{HISTORY_SKIPS, KEEP_BYTES_UP_TO, KEEP_STR_UP_TO};

const FACTOR_MODULE: &str = "rdagent.scenarios.qlib.experiment.factor_experiment";

/// Decode and extract the history the way `read_snapshot` does; returns the result and the work counted.
pub(crate) fn extract(data: &[u8]) -> (Result<Vec<HistoryEntry>, NotALoop>, u64) {
    work::take();
    let options = Options {
        keep_bytes_up_to: KEEP_BYTES_UP_TO,
        keep_str_up_to: KEEP_STR_UP_TO,
        skip_values_of: HISTORY_SKIPS,
        ..Options::default()
    };
    let graph = decode(data, &options).expect("the shape decodes");
    let history = read_history(&graph);
    (history, work::take())
}

/// Open `FactorRDLoop() BUILD {"trace": Trace() BUILD {"hist": [` ... (closed by `close_loop`).
fn open_loop(w: &mut Writer) {
    w.global("rdagent.app.qlib_rd_loop.factor", "FactorRDLoop")
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("trace")
        .global("rdagent.core.proposal", "Trace")
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("hist")
        .op(b']');
}

fn close_loop(w: &mut Writer) -> Vec<u8> {
    // SETITEMS BUILD (trace), SETITEMS BUILD (loop).
    w.op(b'u').op(b'b').op(b'u').op(b'b').stop()
}

/// `n` entries `(experiment, feedback)`, all the same two memoized objects, appended in batches.
fn shared_entries(w: &mut Writer, n: usize, experiment: u32, feedback: u32) {
    for chunk in 0..n.div_ceil(1000) {
        w.mark();
        for _ in 0..(n - chunk * 1000).min(1000) {
            w.get(experiment).get(feedback).op(0x86);
        }
        w.op(b'e');
    }
}

/// `m` filler attributes `k0..k{m-1}` = None, as SETITEMS batches inside an open dict.
fn filler(w: &mut Writer, m: usize) {
    for i in 0..m {
        if i % 1000 == 0 {
            if i > 0 {
                w.op(b'u');
            }
            w.mark();
        }
        w.str(&format!("k{i}")).none();
    }
    if m > 0 {
        w.op(b'u');
    }
}

/// A loop whose `trace.hist` holds `n` references to one experiment and one feedback, each with `m` attributes.
pub(crate) fn shared_experiment(n: usize, m: usize) -> Vec<u8> {
    let mut w = Writer::default();
    w.global(FACTOR_MODULE, "QlibFactorExperiment")
        .op(b')')
        .op(0x81)
        .op(b'}');
    filler(&mut w, m);
    w.mark()
        .str("experiment_workspace")
        .none()
        .str("result")
        .none()
        .op(b'u')
        .op(b'b');
    let experiment = w.memoize();
    w.op(b'0');
    w.global("rdagent.core.proposal", "HypothesisFeedback")
        .op(b')')
        .op(0x81)
        .op(b'}');
    filler(&mut w, m);
    w.mark().str("decision").op(0x88).op(b'u').op(b'b');
    let feedback = w.memoize();
    w.op(b'0');
    open_loop(&mut w);
    shared_entries(&mut w, n, experiment, feedback);
    close_loop(&mut w)
}

/// `numpy.dtype(code, False, True)` BUILD `(3, order, None, None, None, -1, -1, 0)`.
fn dtype(w: &mut Writer, code: &str, order: &str) {
    w.global("numpy", "dtype")
        .str(code)
        .op(0x89)
        .op(0x88)
        .op(0x87)
        .op(b'R')
        .mark()
        .int(3)
        .str(order)
        .none()
        .none()
        .none()
        .int(-1)
        .int(-1)
        .int(0)
        .op(b't')
        .op(b'b');
}

/// `_reconstruct(ndarray, (0,), b'b')` BUILD `(1, (n,), dtype, False, data)`; `data` pushes the payload.
fn ndarray(w: &mut Writer, n: usize, code: &str, order: &str, data: impl FnOnce(&mut Writer)) {
    w.global("numpy.core.multiarray", "_reconstruct")
        .global("numpy", "ndarray")
        .int(0)
        .op(0x85)
        .bytes(b"b")
        .op(0x87)
        .op(b'R')
        .mark()
        .int(1)
        .int(n as i32)
        .op(0x85);
    dtype(w, code, order);
    w.op(0x89);
    data(w);
    w.op(b't').op(b'b');
}

/// A float Series whose `k` index labels are all one memoized string of `label_len` bytes.
fn series_with_shared_label(w: &mut Writer, k: usize, label_len: usize) {
    series_with_labels(w, k, |w| {
        w.str(&"L".repeat(label_len));
        let label = w.memoize();
        for _ in 1..k {
            w.get(label);
        }
    });
}

/// A float Series of `k` values whose index labels are pushed by `labels`.
fn series_with_labels(w: &mut Writer, k: usize, labels: impl FnOnce(&mut Writer)) {
    w.global("pandas.core.series", "Series")
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("_mgr")
        .global("pandas.core.internals.managers", "SingleBlockManager")
        .op(b')')
        .op(0x81)
        .mark();
    // axes: [_new_Index(Index, {"data": labels, "name": None})]
    w.op(b']')
        .mark()
        .global("pandas.core.indexes.base", "_new_Index")
        .global("pandas.core.indexes.base", "Index")
        .op(b'}')
        .mark()
        .str("data");
    ndarray(w, k, "O8", "|", |w| {
        w.op(b']').mark();
        labels(w);
        w.op(b'e');
    });
    w.str("name").none().op(b'u').op(0x86).op(b'R').op(b'e');
    // values: [float64 array]
    w.op(b']').mark();
    let raw: Vec<u8> = (0..k).flat_map(|i| (i as f64).to_le_bytes()).collect();
    ndarray(w, k, "f8", "<", |w| {
        w.bytes(&raw);
    });
    w.op(b'e');
    // block items, extra state
    w.op(b']').op(b'}').op(b't').op(b'b');
    w.op(b'u').op(b'b');
}

/// A loop whose `n` history entries share one experiment whose result is a Series of `k` labels, all one
/// memoized string of `label_len` bytes.
pub(crate) fn shared_label_metrics(n: usize, k: usize, label_len: usize) -> Vec<u8> {
    let mut w = Writer::default();
    w.global(FACTOR_MODULE, "QlibFactorExperiment")
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("experiment_workspace")
        .none()
        .str("result");
    series_with_shared_label(&mut w, k, label_len);
    w.op(b'u').op(b'b');
    let experiment = w.memoize();
    w.op(b'0');
    w.global("rdagent.core.proposal", "HypothesisFeedback")
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("decision")
        .op(0x88)
        .op(b'u')
        .op(b'b');
    let feedback = w.memoize();
    w.op(b'0');
    open_loop(&mut w);
    shared_entries(&mut w, n, experiment, feedback);
    close_loop(&mut w)
}

/// A loop whose `n` history entries are distinct experiment and feedback objects that share their state dicts:
/// the experiment's holds a workspace path of `k` segments and a Series of `k` labels, each failing only at
/// its last element (a None), and the feedback's a numpy bool scalar whose latin-1 payload is `payload_len`
/// characters. Nothing is shared at the level of the objects, everything below them.
pub(crate) fn distinct_objects_sharing_large_parts(
    n: usize,
    k: usize,
    payload_len: usize,
) -> Vec<u8> {
    let mut w = Writer::default();
    w.global(FACTOR_MODULE, "QlibFactorExperiment");
    let experiment_class = w.memoize();
    w.op(b'0');
    w.global("rdagent.core.proposal", "HypothesisFeedback");
    let feedback_class = w.memoize();
    w.op(b'0');
    // The experiments' state: {"experiment_workspace": ws, "result": series}.
    w.op(b'}')
        .mark()
        .str("experiment_workspace")
        .global(
            "rdagent.scenarios.qlib.experiment.workspace",
            "QlibFBWorkspace",
        )
        .op(b')')
        .op(0x81)
        .op(b'}')
        .mark()
        .str("workspace_path")
        .global("pathlib", "PosixPath")
        .mark();
    for i in 0..k.saturating_sub(1) {
        w.str(&format!("s{i}"));
    }
    w.none().op(b't').op(0x85).op(b'R').op(b'u').op(b'b');
    w.str("result");
    series_with_labels(&mut w, k, |w| {
        w.str("IC");
        let label = w.memoize();
        for _ in 2..k {
            w.get(label);
        }
        w.none();
    });
    w.op(b'u');
    let experiment_state = w.memoize();
    w.op(b'0');
    // The feedbacks' state: {"decision": numpy scalar(dtype('b1'), _codecs.encode(<payload>, 'latin1'))}.
    w.op(b'}').mark().str("decision");
    w.global("numpy.core.multiarray", "scalar");
    dtype(&mut w, "b1", "|");
    w.global("_codecs", "encode")
        .str(&"\u{1}".repeat(payload_len))
        .str("latin1")
        .op(0x86)
        .op(b'R')
        .op(0x86)
        .op(b'R')
        .op(b'u');
    let feedback_state = w.memoize();
    w.op(b'0');
    open_loop(&mut w);
    for chunk in 0..n.div_ceil(1000) {
        w.mark();
        for _ in 0..(n - chunk * 1000).min(1000) {
            w.get(experiment_class)
                .op(b')')
                .op(0x81)
                .get(experiment_state)
                .op(b'b');
            w.get(feedback_class)
                .op(b')')
                .op(0x81)
                .get(feedback_state)
                .op(b'b');
            w.op(0x86);
        }
        w.op(b'e');
    }
    close_loop(&mut w)
}

/// Work at size `s` and at `4s`, with the input lengths.
fn two_sizes(build: impl Fn(usize) -> Vec<u8>, s: usize) -> ((usize, u64), (usize, u64)) {
    let small = build(s);
    let big = build(4 * s);
    let (_, w_small) = extract(&small);
    let (_, w_big) = extract(&big);
    ((small.len(), w_small), (big.len(), w_big))
}

/// Four times the input may cost at most five times the work (linear, with slack for constant parts).
fn assert_linear(what: &str, ((n1, w1), (n2, w2)): ((usize, u64), (usize, u64))) {
    assert!(
        n2 <= 5 * n1,
        "{what}: the big input ({n2} bytes) must be about 4x the small ({n1} bytes)"
    );
    assert!(
        w2 <= 5 * w1,
        "{what}: work grew from {w1} ({n1} input bytes) to {w2} ({n2} input bytes): more than linear"
    );
    assert!(
        w2 <= 64 * n2 as u64,
        "{what}: work {w2} is more than 64 steps per input byte ({n2} bytes)"
    );
}

#[test]
fn many_references_to_one_experiment_with_a_large_state_cost_linear_work() {
    let sizes = two_sizes(|s| shared_experiment(s, s), 300);
    // The history really is read, and every entry is the shared experiment.
    let (history, _) = extract(&shared_experiment(300, 300));
    let history = history.expect("a loop snapshot");
    assert_eq!(history.len(), 300);
    assert!(history.iter().all(|e| e.is_accepted_factor()));
    // Read once, the same in every entry (class, kind, workspace, metrics).
    let first = &history[0];
    assert!(first
        .class
        .as_deref()
        .is_some_and(|c| c.ends_with(".QlibFactorExperiment")));
    for e in &history {
        let moved = super::HistoryEntry {
            index: 0,
            loop_id: first.loop_id,
            loop_source: first.loop_source,
            ..e.clone()
        };
        assert_eq!(&moved, first);
    }
    assert_linear("N entries x M attributes", sizes);
}

#[test]
fn index_labels_sharing_one_huge_string_cost_linear_work_and_memory() {
    let sizes = two_sizes(|s| shared_label_metrics(16, s, 64 * s), 64);
    assert_linear("labels sharing one string", sizes);
    // Labels of the longest kept length, 4096 of them: 16 MiB of labels out of a 30 KB file: refused.
    let (history, _) = extract(&shared_label_metrics(16, 4096, KEEP_STR_UP_TO));
    let refused = history.expect_err("amplification is refused").0;
    assert!(refused.contains("refusing to amplify"), "{refused}");
    // Longer labels stay places in the input (never copied), so there is nothing to amplify: the history is
    // read, and a Series whose labels are not text gives no metrics.
    let (history, _) = extract(&shared_label_metrics(16, 256, 64 * 256));
    let history = history.expect("labels left in the input are never copied");
    assert_eq!(history.len(), 16);
    assert!(history.iter().all(|e| e.metrics.is_none()));
    // A Series of a few short labels in the same shape is still read as metrics.
    let (history, _) = extract(&shared_label_metrics(3, 4, 2));
    let history = history.expect("a loop snapshot");
    assert_eq!(history.len(), 3);
    let metrics = history[2].metrics.as_ref().expect("metrics");
    assert_eq!(metrics.len(), 4);
    assert_eq!((metrics[3].0.as_str(), metrics[3].1), ("LL", 3.0));
}

#[test]
fn distinct_objects_sharing_large_parts_cost_linear_work() {
    let sizes = two_sizes(|s| distinct_objects_sharing_large_parts(s, s, 16 * s), 500);
    assert_linear("distinct objects sharing large parts", sizes);
    // With small parts the same shape reads: a path and labels that fail give none, the decision is unread.
    let (history, _) = extract(&distinct_objects_sharing_large_parts(3, 4, 1));
    let history = history.expect("a loop snapshot");
    assert_eq!(history.len(), 3);
    assert!(history
        .iter()
        .all(|e| e.workspace.is_none() && e.metrics.is_none() && e.decision == Some(true)));
}

/// One large instance of each shape, kept in the fuzz corpus (`fuzz/corpus/<target>/hostile-*`) so fuzzing
/// starts from them. Fails if a file is missing or differs from what the builders write; run with
/// `RD_CHAIN_WRITE_FUZZ_SEEDS=1` to (re)write them.
#[test]
fn the_fuzz_corpus_keeps_a_large_instance_of_each_shape() {
    let shapes: [(&str, Vec<u8>); 4] = [
        ("hostile-shared-experiment", shared_experiment(4000, 4000)),
        (
            "hostile-shared-label-metrics",
            shared_label_metrics(4000, 500, 256 * 1024),
        ),
        (
            "hostile-distinct-objects-sharing-parts",
            distinct_objects_sharing_large_parts(4000, 4000, 64 * 1024),
        ),
        (
            "hostile-memo-below-dense-limit",
            crate::pickle::testpickle::memo_below_the_dense_limit(20_000),
        ),
    ];
    let write = std::env::var_os("RD_CHAIN_WRITE_FUZZ_SEEDS").is_some();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in ["decode", "snapshot"] {
        for (name, data) in &shapes {
            let path = root.join(target).join(name);
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, data).unwrap();
            }
            let kept = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (RD_CHAIN_WRITE_FUZZ_SEEDS=1 writes it)",
                    path.display()
                )
            });
            assert!(kept == *data, "{} differs from its builder", path.display());
        }
    }
    // And each large instance reads in linear work.
    for (name, data) in &shapes[..3] {
        let (_, steps) = extract(data);
        assert!(
            steps <= 64 * data.len() as u64,
            "{name}: {steps} steps for {} bytes",
            data.len()
        );
    }
}
