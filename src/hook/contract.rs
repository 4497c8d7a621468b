//! Every name and format rd-chain shares with its Python hook (scripts/rdagent_hook/sitecustomize.py). The hook
//! defines the same constants in one block between `CONTRACT_BEGIN` and `CONTRACT_END`; a test reads the
//! Python file and checks each one against this module, so the two languages cannot drift apart.
//!
//! Only constants live here: no I/O, no decisions.

use std::path::{Path, PathBuf};

/// The module whose import the hook waits for: RD-Agent's Qlib model runner.
pub const TARGET_MODULE: &str = "rdagent.scenarios.qlib.developer.model_runner";
/// The module the hook takes `QlibFactorExperiment` from when the model runner does not import it.
pub const FACTOR_EXPERIMENT_MODULE: &str = "rdagent.scenarios.qlib.experiment.factor_experiment";
/// The factors file inside a SOTA factor workspace.
pub const FACTORS_FILE: &str = "combined_factors_df.parquet";
/// The words (any case, surrounding blanks ignored) that make a boolean variable true.
pub const TRUE_WORDS: [&str; 4] = ["true", "1", "yes", "on"];
/// Turns the hand-over on (a true word).
pub const LOAD_ENV: &str = "LOAD_SOTA_FROM_WORKSPACE";
/// The factors file itself; wins over `WORKSPACE_ENV`.
pub const FACTORS_PATH_ENV: &str = "SOTA_FACTORS_PATH";
/// The SOTA factor workspace; the hook reads `FACTORS_FILE` in it.
pub const WORKSPACE_ENV: &str = "SOTA_WORKSPACE_PATH";
/// The file the hook appends its report lines to.
pub const REPORT_ENV: &str = "RD_CHAIN_HOOK_REPORT";
/// The report's field separator. Lines are `armed<TAB><pid><TAB><factors path>` and
/// `used<TAB><pid><TAB><rows><TAB><columns><TAB><factors path>`; the hook replaces tabs and newlines inside a
/// field with spaces.
pub const REPORT_SEPARATOR: &str = "\t";
/// The event of a process whose hook armed itself for the model runner.
pub const REPORT_ARMED: &str = "armed";
/// The event of one hand-over of the factors to the model runner.
pub const REPORT_USED: &str = "used";
/// The words that make a boolean variable false. (`LOAD_ENV` is true only for a true word; for
/// `ALPHA_FACTORS_ENV` anything neither true nor false stops the run.)
pub const FALSE_WORDS: [&str; 4] = ["false", "0", "no", "off"];
/// With a false word, the model phase trains on the SOTA factors alone: the hook empties the experiment's
/// base features (RD-Agent's `exp.base_features`).
pub const ALPHA_FACTORS_ENV: &str = "USE_ALPHA_FACTORS";
/// The event of one model experiment whose base features the hook left out:
/// `base_features<TAB><pid><TAB>dropped<TAB><n>`.
pub const REPORT_BASE_FEATURES: &str = "base_features";
/// The event of a SOTA config that cannot train without the base features: `template<TAB><pid><TAB><reason>`.
pub const REPORT_TEMPLATE: &str = "template";
/// The Qlib config RD-Agent's model runner renders for its SOTA-factors branch.
pub const SOTA_MODEL_TEMPLATE: &str = "conf_sota_factors_model.yaml";
/// Qlib's data loaders that load every field group through `D.features`, which refuses an empty field list.
pub const QLIB_FIELD_LOADERS: [&str; 3] = ["QlibDataLoader", "Alpha158DL", "Alpha360DL"];

/// The report's file name in the hook dir (rd-chain's choice; the hook reads the path from `REPORT_ENV`).
pub const REPORT_FILE: &str = "report.tsv";

/// The SOTA config template inside the `rdagent` package directory (rd-chain's knowledge of RD-Agent's layout;
/// the hook reads the rendered copy in the experiment's workspace instead).
pub fn sota_template_file(package_dir: &Path) -> PathBuf {
    package_dir
        .join("scenarios")
        .join("qlib")
        .join("experiment")
        .join("model_template")
        .join(SOTA_MODEL_TEMPLATE)
}

/// The `rdagent` package directory of a model runner file (`model_runner_file`'s inverse).
pub fn package_of_model_runner(runner: &Path) -> Option<PathBuf> {
    let mut dir = runner;
    for _ in model_runner_parts() {
        dir = dir.parent()?;
    }
    Some(dir.to_path_buf())
}

/// The model runner's file inside the `rdagent` package directory, derived from `TARGET_MODULE`.
pub fn model_runner_file(package_dir: &Path) -> PathBuf {
    let mut path = package_dir.to_path_buf();
    for part in model_runner_parts() {
        path.push(part);
    }
    path
}

/// `TARGET_MODULE` as path parts below the package directory (`scenarios`, ..., `model_runner.py`).
pub fn model_runner_parts() -> Vec<String> {
    let mut parts: Vec<String> = TARGET_MODULE
        .split('.')
        .skip(1)
        .map(str::to_string)
        .collect();
    if let Some(last) = parts.last_mut() {
        last.push_str(".py");
    }
    parts
}

/// Is `text` one of `TRUE_WORDS` (any case, blanks ignored)?
pub fn is_true_word(text: &str) -> bool {
    let t = text.trim();
    TRUE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(t))
}

/// Is `text` one of `FALSE_WORDS` (any case, blanks ignored)?
pub fn is_false_word(text: &str) -> bool {
    let t = text.trim();
    FALSE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(t))
}

/// The contract as (Python name, value) pairs, in the Python block's order. A tuple is its items joined by
/// commas.
pub fn python_constants() -> Vec<(&'static str, String)> {
    vec![
        ("TARGET_MODULE", TARGET_MODULE.to_string()),
        (
            "FACTOR_EXPERIMENT_MODULE",
            FACTOR_EXPERIMENT_MODULE.to_string(),
        ),
        ("FACTORS_FILE", FACTORS_FILE.to_string()),
        ("TRUE_WORDS", TRUE_WORDS.join(",")),
        ("LOAD_ENV", LOAD_ENV.to_string()),
        ("FACTORS_PATH_ENV", FACTORS_PATH_ENV.to_string()),
        ("WORKSPACE_ENV", WORKSPACE_ENV.to_string()),
        ("REPORT_ENV", REPORT_ENV.to_string()),
        ("REPORT_SEPARATOR", REPORT_SEPARATOR.to_string()),
        ("REPORT_ARMED", REPORT_ARMED.to_string()),
        ("REPORT_USED", REPORT_USED.to_string()),
        ("FALSE_WORDS", FALSE_WORDS.join(",")),
        ("ALPHA_FACTORS_ENV", ALPHA_FACTORS_ENV.to_string()),
        ("REPORT_BASE_FEATURES", REPORT_BASE_FEATURES.to_string()),
        ("REPORT_TEMPLATE", REPORT_TEMPLATE.to_string()),
        ("SOTA_MODEL_TEMPLATE", SOTA_MODEL_TEMPLATE.to_string()),
        ("QLIB_FIELD_LOADERS", QLIB_FIELD_LOADERS.join(",")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One Python string literal (double-quoted, with the escapes the block uses) starting at `text`; returns
    /// the value and the rest.
    fn python_string(text: &str) -> (String, &str) {
        let body = text
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("expected a double-quoted string at {text:?}"));
        let mut value = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return (value, &body[i + 1..]),
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('t') => value.push('\t'),
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => panic!("unexpected escape {other:?} in {text:?}"),
                },
                c => value.push(c),
            }
        }
        panic!("unterminated string {text:?}")
    }

    /// The `NAME = "value"` and `NAME = ("a", "b")` lines of the hook's contract block.
    fn python_block(source: &str) -> Vec<(String, String)> {
        let begin = source
            .find("# CONTRACT_BEGIN")
            .expect("the hook has a CONTRACT_BEGIN line");
        let end = source
            .find("# CONTRACT_END")
            .expect("the hook has a CONTRACT_END line");
        let mut out = Vec::new();
        for line in source[begin..end].lines().skip(1) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("not an assignment in the contract block: {line:?}"));
            let value = match value.strip_prefix('(') {
                Some(mut rest) => {
                    let mut items = Vec::new();
                    loop {
                        rest = rest.trim_start_matches([' ', ',']);
                        if rest.starts_with(')') {
                            break;
                        }
                        let (item, after) = python_string(rest);
                        items.push(item);
                        rest = after;
                    }
                    items.join(",")
                }
                None => {
                    let (v, rest) = python_string(value);
                    assert_eq!(rest.trim(), "", "trailing text in {line:?}");
                    v
                }
            };
            out.push((name.to_string(), value));
        }
        out
    }

    #[test]
    fn the_python_hook_defines_the_same_contract() {
        let source = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/rdagent_hook/sitecustomize.py"
        ))
        .unwrap();
        assert_eq!(
            source,
            super::super::SITECUSTOMIZE,
            "the embedded hook is the file"
        );
        let python = python_block(&source);
        let rust: Vec<(String, String)> = python_constants()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        assert_eq!(python, rust);
        // The names and paths are spelled only in the block; the code uses the constants. ("armed" and "used"
        // are also the keys of RD_CHAIN_HOOK_STATE, and "base_features" is RD-Agent's attribute: different things.)
        for name in [
            "TARGET_MODULE",
            "FACTOR_EXPERIMENT_MODULE",
            "FACTORS_FILE",
            "LOAD_ENV",
            "FACTORS_PATH_ENV",
            "WORKSPACE_ENV",
            "REPORT_ENV",
            "ALPHA_FACTORS_ENV",
            "REPORT_TEMPLATE",
            "SOTA_MODEL_TEMPLATE",
        ] {
            let value = &rust.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(
                source.matches(&format!("\"{value}\"")).count(),
                1,
                "{value:?} is spelled as a string outside the contract block"
            );
        }
        // Each constant is defined once in the file: the block is the only place.
        for (name, _) in &rust {
            assert_eq!(
                source.matches(&format!("\n{name} = ")).count(),
                1,
                "{name} is assigned once"
            );
        }
    }

    #[test]
    fn the_block_reader_sees_a_changed_value() {
        let source = "x\n# CONTRACT_BEGIN\nA = \"a\\tb\"\nB = (\"1\", \"yes\")\n# CONTRACT_END\n";
        assert_eq!(
            python_block(source),
            vec![
                ("A".to_string(), "a\tb".to_string()),
                ("B".to_string(), "1,yes".to_string())
            ]
        );
    }

    #[test]
    fn the_model_runner_path_follows_the_module() {
        assert_eq!(
            model_runner_parts(),
            ["scenarios", "qlib", "developer", "model_runner.py"]
        );
        assert_eq!(
            model_runner_file(Path::new("/p/rdagent")),
            Path::new("/p/rdagent/scenarios/qlib/developer/model_runner.py")
        );
        assert_eq!(
            package_of_model_runner(&model_runner_file(Path::new("/p/rdagent"))),
            Some(PathBuf::from("/p/rdagent"))
        );
        assert_eq!(
            sota_template_file(Path::new("/p/rdagent")),
            Path::new(
                "/p/rdagent/scenarios/qlib/experiment/model_template/conf_sota_factors_model.yaml"
            )
        );
    }

    #[test]
    fn true_and_false_words_in_any_case() {
        for w in ["true", " YES ", "On", "1"] {
            assert!(is_true_word(w), "{w}");
            assert!(!is_false_word(w), "{w}");
        }
        for w in ["false", "No", "OFF", "0"] {
            assert!(is_false_word(w), "{w}");
            assert!(!is_true_word(w), "{w}");
        }
        assert!(!is_true_word("y") && !is_false_word("y"));
    }
}
